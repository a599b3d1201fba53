//! Cases of the element-wise, per-channel, loss, optimiser, random and ceiling launchers,
//! each checked whole against its CPU twin (all are linear in their size).

use super::case::Builder;
use super::check::{
    ADAM_MOMENTS, ADAM_PARAM, BCE_GRAD, BCE_LOSS, EXACT, GATHER, NORMAL, TRANSCENDENTAL,
    normalised_of, statistic_of, sum_of,
};
use super::cost::Kernel;
use crate::gpu::ops;
use crate::model::ModelConfig;
use crate::rng::{dropout_scale, streams};
use crate::shapes::BatchNormShape;
use crate::{Result, cpu};

/// Builds `kernel`'s case into `b`. Contractions are `bench::contractions`' job.
pub(super) fn build(b: &mut Builder<'_>, kernel: &Kernel) -> Result<()> {
    let cfg = ModelConfig::default();
    match *kernel {
        Kernel::BiasBackward { n, c, p } => {
            let dy = b.values(n * c * p, -1.0, 1.0);
            let (gdy, gdb) = (b.input("dy", &dy), b.output("db", c));
            ops::bias_backward(b.ctx, &mut b.plan, &gdy, &gdb, n, c, p)?;
            let mut db = vec![0.0; c];
            cpu::bias_backward(&dy, &mut db, n, c, p);
            b.expect("db", &gdb, db, sum_of(n * p));
        }
        Kernel::BatchNormForwardTrain(s) => batchnorm_forward_train(b, &s)?,
        Kernel::BatchNormForwardInference(s) => batchnorm_forward_inference(b, &s)?,
        Kernel::BatchNormBackward(s) => batchnorm_backward(b, &s)?,
        Kernel::LeakyReluForward { len } => {
            let x = b.values(len, -3.0, 3.0);
            let (gx, gy) = (b.input("x", &x), b.output("y", len));
            ops::leaky_relu_forward(b.ctx, &mut b.plan, &gx, &gy, cfg.leaky_alpha)?;
            let mut y = vec![0.0; len];
            cpu::leaky_relu_forward(&x, &mut y, cfg.leaky_alpha);
            b.expect("y", &gy, y, EXACT);
        }
        Kernel::LeakyReluBackward { len } => {
            let (x, dy) = (b.values(len, -3.0, 3.0), b.values(len, -1.0, 1.0));
            let (gx, gdy, gdx) = (b.input("x", &x), b.input("dy", &dy), b.output("dx", len));
            ops::leaky_relu_backward(b.ctx, &mut b.plan, &gx, &gdy, &gdx, cfg.leaky_alpha)?;
            let mut dx = vec![0.0; len];
            cpu::leaky_relu_backward(&x, &dy, &mut dx, cfg.leaky_alpha);
            b.expect("dx", &gdx, dx, EXACT);
        }
        Kernel::TanhForward { len } => {
            let x = b.values(len, -4.0, 4.0);
            let (gx, gy) = (b.input("x", &x), b.output("y", len));
            ops::tanh_forward(b.ctx, &mut b.plan, &gx, &gy)?;
            let mut y = vec![0.0; len];
            cpu::tanh_forward(&x, &mut y);
            b.expect("y", &gy, y, TRANSCENDENTAL);
        }
        Kernel::TanhBackward { len } => {
            let (y, dy) = (b.values(len, -1.0, 1.0), b.values(len, -1.0, 1.0));
            let (gy, gdy, gdx) = (b.input("y", &y), b.input("dy", &dy), b.output("dx", len));
            ops::tanh_backward(b.ctx, &mut b.plan, &gy, &gdy, &gdx)?;
            let mut dx = vec![0.0; len];
            cpu::tanh_backward(&y, &dy, &mut dx);
            b.expect("dx", &gdx, dx, TRANSCENDENTAL);
        }
        Kernel::DropoutMask { len } => {
            let (step, c) = b.step_uniform(0.0);
            let gmask = b.output("mask", len);
            let stream = streams::DROPOUT_D_REAL;
            let rate = cfg.dropout_rate;
            ops::dropout_mask(b.ctx, &mut b.plan, &step, stream, rate, &gmask)?;
            let mut mask = vec![0.0; len];
            cpu::dropout_mask(b.seed, c.step, stream, rate, &mut mask);
            b.expect("mask", &gmask, mask, EXACT);
        }
        Kernel::DropoutApply { len } => {
            let x = b.values(len, -2.0, 2.0);
            let mask: Vec<f32> = b.values(len, 0.0, 1.0).iter().map(|u| u.round()).collect();
            let scale = dropout_scale(cfg.dropout_rate);
            let (gx, gm, gy) = (b.input("x", &x), b.input("mask", &mask), b.output("y", len));
            ops::dropout_apply(b.ctx, &mut b.plan, &gx, &gm, scale, &gy)?;
            let mut y = vec![0.0; len];
            cpu::dropout_apply(&x, &mask, scale, &mut y);
            b.expect("y", &gy, y, EXACT);
        }
        Kernel::PermuteLastTwo { n, a, b: cols } => {
            let x = b.values(n * a * cols, -1.0, 1.0);
            let (gx, gy) = (b.input("x", &x), b.output("y", x.len()));
            ops::permute_last_two(b.ctx, &mut b.plan, &gx, &gy, n, a, cols)?;
            let mut y = vec![0.0; x.len()];
            cpu::permute_last_two(&x, &mut y, n, a, cols);
            b.expect("y", &gy, y, EXACT);
        }
        Kernel::SigmoidBce { n } => sigmoid_bce(b, n)?,
        Kernel::AdamUpdate { len } => adam_update(b, &cfg, len)?,
        Kernel::GatherBatch {
            batch,
            image_len,
            count,
        } => gather_batch(b, batch, image_len, count)?,
        Kernel::NormalNoise { len } => {
            let (step, c) = b.step_uniform(0.0);
            let gout = b.output("noise", len);
            let stream = streams::NOISE_D;
            ops::normal_noise(b.ctx, &mut b.plan, &step, stream, &gout)?;
            let mut out = vec![0.0; len];
            cpu::normal_noise(b.seed, c.step, stream, &mut out);
            b.expect("noise", &gout, out, NORMAL);
        }
        Kernel::FmaPeak {
            invocations,
            iterations,
        } => {
            let gsums = b.output("sums", invocations);
            ops::roofline::fma_peak(b.ctx, &mut b.plan, iterations, &gsums)?;
            let mut sums = vec![0.0; invocations];
            cpu::roofline::fma_peak(iterations, &mut sums);
            b.expect("sums", &gsums, sums, EXACT);
        }
        Kernel::Copy { len } => {
            let src = b.values(len, -1.0, 1.0);
            let (gsrc, gdst) = (b.input("src", &src), b.output("dst", len));
            ops::roofline::copy(b.ctx, &mut b.plan, &gsrc, &gdst)?;
            let mut dst = vec![0.0; len];
            cpu::roofline::copy(&src, &mut dst);
            b.expect("dst", &gdst, dst, EXACT);
        }
        Kernel::Gemm(_)
        | Kernel::DenseForward { .. }
        | Kernel::DenseBackward { .. }
        | Kernel::Conv2dForward(_)
        | Kernel::Conv2dBackwardInput(_)
        | Kernel::Conv2dBackwardWeight(_)
        | Kernel::ConvTranspose2dForward(_)
        | Kernel::ConvTranspose2dBackwardInput(_)
        | Kernel::ConvTranspose2dBackwardWeight(_) => {
            unreachable!("contractions are built by bench::contractions")
        }
    }
    Ok(())
}

