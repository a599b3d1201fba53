// Batch normalisation over NCHW data viewed as [n, c, p] (p = h * w), statistics per channel
// over its n * p values (Keras 2's fused kernel: biased variance to normalise, unbiased
// variance into the running average).
//   forward_train_stats: one workgroup per channel, one sweep over it (sums of the values
//       shifted by the channel's first, see finish_stats). Writes save_mean / save_var
//       (biased) and updates the running statistics.
//   normalize:           y = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch
//       statistics (training) or the running ones (inference).
//   backward_reduce:     one workgroup per channel: dbeta = sum dy, dgamma = sum dy * xhat.
//   backward_dx:         dx = gamma / sqrt(var + eps)
//                             * (dy - dbeta / count - xhat * dgamma / count).
// Each has a twin with the suffix 4 that moves four values per load, for p a multiple of 4
// (a channel's values of one sample are then p / 4 whole, aligned vec4s), and one with the
// suffix _grouped that moves four values of a group of four channels per load, for c a
// multiple of 4 and p not (see "channel groups" below). Memory-bound
// kernels on CPU drivers pay per load instruction more than per byte, and a GPU moves
// 16-byte words as cheaply as 4-byte ones.
//
// Channels are walked and reduced with the helpers of channel_walk.wgsl, prepended.
// The element-wise kernels run a grid of (chunk of a channel, channel), so the per-channel
// values are read once per invocation.

const WORKGROUP_SIZE: u32 = 256u;
// Invocations of a reduction workgroup (channel_walk.wgsl); REDUCTION_WORKGROUP_SIZE in
// src/gpu/ops/mod.rs says why 64.
const REDUCTION_SIZE: u32 = 64u;
// Items of one channel each invocation of normalize / backward_dx handles; the launcher
// sizes the grid with the same figure (CHUNK_PER_INVOCATION in src/gpu/ops/batchnorm.rs).
const CHUNK_PER_INVOCATION: u32 = 8u;

