//! The CPU reference against every TensorFlow-computed case in the golden folder.
//!
//! Each op case is rebuilt from its input tensors and metadata with the CPU ops, every output
//! the file holds is computed, and `common::golden::compare_case` checks them at the README's
//! tolerances. Gradients in the files are vector-Jacobian products with the stored `dy`.
//! Set GAN_GPU_SKIP_E2E=1 to leave out the end-to-end case (for example while only the
//! ops are being worked on).

mod common;

use std::collections::HashMap;

use common::golden::{self, Case};
use gan_gpu::cpu;
use gan_gpu::rng;
use gan_gpu::shapes::{AdamConfig, BatchNormShape, Conv2dGeometry};

/// Output tensors of one case, by the names the file uses.
type Outputs = HashMap<String, Vec<f32>>;

#[test]
fn cpu_reference_matches_every_golden_case() {
    let skip_e2e = std::env::var("GAN_GPU_SKIP_E2E").is_ok_and(|v| v == "1");
    let cases = golden::cases();
    assert!(!cases.is_empty(), "the golden index lists no cases");

    // Op cases first, all of them, so that every failing op is reported at once; the
    // end-to-end case only means something once they pass.
    let (e2e, ops): (Vec<&Case>, Vec<&Case>) = cases.iter().partition(|c| c.op == "e2e_dcgan");
    let mut failures = Vec::new();
    for case in &ops {
        let outputs = compute_outputs(case);
        match golden::compare_case(case, &outputs) {
            Ok(tensors) => println!("ok   {:<20} {} ({tensors} tensors)", case.op, case.name),
            Err(report) => {
                println!("FAIL {:<20} {}", case.op, case.name);
                failures.push(report);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden op cases failed:\n{}",
        failures.len(),
        ops.len(),
        failures.join("\n")
    );

    let mut checked = ops.len();
    for case in e2e {
        if skip_e2e {
            println!("skip {:<20} {} (GAN_GPU_SKIP_E2E=1)", case.op, case.name);
        } else {
            common::e2e::check_e2e_cpu(case);
            println!("ok   {:<20} {}", case.op, case.name);
            checked += 1;
        }
    }
    println!("{checked} golden cases match the CPU reference");
}

/// Runs the CPU ops of one case and returns every output it holds.
fn compute_outputs(case: &Case) -> Outputs {
    match case.op.as_str() {
        "dense" => dense(case),
        "flatten_dense" => flatten_dense(case),
        "dense_reshape" => dense_reshape(case),
        "conv2d" => conv2d(case),
        "conv2d_transpose" => conv2d_transpose(case),
        "batchnorm_train" => batchnorm_train(case),
        "batchnorm_inference" => batchnorm_inference(case),
        "leaky_relu" => leaky_relu(case),
        "tanh" => tanh(case),
        "sigmoid" => sigmoid(case),
        "sigmoid_bce_logits" => sigmoid_bce_logits(case),
        "dropout" => dropout(case),
        "adam" => adam(case),
        op => panic!(
            "golden case {} ({}): unknown op `{op}`",
            case.name,
            case.file.display()
        ),
    }
}

fn outputs<const N: usize>(pairs: [(&str, Vec<f32>); N]) -> Outputs {
    pairs
        .into_iter()
        .map(|(name, values)| (name.to_string(), values))
        .collect()
}

/// `[rows, cols]` of a 2-D tensor.
fn dims2(case: &Case, name: &str) -> (usize, usize) {
    match *case.shape(name) {
        [rows, cols] => (rows, cols),
        ref other => panic!(
            "golden case {}: {name} has shape {other:?}, expected 2-D",
            case.name
        ),
    }
}

/// `[n, c, h, w]` of a 4-D tensor.
fn dims4(case: &Case, name: &str) -> [usize; 4] {
    match *case.shape(name) {
        [n, c, h, w] => [n, c, h, w],
        ref other => panic!(
            "golden case {}: {name} has shape {other:?}, expected NCHW",
            case.name
        ),
    }
}

/// Forward and backward of `y = x · W + b`, all in the files' own layouts.
struct DenseResult {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

fn run_dense(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
    inputs: usize,
    outputs: usize,
) -> DenseResult {
    let n = x.len() / inputs;
    let mut r = DenseResult {
        y: vec![0.0; n * outputs],
        dx: vec![0.0; n * inputs],
        dw: vec![0.0; inputs * outputs],
        db: vec![0.0; outputs],
    };
    cpu::dense_forward(n, inputs, outputs, x, w, b, &mut r.y);
    cpu::dense_backward(
        n,
        inputs,
        outputs,
        x,
        w,
        dy,
        Some(&mut r.dx),
        &mut r.dw,
        &mut r.db,
    );
    r
}

fn dense(case: &Case) -> Outputs {
    let (inputs, outputs_) = dims2(case, "w");
    let t = |name| case.tensor(name);
    let r = run_dense(t("x"), t("w"), t("b"), t("dy"), inputs, outputs_);
    outputs([("y", r.y), ("dx", r.dx), ("dw", r.dw), ("db", r.db)])
}

/// Keras' Flatten is NHWC-ordered: NCHW `[n, C, H*W]` -> NHWC `[n, H*W, C]` before the dense
/// layer, and the input gradient back the other way.
fn flatten_dense(case: &Case) -> Outputs {
    let [n, c, h, w] = dims4(case, "x");
    let (inputs, outputs_) = dims2(case, "w");
    assert_eq!(inputs, c * h * w, "{}: w rows vs C*H*W", case.name);

    let mut x_nhwc = vec![0.0; n * inputs];
    cpu::permute_last_two(case.tensor("x"), &mut x_nhwc, n, c, h * w);
    let r = run_dense(
        &x_nhwc,
        case.tensor("w"),
        case.tensor("b"),
        case.tensor("dy"),
        inputs,
        outputs_,
    );

    let mut dx = vec![0.0; n * inputs];
    cpu::permute_last_two(&r.dx, &mut dx, n, h * w, c);
    outputs([("y", r.y), ("dx", dx), ("dw", r.dw), ("db", r.db)])
}

/// Keras' Reshape((H, W, C)) is NHWC-ordered: dense output `[n, H*W, C]` -> NCHW
/// `[n, C, H*W]`, and the NCHW upstream gradient back to NHWC before the dense backward.
fn dense_reshape(case: &Case) -> Outputs {
    let [n, c, h, w] = dims4(case, "dy");
    let (inputs, outputs_) = dims2(case, "w");
    assert_eq!(outputs_, c * h * w, "{}: w columns vs C*H*W", case.name);

    let mut dy_nhwc = vec![0.0; n * outputs_];
    cpu::permute_last_two(case.tensor("dy"), &mut dy_nhwc, n, c, h * w);
    let r = run_dense(
        case.tensor("x"),
        case.tensor("w"),
        case.tensor("b"),
        &dy_nhwc,
        inputs,
        outputs_,
    );

    let mut y = vec![0.0; n * outputs_];
    cpu::permute_last_two(&r.y, &mut y, n, h * w, c);
    outputs([("y", y), ("dx", r.dx), ("dw", r.dw), ("db", r.db)])
}

fn conv2d(case: &Case) -> Outputs {
    let [n, cin, h, w] = dims4(case, "x");
    let [cout, wcin, kh, kw] = dims4(case, "w");
    assert_eq!(cin, wcin, "{}: x channels vs w", case.name);
    let stride = case.meta_pair("stride");
    let g = match case.meta_str("padding") {
        "same" => Conv2dGeometry::conv_same(n, cin, (h, w), cout, (kh, kw), stride),
        "valid" => Conv2dGeometry::conv_valid(n, cin, (h, w), cout, (kh, kw), stride),
        other => panic!("{}: unknown padding {other}", case.name),
    };
    assert_eq!(
        case.shape("y"),
        [n, cout, g.out_h, g.out_w],
        "{}: output size",
        case.name
    );

    let mut y = vec![0.0; g.output_len()];
    cpu::conv2d_forward(
        &g,
        case.tensor("x"),
        case.tensor("w"),
        Some(case.tensor("b")),
        &mut y,
    );
    let dy = case.tensor("dy");
    let mut dx = vec![0.0; g.input_len()];
    cpu::conv2d_backward_input(&g, dy, case.tensor("w"), &mut dx);
    let mut dw = vec![0.0; g.weight_len()];
    cpu::conv2d_backward_weight(&g, case.tensor("x"), dy, &mut dw);
    let mut db = vec![0.0; cout];
    cpu::bias_backward(dy, &mut db, n, cout, g.out_h * g.out_w);
    outputs([("y", y), ("dx", dx), ("dw", dw), ("db", db)])
}

fn conv2d_transpose(case: &Case) -> Outputs {
    let [n, t_in, h, w] = dims4(case, "x");
    let [wt_in, t_out, kh, kw] = dims4(case, "w");
    assert_eq!(t_in, wt_in, "{}: x channels vs w", case.name);
    let stride = case.meta_pair("stride");
    let g = match case.meta_str("padding") {
        "same" => Conv2dGeometry::transpose_same(n, t_in, (h, w), t_out, (kh, kw), stride),
        "valid" => Conv2dGeometry::transpose_valid(n, t_in, (h, w), t_out, (kh, kw), stride),
        other => panic!("{}: unknown padding {other}", case.name),
    };
    assert_eq!(
        case.shape("y"),
        [n, t_out, g.in_h, g.in_w],
        "{}: output size",
        case.name
    );

    let (x, wt, dy) = (case.tensor("x"), case.tensor("w"), case.tensor("dy"));
    let mut y = vec![0.0; g.input_len()];
    cpu::conv_transpose2d_forward(&g, x, wt, Some(case.tensor("b")), &mut y);
    let mut dx = vec![0.0; g.output_len()];
    cpu::conv_transpose2d_backward_input(&g, dy, wt, &mut dx);
    let mut dw = vec![0.0; g.weight_len()];
    cpu::conv_transpose2d_backward_weight(&g, x, dy, &mut dw);
    let mut db = vec![0.0; t_out];
    cpu::bias_backward(dy, &mut db, n, t_out, g.in_h * g.in_w);
    outputs([("y", y), ("dx", dx), ("dw", dw), ("db", db)])
}

fn bn_shape(case: &Case) -> BatchNormShape {
    let [n, c, h, w] = dims4(case, "x");
    BatchNormShape {
        n,
        c,
        p: h * w,
        momentum: case.meta_f64("momentum") as f32,
        epsilon: case.meta_f64("epsilon") as f32,
    }
}

fn batchnorm_train(case: &Case) -> Outputs {
    let s = bn_shape(case);
    let (x, gamma, beta) = (case.tensor("x"), case.tensor("gamma"), case.tensor("beta"));

    let mut running_mean = case.tensor("running_mean").to_vec();
    let mut running_var = case.tensor("running_var").to_vec();
    let mut y = vec![0.0; s.len()];
    let (mut mean, mut var) = (vec![0.0; s.c], vec![0.0; s.c]);
    cpu::batchnorm_forward_train(
        &s,
        x,
        gamma,
        beta,
        &mut running_mean,
        &mut running_var,
        &mut y,
        &mut mean,
        &mut var,
    );

    // The unbiased variance is not an op output; it is what the running update folds in.
    let count = s.n * s.p;
    let unbias = count as f32 / count.saturating_sub(1).max(1) as f32;
    let var_unbiased: Vec<f32> = var.iter().map(|v| v * unbias).collect();

    let mut dx = vec![0.0; s.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; s.c], vec![0.0; s.c]);
    let dy = case.tensor("dy");
    cpu::batchnorm_backward(
        &s,
        x,
        dy,
        gamma,
        &mean,
        &var,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );

    outputs([
        ("y", y),
        ("dx", dx),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
        ("new_running_mean", running_mean),
        ("new_running_var", running_var),
        ("batch_mean", mean),
        ("batch_var", var),
        ("batch_var_unbiased", var_unbiased),
    ])
}

fn batchnorm_inference(case: &Case) -> Outputs {
    let s = bn_shape(case);
    let (x, gamma, beta) = (case.tensor("x"), case.tensor("gamma"), case.tensor("beta"));
    let (running_mean, running_var) = (case.tensor("running_mean"), case.tensor("running_var"));

    let mut y = vec![0.0; s.len()];
    cpu::batchnorm_forward_inference(&s, x, gamma, beta, running_mean, running_var, &mut y);

    // With fixed statistics the layer is affine per channel, so its backward is three lines;
    // the model never back-propagates through inference mode, so there is no library op.
    let dy = case.tensor("dy");
    let mut dx = vec![0.0; s.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0f32; s.c], vec![0.0f32; s.c]);
    for b in 0..s.n {
        for ch in 0..s.c {
            let inv_std = 1.0 / (running_var[ch] + s.epsilon).sqrt();
            for j in (b * s.c + ch) * s.p..(b * s.c + ch + 1) * s.p {
                dx[j] = dy[j] * gamma[ch] * inv_std;
                dgamma[ch] += dy[j] * (x[j] - running_mean[ch]) * inv_std;
                dbeta[ch] += dy[j];
            }
        }
    }

    outputs([
        ("y", y),
        ("dx", dx),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
        ("new_running_mean", running_mean.to_vec()),
        ("new_running_var", running_var.to_vec()),
    ])
}

fn leaky_relu(case: &Case) -> Outputs {
    let alpha = case.meta_f64("alpha") as f32;
    let (x, dy) = (case.tensor("x"), case.tensor("dy"));
    let mut y = vec![0.0; x.len()];
    cpu::leaky_relu_forward(x, &mut y, alpha);
    let mut dx = vec![0.0; x.len()];
    cpu::leaky_relu_backward(x, dy, &mut dx, alpha);
    outputs([("y", y), ("dx", dx)])
}

fn tanh(case: &Case) -> Outputs {
    let (x, dy) = (case.tensor("x"), case.tensor("dy"));
    let mut y = vec![0.0; x.len()];
    cpu::tanh_forward(x, &mut y);
    let mut dx = vec![0.0; x.len()];
    cpu::tanh_backward(&y, dy, &mut dx);
    outputs([("y", y), ("dx", dx)])
}

fn sigmoid(case: &Case) -> Outputs {
    let (x, dy) = (case.tensor("x"), case.tensor("dy"));
    let mut y = vec![0.0; x.len()];
    cpu::sigmoid_forward(x, &mut y);
    let mut dx = vec![0.0; x.len()];
    cpu::sigmoid_backward(&y, dy, &mut dx);
    outputs([("y", y), ("dx", dx)])
}

/// `y` is the sigmoid of the logits `x`; `dx` is the gradient of the mean loss.
fn sigmoid_bce_logits(case: &Case) -> Outputs {
    let (x, target) = (case.tensor("x"), case.tensor("target"));
    let mut y = vec![0.0; x.len()];
    cpu::sigmoid_forward(x, &mut y);
    let mut per_sample = vec![0.0; x.len()];
    let mut dx = vec![0.0; x.len()];
    let result = cpu::sigmoid_bce(x, target, &mut per_sample, &mut dx);
    outputs([
        ("y", y),
        ("dx", dx),
        ("loss", vec![result.loss]),
        ("loss_per_sample", per_sample),
    ])
}

fn dropout(case: &Case) -> Outputs {
    let scale = rng::dropout_scale(case.meta_f64("rate"));
    assert_eq!(
        scale as f64,
        case.meta_f64("scale_f32"),
        "{}: dropout scale",
        case.name
    );

    let (x, mask, dy) = (case.tensor("x"), case.tensor("mask"), case.tensor("dy"));
    let mut y = vec![0.0; x.len()];
    cpu::dropout_apply(x, mask, scale, &mut y);
    let mut dx = vec![0.0; x.len()];
    cpu::dropout_apply(dy, mask, scale, &mut dx);
    outputs([("y", y), ("dx", dx)])
}

/// One update (`step = 7`, tensors `grad`, `new_*`) or several (`step = 1..3`, tensors
/// `grad_i`, `new_*_i`, and `new_*` for the final state).
fn adam(case: &Case) -> Outputs {
    let cfg = AdamConfig {
        lr: case.meta_f64("lr") as f32,
        beta1: case.meta_f64("beta_1") as f32,
        beta2: case.meta_f64("beta_2") as f32,
        epsilon: case.meta_f64("epsilon") as f32,
    };
    let step = case.meta_str("step");
    let parse = |s: &str| -> u32 {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad adam step {step:?}", case.name))
    };
    let (first, last) = match step.split_once("..") {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(step), parse(step)),
    };
    let numbered = first != last;

    let mut param = case.tensor("param").to_vec();
    let mut m = case.tensor("m").to_vec();
    let mut v = case.tensor("v").to_vec();
    let mut out = Outputs::new();
    for (i, t) in (first..=last).enumerate() {
        let grad = if numbered {
            case.tensor(&format!("grad_{}", i + 1))
        } else {
            case.tensor("grad")
        };
        cpu::adam_update(&cfg, cfg.lr_t(t), &mut param, grad, &mut m, &mut v);
        if numbered {
            out.insert(format!("new_param_{}", i + 1), param.clone());
            out.insert(format!("new_m_{}", i + 1), m.clone());
            out.insert(format!("new_v_{}", i + 1), v.clone());
        }
    }
    out.insert("new_param".into(), param);
    out.insert("new_m".into(), m);
    out.insert("new_v".into(), v);
    out
}
