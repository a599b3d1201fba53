//! Batch normalisation over NCHW data viewed as `[n, c, p]` (`p = h * w`), per channel, with
//! Keras 2's fused-kernel semantics (biased variance to normalise, unbiased variance into the
//! running average).

use super::check_len;
use crate::shapes::BatchNormShape;

fn check_lens(op: &str, s: &BatchNormShape, data: &[(&str, usize)], per_channel: &[(&str, usize)]) {
    for &(name, len) in data {
        check_len(op, name, len, s.len());
    }
    for &(name, len) in per_channel {
        check_len(op, name, len, s.c);
    }
}

/// The `n * p` values of channel `ch`, batch by batch.
fn channel_values<'a>(
    s: &BatchNormShape,
    x: &'a [f32],
    ch: usize,
) -> impl Iterator<Item = &'a f32> {
    (0..s.n).flat_map(move |b| {
        let start = (b * s.c + ch) * s.p;
        &x[start..start + s.p]
    })
}

/// Batch mean and biased variance of channel `ch`, two-pass: the second pass sums squared
/// deviations from the mean, so the variance cannot come out negative and does not lose
/// everything to cancellation when the mean is large (E[x²] - E[x]² would). Sums run in
/// f64: a reference summed in f32, one value after another, is off by about 1e-5 of a mean
/// of 4 over a channel of 10 000 values, as far as the kernels are allowed to be.
fn channel_stats(s: &BatchNormShape, x: &[f32], ch: usize) -> (f32, f32) {
    let count = (s.n * s.p) as f64;
    let mean = channel_values(s, x, ch).map(|&v| v as f64).sum::<f64>() / count;
    let var = channel_values(s, x, ch)
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum::<f64>()
        / count;
    (mean as f32, var as f32)
}

/// `y = gamma * (x - mean) / sqrt(var + eps) + beta` over channel `ch`.
#[allow(clippy::too_many_arguments)]
fn normalise_channel(
    s: &BatchNormShape,
    x: &[f32],
    y: &mut [f32],
    ch: usize,
    mean: f32,
    var: f32,
    gamma: f32,
    beta: f32,
) {
    let inv_std = 1.0 / (var + s.epsilon).sqrt();
    for b in 0..s.n {
        let start = (b * s.c + ch) * s.p;
        for j in start..start + s.p {
            y[j] = gamma * (x[j] - mean) * inv_std + beta;
        }
    }
}

/// Training-mode forward. `x`, `y`: `[n, c, p]`; `gamma`, `beta`, `running_*`, `save_*`: `[c]`.
///
/// Normalises with the batch mean and the *biased* batch variance over the `n * p` values of
/// each channel, written to `save_mean` / `save_var` for the backward pass. Updates the running
/// statistics in place as Keras' fused kernel does: `running_mean = m * old + (1 - m) * mean`,
/// `running_var = m * old + (1 - m) * var * n / max(n - 1, 1)` with `n = N * P` (the unbiased
/// variance; with a single value per channel the correction factor is 1, not a division by 0).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train(
    s: &BatchNormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_var: &mut [f32],
) {
    let per_channel = [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
        ("save_mean", save_mean.len()),
        ("save_var", save_var.len()),
    ];
    check_lens(
        "batchnorm_forward_train",
        s,
        &[("x", x.len()), ("y", y.len())],
        &per_channel,
    );

    let count = s.n * s.p;
    let unbias = count as f32 / count.saturating_sub(1).max(1) as f32;
    for ch in 0..s.c {
        let (mean, var) = channel_stats(s, x, ch);
        save_mean[ch] = mean;
        save_var[ch] = var;

        normalise_channel(s, x, y, ch, mean, var, gamma[ch], beta[ch]);

        let m = s.momentum;
        running_mean[ch] = m * running_mean[ch] + (1.0 - m) * mean;
        running_var[ch] = m * running_var[ch] + (1.0 - m) * var * unbias;
    }
}

/// Inference-mode forward: normalises with the running statistics, which stay unchanged.
/// `x`, `y`: `[n, c, p]`; the rest `[c]`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_inference(
    s: &BatchNormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    let per_channel = [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
    ];
    check_lens(
        "batchnorm_forward_inference",
        s,
        &[("x", x.len()), ("y", y.len())],
        &per_channel,
    );

    for ch in 0..s.c {
        normalise_channel(
            s,
            x,
            y,
            ch,
            running_mean[ch],
            running_var[ch],
            gamma[ch],
            beta[ch],
        );
    }
}

/// Training-mode backward, given the batch statistics saved by [`batchnorm_forward_train`]
/// (`save_var` biased). `x`, `dy`, `dx`: `[n, c, p]`; the rest `[c]`; outputs overwritten.
///
/// With `xhat = (x - mean) / sqrt(var + eps)` and `count = n * p` per channel:
/// `dbeta = sum dy`, `dgamma = sum dy * xhat`, and, because mean and variance depend on every
/// `x` of the channel, `dx = gamma / sqrt(var + eps) * (dy - dbeta / count - xhat * dgamma /
/// count)`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    s: &BatchNormShape,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_var: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let data = [("x", x.len()), ("dy", dy.len()), ("dx", dx.len())];
    let per_channel = [
        ("gamma", gamma.len()),
        ("save_mean", save_mean.len()),
        ("save_var", save_var.len()),
        ("dgamma", dgamma.len()),
        ("dbeta", dbeta.len()),
    ];
    check_lens("batchnorm_backward", s, &data, &per_channel);

    let count = (s.n * s.p) as f32;
    for ch in 0..s.c {
        let mean = save_mean[ch];
        let inv_std = 1.0 / (save_var[ch] + s.epsilon).sqrt();

        // Reductions: dbeta and dgamma.
        let mut sum_dy = 0.0f32;
        let mut sum_dy_xhat = 0.0f32;
        for b in 0..s.n {
            let start = (b * s.c + ch) * s.p;
            for j in start..start + s.p {
                sum_dy += dy[j];
                sum_dy_xhat += dy[j] * (x[j] - mean) * inv_std;
            }
        }
        dbeta[ch] = sum_dy;
        dgamma[ch] = sum_dy_xhat;

        // Input gradient, with the two mean terms from the statistics' dependence on x.
        let scale = gamma[ch] * inv_std;
        for b in 0..s.n {
            let start = (b * s.c + ch) * s.p;
            for j in start..start + s.p {
                let xhat = (x[j] - mean) * inv_std;
                dx[j] = scale * (dy[j] - sum_dy / count - xhat * sum_dy_xhat / count);
            }
        }
    }
}
