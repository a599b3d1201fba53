// Swap the last two axes: x [n, a, b] -> y [n, b, a], y[s][j][i] = x[s][i][j]. Converts
// between Keras' NHWC flatten order and our NCHW activations.
// One invocation per output element, in output order: stores are coalesced, loads stride by
// b floats. The tensors this runs on are small (the model's is 32 x 49 x 128 floats) and the
// strided reads stay in cache, so a shared-memory tiled transpose would buy little here.

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
