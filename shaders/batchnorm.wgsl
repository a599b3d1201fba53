// Batch normalisation over NCHW data viewed as [n, c, p] (p = h * w), statistics per channel
// over its n * p values (Keras 2's fused kernel: biased variance to normalise, unbiased
// variance into the running average).
//   forward_train_stats: one workgroup per channel. Two passes over the channel: the mean,
//       then the mean of squared deviations (never negative, no cancellation). Writes
//       save_mean / save_var (biased) and updates the running statistics.
//   normalize:           element-wise y = gamma * (x - mean) / sqrt(var + eps) + beta, with
//       the batch statistics (training) or the running ones (inference).
//   backward_reduce:     one workgroup per channel: dbeta = sum dy, dgamma = sum dy * xhat.
//   backward_dx:         element-wise dx = gamma / sqrt(var + eps)
//                                          * (dy - dbeta / count - xhat * dgamma / count).
// Reductions: each invocation sums a strided share of the channel in order, then the shares
// are added in a fixed pairwise tree; no atomics, so results repeat bit for bit.

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

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

var<workgroup> partial: array<vec2<f32>, WORKGROUP_SIZE>;

fn linear_group(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

// Index of the j-th value (j < n * p) of channel ch: sample j / p, position j % p.
fn channel_index(ch: u32, j: u32) -> u32 {
    let b = j / params.p;
    return (b * params.c + ch) * params.p + (j - b * params.p);
}

// Pairwise sum of every invocation's `v` in a fixed order; all invocations get the total.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();  // `partial` is reused by the next call
    return total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn forward_train_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The channel is the same for the whole workgroup, so returning keeps barriers uniform.
    let ch = linear_group(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let count = params.n * params.p;
    let countf = f32(count);

    // Pass 1: mean.
    var sum = 0.0;
    for (var j = lid; j < count; j += WORKGROUP_SIZE) {
        sum += x[channel_index(ch, j)];
    }
    let mean = workgroup_sum(lid, vec2<f32>(sum, 0.0)).x / countf;

    // Pass 2: biased variance as the mean of squared deviations.
    var squares = 0.0;
    for (var j = lid; j < count; j += WORKGROUP_SIZE) {
        let d = x[channel_index(ch, j)] - mean;
        squares += d * d;
    }
    let variance = workgroup_sum(lid, vec2<f32>(squares, 0.0)).x / countf;

    // Statistics for the backward pass; running averages with the unbiased variance
    // (factor count / (count - 1), or 1 for a single value).
    if (lid == 0u) {
        save_mean[ch] = mean;
        save_var[ch] = variance;
        let unbias = countf / max(countf - 1.0, 1.0);
        let m = params.momentum;
        running_mean[ch] = m * running_mean[ch] + (1.0 - m) * mean;
        running_var[ch] = m * running_var[ch] + (1.0 - m) * variance * unbias;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = params.n * params.c * params.p;
    let first = linear_group(wg, groups) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < total) {
            let ch = (i / params.p) % params.c;
            let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
            y[i] = gamma[ch] * (x[i] - mean_in[ch]) * inv_std + beta[ch];
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = linear_group(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let count = params.n * params.p;
    let mean = mean_in[ch];
    let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);

    // (sum dy, sum dy * xhat) in one sweep.
    var sums = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < count; j += WORKGROUP_SIZE) {
        let i = channel_index(ch, j);
        let g = dy[i];
        sums += vec2<f32>(g, g * (x[i] - mean) * inv_std);
    }
    let total = workgroup_sum(lid, sums);
    if (lid == 0u) {
        dbeta[ch] = total.x;
        dgamma[ch] = total.y;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = params.n * params.c * params.p;
    let countf = f32(params.n * params.p);
    let first = linear_group(wg, groups) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < total) {
            let ch = (i / params.p) % params.c;
            let inv_std = 1.0 / sqrt(var_in[ch] + params.epsilon);
            let xhat = (x[i] - mean_in[ch]) * inv_std;
            let scale = gamma[ch] * inv_std;
            dx[i] = scale * (dy[i] - dbeta_in[ch] / countf - xhat * dgamma_in[ch] / countf);
        }
    }
}
