// General matrix multiply C[m, n] = A[m, k] · B[k, n] (+ bias) whose operands are read
// through uniform buffers, for devices where that is the fast path: lavapipe loads from a
// storage buffer one invocation at a time, with a bounds check and a branch each, but from a
// uniform buffer without branches, several times faster per value. A and B are first packed
// (shaders/pack.wgsl) into windows of at most 64 KiB, the most one uniform binding may hold;
// a dispatch binds up to WINDOWS windows of each and covers one block of at most BLOCK_M
// rows and exactly BLOCK_N columns of C, over the k of its windows; or, when k takes at most
// two windows, one such block per workgroup z, its windows in consecutive slots (block z
// uses slots z * windows .. (z + 1) * windows), so a short product needs fewer dispatches.
// Blocks and the slices of k are otherwise separate dispatches (src/gpu/ops/gemm_uniform.rs);
// a dispatch after the first of a block (the `continue` entry points) starts from the partial
// sums C holds, so each element is one chain of additions in increasing k, as in the direct
// kernels (conv2d.wgsl, and gemm.wgsl's unsplit `gemm`), with the bias added last: the two
// give the same bits for the same order of k.
//
// Windows, in vec4 units (zero where the matrix ends):
//   A window: [KC][BLOCK_M / 4], element (kk, g * 8 + l) holds rows g*32 + l + {0, 8, 16, 24}
//   B window: [KC][BLOCK_N / 4], element (kk, c) holds columns 4c .. 4c + 3
// Tiling: a workgroup of WG = 8 invocations owns 32 rows (the group g) and half of the
// BLOCK_N columns, eight per invocation (two B vec4s); small workgroups keep every core of a
// CPU driver busy even when a block has a single group of rows. Per k, invocation l of each
// subgroup loads one A vec4 (rows l, l + 8, l + 16, l + 24) and subgroupBroadcast hands all
// 32 rows to every invocation, so one load per invocation feeds 32 rows and each broadcast
// value feeds 8 multiply-adds. On lavapipe eight columns per invocation measured about 10%
// faster per training step than four or sixteen. Needs subgroups of at least eight
// invocations (src/gpu/context.rs checks).
const WG: u32 = 8u;
const B_K_VEC4S: u32 = 32u; // vec4s per k of a B window (BLOCK_N / 4)
const BLOCK_M: u32 = 128u;
const BLOCK_N: u32 = 128u; // 8 columns per invocation
const KC: u32 = 128u; // most k per window
const WINDOWS: u32 = 5u;
const WINDOW_VEC4S: u32 = 4096u; // 64 KiB

