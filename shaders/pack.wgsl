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
// A vec4's four values share a row (B) or a column (A). One invocation writes GROUP = 4
// consecutive vec4s of one row of a window (the same k), so its index arithmetic is done
// once and stepped across the 16 values; the steps are written out, not looped, because a CPU
// driver blends every value a loop carries at every iteration. `div`
// (shaders/exact_div.wgsl) divides in f32.
const WORKGROUP_SIZE: u32 = 256u;
// vec4s per invocation (every entry point is written out for 4; GROUP in
// src/gpu/ops/pack.rs); a window row holds a multiple of it (B: 32 vec4s, A: 8 per 32 rows).
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

// Rows r, r + 8, r + 16, r + 24 of a strided view at the column whose offset is `base`;
// rows from `rows` on are past the matrix.
fn strided_rows(base: u32, r: u32, rows: u32) -> vec4<f32> {
    let v0 = load(base + split(r, p.row_div, p.row_hi, p.row_lo), r < rows);
    let v1 = load(base + split(r + 8u, p.row_div, p.row_hi, p.row_lo), r + 8u < rows);
    let v2 = load(base + split(r + 16u, p.row_div, p.row_hi, p.row_lo), r + 16u < rows);
    let v3 = load(base + split(r + 24u, p.row_div, p.row_hi, p.row_lo), r + 24u < rows);
    return vec4<f32>(v0, v1, v2, v3);
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
    let rows = select(0u, p.rows, s.k < p.cols);
    dst[s.at] = strided_rows(base, s.first, rows);
    dst[s.at + 1u] = strided_rows(base, s.first + 1u, rows);
    dst[s.at + 2u] = strided_rows(base, s.first + 2u, rows);
    dst[s.at + 3u] = strided_rows(base, s.first + 3u, rows);
}

// A column c of a strided view, as c = hi * col_div + lo.
struct Column {
    c: u32,
    hi: u32,
    lo: u32,
}

fn strided_value(col: ptr<function, Column>, base: u32, ok: bool) -> f32 {
    let v = load(base + (*col).hi * p.col_hi + (*col).lo * p.col_lo, ok && (*col).c < p.cols);
    (*col).c += 1u;
    let lo = (*col).lo + 1u;
    (*col).hi += u32(lo == p.col_div);
    (*col).lo = select(lo, 0u, lo == p.col_div);
    return v;
}

// The next four values of a row of the strided view from column *col on, stepping it.
fn strided_vec4(col: ptr<function, Column>, base: u32, ok: bool) -> vec4<f32> {
    let v0 = strided_value(col, base, ok);
    let v1 = strided_value(col, base, ok);
    let v2 = strided_value(col, base, ok);
    let v3 = strided_value(col, base, ok);
    return vec4<f32>(v0, v1, v2, v3);
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
    let hi = div(s.first, p.col_div);
    var col = Column(s.first, hi, s.first - hi * p.col_div);
    dst[s.at] = strided_vec4(&col, base, ok);
    dst[s.at + 1u] = strided_vec4(&col, base, ok);
    dst[s.at + 2u] = strided_vec4(&col, base, ok);
    dst[s.at + 3u] = strided_vec4(&col, base, ok);
}

// The next four values of an im2col row (tap ky, kx of channel i) from pixel *q, column *c
// on, stepping both.
fn im2col_vec4(
    q: ptr<function, vec3<u32>>,
    c: ptr<function, u32>,
    i: u32,
    ky: u32,
    kx: u32,
    ok: bool,
) -> vec4<f32> {
    let v0 = conv_input(i, ky, kx, *q, ok && *c < p.cols);
    *q = next(*q, p.out_h, p.out_w);
    let v1 = conv_input(i, ky, kx, *q, ok && *c + 1u < p.cols);
    *q = next(*q, p.out_h, p.out_w);
    let v2 = conv_input(i, ky, kx, *q, ok && *c + 2u < p.cols);
    *q = next(*q, p.out_h, p.out_w);
    let v3 = conv_input(i, ky, kx, *q, ok && *c + 3u < p.cols);
    *q = next(*q, p.out_h, p.out_w);
    *c += 4u;
    return vec4<f32>(v0, v1, v2, v3);
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
    // Row (ky, kx, i), then 16 consecutive pixels.
    let tap = div(s.k, p.channels);
    let i = s.k - tap * p.channels;
    let ky = div(tap, p.kernel_w);
    let kx = tap - ky * p.kernel_w;
    let ok = s.k < p.rows;
    var q = pixel_of(s.first, p.out_h, p.out_w);
    var c = s.first;
    dst[s.at] = im2col_vec4(&q, &c, i, ky, kx, ok);
    dst[s.at + 1u] = im2col_vec4(&q, &c, i, ky, kx, ok);
    dst[s.at + 2u] = im2col_vec4(&q, &c, i, ky, kx, ok);
    dst[s.at + 3u] = im2col_vec4(&q, &c, i, ky, kx, ok);
}

