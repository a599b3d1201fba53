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
// (a channel's values of one sample are then p / 4 whole, aligned vec4s). Memory-bound
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

fn store_grads(lid: u32, ch: u32, total: vec2<f32>) {
    if (lid == 0u) {
        dbeta[ch] = total.x;
        dgamma[ch] = total.y;
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

    // (sum dy, sum dy * xhat) in one sweep.
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
        sums = (sums + vec2<f32>(g0, g0 * (x[i0] - mean) * inv_std))
            + vec2<f32>(g1, g1 * (x[i1] - mean) * inv_std);
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let i = walk_index(w, ch);
        let g = dy[i];
        sums += vec2<f32>(g, g * (x[i] - mean) * inv_std);
        walk_next(&w);
    }
    store_grads(lid, ch, workgroup_sum(lid, sums));
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
    var sum_dy_xhat = vec4<f32>(0.0);
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
        sum_dy_xhat = (sum_dy_xhat + g0 * (x4[i0] - mean) * inv_std)
            + g1 * (x4[i1] - mean) * inv_std;
    }
    for (; j < seg.end; j += LANE_GROUP) {
        let i = walk_index(w, ch);
        let g = dy4[i];
        sum_dy += g;
        sum_dy_xhat += g * (x4[i] - mean) * inv_std;
        walk_next(&w);
    }
    store_grads(lid, ch, workgroup_sum(lid, vec2<f32>(hsum(sum_dy), hsum(sum_dy_xhat))));
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
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid;
    let g = gamma[ch];
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let b = beta[ch];
    var w = walk_from(first, WORKGROUP_SIZE, params.p, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * WORKGROUP_SIZE < items) {
            let i = walk_index(w, ch);
            y[i] = g * (x[i] - mean) * inv_std + b;
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
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid;
    let g = gamma[ch];
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let b = beta[ch];
    var w = walk_from(first, WORKGROUP_SIZE, params.p / 4u, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * WORKGROUP_SIZE < items) {
            let i = walk_index(w, ch);
            y4[i] = g * (x4[i] - mean) * inv_std + b;
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
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid;
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let scale = gamma[ch] * inv_std;
    let dbeta_mean = dbeta_in[ch] / countf;
    let dgamma_mean = dgamma_in[ch] / countf;
    var w = walk_from(first, WORKGROUP_SIZE, params.p, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * WORKGROUP_SIZE < items) {
            let i = walk_index(w, ch);
            let xhat = (x[i] - mean) * inv_std;
            dx[i] = scale * (dy[i] - dbeta_mean - xhat * dgamma_mean);
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
    let first = wg.x * (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) + lid;
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
    let scale = gamma[ch] * inv_std;
    let dbeta_mean = dbeta_in[ch] / countf;
    let dgamma_mean = dgamma_in[ch] / countf;
    var w = walk_from(first, WORKGROUP_SIZE, params.p / 4u, params.c);
    for (var k = 0u; k < CHUNK_PER_INVOCATION; k++) {
        if (first + k * WORKGROUP_SIZE < items) {
            let i = walk_index(w, ch);
            let xhat = (x4[i] - mean) * inv_std;
            dx4[i] = scale * (dy4[i] - dbeta_mean - xhat * dgamma_mean);
        }
        walk_next(&w);
    }
}