struct Params {
    m: u32,             // rows of C
    n: u32,             // columns of C
    row0: u32,          // first row and column of this dispatch's block
    col0: u32,
    windows: u32,       // windows per column block (1 ..= WINDOWS)
    kc: u32,            // k per window (<= KC)
    k_last: u32,        // k in the last bound window
    a_k_stride: u32,    // vec4s per k of an A window (block rows / 4)
    // C[r, c] lives at c_offset + r * row_stride + col(c), where col(c) splits c into
    // c / col_div1, (c % col_div1) / col_div2 and c % col_div2, with strides col_s1..3.
    c_offset: u32,
    row_stride: u32,
    col_div1: u32,
    col_div2: u32,
    col_s1: u32,
    col_s2: u32,
    col_s3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> a0: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(2) var<uniform> a1: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(3) var<uniform> a2: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(4) var<uniform> a3: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(5) var<uniform> a4: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(6) var<uniform> b0: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(7) var<uniform> b1: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(8) var<uniform> b2: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(9) var<uniform> b3: array<vec4<f32>, WINDOW_VEC4S>;
@group(0) @binding(10) var<uniform> b4: array<vec4<f32>, WINDOW_VEC4S>;
// Another read-only buffer of the dispatch in the variants without a bias (never read then).
@group(0) @binding(11) var<storage, read> bias: array<f32>;
@group(0) @binding(12) var<storage, read_write> c_out: array<f32>;
// C again, four values at a time, for the vec4 variants. Every variant declares both views
// (the dead one is removed only when the driver compiles it); each uses one of them.
@group(0) @binding(13) var<storage, read_write> c_out4: array<vec4<f32>>;

// lo[i] and hi[i] hold row i of the workgroup's 32, for this invocation's first and last
// four columns. `a` is this invocation's A vec4; row 8j + l comes from component j of
// invocation l.
fn rank1(
    lo: ptr<function, array<vec4<f32>, 32>>,
    hi: ptr<function, array<vec4<f32>, 32>>,
    a: vec4<f32>,
    b_lo: vec4<f32>,
    b_hi: vec4<f32>,
) {
    let s0 = subgroupBroadcast(a.x, 0u);
    (*lo)[0] += s0 * b_lo;
    (*hi)[0] += s0 * b_hi;
    let s1 = subgroupBroadcast(a.x, 1u);
    (*lo)[1] += s1 * b_lo;
    (*hi)[1] += s1 * b_hi;
    let s2 = subgroupBroadcast(a.x, 2u);
    (*lo)[2] += s2 * b_lo;
    (*hi)[2] += s2 * b_hi;
    let s3 = subgroupBroadcast(a.x, 3u);
    (*lo)[3] += s3 * b_lo;
    (*hi)[3] += s3 * b_hi;
    let s4 = subgroupBroadcast(a.x, 4u);
    (*lo)[4] += s4 * b_lo;
    (*hi)[4] += s4 * b_hi;
    let s5 = subgroupBroadcast(a.x, 5u);
    (*lo)[5] += s5 * b_lo;
    (*hi)[5] += s5 * b_hi;
    let s6 = subgroupBroadcast(a.x, 6u);
    (*lo)[6] += s6 * b_lo;
    (*hi)[6] += s6 * b_hi;
    let s7 = subgroupBroadcast(a.x, 7u);
    (*lo)[7] += s7 * b_lo;
    (*hi)[7] += s7 * b_hi;
    let s8 = subgroupBroadcast(a.y, 0u);
    (*lo)[8] += s8 * b_lo;
    (*hi)[8] += s8 * b_hi;
    let s9 = subgroupBroadcast(a.y, 1u);
    (*lo)[9] += s9 * b_lo;
    (*hi)[9] += s9 * b_hi;
    let s10 = subgroupBroadcast(a.y, 2u);
    (*lo)[10] += s10 * b_lo;
    (*hi)[10] += s10 * b_hi;
    let s11 = subgroupBroadcast(a.y, 3u);
    (*lo)[11] += s11 * b_lo;
    (*hi)[11] += s11 * b_hi;
    let s12 = subgroupBroadcast(a.y, 4u);
    (*lo)[12] += s12 * b_lo;
    (*hi)[12] += s12 * b_hi;
    let s13 = subgroupBroadcast(a.y, 5u);
    (*lo)[13] += s13 * b_lo;
    (*hi)[13] += s13 * b_hi;
    let s14 = subgroupBroadcast(a.y, 6u);
    (*lo)[14] += s14 * b_lo;
    (*hi)[14] += s14 * b_hi;
    let s15 = subgroupBroadcast(a.y, 7u);
    (*lo)[15] += s15 * b_lo;
    (*hi)[15] += s15 * b_hi;
    let s16 = subgroupBroadcast(a.z, 0u);
    (*lo)[16] += s16 * b_lo;
    (*hi)[16] += s16 * b_hi;
    let s17 = subgroupBroadcast(a.z, 1u);
    (*lo)[17] += s17 * b_lo;
    (*hi)[17] += s17 * b_hi;
    let s18 = subgroupBroadcast(a.z, 2u);
    (*lo)[18] += s18 * b_lo;
    (*hi)[18] += s18 * b_hi;
    let s19 = subgroupBroadcast(a.z, 3u);
    (*lo)[19] += s19 * b_lo;
    (*hi)[19] += s19 * b_hi;
    let s20 = subgroupBroadcast(a.z, 4u);
    (*lo)[20] += s20 * b_lo;
    (*hi)[20] += s20 * b_hi;
    let s21 = subgroupBroadcast(a.z, 5u);
    (*lo)[21] += s21 * b_lo;
    (*hi)[21] += s21 * b_hi;
    let s22 = subgroupBroadcast(a.z, 6u);
    (*lo)[22] += s22 * b_lo;
    (*hi)[22] += s22 * b_hi;
    let s23 = subgroupBroadcast(a.z, 7u);
    (*lo)[23] += s23 * b_lo;
    (*hi)[23] += s23 * b_hi;
    let s24 = subgroupBroadcast(a.w, 0u);
    (*lo)[24] += s24 * b_lo;
    (*hi)[24] += s24 * b_hi;
    let s25 = subgroupBroadcast(a.w, 1u);
    (*lo)[25] += s25 * b_lo;
    (*hi)[25] += s25 * b_hi;
    let s26 = subgroupBroadcast(a.w, 2u);
    (*lo)[26] += s26 * b_lo;
    (*hi)[26] += s26 * b_hi;
    let s27 = subgroupBroadcast(a.w, 3u);
    (*lo)[27] += s27 * b_lo;
    (*hi)[27] += s27 * b_hi;
    let s28 = subgroupBroadcast(a.w, 4u);
    (*lo)[28] += s28 * b_lo;
    (*hi)[28] += s28 * b_hi;
    let s29 = subgroupBroadcast(a.w, 5u);
    (*lo)[29] += s29 * b_lo;
    (*hi)[29] += s29 * b_hi;
    let s30 = subgroupBroadcast(a.w, 6u);
    (*lo)[30] += s30 * b_lo;
    (*hi)[30] += s30 * b_hi;
    let s31 = subgroupBroadcast(a.w, 7u);
    (*lo)[31] += s31 * b_lo;
    (*hi)[31] += s31 * b_hi;
}

// Two k at once: row r gains a(k) b(k), then a(k + 1) b(k + 1), the order of two rank1
// calls, but each sum is read and written once per pair. A CPU driver keeps the 64 sums in
// memory and blends each one it writes inside a loop, so that halves the per-sum overhead;
// `a_next`, `b_next_lo`, `b_next_hi` are the operands at k + 1.
fn rank2(
    lo: ptr<function, array<vec4<f32>, 32>>,
    hi: ptr<function, array<vec4<f32>, 32>>,
    a: vec4<f32>,
    b_lo: vec4<f32>,
    b_hi: vec4<f32>,
    a_next: vec4<f32>,
    b_next_lo: vec4<f32>,
    b_next_hi: vec4<f32>,
) {
    let s0 = subgroupBroadcast(a.x, 0u);
    let t0 = subgroupBroadcast(a_next.x, 0u);
    (*lo)[0] = ((*lo)[0] + s0 * b_lo) + t0 * b_next_lo;
    (*hi)[0] = ((*hi)[0] + s0 * b_hi) + t0 * b_next_hi;
    let s1 = subgroupBroadcast(a.x, 1u);
    let t1 = subgroupBroadcast(a_next.x, 1u);
    (*lo)[1] = ((*lo)[1] + s1 * b_lo) + t1 * b_next_lo;
    (*hi)[1] = ((*hi)[1] + s1 * b_hi) + t1 * b_next_hi;
    let s2 = subgroupBroadcast(a.x, 2u);
    let t2 = subgroupBroadcast(a_next.x, 2u);
    (*lo)[2] = ((*lo)[2] + s2 * b_lo) + t2 * b_next_lo;
    (*hi)[2] = ((*hi)[2] + s2 * b_hi) + t2 * b_next_hi;
    let s3 = subgroupBroadcast(a.x, 3u);
    let t3 = subgroupBroadcast(a_next.x, 3u);
    (*lo)[3] = ((*lo)[3] + s3 * b_lo) + t3 * b_next_lo;
    (*hi)[3] = ((*hi)[3] + s3 * b_hi) + t3 * b_next_hi;
    let s4 = subgroupBroadcast(a.x, 4u);
    let t4 = subgroupBroadcast(a_next.x, 4u);
    (*lo)[4] = ((*lo)[4] + s4 * b_lo) + t4 * b_next_lo;
    (*hi)[4] = ((*hi)[4] + s4 * b_hi) + t4 * b_next_hi;
    let s5 = subgroupBroadcast(a.x, 5u);
    let t5 = subgroupBroadcast(a_next.x, 5u);
    (*lo)[5] = ((*lo)[5] + s5 * b_lo) + t5 * b_next_lo;
    (*hi)[5] = ((*hi)[5] + s5 * b_hi) + t5 * b_next_hi;
    let s6 = subgroupBroadcast(a.x, 6u);
    let t6 = subgroupBroadcast(a_next.x, 6u);
    (*lo)[6] = ((*lo)[6] + s6 * b_lo) + t6 * b_next_lo;
    (*hi)[6] = ((*hi)[6] + s6 * b_hi) + t6 * b_next_hi;
    let s7 = subgroupBroadcast(a.x, 7u);
    let t7 = subgroupBroadcast(a_next.x, 7u);
    (*lo)[7] = ((*lo)[7] + s7 * b_lo) + t7 * b_next_lo;
    (*hi)[7] = ((*hi)[7] + s7 * b_hi) + t7 * b_next_hi;
    let s8 = subgroupBroadcast(a.y, 0u);
    let t8 = subgroupBroadcast(a_next.y, 0u);
    (*lo)[8] = ((*lo)[8] + s8 * b_lo) + t8 * b_next_lo;
    (*hi)[8] = ((*hi)[8] + s8 * b_hi) + t8 * b_next_hi;
    let s9 = subgroupBroadcast(a.y, 1u);
    let t9 = subgroupBroadcast(a_next.y, 1u);
    (*lo)[9] = ((*lo)[9] + s9 * b_lo) + t9 * b_next_lo;
    (*hi)[9] = ((*hi)[9] + s9 * b_hi) + t9 * b_next_hi;
    let s10 = subgroupBroadcast(a.y, 2u);
    let t10 = subgroupBroadcast(a_next.y, 2u);
    (*lo)[10] = ((*lo)[10] + s10 * b_lo) + t10 * b_next_lo;
    (*hi)[10] = ((*hi)[10] + s10 * b_hi) + t10 * b_next_hi;
    let s11 = subgroupBroadcast(a.y, 3u);
    let t11 = subgroupBroadcast(a_next.y, 3u);
    (*lo)[11] = ((*lo)[11] + s11 * b_lo) + t11 * b_next_lo;
    (*hi)[11] = ((*hi)[11] + s11 * b_hi) + t11 * b_next_hi;
    let s12 = subgroupBroadcast(a.y, 4u);
    let t12 = subgroupBroadcast(a_next.y, 4u);
    (*lo)[12] = ((*lo)[12] + s12 * b_lo) + t12 * b_next_lo;
    (*hi)[12] = ((*hi)[12] + s12 * b_hi) + t12 * b_next_hi;
    let s13 = subgroupBroadcast(a.y, 5u);
    let t13 = subgroupBroadcast(a_next.y, 5u);
    (*lo)[13] = ((*lo)[13] + s13 * b_lo) + t13 * b_next_lo;
    (*hi)[13] = ((*hi)[13] + s13 * b_hi) + t13 * b_next_hi;
    let s14 = subgroupBroadcast(a.y, 6u);
    let t14 = subgroupBroadcast(a_next.y, 6u);
    (*lo)[14] = ((*lo)[14] + s14 * b_lo) + t14 * b_next_lo;
    (*hi)[14] = ((*hi)[14] + s14 * b_hi) + t14 * b_next_hi;
    let s15 = subgroupBroadcast(a.y, 7u);
    let t15 = subgroupBroadcast(a_next.y, 7u);
    (*lo)[15] = ((*lo)[15] + s15 * b_lo) + t15 * b_next_lo;
    (*hi)[15] = ((*hi)[15] + s15 * b_hi) + t15 * b_next_hi;
    let s16 = subgroupBroadcast(a.z, 0u);
    let t16 = subgroupBroadcast(a_next.z, 0u);
    (*lo)[16] = ((*lo)[16] + s16 * b_lo) + t16 * b_next_lo;
    (*hi)[16] = ((*hi)[16] + s16 * b_hi) + t16 * b_next_hi;
    let s17 = subgroupBroadcast(a.z, 1u);
    let t17 = subgroupBroadcast(a_next.z, 1u);
    (*lo)[17] = ((*lo)[17] + s17 * b_lo) + t17 * b_next_lo;
    (*hi)[17] = ((*hi)[17] + s17 * b_hi) + t17 * b_next_hi;
    let s18 = subgroupBroadcast(a.z, 2u);
    let t18 = subgroupBroadcast(a_next.z, 2u);
    (*lo)[18] = ((*lo)[18] + s18 * b_lo) + t18 * b_next_lo;
    (*hi)[18] = ((*hi)[18] + s18 * b_hi) + t18 * b_next_hi;
    let s19 = subgroupBroadcast(a.z, 3u);
    let t19 = subgroupBroadcast(a_next.z, 3u);
    (*lo)[19] = ((*lo)[19] + s19 * b_lo) + t19 * b_next_lo;
    (*hi)[19] = ((*hi)[19] + s19 * b_hi) + t19 * b_next_hi;
    let s20 = subgroupBroadcast(a.z, 4u);
    let t20 = subgroupBroadcast(a_next.z, 4u);
    (*lo)[20] = ((*lo)[20] + s20 * b_lo) + t20 * b_next_lo;
    (*hi)[20] = ((*hi)[20] + s20 * b_hi) + t20 * b_next_hi;
    let s21 = subgroupBroadcast(a.z, 5u);
    let t21 = subgroupBroadcast(a_next.z, 5u);
    (*lo)[21] = ((*lo)[21] + s21 * b_lo) + t21 * b_next_lo;
    (*hi)[21] = ((*hi)[21] + s21 * b_hi) + t21 * b_next_hi;
    let s22 = subgroupBroadcast(a.z, 6u);
    let t22 = subgroupBroadcast(a_next.z, 6u);
    (*lo)[22] = ((*lo)[22] + s22 * b_lo) + t22 * b_next_lo;
    (*hi)[22] = ((*hi)[22] + s22 * b_hi) + t22 * b_next_hi;
    let s23 = subgroupBroadcast(a.z, 7u);
    let t23 = subgroupBroadcast(a_next.z, 7u);
    (*lo)[23] = ((*lo)[23] + s23 * b_lo) + t23 * b_next_lo;
    (*hi)[23] = ((*hi)[23] + s23 * b_hi) + t23 * b_next_hi;
    let s24 = subgroupBroadcast(a.w, 0u);
    let t24 = subgroupBroadcast(a_next.w, 0u);
    (*lo)[24] = ((*lo)[24] + s24 * b_lo) + t24 * b_next_lo;
    (*hi)[24] = ((*hi)[24] + s24 * b_hi) + t24 * b_next_hi;
    let s25 = subgroupBroadcast(a.w, 1u);
    let t25 = subgroupBroadcast(a_next.w, 1u);
    (*lo)[25] = ((*lo)[25] + s25 * b_lo) + t25 * b_next_lo;
    (*hi)[25] = ((*hi)[25] + s25 * b_hi) + t25 * b_next_hi;
    let s26 = subgroupBroadcast(a.w, 2u);
    let t26 = subgroupBroadcast(a_next.w, 2u);
    (*lo)[26] = ((*lo)[26] + s26 * b_lo) + t26 * b_next_lo;
    (*hi)[26] = ((*hi)[26] + s26 * b_hi) + t26 * b_next_hi;
    let s27 = subgroupBroadcast(a.w, 3u);
    let t27 = subgroupBroadcast(a_next.w, 3u);
    (*lo)[27] = ((*lo)[27] + s27 * b_lo) + t27 * b_next_lo;
    (*hi)[27] = ((*hi)[27] + s27 * b_hi) + t27 * b_next_hi;
    let s28 = subgroupBroadcast(a.w, 4u);
    let t28 = subgroupBroadcast(a_next.w, 4u);
    (*lo)[28] = ((*lo)[28] + s28 * b_lo) + t28 * b_next_lo;
    (*hi)[28] = ((*hi)[28] + s28 * b_hi) + t28 * b_next_hi;
    let s29 = subgroupBroadcast(a.w, 5u);
    let t29 = subgroupBroadcast(a_next.w, 5u);
    (*lo)[29] = ((*lo)[29] + s29 * b_lo) + t29 * b_next_lo;
    (*hi)[29] = ((*hi)[29] + s29 * b_hi) + t29 * b_next_hi;
    let s30 = subgroupBroadcast(a.w, 6u);
    let t30 = subgroupBroadcast(a_next.w, 6u);
    (*lo)[30] = ((*lo)[30] + s30 * b_lo) + t30 * b_next_lo;
    (*hi)[30] = ((*hi)[30] + s30 * b_hi) + t30 * b_next_hi;
    let s31 = subgroupBroadcast(a.w, 7u);
    let t31 = subgroupBroadcast(a_next.w, 7u);
    (*lo)[31] = ((*lo)[31] + s31 * b_lo) + t31 * b_next_lo;
    (*hi)[31] = ((*hi)[31] + s31 * b_hi) + t31 * b_next_hi;
}

// k in the window of slot s for the block whose slots start at slot0: every window but
// the block's last holds kc; slots of other blocks hold none for it.
fn window_k(s: u32, slot0: u32) -> u32 {
    let mine = s >= slot0 && s < slot0 + p.windows;
    return select(0u, select(p.kc, p.k_last, s + 1u == slot0 + p.windows), mine);
}

// Element offsets of C for four of this invocation's columns, without the row (`div4`:
// shaders/exact_div.wgsl).
fn column_offsets(cols: vec4<u32>) -> vec4<u32> {
    let q1 = div4(cols, p.col_div1);
    let r1 = cols - q1 * p.col_div1;
    let q2 = div4(r1, p.col_div2);
    return q1 * p.col_s1 + q2 * p.col_s2 + (r1 - q2 * p.col_div2) * p.col_s3;
}

// How C is read and written, fixed per entry point (see the end of this file).
struct Variant {
    // Continue the partial sums C holds (CONTINUE), or start from zero (START).
    accumulate: bool,
    // VEC4: C's rows are whole, aligned vec4s and n is a multiple of 4, so each run of four
    // columns of an invocation is one vec4 of c_out4, wholly in the matrix or wholly past it.
    vec4s: bool,
    // NO_BIAS, ROW_BIAS (bias[row]) or COLUMN_BIAS (bias[column]); only the last group of a
    // block's windows adds one.
    bias_mode: u32,
}

const START: bool = false;
const CONTINUE: bool = true;
const SCALAR: bool = false;
const VEC4: bool = true;
const NO_BIAS: u32 = 0u;
const ROW_BIAS: u32 = 1u;
const COLUMN_BIAS: u32 = 2u;

// The partial sums C holds for row r (zero past the matrix).
fn load(r: u32, cols: vec4<u32>, col_at: vec4<u32>, vr: Variant) -> vec4<f32> {
    let ok = (cols < vec4<u32>(p.n)) & vec4<bool>(r < p.m);
    let row = p.c_offset + r * p.row_stride;
    if vr.vec4s {
        let at = min((row + col_at.x) / 4u, arrayLength(&c_out4) - 1u);
        return select(vec4<f32>(), c_out4[at], ok);
    }
    let at = min(vec4<u32>(row) + col_at, vec4<u32>(arrayLength(&c_out) - 1u));
    let v = vec4<f32>(c_out[at.x], c_out[at.y], c_out[at.z], c_out[at.w]);
    return select(vec4<f32>(), v, ok);
}

fn store(r: u32, cols: vec4<u32>, col_at: vec4<u32>, v: vec4<f32>, vr: Variant) {
    let ok = (cols < vec4<u32>(p.n)) & vec4<bool>(r < p.m);
    let row = p.c_offset + r * p.row_stride;
    var s = v;
    if vr.bias_mode == ROW_BIAS {
        s += vec4<f32>(bias[min(r, p.m - 1u)]);
    } else if vr.bias_mode == COLUMN_BIAS {
        let c = min(cols, vec4<u32>(p.n - 1u));
        s += vec4<f32>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]);
    }
    if vr.vec4s {
        if all(ok) {
            c_out4[(row + col_at.x) / 4u] = s;
        }
        return;
    }
    let at = vec4<u32>(row) + col_at;
    if ok.x { c_out[at.x] = s.x; }
    if ok.y { c_out[at.y] = s.y; }
    if ok.z { c_out[at.z] = s.z; }
    if ok.w { c_out[at.w] = s.w; }
}

