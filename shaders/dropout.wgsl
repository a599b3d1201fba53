// Inverted dropout (philox.wgsl is prepended).
//   mask:  mask[i] = 1 if (random_bits(seed, step, stream, i / 4)[i % 4] >> 8) >= threshold,
//          else 0, bit for bit the CPU's `cpu::dropout_mask` (threshold =
//          rng::dropout_threshold); an item is one Philox block of four elements, stored
//          as one vec4 by mask4 for lengths that are multiples of 4.
//   apply: y[i] = x[i] * mask[i] * scale, the forward pass and (with dy, dx) the backward;
//          apply4 the same four values at a time, for lengths that are multiples of 4
//          (memory-bound kernels on CPU drivers pay per load instruction more than per byte).

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrors shapes::StepConstants: one uniform per training step.
struct StepConstants {
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    _pad: u32,
    lr_t: vec4<f32>,
}

// Mirrored by `Params` in src/gpu/ops/dropout.rs.
struct Params {
    n: u32,          // elements
    stream: u32,     // rng stream (mask)
    threshold: u32,  // 24-bit drop threshold (mask)
    scale: f32,      // 1 / (1 - rate) as f32 (apply)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: StepConstants;
@group(0) @binding(2) var<storage, read_write> mask: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> mask_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> mask_in4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> mask4: array<vec4<f32>>;

fn first_element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    let group = wg.x + wg.y * groups.x;
    return group * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
}

// The four mask values of Philox block `block`.
fn mask_block(block: u32) -> vec4<f32> {
    let bits = random_bits(step.seed_lo, step.seed_hi, step.step, params.stream, block);
    let keep = (bits >> vec4<u32>(8u)) >= vec4<u32>(params.threshold);
    return select(vec4<f32>(0.0), vec4<f32>(1.0), keep);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_mask(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let block = first + k * WORKGROUP_SIZE;
        let i = block * 4u;
        if (i < params.n) {
            let keep = mask_block(block);
            mask[i] = keep.x;
            if (i + 1u < params.n) {
                mask[i + 1u] = keep.y;
            }
            if (i + 2u < params.n) {
                mask[i + 2u] = keep.z;
            }
            if (i + 3u < params.n) {
                mask[i + 3u] = keep.w;
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_mask4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let block = first + k * WORKGROUP_SIZE;
        if (block < params.n / 4u) {
            mask4[block] = mask_block(block);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_apply(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            y[i] = x[i] * mask_in[i] * params.scale;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_apply4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n / 4u) {
            y4[i] = x4[i] * mask_in4[i] * params.scale;
        }
    }
}
