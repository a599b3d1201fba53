//! Every CPU backward pass against central finite differences of its forward pass.
//!
//! For an op `y = f(p)` and a fixed random `r` shaped like `y`, the objective is
//! `L(p) = sum(y * r)`, so `dL/dp` is the vector-Jacobian product the backward pass computes
//! with `dy = r`. Each element of `p` is nudged by ±FD_STEP and `(L(p+) - L(p-)) / (p+ - p-)`
//! is compared with the analytic gradient. Forward passes run in f32 as in the library; the
//! objective is accumulated in f64 so its own rounding does not add noise.

use gan_gpu::cpu;
use gan_gpu::rng;
use gan_gpu::shapes::{BatchNormShape, Conv2dGeometry};

/// Perturbation of each input, for inputs of magnitude about 1. Large enough that the f32
/// rounding of the few outputs a nudge changes (about 1e-7 relative each) is divided by 2e-2
/// and stays near 1e-5; small enough that the central difference's truncation error,
/// h²/6 · f''' (below 2e-5 for tanh, sigmoid, softplus and the BatchNorm normalisation on
/// these inputs), stays as small. Linear ops (dense, conv, bias, permute) have no truncation
/// error at all.
const FD_STEP: f32 = 1e-2;

/// Pass if |analytic - numeric| <= FD_ATOL + FD_RTOL * |numeric|. On gradients of order 1
/// the largest difference seen here is 5e-5 (rounding noise of a conv input gradient, whose
/// nudge changes 36 outputs); these bounds leave 10x room for it, while a wrong index, a
/// missing term or a wrong sign gives errors of order 0.1 to 1.
const FD_ATOL: f64 = 5e-4;
const FD_RTOL: f64 = 5e-3;

/// Seed of every random input here (the stream number tells the tensors apart).
const SEED: u64 = 0x5eed_fd00;

/// `len` values uniform in `[lo, hi)` from the counter-based generator.
fn uniform(stream: u32, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let bits = rng::random_bits(SEED, 0, stream, i as u32)[0];
            let unit = (bits >> 8) as f32 / 16_777_216.0;
            lo + (hi - lo) * unit
        })
        .collect()
}

/// `sum(y * r)` in f64.
fn dot(y: &[f32], r: &[f32]) -> f64 {
    assert_eq!(y.len(), r.len());
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Compares `analytic` (dL/dp at `p`) with central differences of `objective`.
fn check_gradient(what: &str, p: &[f32], analytic: &[f32], objective: impl Fn(&[f32]) -> f64) {
    assert_eq!(p.len(), analytic.len(), "{what}: gradient length");

    let mut probe = p.to_vec();
    let mut worst = (0usize, 0.0f64, 0.0f64); // index, numeric, error
    let mut bad = 0usize;
    for i in 0..p.len() {
        // The actual step is the difference of the two f32 inputs, not 2 * FD_STEP.
        let (plus, minus) = (p[i] + FD_STEP, p[i] - FD_STEP);
        probe[i] = plus;
        let l_plus = objective(&probe);
        probe[i] = minus;
        let l_minus = objective(&probe);
        probe[i] = p[i];
        let numeric = (l_plus - l_minus) / (plus as f64 - minus as f64);

        let err = (analytic[i] as f64 - numeric).abs();
        if err > FD_ATOL + FD_RTOL * numeric.abs() || err.is_nan() {
            bad += 1;
        }
        if err > worst.2 || err.is_nan() {
            worst = (i, numeric, err);
        }
    }
    let (i, numeric, err) = worst;
    assert!(
        bad == 0,
        "{what}: {bad} of {} gradient elements differ from finite differences; worst index {i}: \
         analytic {}, numeric {numeric}, |err| {err:e}",
        p.len(),
        analytic[i]
    );
}

#[test]
fn dense_gradients_match_finite_differences() {
    let (n, inputs, outputs) = (3, 7, 5);
    let x = uniform(1, n * inputs, -1.0, 1.0);
    let w = uniform(2, inputs * outputs, -1.0, 1.0);
    let b = uniform(3, outputs, -1.0, 1.0);
    let r = uniform(4, n * outputs, -1.0, 1.0);
    let objective = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; n * outputs];
        cpu::dense_forward(n, inputs, outputs, x, w, b, &mut y);
        dot(&y, &r)
    };

    let mut dx = vec![0.0; n * inputs];
    let mut dw = vec![0.0; inputs * outputs];
    let mut db = vec![0.0; outputs];
    cpu::dense_backward(
        n,
        inputs,
        outputs,
        &x,
        &w,
        &r,
        Some(&mut dx),
        &mut dw,
        &mut db,
    );

    check_gradient("dense dx", &x, &dx, |x| objective(x, &w, &b));
    check_gradient("dense dw", &w, &dw, |w| objective(&x, w, &b));
    check_gradient("dense db", &b, &db, |b| objective(&x, &w, b));
}

