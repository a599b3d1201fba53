// Convolution from a single input channel into many, kernels of at most 3 x 3, any stride
// and padding (conv2d.wgsl is prepended: its Params, bindings and helpers):
//   y[n, o, oy, ox] = sum over (ky, kx) of
//                         w[o, 0, ky, kx] * x[n, 0, oy*SH + ky - PT, ox*SW + kx - PL]
//                     (+ bias[o])
// The model runs it as its discriminator's first layer and as the input gradient of its
// generator's last layer (a transposed convolution into one channel). Each output is a sum
// of only KH * KW products, so the general kernels spend their time packing and storing.
// Here an invocation owns four consecutive pixels of one sample's output plane (planes of
// whole vec4s), loads their source values once, then walks its workgroup's run of output
// channels four at a time. The weights and the bias come through a uniform buffer, packed
// by pack_one_input as taps[slot][o] with slot = ky * 3 + kx (zero where the kernel is
// smaller) and the bias as slot 9, so all invocations read the same address: one broadcast
// load on any device, where a CPU driver loads from a storage buffer one invocation at a
// time. Each output sums the
// slots in order from zero and adds the bias last, the order of the general kernels' chains;
// a slot outside the kernel adds a zero product, which changes no sum.
// The launcher checks the conditions (src/gpu/ops/conv2d_one_input.rs).

const WG_ONE: u32 = 64u;
// Slots of the packed weights: 3 x 3 taps, then the bias.
const SLOTS: u32 = 10u;
const BIAS_SLOT: u32 = 9u;

// The packed weights: SLOTS rows of out_channels (a multiple of 4) values, vec4 at a time.
@group(0) @binding(7) var<uniform> taps: array<vec4<f32>, 4096>;
// y, four pixels at a time.
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;
// The packed weights as pack_one_input writes them.
@group(0) @binding(9) var<storage, read_write> taps_out: array<f32>;

// One invocation per (slot, output channel).
@compute @workgroup_size(WG_ONE)
fn pack_one_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let id = (wid.x + wid.y * nwg.x) * WG_ONE + lane;
    let o_count = p.out_channels;
    if id >= SLOTS * o_count {
        return;
    }
    let slot = id / o_count;
    let o = id - slot * o_count;
    var v = 0.0;
    if slot == BIAS_SLOT {
        if p.has_bias == 1u {
            v = bias[o];
        }
    } else {
        let ky = slot / 3u;
        let kx = slot - ky * 3u;
        if ky < p.kernel_h && kx < p.kernel_w {
            v = w[(o * p.kernel_h + ky) * p.kernel_w + kx];
        }
    }
    taps_out[id] = v;
}

// The source values of slot (ky, kx) for the four pixels at `oy`, `ox`: zero outside the
// source and outside the kernel.
fn source4(plane: u32, oy: vec4<u32>, ox: vec4<u32>, ky: u32, kx: u32) -> vec4<f32> {
    let iy = vec4<i32>(oy * p.stride_h + ky) - i32(p.pad_top);
    let ix = vec4<i32>(ox * p.stride_w + kx) - i32(p.pad_left);
    let inside = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.in_h)))
        & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.in_w)));
    let ok = inside & vec4<bool>(ky < p.kernel_h && kx < p.kernel_w);
    let at = select(vec4<u32>(0u), plane + vec4<u32>(iy) * p.in_w + vec4<u32>(ix), ok);
    return select(vec4<f32>(), vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]), ok);
}

// The four pixels' sums for four channels, one vec4 (of channels) per pixel.
struct Quad {
    p0: vec4<f32>,
    p1: vec4<f32>,
    p2: vec4<f32>,
    p3: vec4<f32>,
}

// Adds slot `slot`'s products: weights `wv` of four channels, source values `s` of four
// pixels.
fn add_slot(acc: Quad, wv: vec4<f32>, s: vec4<f32>) -> Quad {
    return Quad(acc.p0 + wv * s.x, acc.p1 + wv * s.y, acc.p2 + wv * s.z, acc.p3 + wv * s.w);
}