fn gemm(wid: vec3<u32>, lane: u32, sl: u32, vr: Variant) {
    // This invocation's A vec4 in each window, and the first of its two B vec4s per k.
    let g = wid.x;
    let a_at = g * 8u + (sl & 7u);
    let b_at = (wid.y * WG + lane) * 2u;
    let slot0 = wid.z * p.windows;

    // This invocation's eight columns of C, as two runs of four, and its 32 rows.
    let cols = p.col0 + wid.z * BLOCK_N + b_at * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let col_at = column_offsets(cols);
    let cols_hi = cols + 4u;
    let col_at_hi = column_offsets(cols_hi);
    let r0 = p.row0 + g * 32u;

    var acc_lo: array<vec4<f32>, 32>;
    var acc_hi: array<vec4<f32>, 32>;
    if vr.accumulate {
        // Written out: a loop would index the arrays dynamically and keep them out of
        // registers.
        acc_lo[0] = load(r0 + 0u, cols, col_at, vr);
        acc_hi[0] = load(r0 + 0u, cols_hi, col_at_hi, vr);
        acc_lo[1] = load(r0 + 1u, cols, col_at, vr);
        acc_hi[1] = load(r0 + 1u, cols_hi, col_at_hi, vr);
        acc_lo[2] = load(r0 + 2u, cols, col_at, vr);
        acc_hi[2] = load(r0 + 2u, cols_hi, col_at_hi, vr);
        acc_lo[3] = load(r0 + 3u, cols, col_at, vr);
        acc_hi[3] = load(r0 + 3u, cols_hi, col_at_hi, vr);
        acc_lo[4] = load(r0 + 4u, cols, col_at, vr);
        acc_hi[4] = load(r0 + 4u, cols_hi, col_at_hi, vr);
        acc_lo[5] = load(r0 + 5u, cols, col_at, vr);
        acc_hi[5] = load(r0 + 5u, cols_hi, col_at_hi, vr);
        acc_lo[6] = load(r0 + 6u, cols, col_at, vr);
        acc_hi[6] = load(r0 + 6u, cols_hi, col_at_hi, vr);
        acc_lo[7] = load(r0 + 7u, cols, col_at, vr);
        acc_hi[7] = load(r0 + 7u, cols_hi, col_at_hi, vr);
        acc_lo[8] = load(r0 + 8u, cols, col_at, vr);
        acc_hi[8] = load(r0 + 8u, cols_hi, col_at_hi, vr);
        acc_lo[9] = load(r0 + 9u, cols, col_at, vr);
        acc_hi[9] = load(r0 + 9u, cols_hi, col_at_hi, vr);
        acc_lo[10] = load(r0 + 10u, cols, col_at, vr);
        acc_hi[10] = load(r0 + 10u, cols_hi, col_at_hi, vr);
        acc_lo[11] = load(r0 + 11u, cols, col_at, vr);
        acc_hi[11] = load(r0 + 11u, cols_hi, col_at_hi, vr);
        acc_lo[12] = load(r0 + 12u, cols, col_at, vr);
        acc_hi[12] = load(r0 + 12u, cols_hi, col_at_hi, vr);
        acc_lo[13] = load(r0 + 13u, cols, col_at, vr);
        acc_hi[13] = load(r0 + 13u, cols_hi, col_at_hi, vr);
        acc_lo[14] = load(r0 + 14u, cols, col_at, vr);
        acc_hi[14] = load(r0 + 14u, cols_hi, col_at_hi, vr);
        acc_lo[15] = load(r0 + 15u, cols, col_at, vr);
        acc_hi[15] = load(r0 + 15u, cols_hi, col_at_hi, vr);
        acc_lo[16] = load(r0 + 16u, cols, col_at, vr);
        acc_hi[16] = load(r0 + 16u, cols_hi, col_at_hi, vr);
        acc_lo[17] = load(r0 + 17u, cols, col_at, vr);
        acc_hi[17] = load(r0 + 17u, cols_hi, col_at_hi, vr);
        acc_lo[18] = load(r0 + 18u, cols, col_at, vr);
        acc_hi[18] = load(r0 + 18u, cols_hi, col_at_hi, vr);
        acc_lo[19] = load(r0 + 19u, cols, col_at, vr);
        acc_hi[19] = load(r0 + 19u, cols_hi, col_at_hi, vr);
        acc_lo[20] = load(r0 + 20u, cols, col_at, vr);
        acc_hi[20] = load(r0 + 20u, cols_hi, col_at_hi, vr);
        acc_lo[21] = load(r0 + 21u, cols, col_at, vr);
        acc_hi[21] = load(r0 + 21u, cols_hi, col_at_hi, vr);
        acc_lo[22] = load(r0 + 22u, cols, col_at, vr);
        acc_hi[22] = load(r0 + 22u, cols_hi, col_at_hi, vr);
        acc_lo[23] = load(r0 + 23u, cols, col_at, vr);
        acc_hi[23] = load(r0 + 23u, cols_hi, col_at_hi, vr);
        acc_lo[24] = load(r0 + 24u, cols, col_at, vr);
        acc_hi[24] = load(r0 + 24u, cols_hi, col_at_hi, vr);
        acc_lo[25] = load(r0 + 25u, cols, col_at, vr);
        acc_hi[25] = load(r0 + 25u, cols_hi, col_at_hi, vr);
        acc_lo[26] = load(r0 + 26u, cols, col_at, vr);
        acc_hi[26] = load(r0 + 26u, cols_hi, col_at_hi, vr);
        acc_lo[27] = load(r0 + 27u, cols, col_at, vr);
        acc_hi[27] = load(r0 + 27u, cols_hi, col_at_hi, vr);
        acc_lo[28] = load(r0 + 28u, cols, col_at, vr);
        acc_hi[28] = load(r0 + 28u, cols_hi, col_at_hi, vr);
        acc_lo[29] = load(r0 + 29u, cols, col_at, vr);
        acc_hi[29] = load(r0 + 29u, cols_hi, col_at_hi, vr);
        acc_lo[30] = load(r0 + 30u, cols, col_at, vr);
        acc_hi[30] = load(r0 + 30u, cols_hi, col_at_hi, vr);
        acc_lo[31] = load(r0 + 31u, cols, col_at, vr);
        acc_hi[31] = load(r0 + 31u, cols_hi, col_at_hi, vr);
    }
    // Pairs of k, then the odd one out: a loop that runs at most once, not an `if`, because
    // a CPU driver skips a loop no invocation enters but runs an `if`'s body regardless.
    var kk = 0u;
    let k0 = window_k(0u, slot0);
    for (; kk + 1u < k0; kk += 2u) {
        let at = kk * p.a_k_stride + a_at;
        let bk = kk * B_K_VEC4S + b_at;
        rank2(
            &acc_lo,
            &acc_hi,
            a0[at],
            b0[bk],
            b0[bk + 1u],
            a0[at + p.a_k_stride],
            b0[bk + B_K_VEC4S],
            b0[bk + B_K_VEC4S + 1u],
        );
    }
    for (; kk < k0; kk++) {
        let bk = kk * B_K_VEC4S + b_at;
        rank1(&acc_lo, &acc_hi, a0[kk * p.a_k_stride + a_at], b0[bk], b0[bk + 1u]);
    }
    kk = 0u;
    let k1 = window_k(1u, slot0);
    for (; kk + 1u < k1; kk += 2u) {
        let at = kk * p.a_k_stride + a_at;
        let bk = kk * B_K_VEC4S + b_at;
        rank2(
            &acc_lo,
            &acc_hi,
            a1[at],
            b1[bk],
            b1[bk + 1u],
            a1[at + p.a_k_stride],
            b1[bk + B_K_VEC4S],
            b1[bk + B_K_VEC4S + 1u],
        );
    }
    for (; kk < k1; kk++) {
        let bk = kk * B_K_VEC4S + b_at;
        rank1(&acc_lo, &acc_hi, a1[kk * p.a_k_stride + a_at], b1[bk], b1[bk + 1u]);
    }
    kk = 0u;
    let k2 = window_k(2u, slot0);
    for (; kk + 1u < k2; kk += 2u) {
        let at = kk * p.a_k_stride + a_at;
        let bk = kk * B_K_VEC4S + b_at;
        rank2(
            &acc_lo,
            &acc_hi,
            a2[at],
            b2[bk],
            b2[bk + 1u],
            a2[at + p.a_k_stride],
            b2[bk + B_K_VEC4S],
            b2[bk + B_K_VEC4S + 1u],
        );
    }
    for (; kk < k2; kk++) {
        let bk = kk * B_K_VEC4S + b_at;
        rank1(&acc_lo, &acc_hi, a2[kk * p.a_k_stride + a_at], b2[bk], b2[bk + 1u]);
    }
    kk = 0u;
    let k3 = window_k(3u, slot0);
    for (; kk + 1u < k3; kk += 2u) {
        let at = kk * p.a_k_stride + a_at;
        let bk = kk * B_K_VEC4S + b_at;
        rank2(
            &acc_lo,
            &acc_hi,
            a3[at],
            b3[bk],
            b3[bk + 1u],
            a3[at + p.a_k_stride],
            b3[bk + B_K_VEC4S],
            b3[bk + B_K_VEC4S + 1u],
        );
    }
    for (; kk < k3; kk++) {
        let bk = kk * B_K_VEC4S + b_at;
        rank1(&acc_lo, &acc_hi, a3[kk * p.a_k_stride + a_at], b3[bk], b3[bk + 1u]);
    }
    kk = 0u;
    let k4 = window_k(4u, slot0);
    for (; kk + 1u < k4; kk += 2u) {
        let at = kk * p.a_k_stride + a_at;
        let bk = kk * B_K_VEC4S + b_at;
        rank2(
            &acc_lo,
            &acc_hi,
            a4[at],
            b4[bk],
            b4[bk + 1u],
            a4[at + p.a_k_stride],
            b4[bk + B_K_VEC4S],
            b4[bk + B_K_VEC4S + 1u],
        );
    }
    for (; kk < k4; kk++) {
        let bk = kk * B_K_VEC4S + b_at;
        rank1(&acc_lo, &acc_hi, a4[kk * p.a_k_stride + a_at], b4[bk], b4[bk + 1u]);
    }

    store(r0 + 0u, cols, col_at, acc_lo[0], vr);
    store(r0 + 0u, cols_hi, col_at_hi, acc_hi[0], vr);
    store(r0 + 1u, cols, col_at, acc_lo[1], vr);
    store(r0 + 1u, cols_hi, col_at_hi, acc_hi[1], vr);
    store(r0 + 2u, cols, col_at, acc_lo[2], vr);
    store(r0 + 2u, cols_hi, col_at_hi, acc_hi[2], vr);
    store(r0 + 3u, cols, col_at, acc_lo[3], vr);
    store(r0 + 3u, cols_hi, col_at_hi, acc_hi[3], vr);
    store(r0 + 4u, cols, col_at, acc_lo[4], vr);
    store(r0 + 4u, cols_hi, col_at_hi, acc_hi[4], vr);
    store(r0 + 5u, cols, col_at, acc_lo[5], vr);
    store(r0 + 5u, cols_hi, col_at_hi, acc_hi[5], vr);
    store(r0 + 6u, cols, col_at, acc_lo[6], vr);
    store(r0 + 6u, cols_hi, col_at_hi, acc_hi[6], vr);
    store(r0 + 7u, cols, col_at, acc_lo[7], vr);
    store(r0 + 7u, cols_hi, col_at_hi, acc_hi[7], vr);
    store(r0 + 8u, cols, col_at, acc_lo[8], vr);
    store(r0 + 8u, cols_hi, col_at_hi, acc_hi[8], vr);
    store(r0 + 9u, cols, col_at, acc_lo[9], vr);
    store(r0 + 9u, cols_hi, col_at_hi, acc_hi[9], vr);
    store(r0 + 10u, cols, col_at, acc_lo[10], vr);
    store(r0 + 10u, cols_hi, col_at_hi, acc_hi[10], vr);
    store(r0 + 11u, cols, col_at, acc_lo[11], vr);
    store(r0 + 11u, cols_hi, col_at_hi, acc_hi[11], vr);
    store(r0 + 12u, cols, col_at, acc_lo[12], vr);
    store(r0 + 12u, cols_hi, col_at_hi, acc_hi[12], vr);
    store(r0 + 13u, cols, col_at, acc_lo[13], vr);
    store(r0 + 13u, cols_hi, col_at_hi, acc_hi[13], vr);
    store(r0 + 14u, cols, col_at, acc_lo[14], vr);
    store(r0 + 14u, cols_hi, col_at_hi, acc_hi[14], vr);
    store(r0 + 15u, cols, col_at, acc_lo[15], vr);
    store(r0 + 15u, cols_hi, col_at_hi, acc_hi[15], vr);
    store(r0 + 16u, cols, col_at, acc_lo[16], vr);
    store(r0 + 16u, cols_hi, col_at_hi, acc_hi[16], vr);
    store(r0 + 17u, cols, col_at, acc_lo[17], vr);
    store(r0 + 17u, cols_hi, col_at_hi, acc_hi[17], vr);
    store(r0 + 18u, cols, col_at, acc_lo[18], vr);
    store(r0 + 18u, cols_hi, col_at_hi, acc_hi[18], vr);
    store(r0 + 19u, cols, col_at, acc_lo[19], vr);
    store(r0 + 19u, cols_hi, col_at_hi, acc_hi[19], vr);
    store(r0 + 20u, cols, col_at, acc_lo[20], vr);
    store(r0 + 20u, cols_hi, col_at_hi, acc_hi[20], vr);
    store(r0 + 21u, cols, col_at, acc_lo[21], vr);
    store(r0 + 21u, cols_hi, col_at_hi, acc_hi[21], vr);
    store(r0 + 22u, cols, col_at, acc_lo[22], vr);
    store(r0 + 22u, cols_hi, col_at_hi, acc_hi[22], vr);
    store(r0 + 23u, cols, col_at, acc_lo[23], vr);
    store(r0 + 23u, cols_hi, col_at_hi, acc_hi[23], vr);
    store(r0 + 24u, cols, col_at, acc_lo[24], vr);
    store(r0 + 24u, cols_hi, col_at_hi, acc_hi[24], vr);
    store(r0 + 25u, cols, col_at, acc_lo[25], vr);
    store(r0 + 25u, cols_hi, col_at_hi, acc_hi[25], vr);
    store(r0 + 26u, cols, col_at, acc_lo[26], vr);
    store(r0 + 26u, cols_hi, col_at_hi, acc_hi[26], vr);
    store(r0 + 27u, cols, col_at, acc_lo[27], vr);
    store(r0 + 27u, cols_hi, col_at_hi, acc_hi[27], vr);
    store(r0 + 28u, cols, col_at, acc_lo[28], vr);
    store(r0 + 28u, cols_hi, col_at_hi, acc_hi[28], vr);
    store(r0 + 29u, cols, col_at, acc_lo[29], vr);
    store(r0 + 29u, cols_hi, col_at_hi, acc_hi[29], vr);
    store(r0 + 30u, cols, col_at, acc_lo[30], vr);
    store(r0 + 30u, cols_hi, col_at_hi, acc_hi[30], vr);
    store(r0 + 31u, cols, col_at, acc_lo[31], vr);
    store(r0 + 31u, cols_hi, col_at_hi, acc_hi[31], vr);
}

// The entry points, one per variant: gemm_uniform_<start | continue>_<vec4 | scalar>_<no |
// row | column>_bias. A CPU driver runs both sides of any branch it cannot prove uniform, so
// choosing the variant here rather than by parameter keeps the dead paths (loading the sums
// of a first pass, the other store, the bias loads) out of every invocation.

@compute @workgroup_size(8)
fn gemm_uniform_start_vec4_no_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, VEC4, NO_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_start_vec4_row_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, VEC4, ROW_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_start_vec4_column_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, VEC4, COLUMN_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_start_scalar_no_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, SCALAR, NO_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_start_scalar_row_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, SCALAR, ROW_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_start_scalar_column_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(START, SCALAR, COLUMN_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_vec4_no_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, VEC4, NO_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_vec4_row_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, VEC4, ROW_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_vec4_column_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, VEC4, COLUMN_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_scalar_no_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, SCALAR, NO_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_scalar_row_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, SCALAR, ROW_BIAS));
}

@compute @workgroup_size(8)
fn gemm_uniform_continue_scalar_column_bias(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    gemm(wid, lane, sl, Variant(CONTINUE, SCALAR, COLUMN_BIAS));
}
