//! Adam in Keras 2's form (the reference program's optimiser).

use super::check_len;
use crate::shapes::AdamConfig;

/// One Adam update, in place. `param`, `grad`, `m`, `v` all have the same length.
///
/// `m += (g - m)(1 - beta1)`, `v += (g² - v)(1 - beta2)`,
/// `param -= lr_t * m / (sqrt(v) + epsilon)` with `lr_t = cfg.lr_t(t)` for update number `t`.
/// The bias correction lives entirely in `lr_t`, so epsilon is added to the *uncorrected*
/// sqrt(v): Keras 2's placement, which differs from the paper's (and PyTorch's)
/// `sqrt(v_hat) + eps` when sqrt(v) is comparable to epsilon.
pub fn adam_update(
    cfg: &AdamConfig,
    lr_t: f32,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    check_len("adam_update", "grad", grad.len(), param.len());
    check_len("adam_update", "m", m.len(), param.len());
    check_len("adam_update", "v", v.len(), param.len());

    let (one_minus_beta1, one_minus_beta2) = (one_minus(cfg.beta1), one_minus(cfg.beta2));
    for i in 0..param.len() {
        let g = grad[i];
        m[i] += (g - m[i]) * one_minus_beta1;
        v[i] += (g * g - v[i]) * one_minus_beta2;
        param[i] -= lr_t * m[i] / (v[i].sqrt() + cfg.epsilon);
    }
}

/// `1 - beta` as Keras computes it: beta is a Python (f64) number, so `1 - 0.999` is formed in
/// f64 and rounded to f32 once, giving f32(0.001). Forming it from the f32 beta instead gives
/// `1 - 0.99900001 = 0.00099998713`, which makes `v` 1.3e-5 too small relative to TF's. Our
/// config holds f32; its shortest decimal form is the number that was written (0.999), so we
/// go back through that. The GPU's Adam takes its two factors from here too, so both sides
/// multiply by the same f32.
pub fn one_minus(beta: f32) -> f32 {
    let written: f64 = beta
        .to_string()
        .parse()
        .expect("an f32's decimal form parses as f64");
    (1.0 - written) as f32
}