// The invocation's quad and workgroup's run of output channels, and its clamped quad's
// pixels (forward_one_input's grid).
struct QuadRun {
    real: bool,     // a quad of the output, not a surplus invocation
    n: u32,         // sample
    first: u32,     // first of the four pixels within the sample's plane
    chunk: u32,     // the workgroup's run of output channel groups
    oy: vec4<u32>,
    ox: vec4<u32>,
}

fn quad_run(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> QuadRun {
    let plane4 = p.out_h * p.out_w / 4u;
    // The output channels come in `chunks` runs of groups of four, a run per workgroup: the
    // run's bounds are then the same for every invocation, so are the weights' addresses.
    let quads = p.batch * plane4;
    let groups = (quads + WG_ONE - 1u) / WG_ONE;
    let linear = wid.x + wid.y * nwg.x;
    let chunk = min(linear / groups, p.chunks - 1u);
    let id = (linear - chunk * groups) * WG_ONE + lane;
    // Surplus invocations compute a clamped quad and store nothing; returning early would
    // put the whole kernel under a branch.
    let real = id < quads && linear < groups * p.chunks;
    let q = min(id, quads - 1u);
    let n = q / plane4;
    let first = (q - n * plane4) * 4u;
    let pix = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
    let oy = pix / p.out_w;
    return QuadRun(real, n, first, chunk, oy, pix - oy * p.out_w);
}

// Walks the run's output channels four at a time and stores the quad's sums.
fn store_channels(r: QuadRun, s: Sources) {
    let plane = p.out_h * p.out_w;
    let plane4 = plane / 4u;
    let o4 = p.out_channels / 4u;
    let run = o4 / p.chunks;
    let c0 = r.chunk * run;
    // y[n, 4c + j, first ..] four pixels at a time, for channel group c and channel j.
    var at = ((r.n * p.out_channels + 4u * c0) * plane + r.first) / 4u;
    for (var c = c0; c < c0 + run; c++) {
        var acc = Quad(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
        acc = add_slot(acc, taps[c], s.s0);
        acc = add_slot(acc, taps[o4 + c], s.s1);
        acc = add_slot(acc, taps[2u * o4 + c], s.s2);
        acc = add_slot(acc, taps[3u * o4 + c], s.s3);
        acc = add_slot(acc, taps[4u * o4 + c], s.s4);
        acc = add_slot(acc, taps[5u * o4 + c], s.s5);
        acc = add_slot(acc, taps[6u * o4 + c], s.s6);
        acc = add_slot(acc, taps[7u * o4 + c], s.s7);
        acc = add_slot(acc, taps[8u * o4 + c], s.s8);
        if p.has_bias == 1u {
            let b = taps[BIAS_SLOT * o4 + c];
            acc = Quad(acc.p0 + b, acc.p1 + b, acc.p2 + b, acc.p3 + b);
        }
        if r.real {
            out4[at] = vec4<f32>(acc.p0.x, acc.p1.x, acc.p2.x, acc.p3.x);
            out4[at + plane4] = vec4<f32>(acc.p0.y, acc.p1.y, acc.p2.y, acc.p3.y);
            out4[at + 2u * plane4] = vec4<f32>(acc.p0.z, acc.p1.z, acc.p2.z, acc.p3.z);
            out4[at + 3u * plane4] = vec4<f32>(acc.p0.w, acc.p1.w, acc.p2.w, acc.p3.w);
        }
        at += 4u * plane4;
    }
}

@compute @workgroup_size(WG_ONE)
fn forward_one_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let r = quad_run(wid, nwg, lane);
    let src = r.n * p.in_h * p.in_w;
    store_channels(r, Sources(
        source4(src, r.oy, r.ox, 0u, 0u),
        source4(src, r.oy, r.ox, 0u, 1u),
        source4(src, r.oy, r.ox, 0u, 2u),
        source4(src, r.oy, r.ox, 1u, 0u),
        source4(src, r.oy, r.ox, 1u, 1u),
        source4(src, r.oy, r.ox, 1u, 2u),
        source4(src, r.oy, r.ox, 2u, 0u),
        source4(src, r.oy, r.ox, 2u, 1u),
        source4(src, r.oy, r.ox, 2u, 2u),
    ));
}

// x, four values at a time, for forward_one_input_3x3.
@group(0) @binding(12) var<storage, read> x4: array<vec4<f32>>;

// Vec4 `at` of source row `iy` of the sample starting at vec4 `plane`, zero outside the
// source (rows of whole vec4s, so a vec4 is inside or outside entirely).
fn source_row_vec4(plane: u32, iy: i32, at: i32) -> vec4<f32> {
    let w4 = i32(p.in_w / 4u);
    let ok = iy >= 0 && iy < i32(p.in_h) && at >= 0 && at < w4;
    return select(vec4<f32>(), x4[select(0u, plane + u32(iy * w4 + at), ok)], ok);
}

// The kernel row whose source row is iy: its three slots for a quad starting at a multiple of
// 4, from the vec4 before the quad's, its own and the one after (padding 1 on the left).
fn row_slots(plane: u32, iy: i32, at: i32) -> array<vec4<f32>, 3> {
    let before = source_row_vec4(plane, iy, at - 1);
    let own = source_row_vec4(plane, iy, at);
    let after = source_row_vec4(plane, iy, at + 1);
    return array<vec4<f32>, 3>(
        vec4<f32>(before.w, own.xyz),
        own,
        vec4<f32>(own.yzw, after.x),
    );
}

// The same for a 3 x 3 kernel at stride 1 with padding 1 ('same'), into rows of whole vec4s
// as wide as the source's: a quad lies in one row, and kernel row ky's three slots are the
// source row's values at ox - 1 .. ox + 4, which the three aligned vec4s around the quad's
// hold. Nine vec4 loads where forward_one_input makes 36 single ones; the same values, so
// the same sums.
@compute @workgroup_size(WG_ONE)
fn forward_one_input_3x3(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let r = quad_run(wid, nwg, lane);
    let plane = r.n * p.in_h * p.in_w / 4u;
    let oy = i32(r.oy.x);
    let at = i32(r.ox.x / 4u);
    let top = row_slots(plane, oy - 1, at);
    let middle = row_slots(plane, oy, at);
    let bottom = row_slots(plane, oy + 1, at);
    store_channels(r, Sources(
        top[0], top[1], top[2], middle[0], middle[1], middle[2], bottom[0], bottom[1], bottom[2],
    ));
}

// The weight gradient of the same convolution:
//   dw[o, 0, ky, kx] = sum over (n, oy, ox) of
//                          dy[n, o, oy, ox] * x[n, 0, oy*SH + ky - PT, ox*SW + kx - PL]
// Invocation (n, g) sums sample n's pixels for a group of four output channels (eight where
// they come in eights: on lavapipe that ran 1.3 to 1.4 times faster, sixteen little more),
// four pixels at a time: it loads their source values once per quad (as the forward pass
// does) and one vec4 of dy per channel, and keeps a vec4 of sums per channel and slot, one
// lane per pixel of the quad. It writes the sample's sums to chunk n of the partial sums, which
// backward_weight_reduce (conv2d.wgsl) adds in sample order.

// dy, four pixels at a time.
@group(0) @binding(10) var<storage, read> dy4: array<vec4<f32>>;

// One channel's sums, a vec4 per slot.
struct SlotSums {
    t0: vec4<f32>,
    t1: vec4<f32>,
    t2: vec4<f32>,
    t3: vec4<f32>,
    t4: vec4<f32>,
    t5: vec4<f32>,
    t6: vec4<f32>,
    t7: vec4<f32>,
    t8: vec4<f32>,
}

// The nine slots' source values of one quad, slot ky * 3 + kx.
struct Sources {
    s0: vec4<f32>,
    s1: vec4<f32>,
    s2: vec4<f32>,
    s3: vec4<f32>,
    s4: vec4<f32>,
    s5: vec4<f32>,
    s6: vec4<f32>,
    s7: vec4<f32>,
    s8: vec4<f32>,
}

fn add_products(acc: SlotSums, d: vec4<f32>, s: Sources) -> SlotSums {
    return SlotSums(
        acc.t0 + d * s.s0, acc.t1 + d * s.s1, acc.t2 + d * s.s2,
        acc.t3 + d * s.s3, acc.t4 + d * s.s4, acc.t5 + d * s.s5,
        acc.t6 + d * s.s6, acc.t7 + d * s.s7, acc.t8 + d * s.s8,
    );
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Channel o's sums into chunk `base` of the partial sums: the kernel's taps only.
fn store_slots(base: u32, o: u32, acc: SlotSums) {
    let sums = array<f32, 9>(
        sum4(acc.t0), sum4(acc.t1), sum4(acc.t2),
        sum4(acc.t3), sum4(acc.t4), sum4(acc.t5),
        sum4(acc.t6), sum4(acc.t7), sum4(acc.t8),
    );
    let at = base + o * p.kernel_h * p.kernel_w;
    for (var ky = 0u; ky < p.kernel_h; ky++) {
        for (var kx = 0u; kx < p.kernel_w; kx++) {
            out[at + ky * p.kernel_w + kx] = sums[ky * 3u + kx];
        }
    }
}

// Four channels' sums.
struct FourSums {
    c0: SlotSums,
    c1: SlotSums,
    c2: SlotSums,
    c3: SlotSums,
}

fn four_zero() -> FourSums {
    let zero = vec4<f32>();
    let none = SlotSums(zero, zero, zero, zero, zero, zero, zero, zero, zero);
    return FourSums(none, none, none, none);
}

// The products of one quad for the four channels whose dy planes start at vec4 `d_at`.
fn add_quad(acc: FourSums, d_at: u32, plane4: u32, s: Sources) -> FourSums {
    return FourSums(
        add_products(acc.c0, dy4[d_at], s),
        add_products(acc.c1, dy4[d_at + plane4], s),
        add_products(acc.c2, dy4[d_at + 2u * plane4], s),
        add_products(acc.c3, dy4[d_at + 3u * plane4], s),
    );
}

fn quad_sources(src: u32, q: u32) -> Sources {
    let pix = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let oy = pix / p.out_w;
    let ox = pix - oy * p.out_w;
    return Sources(
        source4(src, oy, ox, 0u, 0u), source4(src, oy, ox, 0u, 1u),
        source4(src, oy, ox, 0u, 2u), source4(src, oy, ox, 1u, 0u),
        source4(src, oy, ox, 1u, 1u), source4(src, oy, ox, 1u, 2u),
        source4(src, oy, ox, 2u, 0u), source4(src, oy, ox, 2u, 1u),
        source4(src, oy, ox, 2u, 2u),
    );
}

fn store_four(base: u32, o: u32, acc: FourSums) {
    store_slots(base, o, acc.c0);
    store_slots(base, o + 1u, acc.c1);
    store_slots(base, o + 2u, acc.c2);
    store_slots(base, o + 3u, acc.c3);
}

// Invocation (n, g) for groups of `width` (4 or 8) output channels.
struct WeightTask {
    real: bool,
    n: u32,
    o: u32,
}

fn weight_task(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, width: u32) -> WeightTask {
    let groups = p.out_channels / width;
    let linear = (wid.x + wid.y * nwg.x) * WG_ONE + lane;
    let id = min(linear, p.batch * groups - 1u);
    let n = id / groups;
    return WeightTask(linear < p.batch * groups, n, (id - n * groups) * width);
}

// Invocation (n, g)'s sums for `width` (4 or 8, a literal) output channels.
fn weight_one_input(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, width: u32) {
    let t = weight_task(wid, nwg, lane, width);
    let plane4 = p.out_h * p.out_w / 4u;
    let src = t.n * p.in_h * p.in_w;
    var lo = four_zero();
    var hi = four_zero();
    let d_at = (t.n * p.out_channels + t.o) * plane4;
    for (var q = 0u; q < plane4; q++) {
        let s = quad_sources(src, q);
        lo = add_quad(lo, d_at + q, plane4, s);
        if width == 8u {
            hi = add_quad(hi, d_at + 4u * plane4 + q, plane4, s);
        }
    }
    if t.real {
        store_four(t.n * p.weight_len, t.o, lo);
        if width == 8u {
            store_four(t.n * p.weight_len, t.o + 4u, hi);
        }
    }
}

@compute @workgroup_size(WG_ONE)
fn backward_weight_one_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_one_input(wid, nwg, lane, 4u);
}

// Eight channels per invocation, where they come in eights: each quad's sources serve twice
// as many products.
@compute @workgroup_size(WG_ONE)
fn backward_weight_one_input8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    weight_one_input(wid, nwg, lane, 8u);
}

