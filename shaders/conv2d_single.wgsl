// Convolution passes whose output has a single channel, for stride 1 and rows that are
// whole vec4s (conv2d.wgsl is prepended: its Params, bindings and helpers):
//   forward_single:        y[n, 0, oy, ox] = sum over (ky, kx, i) of
//                              w[0, i, ky, kx] * x[n, i, oy + ky - PT, ox + kx - PL]
//   backward_input_single: dx[n, 0, iy, ix] = sum over (ky, kx, o) of
//                              w[o, 0, ky, kx] * dy[n, o, iy + PT - ky, ix + PL - kx]
// The model runs the second as its generator's last layer, a transposed convolution into one
// channel. The general kernels spread a workgroup over eight or sixteen output channels and
// would leave all but one of them idle. Here an invocation owns SPAN vec4s of an output row
// (4 * SPAN pixels from a multiple of 4) and reads its source row four values at a time: the
// values at x + s .. x + s + 3 for a tap's shift s come from the two aligned vec4s around
// them, since s mod 4 is the same for every invocation. Per kernel row and channel, the
// SPAN + 2 vec4s around the outputs' serve every kernel column (shifts of at most 4 either
// way). Each output sums kernel rows, then channels, then kernel columns (zeros where the
// window leaves the source): not the general kernels' order (taps outside, channels inside),
// which would load each source row once per kernel column. The launcher checks the
// conditions (src/gpu/ops/conv2d_single.rs).

// The source (x of the forward pass, dy of the input gradient) and the output, four values
// at a time.
@group(0) @binding(7) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;
// dy four values at a time, for the weight gradient (which reads x through src4).
@group(0) @binding(9) var<storage, read> dy4: array<vec4<f32>>;

// Vec4s of an output row one invocation computes.
const SPAN: u32 = 4u;

// One pass's sizes: the source's channels and rows, the output's rows, and how a tap moves
// the source position: src = out + dir * k + offset (dir +1 forward, -1 input gradient).
struct Sizes {
    channels: u32,
    src_h: u32,
    src_w4: u32,   // vec4s per source row
    out_h: u32,
    out_w4: u32,   // vec4s per output row
    dir: i32,
    offset_y: i32,
    offset_x: i32,
    // The kernel's rows and columns. The _3x3 entry points pass them, and the offsets, as
    // literals: once the loops over kernel rows and columns are unrolled every shift is a
    // constant, so choosing a shift's window costs nothing, where a CPU driver blends all
    // its cases when the shift is only known at run time.
    kernel_h: u32,
    kernel_w: u32,
}

// Vec4 `at` of the source row starting at vec4 `row`, zero outside the row (rows of whole
// vec4s: a vec4 is inside or outside entirely).
fn row_vec4(row: u32, row_ok: bool, at: i32, width4: u32) -> vec4<f32> {
    let ok = row_ok && at >= 0 && at < i32(width4);
    return select(vec4<f32>(), src4[select(0u, row + u32(max(at, 0)), ok)], ok);
}

// The four values starting r (0 .. 3) into `lo`, continuing into `hi`.
fn shift(lo: vec4<f32>, hi: vec4<f32>, r: i32) -> vec4<f32> {
    switch r {
        case 0: { return lo; }
        case 1: { return vec4<f32>(lo.yzw, hi.x); }
        case 2: { return vec4<f32>(lo.zw, hi.xy); }
        default: { return vec4<f32>(lo.w, hi.xyz); }
    }
}

// The four values from s (-4 ..= 4) past the start of `cur`, with `prev` before it and
// `next` after it.
fn window(prev: vec4<f32>, cur: vec4<f32>, next: vec4<f32>, s: i32) -> vec4<f32> {
    if s < 0 {
        return shift(prev, cur, s + 4);
    }
    if s < 4 {
        return shift(cur, next, s);
    }
    return next;
}

