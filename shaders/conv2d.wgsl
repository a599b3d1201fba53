// 2-D convolution over NCHW tensors with OIHW weights, as implicit GEMMs (no im2col buffer).
//
// Geometry (src/shapes.rs Conv2dGeometry): the large side x [N, I, H, W], the small side
// y [N, O, OH, OW], weight w [O, I, KH, KW], and
//   y[n, o, oy, ox] = sum_{i, ky, kx} w[o, i, ky, kx] * x[n, i, oy*SH + ky - PT, ox*SW + kx - PL]
// with positions outside x reading zero. A transposed convolution runs these same kernels
// with the roles of the passes swapped (src/gpu/ops/conv_transpose2d.rs).
//
// Tiling, shared by every kernel here: a workgroup of WG = 64 invocations owns TILE_M = 8
// "rows" (channels, or weight taps), and its invocations spread over "columns" (pixels, or
// weight taps). Values indexed by a row only are the same for all 64 invocations (one
// broadcast load each); values indexed by a column come from consecutive addresses across
// neighbouring invocations (coalesced). Each invocation keeps its tile of 8 rows x 4 columns
// (columns lane, lane + 64, lane + 128, lane + 192) in eight vec4 registers. No workgroup
// memory, no barriers, no atomics. Indices are clamped for loading so the inner loops have no
// branches; only the stores are guarded. Surplus workgroups of a folded grid compute a clamped
// tile and store nothing.

const WG: u32 = 64u;
const TILE_M: u32 = 8u;
const TILE_N: u32 = 256u; // 4 columns per invocation, WG apart

struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    // 1: add bias[row channel] to every output (forward: per o; backward_input: per i).
    has_bias: u32,
    // Workgroups along the columns, along the rows, and in all (tiles of one class or chunk
    // times classes or chunks; the grid may hold more).
    col_groups: u32,
    row_groups: u32,
    tiles: u32,
    // backward_weight: pixels (of batch * OH * OW) summed per chunk, and the chunk count.
    // conv2d_single.wgsl takes chunk_len as output rows per block, conv2d_one_input.wgsl
    // chunks as runs of output channels (its forward pass) or samples (its weight gradient).
    chunk_len: u32,
    chunks: u32,
    // Elements of the weight, O * I * KH * KW.
    weight_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The large side (x of a convolution, or dy of a transposed convolution's weight gradient).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
// Bound to `w` again when has_bias is 0 (never read then).
@group(0) @binding(3) var<storage, read> bias: array<f32>;
// The small side's gradient (or a transposed convolution's input).
@group(0) @binding(4) var<storage, read> dy: array<f32>;
// y, dx, dw, or the per-chunk partial sums of dw.
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> partial: array<f32>;

struct Tile {
    rows: u32,    // first row of the tile
    cols: vec4<u32>, // this invocation's four columns
    group: u32,   // phase class or chunk index
    is_real: bool,
}

// Splits the linear workgroup index into (group, row block, column block).
fn tile_of(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> Tile {
    let linear = wid.x + wid.y * nwg.x;
    let t = min(linear, p.tiles - 1u);
    let per_group = p.row_groups * p.col_groups;
    let in_group = t % per_group;
    let rows = (in_group / p.col_groups) * TILE_M;
    let cols = (in_group % p.col_groups) * TILE_N + lane + vec4<u32>(0u, WG, 2u * WG, 3u * WG);
    return Tile(rows, cols, t / per_group, linear < p.tiles);
}

fn inside(v: vec4<i32>, size: u32) -> vec4<bool> {
    return (v >= vec4<i32>(0)) & (v < vec4<i32>(i32(size)));
}

fn load4(at: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(), vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]), ok);
}

fn load4_dy(at: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(), vec4<f32>(dy[at.x], dy[at.y], dy[at.z], dy[at.w]), ok);
}

// Stores one row of a tile: out[base + at] for the valid columns.
fn store_row(row: u32, rows: u32, base: u32, at: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if row >= rows {
        return;
    }
    if valid.x { out[base + at.x] = v.x; }
    if valid.y { out[base + at.y] = v.y; }
    if valid.z { out[base + at.z] = v.z; }
    if valid.w { out[base + at.w] = v.w; }
}