// Mirrored by `Params` in src/gpu/ops/batchnorm.rs.
struct Params {
    n: u32,         // batch
    c: u32,         // channels
    p: u32,         // values per channel and sample (h * w)
    momentum: f32,  // running = momentum * running + (1 - momentum) * batch statistic
    epsilon: f32,   // added to the variance before the square root
    // The element-wise kernels' layout of a chunk: invocation l takes items first + l *
    // lane_step + k * item_step, k < CHUNK_PER_INVOCATION. GPUs want neighbouring invocations
    // at neighbouring items (lane_step 1, item_step WORKGROUP_SIZE); CPU drivers, which run
    // one lane group through its loop before the next, stream through memory when each
    // invocation's items are consecutive (lane_step CHUNK_PER_INVOCATION, item_step 1).
    lane_step: u32,
    item_step: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                    // [n, c, p]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;                // [c]
@group(0) @binding(3) var<storage, read> beta: array<f32>;                 // [c]
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;   // [c]
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;    // [c]
@group(0) @binding(6) var<storage, read_write> save_mean: array<f32>;      // [c]
@group(0) @binding(7) var<storage, read_write> save_var: array<f32>;       // [c], biased
@group(0) @binding(8) var<storage, read> mean_in: array<f32>;              // [c]
@group(0) @binding(9) var<storage, read> var_in: array<f32>;               // [c]
@group(0) @binding(10) var<storage, read_write> y: array<f32>;             // [n, c, p]
@group(0) @binding(11) var<storage, read> dy: array<f32>;                  // [n, c, p]
@group(0) @binding(12) var<storage, read_write> dgamma: array<f32>;        // [c]
@group(0) @binding(13) var<storage, read_write> dbeta: array<f32>;         // [c]
@group(0) @binding(14) var<storage, read> dgamma_in: array<f32>;           // [c]
@group(0) @binding(15) var<storage, read> dbeta_in: array<f32>;            // [c]
@group(0) @binding(16) var<storage, read_write> dx: array<f32>;            // [n, c, p]
// x, y, dy and dx seen four values at a time, for the *4 kernels.
@group(0) @binding(17) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read_write> dx4: array<vec4<f32>>;

// Statistics for the backward pass; running averages with the unbiased variance (factor
// count / (count - 1), or 1 for a single value).
fn store_stats(lid: u32, ch: u32, mean: f32, variance: f32) {
    if (lid == 0u) {
        let countf = f32(params.n * params.p);
        save_mean[ch] = mean;
        save_var[ch] = variance;
        let unbias = countf / max(countf - 1.0, 1.0);
        let m = params.momentum;
        running_mean[ch] = m * running_mean[ch] + (1.0 - m) * mean;
        running_var[ch] = m * running_var[ch] + (1.0 - m) * variance * unbias;
    }
}

// `total`: (sum dy, sum dy * (x - mean)); dgamma = sum dy * xhat is the second over the
// standard deviation, one multiplication per channel rather than one per value.
fn store_grads(lid: u32, ch: u32, total: vec2<f32>, inv_std: f32) {
    if (lid == 0u) {
        dbeta[ch] = total.x;
        dgamma[ch] = total.y * inv_std;
    }
}

// The mean and biased variance from one sweep over the channel, as sums of d = x - shift and
// of d * d with shift the channel's first value: mean = shift + E[d], variance = E[d^2] -
// E[d]^2. A second sweep for the squared deviations would read the channel again, and these
// kernels are bound by their loads. Shifting by a value of the channel keeps E[d]^2 near the
// variance rather than near mean^2 (the cancellation of the plain sum of squares): the
// rounding error is that of the sums times 1 + (mean - shift)^2 / variance, small unless the
// first value lies many standard deviations out.
fn finish_stats(lid: u32, ch: u32, shift: f32, sums: vec2<f32>) {
    let moments = workgroup_sum(lid, sums) / f32(params.n * params.p);
    let variance = max(moments.y - moments.x * moments.x, 0.0);
    store_stats(lid, ch, shift + moments.x, variance);
}

@compute @workgroup_size(REDUCTION_SIZE)
fn forward_train_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The channel is the same for the whole workgroup, so returning keeps barriers uniform.
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let shift = x[ch * params.p];
    let seg = segment(lid, params.n * params.p);

    // (sum d, sum d * d) in one sweep.
    var sums = vec2<f32>(0.0);
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c);
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        let d0 = x[i0] - shift;
        let d1 = x[i1] - shift;
        sums = (sums + vec2<f32>(d0, d0 * d0)) + vec2<f32>(d1, d1 * d1);
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let d = x[walk_index(w, ch)] - shift;
        sums += vec2<f32>(d, d * d);
        walk_next(&w);
    }
    finish_stats(lid, ch, shift, sums);
}