fn batchnorm_forward_train(b: &mut Builder<'_>, s: &BatchNormShape) -> Result<()> {
    // A mean away from 0 exercises the shifted sums of the variance.
    let x = b.values(s.len(), -1.0, 3.0);
    let (gamma, beta) = (b.values(s.c, 0.5, 1.5), b.values(s.c, -0.5, 0.5));
    let (mut rm, mut rv) = (b.values(s.c, -0.1, 0.1), b.values(s.c, 0.5, 1.5));
    let (gx, gg, gb) = (
        b.input("x", &x),
        b.input("gamma", &gamma),
        b.input("beta", &beta),
    );
    let (grm, grv) = (b.input("running_mean", &rm), b.input("running_var", &rv));
    let gy = b.output("y", s.len());
    let (gsm, gsv) = (b.output("save_mean", s.c), b.output("save_var", s.c));
    ops::batchnorm_forward_train(
        b.ctx,
        &mut b.plan,
        s,
        &gx,
        &gg,
        &gb,
        &grm,
        &grv,
        &gy,
        &gsm,
        &gsv,
    )?;

    let (mut y, mut sm, mut sv) = (vec![0.0; s.len()], vec![0.0; s.c], vec![0.0; s.c]);
    cpu::batchnorm_forward_train(
        s, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut sv,
    );
    let count = s.n * s.p;
    b.expect("y", &gy, y, normalised_of(count));
    b.expect("save_mean", &gsm, sm, statistic_of(count));
    b.expect("save_var", &gsv, sv, statistic_of(count));
    b.expect("running_mean", &grm, rm, statistic_of(count));
    b.expect("running_var", &grv, rv, statistic_of(count));
    Ok(())
}

fn batchnorm_forward_inference(b: &mut Builder<'_>, s: &BatchNormShape) -> Result<()> {
    let x = b.values(s.len(), -2.0, 2.0);
    let (gamma, beta) = (b.values(s.c, 0.5, 1.5), b.values(s.c, -0.5, 0.5));
    let (rm, rv) = (b.values(s.c, -0.5, 0.5), b.values(s.c, 0.1, 2.0));
    let (gx, gg, gb) = (
        b.input("x", &x),
        b.input("gamma", &gamma),
        b.input("beta", &beta),
    );
    let (grm, grv) = (b.input("running_mean", &rm), b.input("running_var", &rv));
    let gy = b.output("y", s.len());
    ops::batchnorm_forward_inference(b.ctx, &mut b.plan, s, &gx, &gg, &gb, &grm, &grv, &gy)?;

    let mut y = vec![0.0; s.len()];
    cpu::batchnorm_forward_inference(s, &x, &gamma, &beta, &rm, &rv, &mut y);
    b.expect("y", &gy, y, normalised_of(1));
    Ok(())
}