#[test]
fn bias_gradient_matches_finite_differences() {
    let (n, c, p) = (2, 3, 5);
    let x = uniform(1, n * c * p, -1.0, 1.0);
    let b = uniform(2, c, -1.0, 1.0);
    let r = uniform(3, n * c * p, -1.0, 1.0);

    let mut db = vec![0.0; c];
    cpu::bias_backward(&r, &mut db, n, c, p);

    check_gradient("bias db", &b, &db, |b| {
        let mut y = x.clone();
        cpu::bias_add(&mut y, b, n, c, p);
        dot(&y, &r)
    });
}

/// Input, weight and bias gradients of a convolution with geometry `g`.
fn check_conv2d(what: &str, g: Conv2dGeometry) {
    let x = uniform(1, g.input_len(), -1.0, 1.0);
    let w = uniform(2, g.weight_len(), -1.0, 1.0);
    let b = uniform(3, g.out_channels, -1.0, 1.0);
    let r = uniform(4, g.output_len(), -1.0, 1.0);
    let objective = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; g.output_len()];
        cpu::conv2d_forward(&g, x, w, Some(b), &mut y);
        dot(&y, &r)
    };

    let mut dx = vec![0.0; g.input_len()];
    cpu::conv2d_backward_input(&g, &r, &w, &mut dx);
    let mut dw = vec![0.0; g.weight_len()];
    cpu::conv2d_backward_weight(&g, &x, &r, &mut dw);
    let mut db = vec![0.0; g.out_channels];
    cpu::bias_backward(&r, &mut db, g.batch, g.out_channels, g.out_h * g.out_w);

    check_gradient(&format!("{what} dx"), &x, &dx, |x| objective(x, &w, &b));
    check_gradient(&format!("{what} dw"), &w, &dw, |w| objective(&x, w, &b));
    check_gradient(&format!("{what} db"), &b, &db, |b| objective(&x, &w, b));
}

#[test]
fn conv2d_gradients_match_finite_differences_same_stride_1() {
    check_conv2d(
        "conv2d same s1 6x5",
        Conv2dGeometry::conv_same(2, 3, (6, 5), 4, (3, 3), (1, 1)),
    );
}

#[test]
fn conv2d_gradients_match_finite_differences_same_stride_2_even_input() {
    // Even input: TF pads 0 rows on top and 1 at the bottom.
    check_conv2d(
        "conv2d same s2 8x8",
        Conv2dGeometry::conv_same(2, 2, (8, 8), 3, (3, 3), (2, 2)),
    );
}

#[test]
fn conv2d_gradients_match_finite_differences_same_stride_2_odd_input() {
    check_conv2d(
        "conv2d same s2 7x9",
        Conv2dGeometry::conv_same(2, 2, (7, 9), 3, (3, 3), (2, 2)),
    );
}

#[test]
fn conv2d_gradients_match_finite_differences_same_non_square_kernel_and_stride() {
    let g = Conv2dGeometry::conv_same(1, 2, (5, 6), 3, (3, 2), (2, 1));
    check_conv2d("conv2d same k3x2 s2x1 5x6", g);
}

#[test]
fn conv2d_gradients_match_finite_differences_valid() {
    // 8x7 with stride 2 leaves the last row unused: its gradient must be exactly 0.
    let g = Conv2dGeometry::conv_valid(2, 2, (8, 7), 3, (3, 3), (2, 2));
    check_conv2d("conv2d valid s2 8x7", g);
}