@compute @workgroup_size(REDUCTION_SIZE)
fn forward_train_stats4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let shift = x4[ch * (params.p / 4u)].x;
    let seg = segment(lid, params.n * (params.p / 4u));

    var sum = vec4<f32>(0.0);
    var squares = vec4<f32>(0.0);
    var w = walk_from(seg.first, LANE_GROUP, params.p / 4u, params.c);
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        let d0 = x4[i0] - shift;
        let d1 = x4[i1] - shift;
        sum = (sum + d0) + d1;
        squares = (squares + d0 * d0) + d1 * d1;
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let d = x4[walk_index(w, ch)] - shift;
        sum += d;
        squares += d * d;
        walk_next(&w);
    }
    finish_stats(lid, ch, shift, vec2<f32>(hsum(sum), hsum(squares)));
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let seg = segment(lid, params.n * params.p);

    // (sum dy, sum dy * (x - mean)) in one sweep.
    var sums = vec2<f32>(0.0, 0.0);
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c);
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        let g0 = dy[i0];
        let g1 = dy[i1];
        sums = (sums + vec2<f32>(g0, g0 * (x[i0] - mean))) + vec2<f32>(g1, g1 * (x[i1] - mean));
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let i = walk_index(w, ch);
        let g = dy[i];
        sums += vec2<f32>(g, g * (x[i] - mean));
        walk_next(&w);
    }
    store_grads(lid, ch, workgroup_sum(lid, sums), inv_std);
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_reduce4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let seg = segment(lid, params.n * (params.p / 4u));

    var sum_dy = vec4<f32>(0.0);
    var sum_dy_centred = vec4<f32>(0.0);
    var w = walk_from(seg.first, LANE_GROUP, params.p / 4u, params.c);
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        let g0 = dy4[i0];
        let g1 = dy4[i1];
        sum_dy = (sum_dy + g0) + g1;
        sum_dy_centred = (sum_dy_centred + g0 * (x4[i0] - mean)) + g1 * (x4[i1] - mean);
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let i = walk_index(w, ch);
        let g = dy4[i];
        sum_dy += g;
        sum_dy_centred += g * (x4[i] - mean);
        walk_next(&w);
    }
    let sums = vec2<f32>(hsum(sum_dy), hsum(sum_dy_centred));
    store_grads(lid, ch, workgroup_sum(lid, sums), inv_std);
}

// backward_dx's per-channel constants (a, k, b) with dx = dy * a + ((x - mean) * k + b):
// the formula above with gamma / sqrt(var + eps) multiplied through, two multiply-adds per
// value instead of six operations. x - mean stays a subtraction of its own, as in the
// formula, so a mean far from zero cancels exactly as there.
fn dx_coefficients(gamma: f32, inv_std: f32, dbeta_mean: f32, dgamma_mean: f32) -> vec3<f32> {
    let scale = gamma * inv_std;
    return vec3<f32>(scale, -scale * inv_std * dgamma_mean, -scale * dbeta_mean);
}

// ---- element-wise ---------------------------------------------------------------------------
// Grid: x = chunk of WORKGROUP_SIZE * CHUNK_PER_INVOCATION items of a channel, y = channel.

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.y;
    let items = params.n * params.p;
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let mean = mean_in[ch];
    let scale = gamma[ch] / sqrt(var_in[ch] + params.epsilon);
    let b = beta[ch];
    var w = walk_from(first, params.item_step, params.p, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, ch);
            y[i] = (x[i] - mean) * scale + b;
        }
        walk_next(&w);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.y;
    let items = params.n * (params.p / 4u);
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let mean = mean_in[ch];
    let scale = gamma[ch] / sqrt(var_in[ch] + params.epsilon);
    let b = beta[ch];
    var w = walk_from(first, params.item_step, params.p / 4u, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, ch);
            y4[i] = (x4[i] - mean) * scale + b;
        }
        walk_next(&w);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.y;
    let items = params.n * params.p;
    let countf = f32(items);
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let coef =
        dx_coefficients(gamma[ch], inv_std, dbeta_in[ch] / countf, dgamma_in[ch] / countf);
    var w = walk_from(first, params.item_step, params.p, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, ch);
            dx[i] = dy[i] * coef.x + ((x[i] - mean) * coef.y + coef.z);
        }
        walk_next(&w);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_dx4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.y;
    let items = params.n * (params.p / 4u);
    let countf = f32(params.n * params.p);
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let coef =
        dx_coefficients(gamma[ch], inv_std, dbeta_in[ch] / countf, dgamma_in[ch] / countf);
    var w = walk_from(first, params.item_step, params.p / 4u, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, ch);
            dx4[i] = dy4[i] * coef.x + ((x4[i] - mean) * coef.y + coef.z);
        }
        walk_next(&w);
    }
}

