// General matrix multiply C[m, n] = op(A)[m, k] · op(B)[k, n] (+ bias), register-blocked.
//
// Every operand is addressed through element strides, so one kernel serves all four
// transpose combinations and the launcher can also compute C^T = op(B)^T · op(A)^T when
// that fills the tiles better (a 1 x n or m x 1 product):
//   op(A)[r, kk] = a[r * a_row_stride + kk * a_k_stride]
//   op(B)[kk, c] = b[kk * b_k_stride + c * b_col_stride]
//   C[r, c]      = c_out[r * c_row_stride + c * c_col_stride]
//
// Tiling: a workgroup owns TILE_M = 8 rows and TILE_N = 4 * WG = 256 columns. Each
// invocation keeps an 8 x 4 tile of C in registers: the 8 rows are the workgroup's (their A
// values are the same for every invocation: one broadcast load each), the 4 columns are
// lane, lane + 64, lane + 128, lane + 192, so on every k step the 64 invocations read 4 runs
// of 64 consecutive B values (coalesced when b_col_stride is 1). 12 loads feed 32
// multiply-adds; no workgroup memory, no barriers.
//
// Edges: row and column indices are clamped into the matrix for loading (so every load is
// in bounds and the k loop has no branch) and only the stores are guarded.
//
// Split k: a product of a few tiles over a long k (one tile, k in the thousands) would keep
// one workgroup busy for the whole sum. The launcher then splits k
// into slices, one per workgroup z: slice z sums k in [z * k_slice, (z + 1) * k_slice) into
// its own m x n block of a scratch buffer bound as C (row-major, no bias), and sum_slices
// adds the blocks in slice order, then the bias, into C. Every sum keeps a fixed order.

const WG: u32 = 64u;
const TILE_M: u32 = 8u;
const TILE_N: u32 = 256u; // 4 columns per invocation, WG apart

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row_stride: u32, // elements
    a_k_stride: u32,
    b_k_stride: u32,
    b_col_stride: u32,
    c_row_stride: u32,
    c_col_stride: u32,
    // 0: no bias; 1: C[r, c] += bias[c]; 2: C[r, c] += bias[r] (the transposed form).
    bias_mode: u32,
    // ceil(n / TILE_N): workgroups along the columns of C.
    col_groups: u32,
    // ceil(m / TILE_M) * col_groups: workgroups that hold a tile (the grid may have more).
    tiles: u32,
    // k per slice (k when not split), and the elements between slices' blocks of C.
    k_slice: u32,
    c_slice_stride: u32,
    // sum_slices: how many blocks to add.
    slices: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
// Bound to `b` again when bias_mode is 0 (never read then).
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c_out: array<f32>;
// sum_slices: the slices' blocks, [slices][m][n].
@group(0) @binding(5) var<storage, read> partials: array<f32>;
// gemv: op(A) with rows of whole vec4s, and op(B) as one vector, four values at a time.
@group(0) @binding(6) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> b4: array<vec4<f32>>;

var<workgroup> gemv_partial: array<f32, WG>;

fn store(slice: u32, r: u32, col: u32, v: f32) {
    if r < p.m && col < p.n {
        var s = v;
        if p.bias_mode == 1u {
            s += bias[col];
        } else if p.bias_mode == 2u {
            s += bias[r];
        }
        c_out[slice * p.c_slice_stride + r * p.c_row_stride + col * p.c_col_stride] = s;
    }
}

