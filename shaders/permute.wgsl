// Swap the last two axes: x [n, a, b] -> y [n, b, a], y[s][j][i] = x[s][i][j]. Converts
// between Keras' NHWC flatten order and our NCHW activations.
// permute_last_two: one invocation per output element, in output order: stores are
// coalesced, loads stride by b floats; permute_last_two8 (below) takes eight at a time. The
// tensors this runs on are small (the model's is 32 x 49 x 128 floats) and the strided reads
// stay in cache, so a shared-memory tiled transpose would buy little here.

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrored by `Params` in src/gpu/ops/permute.rs.
struct Params {
    n: u32,  // leading (batch) extent
    a: u32,  // x's middle extent, y's last
    b: u32,  // x's last extent, y's middle
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [n, a, b]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [n, b, a]
// y four values at a time, for permute_last_two8.
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn permute_last_two(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = params.n * params.a * params.b;
    let first = (wg.x + wg.y * groups.x) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let o = first + k * WORKGROUP_SIZE;
        if (o < total) {
            // o = (s * b + j) * a + i
            let i = o % params.a;
            let rest = o / params.a;
            let j = rest % params.b;
            let s = rest / params.b;
            y[o] = x[(s * params.a + i) * params.b + j];
        }
    }
}

// An output position (s, j, i) and the input element it reads, x[base + i * b + j] with
// base = s * a * b, stepped along the output.
struct Cursor {
    base: u32,
    j: u32,
    i: u32,
}

// The cursor's input value, then the cursor moved to the next output element.
fn take(c: ptr<function, Cursor>) -> f32 {
    let v = x[(*c).base + (*c).i * params.b + (*c).j];
    let wrap_i = (*c).i + 1u == params.a;
    (*c).i = select((*c).i + 1u, 0u, wrap_i);
    let j = (*c).j + u32(wrap_i);
    let wrap_j = j == params.b;
    (*c).j = select(j, 0u, wrap_j);
    (*c).base += select(0u, params.a * params.b, wrap_j);
    return v;
}

// Eight consecutive output elements per invocation, for lengths that are a multiple of 8
// with y at a 16-byte offset: the position is divided out once (`div`:
// shaders/exact_div.wgsl) and stepped, and y is written as two vec4s. On a CPU driver,
// which stores one invocation at a time, that halves the stores.
@compute @workgroup_size(WORKGROUP_SIZE)
fn permute_last_two8(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = params.n * params.a * params.b;
    let o = ((wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid) * 8u;
    if o >= total {
        return;
    }
    // o = (s * b + j) * a + i
    let rest = div(o, params.a);
    let s = div(rest, params.b);
    var c = Cursor(s * params.a * params.b, rest - s * params.b, o - rest * params.a);
    let v0 = take(&c);
    let v1 = take(&c);
    let v2 = take(&c);
    let v3 = take(&c);
    let v4 = take(&c);
    let v5 = take(&c);
    let v6 = take(&c);
    let v7 = take(&c);
    y4[o / 4u] = vec4<f32>(v0, v1, v2, v3);
    y4[o / 4u + 1u] = vec4<f32>(v4, v5, v6, v7);
}