fn batchnorm_backward(b: &mut Builder<'_>, s: &BatchNormShape) -> Result<()> {
    let x = b.values(s.len(), -1.0, 3.0);
    let dy = b.values(s.len(), -1.0, 1.0);
    let gamma = b.values(s.c, 0.5, 1.5);

    // The statistics as the forward pass saves them (biased variance).
    let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
    let (mut y, mut sm, mut sv) = (vec![0.0; s.len()], vec![0.0; s.c], vec![0.0; s.c]);
    let beta = vec![0.0; s.c];
    cpu::batchnorm_forward_train(
        s, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut sv,
    );

    let (gx, gdy, gg) = (
        b.input("x", &x),
        b.input("dy", &dy),
        b.input("gamma", &gamma),
    );
    let (gsm, gsv) = (b.input("save_mean", &sm), b.input("save_var", &sv));
    let gdx = b.output("dx", s.len());
    let (gdg, gdb) = (b.output("dgamma", s.c), b.output("dbeta", s.c));
    ops::batchnorm_backward(
        b.ctx,
        &mut b.plan,
        s,
        &gx,
        &gdy,
        &gg,
        &gsm,
        &gsv,
        &gdx,
        &gdg,
        &gdb,
    )?;

    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; s.len()], vec![0.0; s.c], vec![0.0; s.c]);
    cpu::batchnorm_backward(
        s,
        &x,
        &dy,
        &gamma,
        &sm,
        &sv,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    let count = s.n * s.p;
    b.expect("dx", &gdx, dx, normalised_of(count));
    b.expect("dgamma", &gdg, dgamma, sum_of(count));
    b.expect("dbeta", &gdb, dbeta, sum_of(count));
    Ok(())
}

fn sigmoid_bce(b: &mut Builder<'_>, n: usize) -> Result<()> {
    let logits = b.values(n, -6.0, 6.0);
    let targets: Vec<f32> = b.values(n, 0.0, 1.0).iter().map(|u| u.round()).collect();
    let (gz, gt) = (b.input("logits", &logits), b.input("targets", &targets));
    let (gl, gd) = (b.output("loss_per_sample", n), b.output("dlogits", n));
    let gr = b.output("result", 2);
    ops::sigmoid_bce(b.ctx, &mut b.plan, &gz, &gt, &gl, &gd, &gr)?;

    let (mut per, mut dz) = (vec![0.0; n], vec![0.0; n]);
    let want = cpu::sigmoid_bce(&logits, &targets, &mut per, &mut dz);
    b.expect("loss_per_sample", &gl, per, BCE_LOSS);
    b.expect("dlogits", &gd, dz, BCE_GRAD);
    // [mean loss, accuracy]: one sample more or less counted right moves the accuracy by
    // 1 / n, far outside the loss's tolerance.
    b.expect("result", &gr, vec![want.loss, want.accuracy], BCE_LOSS);
    Ok(())
}

fn adam_update(b: &mut Builder<'_>, cfg: &ModelConfig, len: usize) -> Result<()> {
    let mut param = b.values(len, -0.5, 0.5);
    let grad = b.values(len, -1e-2, 1e-2);
    let (mut m, mut v) = (b.values(len, -1e-3, 1e-3), b.values(len, 0.0, 1e-4));
    let lr_t = cfg.adam.lr_t(3);
    let (step, _) = b.step_uniform(lr_t);
    let (gp, gg) = (b.input("param", &param), b.input("grad", &grad));
    let (gm, gv) = (b.input("m", &m), b.input("v", &v));
    ops::adam_update(b.ctx, &mut b.plan, &cfg.adam, &step, 0, &gp, &gg, &gm, &gv)?;

    cpu::adam_update(&cfg.adam, lr_t, &mut param, &grad, &mut m, &mut v);
    b.expect("param", &gp, param, ADAM_PARAM);
    b.expect("m", &gm, m, ADAM_MOMENTS);
    b.expect("v", &gv, v, ADAM_MOMENTS);
    Ok(())
}

fn gather_batch(b: &mut Builder<'_>, batch: usize, image_len: usize, count: usize) -> Result<()> {
    let images = b.bytes(image_len * count);
    let mut words = vec![0u32; images.len().div_ceil(4).max(1)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..images.len()].copy_from_slice(&images);
    let (step, c) = b.step_uniform(0.0);
    let gimages = b.input_u32("images", &words);
    let gout = b.output("out", batch * image_len);
    let stream = streams::BATCH_INDICES;
    ops::gather_batch(
        b.ctx,
        &mut b.plan,
        &step,
        &gimages,
        image_len,
        count,
        stream,
        &gout,
    )?;

    let mut out = vec![0.0; batch * image_len];
    cpu::gather_batch(&images, image_len, b.seed, c.step, stream, &mut out);
    b.expect("out", &gout, out, GATHER);
    Ok(())
}