// ---- channel groups -------------------------------------------------------------------------
// For c a multiple of 4 and p not, the tensor is [n, c / 4, p] vec4s (channel_walk.wgsl);
// the channel of a component grows by at most one from one component to the next. The
// element-wise kernels pick each component's per-channel values from the group's four; the
// reductions, one workgroup per group, keep a sum per channel and add each component into
// its channel's. Those take one item per loop trip; the two items per trip of the other
// reductions were not measured for their eight sums.

// Component k of the result is v[which[k]].
fn pick(v: vec4<f32>, which: vec4<u32>) -> vec4<f32> {
    let low = select(vec4<f32>(v.x), vec4<f32>(v.y), which >= vec4<u32>(1u));
    let high = select(vec4<f32>(v.z), vec4<f32>(v.w), which >= vec4<u32>(3u));
    return select(low, high, which >= vec4<u32>(2u));
}

// A per-channel tensor's values for the four channels of group g.
fn group_gamma(g: u32) -> vec4<f32> {
    return vec4<f32>(gamma[4u * g], gamma[4u * g + 1u], gamma[4u * g + 2u], gamma[4u * g + 3u]);
}

fn group_beta(g: u32) -> vec4<f32> {
    return vec4<f32>(beta[4u * g], beta[4u * g + 1u], beta[4u * g + 2u], beta[4u * g + 3u]);
}

fn group_mean(g: u32) -> vec4<f32> {
    let c = 4u * g;
    return vec4<f32>(mean_in[c], mean_in[c + 1u], mean_in[c + 2u], mean_in[c + 3u]);
}

fn group_inv_std(g: u32) -> vec4<f32> {
    let c = 4u * g;
    let variance = vec4<f32>(var_in[c], var_in[c + 1u], var_in[c + 2u], var_in[c + 3u]);
    return 1.0 / sqrt(variance + params.epsilon);
}

fn group_dgamma(g: u32) -> vec4<f32> {
    let c = 4u * g;
    return vec4<f32>(dgamma_in[c], dgamma_in[c + 1u], dgamma_in[c + 2u], dgamma_in[c + 3u]);
}

fn group_dbeta(g: u32) -> vec4<f32> {
    let c = 4u * g;
    return vec4<f32>(dbeta_in[c], dbeta_in[c + 1u], dbeta_in[c + 2u], dbeta_in[c + 3u]);
}

// normalize's per-channel values for the four channels of group g.
struct GroupY {
    mean: vec4<f32>,
    scale: vec4<f32>,
    beta: vec4<f32>,
}

fn group_y(g: u32) -> GroupY {
    return GroupY(group_mean(g), group_gamma(g) * group_inv_std(g), group_beta(g));
}

// y of vec4 i, each component with its channel's values.
fn picked_y(v: GroupY, channel: vec4<u32>, i: u32) -> vec4<f32> {
    return (x4[i] - pick(v.mean, channel)) * pick(v.scale, channel) + pick(v.beta, channel);
}

// dx_coefficients for the four channels of group g, and their means.
struct GroupDx {
    mean: vec4<f32>,
    scale: vec4<f32>,
    slope: vec4<f32>,
    offset: vec4<f32>,
}

fn group_dx(g: u32) -> GroupDx {
    let countf = f32(params.n * params.p);
    let inv_std = group_inv_std(g);
    let scale = group_gamma(g) * inv_std;
    let slope = -scale * inv_std * (group_dgamma(g) / countf);
    return GroupDx(group_mean(g), scale, slope, -scale * (group_dbeta(g) / countf));
}

// dx of vec4 i, each component with its channel's coefficients.
fn picked_dx(d: GroupDx, channel: vec4<u32>, i: u32) -> vec4<f32> {
    return dy4[i] * pick(d.scale, channel)
        + ((x4[i] - pick(d.mean, channel)) * pick(d.slope, channel) + pick(d.offset, channel));
}