// The input gradient's products per tap, for the gather of col2im.wgsl: with one input
// channel, the product of the transposed weight and dy has one row per tap,
//   z[ky * KW + kx, (n, oy, ox)] = sum over o of w[o, 0, ky, kx] * dy[n, o, oy, ox],
// nine rows at most, which the uniform-window GEMM would pad to 32. Invocation: four
// consecutive pixels of one sample's dy plane (planes of whole vec4s); it walks the output
// channels in order, four at a time, one vec4 of dy per channel and the nine slots' weights
// from the packed uniform buffer (pack_one_input), and sums each row from zero in channel
// order, the GEMM's order.

// z, four pixels at a time.
@group(0) @binding(11) var<storage, read_write> z4: array<vec4<f32>>;

// Channel j (0 .. 3) of the four whose weights are `wv`, times its dy values `d`, into
// every slot.
fn add_channel(acc: Sources, w: array<vec4<f32>, 9>, j: u32, d: vec4<f32>) -> Sources {
    return Sources(
        acc.s0 + w[0][j] * d, acc.s1 + w[1][j] * d, acc.s2 + w[2][j] * d,
        acc.s3 + w[3][j] * d, acc.s4 + w[4][j] * d, acc.s5 + w[5][j] * d,
        acc.s6 + w[6][j] * d, acc.s7 + w[7][j] * d, acc.s8 + w[8][j] * d,
    );
}

