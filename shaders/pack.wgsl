// Packing for the uniform-buffer GEMM (shaders/gemm_uniform.wgsl).
//
// A pack reads a logical matrix X[rows, cols] through a view and writes it as windows of
// vec4s (layouts in gemm_uniform.wgsl), zero past the matrix. Views, one entry point each:
//   strided (pack_a, pack_b):
//       X[r, c] = src[offset + (r / row_div) * row_hi + (r % row_div) * row_lo
//                            + (c / col_div) * col_hi + (c % col_div) * col_lo]
//   im2col (pack_b_im2col): X[t, q] with tap t = (ky, kx, i) and pixel q = (n, oy, ox) is
//       x[n, i, oy * SH + ky - PT, ox * SW + kx - PL] (zero outside x); channels innermost,
//       the order in which conv2d.wgsl's forward sums
//   im2col transposed (pack_b_im2col_transposed): X[q, t] with t = (i, ky, kx), OIHW order
//   im2col in OIHW order (pack_a_im2col_oihw): X[t, q], the same taps as rows of operand A
//   phase class (pack_a_class, pack_b_class): one phase class of the input gradient (see
//       conv2d.wgsl's backward_input): its taps (ky, kx) in order, output channels innermost.
// A vec4's four values share a row (B) or a column (A). One invocation writes GROUP
// consecutive vec4s of one row of a window (the same k): on a CPU driver the index
// arithmetic, not the loads, is most of a pack's cost, so it is done once per invocation and
// stepped across the 4 * GROUP values; `div` (shaders/exact_div.wgsl) divides in f32.

const WORKGROUP_SIZE: u32 = 256u;
// vec4s per invocation; a window row holds a multiple of it (B: 32 vec4s, A: 8 per 32 rows).
const GROUP: u32 = 4u;
const BLOCK_M: u32 = 128u; // rows of an A block (gemm_uniform.wgsl)
const BLOCK_N: u32 = 128u; // columns of a B block

struct Params {
    rows: u32,
    cols: u32,
    _pad: u32,
    offset: u32,
    row_div: u32,
    row_hi: u32,
    row_lo: u32,
    col_div: u32,
    col_hi: u32,
    col_lo: u32,
    // Convolution geometry: x is the large side.
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    // Windows: k per window, windows per block, vec4s per k (A: block rows / 4, B: 32),
    // vec4s between windows, and the vec4s to write.
    kc: u32,
    windows: u32,
    k_vec4s: u32,
    window_stride: u32,
    total: u32,
    // Phase class of the input gradient: the small side's channels, the class (py, px),
    // its first taps, its taps along x, and its pixel grid per sample.
    out_channels: u32,
    py: u32,
    px: u32,
    ky0: u32,
    kx0: u32,
    taps_x: u32,
    qh: u32,
    qw: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

// The first vec4 this invocation writes.
fn first_vec4(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid) * GROUP;
}

fn load(at: u32, ok: bool) -> f32 {
    return select(0.0, src[select(0u, at, ok)], ok);
}

// Where vec4 `t` of the packing goes, and the first (row, k) or (k, column) it holds.
struct Slot {
    at: u32,
    k: u32,
    first: u32,
}

// A windows: rows are the matrix rows, k its columns. Element (kk, g * 8 + l) of window
// (block, w) holds rows block * BLOCK_M + g * 32 + l + {0, 8, 16, 24} at k = w * kc + kk.
fn a_slot(t: u32) -> Slot {
    let used = p.kc * p.k_vec4s;
    let window = div(t, used);
    let v = t - window * used;
    let block = div(window, p.windows);
    let kk = div(v, p.k_vec4s);
    let k = (window - block * p.windows) * p.kc + kk;
    let slot = v - kk * p.k_vec4s;
    let r = block * BLOCK_M + (slot / 8u) * 32u + slot % 8u;
    return Slot(window * p.window_stride + v, k, r);
}