// Stores one row of a channel tile, out[row * plane + at], plus the channel's bias if any.
fn store_channel(row: u32, rows: u32, plane: u32, at: vec4<u32>, valid: vec4<bool>, v: vec4<f32>) {
    if row >= rows {
        return;
    }
    var b = 0.0;
    if p.has_bias == 1u {
        b = bias[row];
    }
    store_row(row, rows, row * plane, at, valid, v + b);
}

// Forward: rows are output channels o, columns are output pixels (n, oy, ox). The k loop walks
// (ky, kx) outside and input channels inside, so the padding test is made once per tap.
@compute @workgroup_size(64)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = tile_of(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let pixels = p.batch * plane_out;
    let taps = p.kernel_h * p.kernel_w;

    // This invocation's four output pixels, clamped for loading.
    let pc = min(tile.cols, vec4<u32>(pixels - 1u));
    let n = pc / plane_out;
    let in_plane = pc % plane_out;
    let iy0 = vec4<i32>(in_plane / p.out_w * p.stride_h) - i32(p.pad_top);
    let ix0 = vec4<i32>(in_plane % p.out_w * p.stride_w) - i32(p.pad_left);
    let x_n = n * (p.in_channels * plane_in);

    // Weight rows w[o, ...] of the tile's eight output channels.
    let row_len = p.in_channels * taps;
    let last_o = p.out_channels - 1u;
    let w0 = min(tile.rows, last_o) * row_len;
    let w1 = min(tile.rows + 1u, last_o) * row_len;
    let w2 = min(tile.rows + 2u, last_o) * row_len;
    let w3 = min(tile.rows + 3u, last_o) * row_len;
    let w4 = min(tile.rows + 4u, last_o) * row_len;
    let w5 = min(tile.rows + 5u, last_o) * row_len;
    let w6 = min(tile.rows + 6u, last_o) * row_len;
    let w7 = min(tile.rows + 7u, last_o) * row_len;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    for (var ky = 0u; ky < p.kernel_h; ky++) {
        let iy = iy0 + i32(ky);
        let ok_y = inside(iy, p.in_h);
        for (var kx = 0u; kx < p.kernel_w; kx++) {
            let ix = ix0 + i32(kx);
            let ok = ok_y & inside(ix, p.in_w);
            var xo = x_n + select(vec4<u32>(), vec4<u32>(iy * i32(p.in_w) + ix), ok);
            var wk = ky * p.kernel_w + kx;
            for (var i = 0u; i < p.in_channels; i++) {
                let xv = load4(xo, ok);
                acc0 += w[w0 + wk] * xv;
                acc1 += w[w1 + wk] * xv;
                acc2 += w[w2 + wk] * xv;
                acc3 += w[w3 + wk] * xv;
                acc4 += w[w4 + wk] * xv;
                acc5 += w[w5 + wk] * xv;
                acc6 += w[w6 + wk] * xv;
                acc7 += w[w7 + wk] * xv;
                xo += vec4<u32>(plane_in);
                wk += taps;
            }
        }
    }

    // y[n, o, oy, ox] at n * O * plane + o * plane + in_plane.
    let valid = (tile.cols < vec4<u32>(pixels)) & vec4<bool>(tile.is_real);
    let at = n * (p.out_channels * plane_out) + in_plane;
    let o = tile.rows;
    store_channel(o, p.out_channels, plane_out, at, valid, acc0);
    store_channel(o + 1u, p.out_channels, plane_out, at, valid, acc1);
    store_channel(o + 2u, p.out_channels, plane_out, at, valid, acc2);
    store_channel(o + 3u, p.out_channels, plane_out, at, valid, acc3);
    store_channel(o + 4u, p.out_channels, plane_out, at, valid, acc4);
    store_channel(o + 5u, p.out_channels, plane_out, at, valid, acc5);
    store_channel(o + 6u, p.out_channels, plane_out, at, valid, acc6);
    store_channel(o + 7u, p.out_channels, plane_out, at, valid, acc7);
}