// The weights, w[c, ky, kx] at c * KH * KW + ky * KW + kx (w[0, i, ky, kx] forward,
// w[o, 0, ky, kx] backward), through a uniform buffer: every invocation reads the same
// address, one broadcast load, where a CPU driver loads from a storage buffer one
// invocation at a time. pack_single_weights copies them there, and the bias (or zero) after
// them.
@group(0) @binding(10) var<uniform> weights: array<vec4<f32>, 4096>;
@group(0) @binding(11) var<storage, read_write> weights_out: array<f32>;

@compute @workgroup_size(WG)
fn pack_single_weights(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let id = (wid.x + wid.y * nwg.x) * WG + lane;
    if id < p.weight_len {
        weights_out[id] = w[id];
    } else if id == p.weight_len {
        var b = 0.0;
        if p.has_bias == 1u {
            b = bias[0];
        }
        weights_out[id] = b;
    }
}

fn weight(at: u32) -> f32 {
    return weights[at / 4u][at % 4u];
}

// Four output vec4s of a row.
struct Span {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
}

// The SPAN + 2 source vec4s around a span's.
struct Around {
    u0: vec4<f32>,
    u1: vec4<f32>,
    u2: vec4<f32>,
    u3: vec4<f32>,
    u4: vec4<f32>,
    u5: vec4<f32>,
}

// `acc` plus one kernel row's taps (weights from `wk`, columns kx = 0 .. KW - 1) over the
// source vec4s `a`.
fn add_row(acc: Span, a: Around, wk: u32, sizes: Sizes) -> Span {
    var r = acc;
    for (var kx = 0u; kx < sizes.kernel_w; kx++) {
        let s = sizes.dir * i32(kx) + sizes.offset_x;
        let wv = weight(wk + kx);
        r.v0 += wv * window(a.u0, a.u1, a.u2, s);
        r.v1 += wv * window(a.u1, a.u2, a.u3, s);
        r.v2 += wv * window(a.u2, a.u3, a.u4, s);
        r.v3 += wv * window(a.u3, a.u4, a.u5, s);
    }
    return r;
}

fn store_span(n: u32, y: u32, col4: u32, acc: Span, sizes: Sizes) {
    let b = weight(p.weight_len);
    let out = (n * sizes.out_h + y) * sizes.out_w4 + col4;
    let left = sizes.out_w4 - col4;
    out4[out] = acc.v0 + b;
    if left > 1u { out4[out + 1u] = acc.v1 + b; }
    if left > 2u { out4[out + 2u] = acc.v2 + b; }
    if left > 3u { out4[out + 3u] = acc.v3 + b; }
}

// The kernel row whose source rows lie `e` past the least offset `d_min`, or KH if none.
fn kernel_row(e: i32, d_min: i32, sizes: Sizes) -> u32 {
    let ky = sizes.dir * (d_min + e - sizes.offset_y);
    return select(sizes.kernel_h, u32(max(ky, 0)), ky >= 0 && ky < i32(sizes.kernel_h));
}