// Four consecutive taps (i, ky, kx) from *tap on at small-side pixel q, stepping *tap; only
// the first `limit` of them are in the matrix.
fn taps_vec4(tap: ptr<function, vec3<u32>>, q: vec3<u32>, limit: u32) -> vec4<f32> {
    let v0 = conv_input((*tap).x, (*tap).y, (*tap).z, q, limit > 0u);
    *tap = next(*tap, p.kernel_h, p.kernel_w);
    let v1 = conv_input((*tap).x, (*tap).y, (*tap).z, q, limit > 1u);
    *tap = next(*tap, p.kernel_h, p.kernel_w);
    let v2 = conv_input((*tap).x, (*tap).y, (*tap).z, q, limit > 2u);
    *tap = next(*tap, p.kernel_h, p.kernel_w);
    let v3 = conv_input((*tap).x, (*tap).y, (*tap).z, q, limit > 3u);
    *tap = next(*tap, p.kernel_h, p.kernel_w);
    return vec4<f32>(v0, v1, v2, v3);
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
    // Row: one pixel; columns: 16 consecutive taps (i, ky, kx), stepped as a 1 x KH x KW
    // grid per channel.
    let q = pixel_of(s.k, p.out_h, p.out_w);
    let ok = s.k < p.rows;
    var tap = pixel_of(s.first, p.kernel_h, p.kernel_w);
    let limit = select(0u, p.cols - s.first, ok && s.first < p.cols);
    dst[s.at] = taps_vec4(&tap, q, limit);
    dst[s.at + 1u] = taps_vec4(&tap, q, select(0u, limit - 4u, limit > 4u));
    dst[s.at + 2u] = taps_vec4(&tap, q, select(0u, limit - 8u, limit > 8u));
    dst[s.at + 3u] = taps_vec4(&tap, q, select(0u, limit - 12u, limit > 12u));
}

// Rows r .. r + 3 (taps (i, ky, kx) in OIHW order) at small-side pixel q; rows from `rows`
// on are past the matrix.
fn oihw_run(r: u32, q: vec3<u32>, rows: u32) -> vec4<f32> {
    var tap = pixel_of(r, p.kernel_h, p.kernel_w);
    return taps_vec4(&tap, q, select(0u, rows - r, r < rows));
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
    // The GROUP = 4 vec4s hold rows first + g + 8j: four runs of four consecutive taps, each
    // stepped from its first, and vec4 g takes element g of every run.
    let q = pixel_of(s.k, p.out_h, p.out_w);
    let rows = select(0u, p.rows, s.k < p.cols);
    let run0 = oihw_run(s.first, q, rows);
    let run1 = oihw_run(s.first + 8u, q, rows);
    let run2 = oihw_run(s.first + 16u, q, rows);
    let run3 = oihw_run(s.first + 24u, q, rows);
    dst[s.at] = vec4<f32>(run0.x, run1.x, run2.x, run3.x);
    dst[s.at + 1u] = vec4<f32>(run0.y, run1.y, run2.y, run3.y);
    dst[s.at + 2u] = vec4<f32>(run0.z, run1.z, run2.z, run3.z);
    dst[s.at + 3u] = vec4<f32>(run0.w, run1.w, run2.w, run3.w);
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

// Input channels i, i + 8, i + 16, i + 24 of a class's weight column at `base` (taps apart
// per channel); channels from `rows` on are past the matrix.
fn class_weight_rows(base: u32, i: u32, taps: u32, rows: u32) -> vec4<f32> {
    let v0 = load(base + i * taps, i < rows);
    let v1 = load(base + (i + 8u) * taps, i + 8u < rows);
    let v2 = load(base + (i + 16u) * taps, i + 16u < rows);
    let v3 = load(base + (i + 24u) * taps, i + 24u < rows);
    return vec4<f32>(v0, v1, v2, v3);
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
    let rows = select(0u, p.rows, s.k < p.cols);
    dst[s.at] = class_weight_rows(base, s.first, taps, rows);
    dst[s.at + 1u] = class_weight_rows(base, s.first + 1u, taps, rows);
    dst[s.at + 2u] = class_weight_rows(base, s.first + 2u, taps, rows);
    dst[s.at + 3u] = class_weight_rows(base, s.first + 3u, taps, rows);
}

// The class value at pixel *q, column *c (small-side channel o, tap offsets dy_y, dy_x), then
// both stepped.
fn class_value(
    q: ptr<function, vec3<u32>>,
    c: ptr<function, u32>,
    o: u32,
    dy_y: i32,
    dy_x: i32,
    ok: bool,
) -> f32 {
    let oy = i32((*q).y) + dy_y;
    let ox = i32((*q).z) + dy_x;
    let inside = ok && *c < p.cols && oy >= 0 && ox >= 0 && oy < i32(p.out_h)
        && ox < i32(p.out_w);
    let row = ((*q).x * p.out_channels + o) * p.out_h + u32(max(oy, 0));
    let at = row * p.out_w + u32(max(ox, 0));
    *q = next(*q, p.qh, p.qw);
    *c += 1u;
    return load(at, inside);
}

// The next four class values from pixel *q, column *c on.
fn class_vec4(
    q: ptr<function, vec3<u32>>,
    c: ptr<function, u32>,
    o: u32,
    dy_y: i32,
    dy_x: i32,
    ok: bool,
) -> vec4<f32> {
    let v0 = class_value(q, c, o, dy_y, dy_x, ok);
    let v1 = class_value(q, c, o, dy_y, dy_x, ok);
    let v2 = class_value(q, c, o, dy_y, dy_x, ok);
    let v3 = class_value(q, c, o, dy_y, dy_x, ok);
    return vec4<f32>(v0, v1, v2, v3);
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
    dst[s.at] = class_vec4(&q, &c, tap.o, dy_y, dy_x, ok);
    dst[s.at + 1u] = class_vec4(&q, &c, tap.o, dy_y, dy_x, ok);
    dst[s.at + 2u] = class_vec4(&q, &c, tap.o, dy_y, dy_x, ok);
    dst[s.at + 3u] = class_vec4(&q, &c, tap.o, dy_y, dy_x, ok);
}
