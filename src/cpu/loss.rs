//! Binary cross-entropy on the discriminator's logits, as Keras evaluates it for a
//! sigmoid output (from the cached logits, not from the clipped probability).

use super::activation::stable_sigmoid;
use super::check_len;

/// The batch loss and accuracy of [`sigmoid_bce`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BceResult {
    /// Mean over the batch of the per-sample loss, in nats.
    pub loss: f32,
    /// Fraction of samples whose logit is on the target's side of 0 (`sigmoid(z) > 0.5`).
    pub accuracy: f32,
}

/// Fused sigmoid + binary cross-entropy over `n` logits `z` with targets `t` in {0, 1}
/// (all `[n]`; a `[n, 1]` tensor is the same slice).
///
/// Per sample, `max(z, 0) - z * t + ln(1 + exp(-|z|))`: the softplus form of
/// `-t ln(sigmoid(z)) - (1 - t) ln(1 - sigmoid(z))`, which never takes the log of 0 or the
/// exp of a large positive number, so a logit of ±100 on the wrong side gives a loss of 100,
/// not inf or a clipped 15.4. `ln_1p` keeps the last term accurate when `exp(-|z|)` is tiny.
/// `loss` is the mean (summed in index order, then divided by n); `dlogits` is the gradient
/// of that mean, `(sigmoid(z) - t) / n`.
pub fn sigmoid_bce(
    logits: &[f32],
    targets: &[f32],
    loss_per_sample: &mut [f32],
    dlogits: &mut [f32],
) -> BceResult {
    let n = logits.len();
    check_len("sigmoid_bce", "targets", targets.len(), n);
    check_len("sigmoid_bce", "loss_per_sample", loss_per_sample.len(), n);
    check_len("sigmoid_bce", "dlogits", dlogits.len(), n);

    let mut sum = 0.0f32;
    let mut correct = 0usize;
    for i in 0..n {
        let (z, t) = (logits[i], targets[i]);
        let per = z.max(0.0) - z * t + (-z.abs()).exp().ln_1p();
        loss_per_sample[i] = per;
        sum += per;
        dlogits[i] = (stable_sigmoid(z) - t) / n as f32;
        if (z > 0.0) == (t > 0.5) {
            correct += 1;
        }
    }
    BceResult {
        loss: sum / n as f32,
        accuracy: correct as f32 / n as f32,
    }
}
