// Random inputs of a training step (philox.wgsl is prepended); bit for bit the CPU's
// `cpu::random` for everything but the final f32 arithmetic.
//   gather_batch: out [batch, image_len] from `count` images of image_len bytes, packed four
//                 per u32 little-endian. Sample s is image random_bits(.., s).x % count;
//                 pixels become px / 127.5 - 1.
//   gather_batch4: the same for images of whole u32 words (image_len a multiple of 4): an
//                 invocation takes GATHER_WORDS words of one sample, draws the sample's
//                 image once for them, and turns each word into four pixels stored as one
//                 vec4, where gather_batch draws it again for every pixel.
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
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;  // out, for gather_batch4

// Words of an image each invocation of gather_batch4 takes; GATHER_WORDS in
// src/gpu/ops/random.rs sizes the grid with it.
const GATHER_WORDS: u32 = 4u;

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

// The four pixels of a word, first byte lowest, as px / 127.5 - 1.
fn word_pixels(word: u32) -> vec4<f32> {
    let px = (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
    return vec4<f32>(px) / 127.5 - 1.0;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_batch4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let words = params.image_len / 4u;
    let chunks = (words + GATHER_WORDS - 1u) / GATHER_WORDS;
    let id = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid;
    if (id >= (params.n / params.image_len) * chunks) {
        return;
    }
    let sample = id / chunks;
    let first = (id - sample * chunks) * GATHER_WORDS;
    let bits = random_bits(step.seed_lo, step.seed_hi, step.step, params.stream, sample);
    let image = (bits.x % params.count) * words;
    let at = sample * words;
    for (var k = 0u; k < GATHER_WORDS; k++) {
        let w = first + k;
        if (w < words) {
            out4[at + w] = word_pixels(images[image + w]);
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