// The first value of each of group g's channels (sample 0, position 0): the statistics'
// shifts, see finish_stats.
fn group_shifts(g: u32) -> vec4<f32> {
    var s: vec4<f32>;
    for (var k = 0u; k < 4u; k++) {
        let at = (4u * g + k) * params.p;
        s[k] = x4[at / 4u][at % 4u];
    }
    return s;
}

// Two sums per channel of a group, a and b, each as a vec4 of partial sums.
struct GroupSums {
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
    b3: vec4<f32>,
}

// Adds each component of a and b to the sums of its channel.
fn add_by_channel(s: ptr<function, GroupSums>, a: vec4<f32>, b: vec4<f32>, channel: vec4<u32>) {
    (*s).a0 += only(a, channel, 0u);
    (*s).a1 += only(a, channel, 1u);
    (*s).a2 += only(a, channel, 2u);
    (*s).a3 += only(a, channel, 3u);
    (*s).b0 += only(b, channel, 0u);
    (*s).b1 += only(b, channel, 1u);
    (*s).b2 += only(b, channel, 2u);
    (*s).b3 += only(b, channel, 3u);
}

fn pair(a: vec4<f32>, b: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(hsum(a), hsum(b));
}

@compute @workgroup_size(REDUCTION_SIZE)
fn forward_train_stats_grouped(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = reduction_channel(wg, groups);
    if (g >= params.c / 4u) {
        return;
    }
    let shift = group_shifts(g);
    let seg = segment(lid, params.n * params.p);

    // Per channel of the group: sum of d = x - shift, and of d * d.
    var sums = GroupSums();
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c / 4u);
    for (var j = seg.first; j < seg.end; j += LANE_GROUP) {
        let channel = group_channels(w.q);
        let d = x4[walk_index(w, g)] - pick(shift, channel);
        add_by_channel(&sums, d, d * d, channel);
        walk_next(&w);
    }
    finish_stats(lid, 4u * g, shift.x, pair(sums.a0, sums.b0));
    finish_stats(lid, 4u * g + 1u, shift.y, pair(sums.a1, sums.b1));
    finish_stats(lid, 4u * g + 2u, shift.z, pair(sums.a2, sums.b2));
    finish_stats(lid, 4u * g + 3u, shift.w, pair(sums.a3, sums.b3));
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_reduce_grouped(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = reduction_channel(wg, groups);
    if (g >= params.c / 4u) {
        return;
    }
    let mean = group_mean(g);
    let inv_std = group_inv_std(g);
    let seg = segment(lid, params.n * params.p);

    // Per channel of the group: sum of dy, and of dy * (x - mean).
    var sums = GroupSums();
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c / 4u);
    for (var j = seg.first; j < seg.end; j += LANE_GROUP) {
        let channel = group_channels(w.q);
        let i = walk_index(w, g);
        let g4 = dy4[i];
        add_by_channel(&sums, g4, g4 * (x4[i] - pick(mean, channel)), channel);
        walk_next(&w);
    }
    store_grads(lid, 4u * g, workgroup_sum(lid, pair(sums.a0, sums.b0)), inv_std.x);
    store_grads(lid, 4u * g + 1u, workgroup_sum(lid, pair(sums.a1, sums.b1)), inv_std.y);
    store_grads(lid, 4u * g + 2u, workgroup_sum(lid, pair(sums.a2, sums.b2)), inv_std.z);
    store_grads(lid, 4u * g + 3u, workgroup_sum(lid, pair(sums.a3, sums.b3)), inv_std.w);
}

// Grid: x = chunk of WORKGROUP_SIZE * CHUNK_PER_INVOCATION vec4s of a group, y = group.
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_grouped(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wg.y;
    let items = params.n * params.p;
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let v = group_y(g);
    var w = walk_from(first, params.item_step, params.p, params.c / 4u);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, g);
            y4[i] = picked_y(v, group_channels(w.q), i);
        }
        walk_next(&w);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_dx_grouped(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wg.y;
    let items = params.n * params.p;
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid * params.lane_step;
    let d = group_dx(g);
    var w = walk_from(first, params.item_step, params.p, params.c / 4u);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * params.item_step < items) {
            let i = walk_index(w, g);
            dx4[i] = picked_dx(d, group_channels(w.q), i);
        }
        walk_next(&w);
    }
}

