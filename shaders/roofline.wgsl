// The adapter's own ceilings, measured by two tiny kernels, for the roofline every other
// kernel is held against:
//   fma_peak: multiply-adds on registers only: the arithmetic peak (2 FLOP per multiply-add);
//   copy:     dst = src in 16-byte words: the memory bandwidth a streaming kernel reaches.
//
// fma_peak keeps 16 independent chains per invocation (four vec4 accumulators), so no
// multiply-add waits for the one before it: a chain needs its previous result, which takes
// 4-6 cycles on most hardware, and 16 chains cover that latency on a GPU core as well as on
// llvmpipe, which runs each invocation as one SIMD lane. The loop body is unrolled four
// times (FMAS_PER_ITERATION = 4 * 16 = 64) so the loop counter costs little.
//
// It is spelled `acc * a + b`, not fma(): drivers contract the former into a fused
// multiply-add where the hardware has one, while llvmpipe implements fma() in software.
// a and b come from the uniform, so no compiler can fold the loop; the accumulators' sum is
// stored, so none can drop it. With a = b = 1 (the launcher's values) every chain counts up
// in small integers, exact in f32 in any evaluation order, so the result is checked bit for
// bit against the CPU twin.

const WORKGROUP_SIZE: u32 = 256u;
// Elements (16-byte words for copy) each invocation of copy handles, WORKGROUP_SIZE apart.
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrored by `Params` in src/gpu/ops/roofline.rs.
struct Params {
    invocations: u32, // fma_peak: invocations that run (the grid may hold more)
    iterations: u32,  // fma_peak: loop trips of 64 multiply-adds each
    a: f32,           // fma_peak: every step is acc = acc * a + b
    b: f32,
    words: u32,       // copy: 16-byte words to copy
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;

// The linear workgroup index; the grid folds into y past the x limit.
fn group_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fma_peak(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wg, groups) * WORKGROUP_SIZE + lid;
    if i >= p.invocations {
        return;
    }

    // Chains start at distinct small integers, so every invocation's sum differs.
    let start = f32(i % 1024u);
    var acc0 = vec4<f32>(start, start + 1.0, start + 2.0, start + 3.0);
    var acc1 = acc0 + 4.0;
    var acc2 = acc0 + 8.0;
    var acc3 = acc0 + 12.0;
    let a = vec4<f32>(p.a);
    let b = vec4<f32>(p.b);

    for (var it = 0u; it < p.iterations; it++) {
        acc0 = acc0 * a + b;
        acc1 = acc1 * a + b;
        acc2 = acc2 * a + b;
        acc3 = acc3 * a + b;
        acc0 = acc0 * a + b;
        acc1 = acc1 * a + b;
        acc2 = acc2 * a + b;
        acc3 = acc3 * a + b;
        acc0 = acc0 * a + b;
        acc1 = acc1 * a + b;
        acc2 = acc2 * a + b;
        acc3 = acc3 * a + b;
        acc0 = acc0 * a + b;
        acc1 = acc1 * a + b;
        acc2 = acc2 * a + b;
        acc3 = acc3 * a + b;
    }

    let total = (acc0 + acc1) + (acc2 + acc3);
    sums[i] = (total.x + total.y) + (total.z + total.w);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = group_index(wg, groups) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let w = first + k * WORKGROUP_SIZE;
        if w < p.words {
            dst[w] = src[w];
        }
    }
}