// B windows: rows are k, columns the matrix columns. Element (kk, c) of window (block, w)
// holds columns block * BLOCK_N + 4c .. + 3 at k = w * kc + kk.
fn b_slot(t: u32) -> Slot {
    let used = p.kc * p.k_vec4s;
    let window = div(t, used);
    let v = t - window * used;
    let block = div(window, p.windows);
    let kk = div(v, p.k_vec4s);
    let k = (window - block * p.windows) * p.kc + kk;
    let c = block * BLOCK_N + (v - kk * p.k_vec4s) * 4u;
    return Slot(window * p.window_stride + v, k, c);
}

// Offset of index i along a split axis.
fn split(i: u32, d: u32, hi: u32, lo: u32) -> u32 {
    let q = div(i, d);
    return q * hi + (i - q * d) * lo;
}

// A pixel (n, y, x) of a grid of h x w per sample, and stepping it along x.
fn pixel_of(q: u32, h: u32, w: u32) -> vec3<u32> {
    let n = div(q, h * w);
    let rest = q - n * h * w;
    let y = div(rest, w);
    return vec3<u32>(n, y, rest - y * w);
}

fn next(at: vec3<u32>, h: u32, w: u32) -> vec3<u32> {
    var x = at.z + 1u;
    var y = at.y + u32(x == w);
    x = select(x, 0u, x == w);
    let n = at.x + u32(y == h);
    y = select(y, 0u, y == h);
    return vec3<u32>(n, y, x);
}

// x[n, i, oy * SH + ky - PT, ox * SW + kx - PL] for small-side pixel (n, oy, ox).
fn conv_input(i: u32, ky: u32, kx: u32, q: vec3<u32>, ok: bool) -> f32 {
    let iy = i32(q.y * p.stride_h + ky) - i32(p.pad_top);
    let ix = i32(q.z * p.stride_w + kx) - i32(p.pad_left);
    let inside = ok && iy >= 0 && ix >= 0 && iy < i32(p.in_h) && ix < i32(p.in_w);
    let at = ((q.x * p.channels + i) * p.in_h + u32(max(iy, 0))) * p.in_w + u32(max(ix, 0));
    return load(at, inside);
}


@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_a(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = a_slot(t);
    let base = p.offset + split(s.k, p.col_div, p.col_hi, p.col_lo);
    let ok = s.k < p.cols;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            let r = s.first + g + j * 8u;
            v[j] = load(base + split(r, p.row_div, p.row_hi, p.row_lo), ok && r < p.rows);
        }
        dst[s.at + g] = v;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_b(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = b_slot(t);
    let base = p.offset + split(s.k, p.row_div, p.row_hi, p.row_lo);
    let ok = s.k < p.rows;
    // Column c = hi * col_div + lo, stepped.
    var hi = div(s.first, p.col_div);
    var lo = s.first - hi * p.col_div;
    var c = s.first;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            v[j] = load(base + hi * p.col_hi + lo * p.col_lo, ok && c < p.cols);
            c += 1u;
            lo += 1u;
            hi += u32(lo == p.col_div);
            lo = select(lo, 0u, lo == p.col_div);
        }
        dst[s.at + g] = v;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_b_im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = b_slot(t);
    // Row (ky, kx, i), then 4 * GROUP consecutive pixels.
    let tap = div(s.k, p.channels);
    let i = s.k - tap * p.channels;
    let ky = div(tap, p.kernel_w);
    let kx = tap - ky * p.kernel_w;
    let ok = s.k < p.rows;
    var q = pixel_of(s.first, p.out_h, p.out_w);
    var c = s.first;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            v[j] = conv_input(i, ky, kx, q, ok && c < p.cols);
            q = next(q, p.out_h, p.out_w);
            c += 1u;
        }
        dst[s.at + g] = v;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_b_im2col_transposed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = b_slot(t);
    // Row: one pixel; columns: 4 * GROUP consecutive taps (i, ky, kx), stepped as a
    // 1 x KH x KW grid per channel.
    let q = pixel_of(s.k, p.out_h, p.out_w);
    let ok = s.k < p.rows;
    var tap = pixel_of(s.first, p.kernel_h, p.kernel_w);
    var c = s.first;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            v[j] = conv_input(tap.x, tap.y, tap.z, q, ok && c < p.cols);
            tap = next(tap, p.kernel_h, p.kernel_w);
            c += 1u;
        }
        dst[s.at + g] = v;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_a_im2col_oihw(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = a_slot(t);
    // k: one pixel; rows: taps (i, ky, kx), each split as a 1 x KH x KW grid per channel.
    // The GROUP vec4s hold rows first + g + 8j: four runs of GROUP consecutive taps, each
    // stepped from its first.
    let q = pixel_of(s.k, p.out_h, p.out_w);
    let ok = s.k < p.cols;
    var v: array<vec4<f32>, GROUP>;
    for (var j = 0u; j < 4u; j++) {
        var r = s.first + j * 8u;
        var tap = pixel_of(r, p.kernel_h, p.kernel_w);
        for (var g = 0u; g < GROUP; g++) {
            v[g][j] = conv_input(tap.x, tap.y, tap.z, q, ok && r < p.rows);
            tap = next(tap, p.kernel_h, p.kernel_w);
            r += 1u;
        }
    }
    for (var g = 0u; g < GROUP; g++) {
        dst[s.at + g] = v[g];
    }
}