// ---- channel groups, a row at a time -------------------------------------------------------
// The grouped element-wise kernels again for CPU drivers: an invocation takes a whole row of
// the [n, c / 4, p] vec4s (one sample's group of four channels) and walks it from vec4 0 to
// p - 1, so every invocation is at the same vec4 of its row on every trip. A row is then,
// for every invocation alike, four runs of vec4s that lie in one channel each (channel j's
// run: vec4s ceil(j p / 4) to floor((j + 1) p / 4) - 1) and at most three vec4s that
// straddle two channels (vec4 m p / 4 for m = 1, 2, 3 where 4 does not divide m p): the runs
// use their channel's values as they are, with no per-value choice of channel and no walk,
// and only the straddling vec4s pick per component. A GPU would want neighbouring
// invocations at neighbouring vec4s instead; the launchers take these only on the
// uniform-window kernel set (on lavapipe they ran 1.5 to 1.7 times faster than the grouped
// kernels above on the 7 x 7 planes). The reductions written the same way, a workgroup per
// group and a row per invocation, ran no faster there, so the grouped ones serve.

// Channel j's run of whole vec4s in a row: [start, end).
fn channel_run(j: u32) -> vec2<u32> {
    return vec2<u32>((j * params.p + 3u) / 4u, ((j + 1u) * params.p) / 4u);
}

// The vec4 of a row that straddles channels m - 1 and m (m = 1, 2, 3), or params.p if none
// or if it is m - 1's too (p = 1: one vec4 holds all four channels, taken once, for m = 1).
fn straddling(m: u32) -> u32 {
    let q = select(params.p, (m * params.p) / 4u, (m * params.p) % 4u != 0u);
    let previous = ((m - 1u) * params.p) / 4u;
    let repeated = m > 1u && (m - 1u) * params.p % 4u != 0u && previous == q;
    return select(q, params.p, repeated);
}

// Invocation `lid` of workgroup `wg` as a row index (element-wise kernels).
fn grouped_row(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_grouped_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = grouped_row(wg, groups, lid);
    let group_count = params.c / 4u;
    if row >= params.n * group_count {
        return;
    }
    let v = group_y(row % group_count);
    let base = row * params.p;
    for (var j = 0u; j < 4u; j++) {
        let run = channel_run(j);
        let mean_j = v.mean[j];
        let scale_j = v.scale[j];
        let beta_j = v.beta[j];
        for (var at = base + run.x; at < base + run.y; at++) {
            y4[at] = (x4[at] - mean_j) * scale_j + beta_j;
        }
    }
    for (var m = 1u; m < 4u; m++) {
        let q = straddling(m);
        if q < params.p {
            y4[base + q] = picked_y(v, group_channels(q), base + q);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_dx_grouped_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = grouped_row(wg, groups, lid);
    let group_count = params.c / 4u;
    if row >= params.n * group_count {
        return;
    }
    let d = group_dx(row % group_count);
    let base = row * params.p;
    for (var j = 0u; j < 4u; j++) {
        let run = channel_run(j);
        let mean_j = d.mean[j];
        let scale_j = d.scale[j];
        let slope_j = d.slope[j];
        let offset_j = d.offset[j];
        for (var at = base + run.x; at < base + run.y; at++) {
            dx4[at] = dy4[at] * scale_j + ((x4[at] - mean_j) * slope_j + offset_j);
        }
    }
    for (var m = 1u; m < 4u; m++) {
        let q = straddling(m);
        if q < params.p {
            dx4[base + q] = picked_dx(d, group_channels(q), base + q);
        }
    }
}
