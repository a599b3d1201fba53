//! The CPU reference at the inputs where naive formulas break: saturated logits, the
//! asymmetric 'same' padding, degenerate BatchNorm batches, tiny Adam gradients, and the
//! dropout mask's statistics and determinism.

use gan_gpu::cpu;
use gan_gpu::rng;
use gan_gpu::shapes::{AdamConfig, BatchNormShape, Conv2dGeometry};

/// |got - want| <= atol + rtol * |want| for f64 references.
fn assert_near(what: &str, got: f32, want: f64, rtol: f64, atol: f64) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= atol + rtol * want.abs(),
        "{what}: got {got:e}, want {want:e}, |err| {err:e}"
    );
}

#[test]
fn sigmoid_bce_on_extreme_logits_is_finite_and_matches_the_softplus_form() {
    let mut logits = Vec::new();
    let mut targets = Vec::new();
    for z in [5.0f32, -5.0, 30.0, -30.0, 100.0, -100.0] {
        for t in [0.0f32, 1.0] {
            logits.push(z);
            targets.push(t);
        }
    }
    let n = logits.len();
    let mut per_sample = vec![0.0; n];
    let mut dlogits = vec![0.0; n];
    let result = cpu::sigmoid_bce(&logits, &targets, &mut per_sample, &mut dlogits);

    let mut sum = 0.0f64;
    for i in 0..n {
        let (z, t) = (logits[i] as f64, targets[i] as f64);
        // -t ln(s) - (1 - t) ln(1 - s) with s = sigmoid(z), in f64 and in the form that
        // stays finite: a wrong-side logit of 100 costs 100 nats.
        let want_loss = z.max(0.0) - z * t + (-z.abs()).exp().ln_1p();
        let sigmoid = 1.0 / (1.0 + (-z).exp());
        let want_grad = (sigmoid - t) / n as f64;
        sum += want_loss;

        let what = format!("logit {z}, target {t}");
        assert!(
            per_sample[i].is_finite() && dlogits[i].is_finite(),
            "{what}: not finite"
        );
        // atol covers exp(-100) = 3.7e-44, a subnormal in f32.
        assert_near(
            &format!("{what}: loss"),
            per_sample[i],
            want_loss,
            1e-6,
            1e-30,
        );
        // sigmoid(z) is rounded to f32 (spacing 2^-23 below 1) before t is subtracted, so
        // where it is near 1 (z = 5, t = 1) the gradient is good to that absolute error,
        // divided by N, rather than relatively. TensorFlow's gradient has the same rounding.
        let atol = f64::from(f32::EPSILON) / n as f64;
        assert_near(
            &format!("{what}: dlogit"),
            dlogits[i],
            want_grad,
            1e-6,
            atol,
        );
    }
    assert_near("mean loss", result.loss, sum / n as f64, 1e-6, 0.0);

    // A confidently wrong logit still has a full-size gradient: about -1 per sample at
    // z = -30, t = 1 (sigmoid(-30) = 9e-14), i.e. -1/N for the mean.
    let i = logits
        .iter()
        .zip(&targets)
        .position(|(&z, &t)| z == -30.0 && t == 1.0)
        .unwrap();
    assert_near(
        "dlogit at z = -30, t = 1",
        dlogits[i] * n as f32,
        -1.0,
        1e-6,
        0.0,
    );
    assert_near(
        "loss at z = -100, t = 1",
        per_sample[i + 4],
        100.0,
        1e-7,
        0.0,
    );
}

/// An NCHW tensor of one channel that is zero except for a 1 at `(row, col)`.
fn one_hot(h: usize, w: usize, row: usize, col: usize) -> Vec<f32> {
    let mut x = vec![0.0; h * w];
    x[row * w + col] = 1.0;
    x
}