// Input gradient: rows are input channels i, columns are input pixels. A large-side pixel
// (iy, ix) receives dy[oy, ox] through tap (ky, kx) only when iy + PT - ky = oy * SH (and the
// same across), so the taps that reach it depend on its phase (iy mod SH, ix mod SW). The
// pixels are therefore split into SH * SW phase classes (the workgroup's group), every pixel
// of a class visits exactly the same taps (no test per tap, no wasted taps), and within a
// class, dy is read at consecutive ox for consecutive pixels. Gathering, not scattering: no
// atomics, and each dx element is written once.
@compute @workgroup_size(64)
fn backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = tile_of(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let taps = p.kernel_h * p.kernel_w;

    // The class: iy = py + qy * SH, ix = px + qx * SW, and its qh x qw grid per sample.
    let py = tile.group / p.stride_w;
    let px = tile.group % p.stride_w;
    let qh = (p.in_h + p.stride_h - 1u - py) / p.stride_h;
    let qw_all = (p.in_w + p.stride_w - 1u - px) / p.stride_w;
    let qw = max(qw_all, 1u);
    let class_plane = max(qh * qw, 1u);
    let class_pixels = p.batch * qh * qw_all;

    // This invocation's four pixels of the class, clamped for loading.
    let qc = min(tile.cols, vec4<u32>(max(class_pixels, 1u) - 1u));
    let n = qc / class_plane;
    let qy = qc % class_plane / qw;
    let qx = qc % class_plane % qw;
    let dy_n = n * (p.out_channels * plane_out);

    // Weight offsets w[0, i, ...] of the tile's eight input channels.
    let last_i = p.in_channels - 1u;
    let w0 = min(tile.rows, last_i) * taps;
    let w1 = min(tile.rows + 1u, last_i) * taps;
    let w2 = min(tile.rows + 2u, last_i) * taps;
    let w3 = min(tile.rows + 3u, last_i) * taps;
    let w4 = min(tile.rows + 4u, last_i) * taps;
    let w5 = min(tile.rows + 5u, last_i) * taps;
    let w6 = min(tile.rows + 6u, last_i) * taps;
    let w7 = min(tile.rows + 7u, last_i) * taps;
    let w_o = p.in_channels * taps;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    // The class's taps: ky = (py + PT) mod SH, then every SH-th; likewise kx.
    for (var ky = (py + p.pad_top) % p.stride_h; ky < p.kernel_h; ky += p.stride_h) {
        // oy = (iy + PT - ky) / SH, an exact division.
        let oy = vec4<i32>(qy) + (i32(py + p.pad_top) - i32(ky)) / i32(p.stride_h);
        let ok_y = inside(oy, p.out_h);
        for (var kx = (px + p.pad_left) % p.stride_w; kx < p.kernel_w; kx += p.stride_w) {
            let ox = vec4<i32>(qx) + (i32(px + p.pad_left) - i32(kx)) / i32(p.stride_w);
            let ok = ok_y & inside(ox, p.out_w);
            var dyo = dy_n + select(vec4<u32>(), vec4<u32>(oy * i32(p.out_w) + ox), ok);
            var wk = ky * p.kernel_w + kx;
            for (var o = 0u; o < p.out_channels; o++) {
                let dv = load4_dy(dyo, ok);
                acc0 += w[w0 + wk] * dv;
                acc1 += w[w1 + wk] * dv;
                acc2 += w[w2 + wk] * dv;
                acc3 += w[w3 + wk] * dv;
                acc4 += w[w4 + wk] * dv;
                acc5 += w[w5 + wk] * dv;
                acc6 += w[w6 + wk] * dv;
                acc7 += w[w7 + wk] * dv;
                dyo += vec4<u32>(plane_out);
                wk += w_o;
            }
        }
    }

    // dx[n, i, iy, ix] at n * I * plane + i * plane + iy * W + ix.
    let valid = (tile.cols < vec4<u32>(class_pixels)) & vec4<bool>(tile.is_real);
    let iy = py + qy * p.stride_h;
    let ix = px + qx * p.stride_w;
    let at = n * (p.in_channels * plane_in) + iy * p.in_w + ix;
    let i = tile.rows;
    store_channel(i, p.in_channels, plane_in, at, valid, acc0);
    store_channel(i + 1u, p.in_channels, plane_in, at, valid, acc1);
    store_channel(i + 2u, p.in_channels, plane_in, at, valid, acc2);
    store_channel(i + 3u, p.in_channels, plane_in, at, valid, acc3);
    store_channel(i + 4u, p.in_channels, plane_in, at, valid, acc4);
    store_channel(i + 5u, p.in_channels, plane_in, at, valid, acc5);
    store_channel(i + 6u, p.in_channels, plane_in, at, valid, acc6);
    store_channel(i + 7u, p.in_channels, plane_in, at, valid, acc7);
}