fn store_row(slice: u32, r: u32, cols: vec4<u32>, v: vec4<f32>) {
    store(slice, r, cols.x, v.x);
    store(slice, r, cols.y, v.y);
    store(slice, r, cols.z, v.z);
    store(slice, r, cols.w, v.w);
}

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    // Surplus workgroups of a folded grid compute a clamped tile and store nothing.
    let tile = min(wid.x + wid.y * nwg.x, p.tiles - 1u);
    let is_real = wid.x + wid.y * nwg.x < p.tiles;
    let r0 = (tile / p.col_groups) * TILE_M;
    let cols = (tile % p.col_groups) * TILE_N + lane + vec4<u32>(0u, WG, 2u * WG, 3u * WG);

    // Loading offsets with clamped indices.
    let last_r = p.m - 1u;
    let ra0 = min(r0, last_r) * p.a_row_stride;
    let ra1 = min(r0 + 1u, last_r) * p.a_row_stride;
    let ra2 = min(r0 + 2u, last_r) * p.a_row_stride;
    let ra3 = min(r0 + 3u, last_r) * p.a_row_stride;
    let ra4 = min(r0 + 4u, last_r) * p.a_row_stride;
    let ra5 = min(r0 + 5u, last_r) * p.a_row_stride;
    let ra6 = min(r0 + 6u, last_r) * p.a_row_stride;
    let ra7 = min(r0 + 7u, last_r) * p.a_row_stride;
    let cb = min(cols, vec4<u32>(p.n - 1u)) * p.b_col_stride;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    let slice = wid.z;
    let k0 = slice * p.k_slice;
    let k1 = min(p.k, k0 + p.k_slice);
    var ak = k0 * p.a_k_stride;
    var bk = k0 * p.b_k_stride;
    for (var kk = k0; kk < k1; kk++) {
        let bv = vec4<f32>(b[cb.x + bk], b[cb.y + bk], b[cb.z + bk], b[cb.w + bk]);
        // a * b + acc rather than fma(): drivers contract it where FMA is fast, and a
        // software fma() is several times slower on CPU adapters.
        acc0 += a[ra0 + ak] * bv;
        acc1 += a[ra1 + ak] * bv;
        acc2 += a[ra2 + ak] * bv;
        acc3 += a[ra3 + ak] * bv;
        acc4 += a[ra4 + ak] * bv;
        acc5 += a[ra5 + ak] * bv;
        acc6 += a[ra6 + ak] * bv;
        acc7 += a[ra7 + ak] * bv;
        ak += p.a_k_stride;
        bk += p.b_k_stride;
    }

    if is_real {
        store_row(slice, r0, cols, acc0);
        store_row(slice, r0 + 1u, cols, acc1);
        store_row(slice, r0 + 2u, cols, acc2);
        store_row(slice, r0 + 3u, cols, acc3);
        store_row(slice, r0 + 4u, cols, acc4);
        store_row(slice, r0 + 5u, cols, acc5);
        store_row(slice, r0 + 6u, cols, acc6);
        store_row(slice, r0 + 7u, cols, acc7);
    }
}

// C[r, c] = sum over slices, in order, of partials[slice][r][c], plus the bias: one
// invocation per element of C, linear index r * n + c.
@compute @workgroup_size(WG)
fn sum_slices(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lane;
    let block = p.m * p.n;
    if i >= block {
        return;
    }
    var sum = 0.0;
    for (var slice = 0u; slice < p.slices; slice++) {
        sum += partials[slice * block + i];
    }
    store(0u, i / p.n, i % p.n, sum);
}

// C[r, 0] = op(A)[r, :] · op(B)[:, 0] for a product with one column whose operands are
// contiguous along k (a_k_stride = b_k_stride = 1, k a multiple of 4, each A row starting on
// a 16-byte boundary): workgroup (r, z) sums slice z of row r, its 64 invocations on
// neighbouring vec4s, each stepping 64 vec4s, and adds their partial sums in a fixed
// pairwise tree. In `gemm`'s 8 x 256 tiles one of the two dimensions would sit nearly idle
// (after the transpose, all but one of the 8 rows).
@compute @workgroup_size(WG)
fn gemv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    let slice = wid.z;
    let k0 = slice * p.k_slice / 4u;
    let k1 = min(p.k, (slice + 1u) * p.k_slice) / 4u;
    var sum = vec4<f32>();
    if r < p.m {
        let row = r * (p.a_row_stride / 4u);
        for (var j = k0 + lane; j < k1; j += WG) {
            sum += a4[row + j] * b4[j];
        }
    }
    gemv_partial[lane] = (sum.x + sum.y) + (sum.z + sum.w);
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lane < stride {
            gemv_partial[lane] += gemv_partial[lane + stride];
        }
        workgroupBarrier();
    }
    if lane == 0u && r < p.m {
        store(slice, r, 0u, gemv_partial[0]);
    }
}
