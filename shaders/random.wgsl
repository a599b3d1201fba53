// Random inputs of a training step (philox.wgsl is prepended); bit for bit the CPU's
// `cpu::random` for everything but the final f32 arithmetic.
//   gather_batch: out [batch, image_len] from `count` images of image_len bytes, packed four
//                 per u32 little-endian. Sample s is image random_bits(.., s).x % count;
//                 pixels become px / 127.5 - 1.
//   normal_noise: out[i] = normal_from_bits(b.x, b.y), b = random_bits(.., i).
// Every invocation recomputes its sample's Philox block: ten rounds of integer arithmetic,
// cheaper than a second dispatch or a workgroup barrier to share it.

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

// Mirrored by `Params` in src/gpu/ops/random.rs.
struct Params {
    n: u32,          // output elements
    stream: u32,     // rng stream
    image_len: u32,  // bytes per image (gather_batch)
    count: u32,      // images to draw from (gather_batch)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: StepConstants;
@group(0) @binding(2) var<storage, read> images: array<u32>;     // bytes, 4 per word, LE
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn first_element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    let group = wg.x + wg.y * groups.x;
    return group * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_batch(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let o = first + k * WORKGROUP_SIZE;
        if (o < params.n) {
            let sample = o / params.image_len;
            let pixel = o - sample * params.image_len;
            let bits = random_bits(step.seed_lo, step.seed_hi, step.step, params.stream, sample);
            let byte = (bits.x % params.count) * params.image_len + pixel;
            let px = (images[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
            out[o] = f32(px) / 127.5 - 1.0;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normal_noise(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let b = random_bits(step.seed_lo, step.seed_hi, step.step, params.stream, i);
            out[i] = normal_from_bits(b.x, b.y);
        }
    }
}