/// A 3x3 kernel whose taps are all different (tap (ky, kx) = 10 * (ky + 1) + kx + 1), so an
/// output value names the tap that produced it.
fn labelled_kernel() -> Vec<f32> {
    (0..9)
        .map(|i| (10 * (i / 3 + 1) + i % 3 + 1) as f32)
        .collect()
}

#[test]
fn same_stride_2_conv_reads_the_last_input_pixel_through_tensorflows_tap() {
    // TF 'same' on 8x8, k = 3, s = 2: out = ceil(8 / 2) = 4, total padding
    // (4 - 1) * 2 + 3 - 8 = 1, split floor(1 / 2) = 0 on top and 1 at the bottom. Output row
    // oy reads input rows 2 * oy + ky - 0, so input row 7 is read only by oy = 3 through
    // ky = 1 (2 * 3 + 1 = 7); the same for columns. A 1 at (7, 7) therefore shows up only at
    // y[3, 3], with the centre tap (1, 1) = 22. (PyTorch's padding=1 would read it through
    // tap (2, 2) = 33.)
    let g = Conv2dGeometry::conv_same(1, 1, (8, 8), 1, (3, 3), (2, 2));
    let x = one_hot(8, 8, 7, 7);
    let mut y = vec![0.0; g.output_len()];
    cpu::conv2d_forward(&g, &x, &labelled_kernel(), None, &mut y);

    let mut want = vec![0.0; 16];
    want[3 * 4 + 3] = 22.0;
    assert_eq!(y, want);
}

#[test]
fn same_stride_2_transposed_conv_writes_the_last_input_pixel_where_tensorflow_does() {
    // TF Conv2DTranspose 'same' on 4x4, k = 3, s = 2: out = 4 * 2 = 8. The full output has
    // (4 - 1) * 2 + 3 = 9 rows; input row iy adds into full rows 2 * iy + ky. TF crops
    // floor(max(3 - 2, 0) / 2) = 0 rows at the top and the remaining 1 at the bottom. A 1 at
    // input (3, 3) lands in full rows/cols 6, 7, 8 through ky/kx = 0, 1, 2; row and col 8
    // are cropped, so y[6, 6] = tap (0, 0) = 11, y[6, 7] = 12, y[7, 6] = 21, y[7, 7] = 22 and
    // nothing else. (PyTorch's padding=1, output_padding=1 crops the first row instead and
    // would give taps (1, 1), (1, 2), (2, 1), (2, 2) there.)
    let g = Conv2dGeometry::transpose_same(1, 1, (4, 4), 1, (3, 3), (2, 2));
    let x = one_hot(4, 4, 3, 3);
    let mut y = vec![0.0; g.input_len()];
    cpu::conv_transpose2d_forward(&g, &x, &labelled_kernel(), None, &mut y);

    let mut want = vec![0.0; 64];
    want[6 * 8 + 6] = 11.0;
    want[6 * 8 + 7] = 12.0;
    want[7 * 8 + 6] = 21.0;
    want[7 * 8 + 7] = 22.0;
    assert_eq!(y, want);
}

/// Runs a training-mode BatchNorm forward and backward and checks that everything is finite
/// and no variance is negative. Returns (y, batch variance, new running variance).
fn batchnorm_checked(s: &BatchNormShape, x: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gamma = vec![1.5; s.c];
    let beta = vec![0.25; s.c];
    let (mut running_mean, mut running_var) = (vec![0.0; s.c], vec![1.0; s.c]);
    let (mut mean, mut var) = (vec![0.0; s.c], vec![0.0; s.c]);
    let mut y = vec![0.0; s.len()];
    cpu::batchnorm_forward_train(
        s,
        x,
        &gamma,
        &beta,
        &mut running_mean,
        &mut running_var,
        &mut y,
        &mut mean,
        &mut var,
    );

    let dy: Vec<f32> = (0..s.len()).map(|i| (i % 5) as f32 - 2.0).collect();
    let mut dx = vec![0.0; s.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; s.c], vec![0.0; s.c]);
    cpu::batchnorm_backward(
        s,
        x,
        &dy,
        &gamma,
        &mean,
        &var,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );

    let all = [
        &y,
        &dx,
        &dgamma,
        &dbeta,
        &mean,
        &var,
        &running_mean,
        &running_var,
    ];
    assert!(
        all.iter().all(|t| t.iter().all(|v| v.is_finite())),
        "non-finite BatchNorm value"
    );
    assert!(
        var.iter().chain(&running_var).all(|&v| v >= 0.0),
        "negative variance {var:?}"
    );
    (y, var, running_var)
}