// An invocation owns SPAN vec4s of `p.chunk_len` consecutive output rows (a block) and walks
// the source rows that reach them top to bottom, each once, over all channels: source row
// sy = y + dir * ky + offset_y serves output row y through kernel row ky, so with the
// rows' offsets d = dir * ky + offset_y from d_min to d_max, source row y0 + d_min + r adds
// to output rows y0 + r - e through the kernel row whose d is d_min + e. Three running sums
// hold the rows still open (e = 0, 1, 2; kernels of at most three rows); after each source
// row the oldest is complete and stored. Each output sums its kernel rows in the order of
// the source rows, then channels, then kernel columns.
fn single_channel(linear_id: u32, sizes: Sizes) {
    let spans = (sizes.out_w4 + SPAN - 1u) / SPAN;
    let block_rows = p.chunk_len;
    let blocks = (sizes.out_h + block_rows - 1u) / block_rows;
    let per_sample = blocks * spans;
    // Surplus invocations, and rows past the last block's end, are computed and not stored:
    // returning early or looping fewer times would put the loops under a branch.
    let real = linear_id < p.batch * per_sample;
    let id = min(linear_id, p.batch * per_sample - 1u);
    let n = id / per_sample;
    let rest = id - n * per_sample;
    let block = rest / spans;
    let col4 = (rest - block * spans) * SPAN;
    let y0 = block * block_rows;
    let src_plane4 = sizes.src_h * sizes.src_w4;
    let taps = sizes.kernel_h * sizes.kernel_w;

    let d_min = sizes.offset_y + min(0, sizes.dir * (i32(sizes.kernel_h) - 1));
    let ky_of = vec3<u32>(
        kernel_row(0, d_min, sizes),
        kernel_row(1, d_min, sizes),
        kernel_row(2, d_min, sizes),
    );
    let zero = Span(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    var open0 = zero; // output row y0 + r
    var open1 = zero; // y0 + r - 1
    var open2 = zero; // y0 + r - 2
    let at = i32(col4);
    for (var r = 0u; r < block_rows + 2u; r++) {
        let sy = i32(y0 + r) + d_min;
        let row_ok = sy >= 0 && sy < i32(sizes.src_h);
        var row = (n * sizes.channels * sizes.src_h + u32(max(sy, 0))) * sizes.src_w4;
        for (var c = 0u; c < sizes.channels; c++) {
            let a = Around(
                row_vec4(row, row_ok, at - 1, sizes.src_w4),
                row_vec4(row, row_ok, at, sizes.src_w4),
                row_vec4(row, row_ok, at + 1, sizes.src_w4),
                row_vec4(row, row_ok, at + 2, sizes.src_w4),
                row_vec4(row, row_ok, at + 3, sizes.src_w4),
                row_vec4(row, row_ok, at + 4, sizes.src_w4),
            );
            let wc = c * taps;
            if ky_of.x < sizes.kernel_h && r < block_rows {
                open0 = add_row(open0, a, wc + ky_of.x * sizes.kernel_w, sizes);
            }
            if ky_of.y < sizes.kernel_h && r >= 1u && r <= block_rows {
                open1 = add_row(open1, a, wc + ky_of.y * sizes.kernel_w, sizes);
            }
            if ky_of.z < sizes.kernel_h && r >= 2u {
                open2 = add_row(open2, a, wc + ky_of.z * sizes.kernel_w, sizes);
            }
            row += src_plane4;
        }
        if r >= 2u && real && y0 + r - 2u < sizes.out_h {
            store_span(n, y0 + r - 2u, col4, open2, sizes);
        }
        open2 = open1;
        open1 = open0;
        open0 = zero;
    }
}

fn forward_sizes(pad_top: i32, pad_left: i32, kernel_h: u32, kernel_w: u32) -> Sizes {
    return Sizes(
        p.in_channels, p.in_h, p.in_w / 4u, p.out_h, p.out_w / 4u,
        1, -pad_top, -pad_left, kernel_h, kernel_w,
    );
}

fn backward_input_sizes(pad_top: i32, pad_left: i32, kernel_h: u32, kernel_w: u32) -> Sizes {
    return Sizes(
        p.out_channels, p.out_h, p.out_w / 4u, p.in_h, p.in_w / 4u,
        -1, pad_top, pad_left, kernel_h, kernel_w,
    );
}

@compute @workgroup_size(WG)
fn forward_single(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let sizes = forward_sizes(i32(p.pad_top), i32(p.pad_left), p.kernel_h, p.kernel_w);
    single_channel((wid.x + wid.y * nwg.x) * WG + lane, sizes);
}

// 3 x 3 kernels padded by one on every side ('same'), with the geometry's values as
// literals.
@compute @workgroup_size(WG)
fn forward_single_3x3(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    single_channel((wid.x + wid.y * nwg.x) * WG + lane, forward_sizes(1, 1, 3u, 3u));
}

@compute @workgroup_size(WG)
fn backward_input_single(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let sizes = backward_input_sizes(i32(p.pad_top), i32(p.pad_left), p.kernel_h, p.kernel_w);
    single_channel((wid.x + wid.y * nwg.x) * WG + lane, sizes);
}

@compute @workgroup_size(WG)
fn backward_input_single_3x3(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    single_channel((wid.x + wid.y * nwg.x) * WG + lane, backward_input_sizes(1, 1, 3u, 3u));
}

// The weight gradient of a one-channel input at stride 1 (the generator's last layer, a
// transposed convolution into one channel, takes it: its weight gradient is that of the
// convolution from that channel):
//   dw[o, 0, ky, kx] = sum over (n, oy, ox) of
//                          dy[n, o, oy, ox] * x[n, 0, oy + ky - PT, ox + kx - PL]
// Invocation (n, o) walks the rows of dy[n, o] (and of the next three channels, where they
// come in fours) four values at a time and keeps one sum per channel and tap (kernels of at
// most KSIZE_SINGLE x KSIZE_SINGLE). For each of the KH source rows, the
// x values at ox + s for a tap's shift s = kx - PL come from the aligned vec4s before, at and
// after dy's, carried from one step to the next, so a step loads one vec4 of dy and one of
// each source row. It writes sample n's sums to chunk n of the partial sums, which
// backward_weight_reduce adds in sample order.
const KSIZE_SINGLE: u32 = 3u;

fn hsum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// The three vec4s around vec4 j of a source row, slid one step along it.
struct Slide {
    prev: vec4<f32>,
    cur: vec4<f32>,
    next: vec4<f32>,
}

fn slide_start(row: u32, row_ok: bool, width4: u32) -> Slide {
    return Slide(vec4<f32>(), vec4<f32>(), row_vec4(row, row_ok, 0, width4));
}

fn slide_next(s: Slide, row: u32, row_ok: bool, j: u32, width4: u32) -> Slide {
    return Slide(s.cur, s.next, row_vec4(row, row_ok, i32(j) + 1, width4));
}

// The source row of kernel row ky for output row oy: its first vec4 and whether it exists.
fn source_row(n: u32, oy: u32, ky: u32, width4: u32) -> vec2<u32> {
    let iy = i32(oy + ky) - i32(p.pad_top);
    let ok = ky < p.kernel_h && iy >= 0 && iy < i32(p.in_h);
    return vec2<u32>((n * p.in_h + u32(max(iy, 0))) * width4, u32(ok));
}

// The sums of one kernel row's three taps, one step further.
struct TapRow {
    t0: vec4<f32>,
    t1: vec4<f32>,
    t2: vec4<f32>,
}

fn add_taps(acc: TapRow, d: vec4<f32>, s: Slide, s0: i32) -> TapRow {
    return TapRow(
        acc.t0 + d * window(s.prev, s.cur, s.next, s0),
        acc.t1 + d * window(s.prev, s.cur, s.next, s0 + 1),
        acc.t2 + d * window(s.prev, s.cur, s.next, s0 + 2),
    );
}

// part[n, o, 0, ky, kx] at n * weight_len + (o * KH + ky) * KW + kx, for the row's taps.
fn store_taps(base: u32, ky: u32, acc: TapRow) {
    if ky >= p.kernel_h {
        return;
    }
    let at = base + ky * p.kernel_w;
    out[at] = hsum4(acc.t0);
    if p.kernel_w > 1u { out[at + 1u] = hsum4(acc.t1); }
    if p.kernel_w > 2u { out[at + 2u] = hsum4(acc.t2); }
}

// One channel's sums, a TapRow per kernel row.
struct ChannelSums {
    k0: TapRow,
    k1: TapRow,
    k2: TapRow,
}

fn channel_zero() -> ChannelSums {
    let zero = TapRow(vec4<f32>(), vec4<f32>(), vec4<f32>());
    return ChannelSums(zero, zero, zero);
}

fn add_step(acc: ChannelSums, d: vec4<f32>, x0: Slide, x1: Slide, x2: Slide, s0: i32)
    -> ChannelSums {
    return ChannelSums(add_taps(acc.k0, d, x0, s0), add_taps(acc.k1, d, x1, s0),
                       add_taps(acc.k2, d, x2, s0));
}

fn store_channel_sums(n: u32, o: u32, acc: ChannelSums) {
    let base = n * p.weight_len + o * p.kernel_h * p.kernel_w;
    store_taps(base, 0u, acc.k0);
    store_taps(base, 1u, acc.k1);
    store_taps(base, 2u, acc.k2);
}

// Invocation `id`'s sums for `width` (1 or 4) consecutive output channels, with `s0` the
// first kernel column's shift (minus the left padding). Four channels share each step's
// source loads: on lavapipe that ran about 1.5 times faster than one.
fn weight_single(id: u32, s0: i32, width: u32) {
    let groups = p.out_channels / width;
    if id >= p.batch * groups {
        return;
    }
    let n = id / groups;
    let o = (id - n * groups) * width;
    let in_w4 = p.in_w / 4u;
    let out_w4 = p.out_w / 4u;
    let plane4 = p.out_h * out_w4;

    var c0 = channel_zero();
    var c1 = c0;
    var c2 = c0;
    var c3 = c0;
    var dy_at = (n * p.out_channels + o) * plane4;
    for (var oy = 0u; oy < p.out_h; oy++) {
        let r0 = source_row(n, oy, 0u, in_w4);
        let r1 = source_row(n, oy, 1u, in_w4);
        let r2 = source_row(n, oy, 2u, in_w4);
        var x0 = slide_start(r0.x, r0.y == 1u, in_w4);
        var x1 = slide_start(r1.x, r1.y == 1u, in_w4);
        var x2 = slide_start(r2.x, r2.y == 1u, in_w4);
        for (var j = 0u; j < out_w4; j++) {
            x0 = slide_next(x0, r0.x, r0.y == 1u, j, in_w4);
            x1 = slide_next(x1, r1.x, r1.y == 1u, j, in_w4);
            x2 = slide_next(x2, r2.x, r2.y == 1u, j, in_w4);
            c0 = add_step(c0, dy4[dy_at + j], x0, x1, x2, s0);
            if width == 4u {
                c1 = add_step(c1, dy4[dy_at + plane4 + j], x0, x1, x2, s0);
                c2 = add_step(c2, dy4[dy_at + 2u * plane4 + j], x0, x1, x2, s0);
                c3 = add_step(c3, dy4[dy_at + 3u * plane4 + j], x0, x1, x2, s0);
            }
        }
        dy_at += out_w4;
    }
    store_channel_sums(n, o, c0);
    if width == 4u {
        store_channel_sums(n, o + 1u, c1);
        store_channel_sums(n, o + 2u, c2);
        store_channel_sums(n, o + 3u, c3);
    }
}

@compute @workgroup_size(WG)
fn backward_weight_single(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_single((wid.x + wid.y * nwg.x) * WG + lane, -i32(p.pad_left), 1u);
}

@compute @workgroup_size(WG)
fn backward_weight_single4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_single((wid.x + wid.y * nwg.x) * WG + lane, -i32(p.pad_left), 4u);
}

// Padded by one column on the left, the shift a literal: its windows fold to constants (see
// `Sizes`).
@compute @workgroup_size(WG)
fn backward_weight_single_pad1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_single((wid.x + wid.y * nwg.x) * WG + lane, -1, 1u);
}

@compute @workgroup_size(WG)
fn backward_weight_single4_pad1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_single((wid.x + wid.y * nwg.x) * WG + lane, -1, 4u);
}