/// Input, weight and bias gradients of a transposed convolution with geometry `g`
/// (small side in, large side out).
fn check_conv_transpose2d(what: &str, g: Conv2dGeometry) {
    let x = uniform(1, g.output_len(), -1.0, 1.0);
    let w = uniform(2, g.weight_len(), -1.0, 1.0);
    let b = uniform(3, g.in_channels, -1.0, 1.0);
    let r = uniform(4, g.input_len(), -1.0, 1.0);
    let objective = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; g.input_len()];
        cpu::conv_transpose2d_forward(&g, x, w, Some(b), &mut y);
        dot(&y, &r)
    };

    let mut dx = vec![0.0; g.output_len()];
    cpu::conv_transpose2d_backward_input(&g, &r, &w, &mut dx);
    let mut dw = vec![0.0; g.weight_len()];
    cpu::conv_transpose2d_backward_weight(&g, &x, &r, &mut dw);
    let mut db = vec![0.0; g.in_channels];
    cpu::bias_backward(&r, &mut db, g.batch, g.in_channels, g.in_h * g.in_w);

    check_gradient(&format!("{what} dx"), &x, &dx, |x| objective(x, &w, &b));
    check_gradient(&format!("{what} dw"), &w, &dw, |w| objective(&x, w, &b));
    check_gradient(&format!("{what} db"), &b, &db, |b| objective(&x, &w, b));
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences_same_stride_2() {
    let g = Conv2dGeometry::transpose_same(2, 3, (4, 3), 2, (3, 3), (2, 2));
    check_conv_transpose2d("conv_transpose2d same s2 4x3->8x6", g);
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences_same_stride_1() {
    let g = Conv2dGeometry::transpose_same(2, 3, (5, 5), 1, (3, 3), (1, 1));
    check_conv_transpose2d("conv_transpose2d same s1 5x5", g);
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences_valid() {
    let g = Conv2dGeometry::transpose_valid(2, 2, (3, 4), 3, (3, 3), (2, 2));
    check_conv_transpose2d("conv_transpose2d valid s2 3x4->7x9", g);
}

/// Training-mode BatchNorm: gradients through the batch statistics, and of gamma and beta.
fn check_batchnorm(what: &str, s: BatchNormShape) {
    // An offset and a spread per channel so the statistics are not trivial.
    let x: Vec<f32> = uniform(1, s.len(), -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let ch = (j / s.p) % s.c;
            v * (1.0 + ch as f32) + 0.5 * ch as f32
        })
        .collect();
    let gamma = uniform(2, s.c, 0.5, 1.5);
    let beta = uniform(3, s.c, -0.5, 0.5);
    let r = uniform(4, s.len(), -1.0, 1.0);
    let forward = |x: &[f32], gamma: &[f32], beta: &[f32]| {
        let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
        let (mut mean, mut var) = (vec![0.0; s.c], vec![0.0; s.c]);
        let mut y = vec![0.0; s.len()];
        cpu::batchnorm_forward_train(
            &s, x, gamma, beta, &mut rm, &mut rv, &mut y, &mut mean, &mut var,
        );
        (y, mean, var)
    };
    let objective = |x: &[f32], gamma: &[f32], beta: &[f32]| dot(&forward(x, gamma, beta).0, &r);

    let (_, mean, var) = forward(&x, &gamma, &beta);
    let mut dx = vec![0.0; s.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; s.c], vec![0.0; s.c]);
    cpu::batchnorm_backward(
        &s,
        &x,
        &r,
        &gamma,
        &mean,
        &var,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );

    check_gradient(&format!("{what} dx"), &x, &dx, |x| {
        objective(x, &gamma, &beta)
    });
    check_gradient(&format!("{what} dgamma"), &gamma, &dgamma, |g| {
        objective(&x, g, &beta)
    });
    check_gradient(&format!("{what} dbeta"), &beta, &dbeta, |b| {
        objective(&x, &gamma, b)
    });
}