// The (n, oy, ox) position of pixel q of batch * OH * OW.
fn pixel_at(q: u32) -> vec3<u32> {
    let plane_out = p.out_h * p.out_w;
    let r = q % plane_out;
    return vec3<u32>(q / plane_out, r / p.out_w, r % p.out_w);
}

// Steps (n, oy, ox) to the next pixel, without branches.
fn next_pixel(at: vec3<u32>) -> vec3<u32> {
    var nx = at.z + 1u;
    let wrap_x = nx == p.out_w;
    var ny = at.y + u32(wrap_x);
    nx = select(nx, 0u, wrap_x);
    let wrap_y = ny == p.out_h;
    ny = select(ny, 0u, wrap_y);
    return vec3<u32>(at.x + u32(wrap_y), ny, nx);
}

// Weight gradient, one chunk of the sum over pixels (the workgroup's group):
//   part[chunk, o, i, ky, kx] = sum_{pixels of the chunk} dy[n, o, oy, ox] * x[n, i, iy, ix].
// Rows are output channels o, columns are weight taps t = (i, ky, kx). The chunks cut the long
// sum (batch * OH * OW terms) so that a small weight still gives enough workgroups; with one
// chunk this writes dw directly, otherwise backward_weight_reduce adds the chunks in order.
@compute @workgroup_size(64)
fn backward_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = tile_of(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let taps = p.kernel_h * p.kernel_w;
    let row_len = p.in_channels * taps;

    // This invocation's four taps: x offset of the channel and the tap's shift.
    let tc = min(tile.cols, vec4<u32>(row_len - 1u));
    let x_i = tc / taps * plane_in;
    let sy = vec4<i32>(tc % taps / p.kernel_w) - i32(p.pad_top);
    let sx = vec4<i32>(tc % taps % p.kernel_w) - i32(p.pad_left);

    // dy rows dy[., o, ...] of the tile's eight output channels.
    let last_o = p.out_channels - 1u;
    let d0 = min(tile.rows, last_o) * plane_out;
    let d1 = min(tile.rows + 1u, last_o) * plane_out;
    let d2 = min(tile.rows + 2u, last_o) * plane_out;
    let d3 = min(tile.rows + 3u, last_o) * plane_out;
    let d4 = min(tile.rows + 4u, last_o) * plane_out;
    let d5 = min(tile.rows + 5u, last_o) * plane_out;
    let d6 = min(tile.rows + 6u, last_o) * plane_out;
    let d7 = min(tile.rows + 7u, last_o) * plane_out;

    let first = tile.group * p.chunk_len;
    let end = min(first + p.chunk_len, p.batch * plane_out);
    var at = pixel_at(first);
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    for (var q = first; q < end; q++) {
        let iy = i32(at.y * p.stride_h) + sy;
        let ix = i32(at.z * p.stride_w) + sx;
        let ok = inside(iy, p.in_h) & inside(ix, p.in_w);
        let xo = at.x * (p.in_channels * plane_in) + x_i;
        let xv = load4(xo + select(vec4<u32>(), vec4<u32>(iy * i32(p.in_w) + ix), ok), ok);
        let dyo = at.x * (p.out_channels * plane_out) + at.y * p.out_w + at.z;
        acc0 += dy[dyo + d0] * xv;
        acc1 += dy[dyo + d1] * xv;
        acc2 += dy[dyo + d2] * xv;
        acc3 += dy[dyo + d3] * xv;
        acc4 += dy[dyo + d4] * xv;
        acc5 += dy[dyo + d5] * xv;
        acc6 += dy[dyo + d6] * xv;
        acc7 += dy[dyo + d7] * xv;
        at = next_pixel(at);
    }

    // part[chunk, o, t] at chunk * weight_len + o * row_len + t.
    let valid = (tile.cols < vec4<u32>(row_len)) & vec4<bool>(tile.is_real);
    let base = tile.group * p.weight_len;
    let o = tile.rows;
    store_row(o, p.out_channels, base + o * row_len, tile.cols, valid, acc0);
    store_row(o + 1u, p.out_channels, base + (o + 1u) * row_len, tile.cols, valid, acc1);
    store_row(o + 2u, p.out_channels, base + (o + 2u) * row_len, tile.cols, valid, acc2);
    store_row(o + 3u, p.out_channels, base + (o + 3u) * row_len, tile.cols, valid, acc3);
    store_row(o + 4u, p.out_channels, base + (o + 4u) * row_len, tile.cols, valid, acc4);
    store_row(o + 5u, p.out_channels, base + (o + 5u) * row_len, tile.cols, valid, acc5);
    store_row(o + 6u, p.out_channels, base + (o + 6u) * row_len, tile.cols, valid, acc6);
    store_row(o + 7u, p.out_channels, base + (o + 7u) * row_len, tile.cols, valid, acc7);
}