// The class's k = (j, o): its j-th tap (ky, kx) = (ky0 + jy * SH, kx0 + jx * SW), the tap's
// place (jy, jx) in the class's grid of taps, and small-side channel o.
struct ClassTap {
    ky: u32,
    kx: u32,
    jy: u32,
    jx: u32,
    o: u32,
}

fn class_tap(k: u32) -> ClassTap {
    let j = div(k, p.out_channels);
    let jy = div(j, p.taps_x);
    let jx = j - jy * p.taps_x;
    return ClassTap(
        p.ky0 + jy * p.stride_h,
        p.kx0 + jx * p.stride_w,
        jy,
        jx,
        k - j * p.out_channels,
    );
}

// A of a class: w[o, i, ky, kx] at row i, column k = (j, o).
@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_a_class(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = a_slot(t);
    let tap = class_tap(s.k);
    let taps = p.kernel_h * p.kernel_w;
    let base = tap.o * p.channels * taps + tap.ky * p.kernel_w + tap.kx;
    let ok = s.k < p.cols;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            let i = s.first + g + j * 8u;
            v[j] = load(base + i * taps, ok && i < p.rows);
        }
        dst[s.at + g] = v;
    }
}

// B of a class: dy[n, o, oy, ox] at row k = (j, o), column q = (n, qy, qx) of the class's
// pixels (iy, ix) = (py + qy * SH, px + qx * SW), where oy = (iy + PT - ky) / SH exactly.
@compute @workgroup_size(WORKGROUP_SIZE)
fn pack_b_class(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = first_vec4(wid, nwg, lid);
    if t >= p.total {
        return;
    }
    let s = b_slot(t);
    let tap = class_tap(s.k);
    // oy - qy = (py + PT - ky) / SH, exact; ky0 = (py + PT) mod SH makes it
    // (py + PT) / SH - jy, so no division per invocation (CPU drivers have no vector
    // integer division).
    let dy_y = i32((p.py + p.pad_top) / p.stride_h) - i32(tap.jy);
    let dy_x = i32((p.px + p.pad_left) / p.stride_w) - i32(tap.jx);
    let ok = s.k < p.rows;
    var q = pixel_of(s.first, p.qh, p.qw);
    var c = s.first;
    for (var g = 0u; g < GROUP; g++) {
        var v: vec4<f32>;
        for (var j = 0u; j < 4u; j++) {
            let oy = i32(q.y) + dy_y;
            let ox = i32(q.z) + dy_x;
            let inside = ok && c < p.cols && oy >= 0 && ox >= 0 && oy < i32(p.out_h)
                && ox < i32(p.out_w);
            let at = ((q.x * p.out_channels + tap.o) * p.out_h + u32(max(oy, 0)))
                * p.out_w + u32(max(ox, 0));
            v[j] = load(at, inside);
            q = next(q, p.qh, p.qw);
            c += 1u;
        }
        dst[s.at + g] = v;
    }
}