// Row ky * KW + kx of z gets slot (ky, kx)'s sums, for the kernel's taps only.
fn store_tap_row(ky: u32, kx: u32, quad: u32, quads: u32, v: vec4<f32>) {
    if ky < p.kernel_h && kx < p.kernel_w {
        z4[(ky * p.kernel_w + kx) * quads + quad] = v;
    }
}

@compute @workgroup_size(WG_ONE)
fn tap_products_one_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let plane4 = p.out_h * p.out_w / 4u;
    let quads = p.batch * plane4;
    let linear = (wid.x + wid.y * nwg.x) * WG_ONE + lane;
    let q = min(linear, quads - 1u);
    let n = q / plane4;
    var at = n * p.out_channels * plane4 + (q - n * plane4);
    let o4 = p.out_channels / 4u;
    let zero = vec4<f32>();
    var acc = Sources(zero, zero, zero, zero, zero, zero, zero, zero, zero);
    for (var c = 0u; c < o4; c++) {
        let w = array<vec4<f32>, 9>(
            taps[c], taps[o4 + c], taps[2u * o4 + c], taps[3u * o4 + c], taps[4u * o4 + c],
            taps[5u * o4 + c], taps[6u * o4 + c], taps[7u * o4 + c], taps[8u * o4 + c],
        );
        acc = add_channel(acc, w, 0u, dy4[at]);
        acc = add_channel(acc, w, 1u, dy4[at + plane4]);
        acc = add_channel(acc, w, 2u, dy4[at + 2u * plane4]);
        acc = add_channel(acc, w, 3u, dy4[at + 3u * plane4]);
        at += 4u * plane4;
    }
    if linear < quads {
        store_tap_row(0u, 0u, q, quads, acc.s0);
        store_tap_row(0u, 1u, q, quads, acc.s1);
        store_tap_row(0u, 2u, q, quads, acc.s2);
        store_tap_row(1u, 0u, q, quads, acc.s3);
        store_tap_row(1u, 1u, q, quads, acc.s4);
        store_tap_row(1u, 2u, q, quads, acc.s5);
        store_tap_row(2u, 0u, q, quads, acc.s6);
        store_tap_row(2u, 1u, q, quads, acc.s7);
        store_tap_row(2u, 2u, q, quads, acc.s8);
    }
}