// The weight gradient for few taps per output channel (I * KH * KW well below 256, e.g. a
// one-channel input): rows are eight taps, columns are output channels, one per invocation,
// so 64 output channels fill a workgroup where the kernel above would leave most columns idle.
@compute @workgroup_size(64)
fn backward_weight_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let linear = wid.x + wid.y * nwg.x;
    let t = min(linear, p.tiles - 1u);
    let per_group = p.row_groups * p.col_groups;
    let chunk = t / per_group;
    let t0 = (t % per_group) / p.col_groups * TILE_M;
    let o = (t % per_group) % p.col_groups * WG + lane;
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let taps = p.kernel_h * p.kernel_w;
    let row_len = p.in_channels * taps;

    // The tile's eight taps, as two vec4s, clamped for loading.
    let ta = min(t0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(row_len - 1u));
    let tb = min(t0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(row_len - 1u));
    let x_ia = ta / taps * plane_in;
    let x_ib = tb / taps * plane_in;
    let sya = vec4<i32>(ta % taps / p.kernel_w) - i32(p.pad_top);
    let syb = vec4<i32>(tb % taps / p.kernel_w) - i32(p.pad_top);
    let sxa = vec4<i32>(ta % taps % p.kernel_w) - i32(p.pad_left);
    let sxb = vec4<i32>(tb % taps % p.kernel_w) - i32(p.pad_left);
    let d_o = min(o, p.out_channels - 1u) * plane_out;

    let first = chunk * p.chunk_len;
    let end = min(first + p.chunk_len, p.batch * plane_out);
    var at = pixel_at(first);
    var acc_a = vec4<f32>();
    var acc_b = vec4<f32>();
    for (var q = first; q < end; q++) {
        let base_y = i32(at.y * p.stride_h);
        let base_x = i32(at.z * p.stride_w);
        let xo = at.x * (p.in_channels * plane_in);
        let iya = base_y + sya;
        let ixa = base_x + sxa;
        let oka = inside(iya, p.in_h) & inside(ixa, p.in_w);
        let offa = select(vec4<u32>(), vec4<u32>(iya * i32(p.in_w) + ixa), oka);
        let xa = load4(xo + x_ia + offa, oka);
        let iyb = base_y + syb;
        let ixb = base_x + sxb;
        let okb = inside(iyb, p.in_h) & inside(ixb, p.in_w);
        let offb = select(vec4<u32>(), vec4<u32>(iyb * i32(p.in_w) + ixb), okb);
        let xb = load4(xo + x_ib + offb, okb);
        let dv = dy[at.x * (p.out_channels * plane_out) + d_o + at.y * p.out_w + at.z];
        acc_a += dv * xa;
        acc_b += dv * xb;
        at = next_pixel(at);
    }

    // part[chunk, o, t] for the eight taps t0 .. t0 + 7.
    if linear < p.tiles && o < p.out_channels {
        let base = chunk * p.weight_len + o * row_len + t0;
        let acc = array<f32, 8>(
            acc_a.x, acc_a.y, acc_a.z, acc_a.w, acc_b.x, acc_b.y, acc_b.z, acc_b.w,
        );
        for (var j = 0u; j < TILE_M; j++) {
            if t0 + j < row_len {
                out[base + j] = acc[j];
            }
        }
    }
}

// dw[e] = sum over chunks c, in increasing c, of part[c, e]: one invocation per element.
@compute @workgroup_size(64)
fn backward_weight_reduce(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let e = gid.x + gid.y * nwg.x * WG;
    if e >= p.weight_len {
        return;
    }
    var sum = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        sum += partial[c * p.weight_len + e];
    }
    out[e] = sum;
}