#[test]
fn batchnorm_training_gradients_match_finite_differences() {
    let s = BatchNormShape {
        n: 3,
        c: 2,
        p: 5,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    check_batchnorm("batchnorm n3 c2 p5", s);
}

#[test]
fn batchnorm_training_gradients_match_finite_differences_for_a_single_sample() {
    let s = BatchNormShape {
        n: 1,
        c: 3,
        p: 6,
        momentum: 0.99,
        epsilon: 1e-3,
    };
    check_batchnorm("batchnorm n1 c3 p6", s);
}

#[test]
fn leaky_relu_gradient_matches_finite_differences() {
    let alpha = 0.2;
    // Keep every input at least 0.1 from the kink, where a difference would straddle it.
    let x: Vec<f32> = uniform(1, 40, -2.0, 2.0)
        .into_iter()
        .map(|v| if v.abs() < 0.1 { v.signum() * 0.5 } else { v })
        .collect();
    let r = uniform(2, x.len(), -1.0, 1.0);

    let mut dx = vec![0.0; x.len()];
    cpu::leaky_relu_backward(&x, &r, &mut dx, alpha);

    check_gradient("leaky_relu dx", &x, &dx, |x| {
        let mut y = vec![0.0; x.len()];
        cpu::leaky_relu_forward(x, &mut y, alpha);
        dot(&y, &r)
    });
}

#[test]
fn tanh_gradient_matches_finite_differences() {
    let x = uniform(1, 40, -3.0, 3.0);
    let r = uniform(2, x.len(), -1.0, 1.0);
    let forward = |x: &[f32]| {
        let mut y = vec![0.0; x.len()];
        cpu::tanh_forward(x, &mut y);
        y
    };

    let mut dx = vec![0.0; x.len()];
    cpu::tanh_backward(&forward(&x), &r, &mut dx);

    check_gradient("tanh dx", &x, &dx, |x| dot(&forward(x), &r));
}

#[test]
fn sigmoid_gradient_matches_finite_differences() {
    let x = uniform(1, 40, -6.0, 6.0);
    let r = uniform(2, x.len(), -1.0, 1.0);
    let forward = |x: &[f32]| {
        let mut y = vec![0.0; x.len()];
        cpu::sigmoid_forward(x, &mut y);
        y
    };

    let mut dx = vec![0.0; x.len()];
    cpu::sigmoid_backward(&forward(&x), &r, &mut dx);

    check_gradient("sigmoid dx", &x, &dx, |x| dot(&forward(x), &r));
}

#[test]
fn sigmoid_bce_gradient_matches_finite_differences_of_the_mean_loss() {
    let logits = uniform(1, 8, -4.0, 4.0);
    let targets: Vec<f32> = (0..logits.len()).map(|i| (i % 2) as f32).collect();
    let mut per_sample = vec![0.0; logits.len()];
    let mut dlogits = vec![0.0; logits.len()];
    cpu::sigmoid_bce(&logits, &targets, &mut per_sample, &mut dlogits);

    // The objective is the mean loss itself (the op's own reduction), summed in f64.
    check_gradient("sigmoid_bce dlogits", &logits, &dlogits, |z| {
        let mut per = vec![0.0; z.len()];
        let mut grad = vec![0.0; z.len()];
        cpu::sigmoid_bce(z, &targets, &mut per, &mut grad);
        per.iter().map(|&l| l as f64).sum::<f64>() / z.len() as f64
    });
}

#[test]
fn permute_gradient_is_the_reverse_permute() {
    let (n, a, b) = (2, 3, 5);
    let x = uniform(1, n * a * b, -1.0, 1.0);
    let r = uniform(2, n * a * b, -1.0, 1.0);

    // y = x with axes (a, b) swapped, so dx is r with (b, a) swapped back.
    let mut dx = vec![0.0; x.len()];
    cpu::permute_last_two(&r, &mut dx, n, b, a);

    check_gradient("permute_last_two dx", &x, &dx, |x| {
        let mut y = vec![0.0; x.len()];
        cpu::permute_last_two(x, &mut y, n, a, b);
        dot(&y, &r)
    });
}