#[test]
fn batchnorm_on_a_constant_channel_outputs_beta() {
    let s = BatchNormShape {
        n: 4,
        c: 1,
        p: 6,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    let (y, var, _) = batchnorm_checked(&s, &vec![3.0; s.len()]);

    // Zero variance: epsilon keeps the division finite and every x - mean is exactly 0.
    assert_eq!(var, [0.0]);
    assert!(y.iter().all(|&v| v == 0.25), "{y:?}");
}

#[test]
fn batchnorm_on_a_large_mean_channel_keeps_a_small_non_negative_variance() {
    // 10000 plus offsets of a few ulps (the f32 spacing at 10000 is 2^-10 = 0.00098). The
    // one-pass E[x²] - E[x]² would subtract two numbers near 1e8 whose f32 spacing is 8.
    let s = BatchNormShape {
        n: 2,
        c: 1,
        p: 8,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    let x: Vec<f32> = (0..s.len())
        .map(|i| 10_000.0 + (i % 4) as f32 * 0.0009765625)
        .collect();
    let (_, var, _) = batchnorm_checked(&s, &x);

    // The true variance of offsets {0, 1, 2, 3} * 2^-10 is 1.25 * 2^-20 = 1.19e-6.
    assert!(
        var[0] < 1e-5,
        "variance {} of a channel spread over 0.003",
        var[0]
    );
}

#[test]
fn batchnorm_on_a_single_1x1_sample_is_finite() {
    let s = BatchNormShape {
        n: 1,
        c: 3,
        p: 1,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    let (y, var, _) = batchnorm_checked(&s, &[-2.0, 0.0, 7.5]);

    assert_eq!(var, [0.0; 3]);
    assert_eq!(y, [0.25; 3]);
}

#[test]
fn running_statistics_fold_in_the_unbiased_batch_variance() {
    // Five values (one per sample, 1x1 each) with mean 2 and unbiased variance
    // ((-2)² + (-2)² + 0 + 2² + 2²) / 4 = 4 (biased: 3.2).
    let s = BatchNormShape {
        n: 5,
        c: 1,
        p: 1,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    let x = [0.0, 0.0, 2.0, 4.0, 4.0];
    let (mut running_mean, mut running_var) = (vec![0.0], vec![1.0]);
    let (mut mean, mut var) = (vec![0.0], vec![0.0]);
    let mut y = vec![0.0; 5];
    cpu::batchnorm_forward_train(
        &s,
        &x,
        &[1.0],
        &[0.0],
        &mut running_mean,
        &mut running_var,
        &mut y,
        &mut mean,
        &mut var,
    );

    assert_near("batch variance (biased)", var[0], 3.2, 1e-6, 0.0);
    assert_near(
        "running mean",
        running_mean[0],
        0.99 * 0.0 + 0.01 * 2.0,
        1e-6,
        0.0,
    );
    assert_near(
        "running variance",
        running_var[0],
        0.99 * 1.0 + 0.01 * 4.0,
        1e-6,
        0.0,
    );
}

#[test]
fn a_single_value_per_channel_adds_nothing_to_the_running_variance() {
    // n = N * H * W = 1: the correction n / max(n - 1, 1) is 1 (not 1 / 0), the batch
    // variance is 0, so the running variance only decays.
    let s = BatchNormShape {
        n: 1,
        c: 2,
        p: 1,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    let (_, _, running_var) = batchnorm_checked(&s, &[3.0, -7.0]);

    assert_eq!(running_var, [0.99f32 * 1.0; 2]);
}

#[test]
fn adam_from_zero_state_adds_epsilon_after_the_bias_correction_like_keras_2() {
    let cfg = AdamConfig::default();
    let grads = [1e-9f32, 1e-6, 1.0, -3.0];
    let mut param = [0.0f32; 4];
    let (mut m, mut v) = ([0.0f32; 4], [0.0f32; 4]);
    cpu::adam_update(&cfg, cfg.lr_t(1), &mut param, &grads, &mut m, &mut v);

    // Keras 2 at t = 1, in f64 from the decimal hyper-parameters.
    let (lr, b1, b2, eps) = (2e-4f64, 0.5f64, 0.999f64, 1e-7f64);
    let lr_t = lr * (1.0 - b2).sqrt() / (1.0 - b1);
    for (i, &g) in grads.iter().enumerate() {
        let g = g as f64;
        let (m1, v1) = ((1.0 - b1) * g, (1.0 - b2) * g * g);
        let keras = -lr_t * m1 / (v1.sqrt() + eps);
        // rtol: lr_t uses the f32 beta_2 = 0.99900001 inside sqrt(1 - beta_2^t), as TF does,
        // which is 6.4e-6 relative away from the decimal 0.999.
        assert_near(
            &format!("param after g = {g:e}"),
            param[i],
            keras,
            1e-5,
            0.0,
        );

        // The paper's / PyTorch's placement: eps added to sqrt of the corrected v.
        let (m_hat, v_hat) = (m1 / (1.0 - b1), v1 / (1.0 - b2));
        let pytorch = -lr * m_hat / (v_hat.sqrt() + eps);
        let ratio = pytorch / keras;
        if i == 0 {
            // sqrt(v) = 3.2e-11 is far below eps in Keras' form, while sqrt(v_hat) = 1e-9 is
            // not: the two steps differ by about sqrt(1 - beta_2) = 1/31.6.
            assert!(
                ratio > 30.0,
                "g = 1e-9: PyTorch step {pytorch:e} vs Keras {keras:e}"
            );
        } else if i >= 2 {
            // Once sqrt(v) >> eps both forms give the same step, lr * sign(g).
            assert!((ratio - 1.0).abs() < 1e-4, "g = {g}: ratio {ratio}");
        }
    }
}

#[test]
fn dropout_mask_keeps_about_one_minus_rate_and_depends_only_on_seed_step_and_stream() {
    let (seed, step, rate) = (42u64, 7u32, 0.3f64);
    let len = 100_000;
    let draw = |step: u32, stream: u32| {
        let mut mask = vec![0.0f32; len];
        cpu::dropout_mask(seed, step, stream, rate, &mut mask);
        mask
    };
    let stream = rng::streams::DROPOUT_D_REAL;
    let mask = draw(step, stream);

    // Only 0 and 1; the kept fraction within 4 standard errors (sqrt(0.21 / 1e5) = 0.0014)
    // of 0.7. The draw is deterministic, so this cannot flake.
    assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
    let kept = mask.iter().sum::<f32>() as f64 / len as f64;
    assert!((kept - (1.0 - rate)).abs() < 0.006, "kept fraction {kept}");

    // Same (seed, step, stream): the same mask, bit for bit.
    assert_eq!(mask, draw(step, stream));

    // Another stream or step: independent masks, which disagree on about
    // 2 * 0.3 * 0.7 = 42% of the elements.
    for (what, other) in [
        ("stream", draw(step, stream + 1)),
        ("step", draw(step + 1, stream)),
    ] {
        let differ = mask.iter().zip(&other).filter(|(a, b)| a != b).count() as f64 / len as f64;
        assert!(
            (differ - 0.42).abs() < 0.01,
            "another {what} differs on {differ} of elements"
        );
    }
}
