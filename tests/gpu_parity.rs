//! Every GPU op of the element-wise, normalisation, loss, optimiser and RNG families against
//! its CPU twin, over shapes that do not divide the workgroup size, batch 1, one channel, and
//! one element-wise launch big enough that its grid must fold into a second dimension.
//!
//! Needs an adapter: without one the tests skip, unless GAN_GPU_REQUIRE_ADAPTER=1.

mod common;

use common::golden::assert_close;
use common::gpu::{context, fresh_context};
use gan_gpu::gpu::ops::{self, ELEMS_PER_WORKGROUP};
use gan_gpu::gpu::{GpuContext, GpuTensor, Plan};
use gan_gpu::shapes::{AdamConfig, BatchNormShape, StepConstants, adam_slot};
use gan_gpu::{cpu, rng};

// ---- tolerances: |gpu - cpu| <= atol + rtol * |cpu| -----------------------------------------

/// Results that are one IEEE operation (or a select) on the same inputs: exact, except that
/// a GPU may flush a subnormal result to zero.
const EXACT: (f32, f32) = (0.0, f32::MIN_POSITIVE);
/// tanh, sigmoid and their gradients: the GPU's exp/tanh are within a few ulp of Rust's
/// (Vulkan allows more; 1e-5 relative is what the TensorFlow cases are held to as well).
const TRANSCENDENTAL: (f32, f32) = (1e-5, 1e-6);
/// Per-channel sums of up to a few hundred values near 1: the CPU adds them in sequence, the
/// GPU in a tree, so they differ by a few hundred ulp of the sum at most.
const CHANNEL_SUM: (f32, f32) = (1e-5, 1e-5);
/// BatchNorm mean, variance and running statistics: one sum each, divided once.
const BN_STATS: (f32, f32) = (1e-5, 1e-6);
/// BatchNorm y and dx: the statistics' rounding, amplified by 1 / sqrt(var + eps).
const BN_OUTPUT: (f32, f32) = (1e-4, 1e-5);
/// BCE loss and per-sample loss: exp and log, then (for the mean) a reordered sum.
const BCE_LOSS: (f32, f32) = (1e-5, 1e-6);
/// BCE dlogits: sigmoid minus target over n; small values need the tight atol.
const BCE_GRAD: (f32, f32) = (1e-5, 1e-7);
/// Adam moments: one multiply-add each; a GPU may fuse it (one rounding instead of two).
const ADAM_MOMENTS: (f32, f32) = (1e-6, 1e-12);
/// Adam parameters: the update is ~lr = 2e-4, so 5e-8 absolute is its 2.5e-4 relative.
const ADAM_PARAM: (f32, f32) = (1e-6, 5e-8);
/// Gathered pixels are px / 127.5 - 1: Vulkan lets a GPU divide with 2.5 ulp of error, so
/// allow 2 ulp at 1.0. A wrongly chosen image shows up as an error of 1 / 127.5 or more.
const GATHER: (f32, f32) = (0.0, 2.5e-7);
/// Normal noise: sqrt(-2 ln u1) * cos(2 pi u2) with the GPU's log and cos. cos has an
/// absolute, not relative, error (lavapipe ~5e-7; Vulkan allows far more), which the radius
/// (up to 5.8) scales; near cos's zeros that is all of a small value's error (2.7e-6 seen on
/// lavapipe at |value| 0.01). The bits behind it are exact: the dropout and gather tests
/// check the generator bit for bit.
const NORMAL: (f32, f32) = (1e-5, 1e-5);

/// Lengths around the workgroup and per-workgroup spans: 1, odd, WG +- 1, span +- 1; then
/// multiples of 4, which take the four-wide kernels, around their span of 2048 elements.
const LENGTHS: [usize; 12] = [1, 7, 255, 257, 511, 512, 513, 3001, 4, 2044, 2048, 2052];

// ---- helpers ----------------------------------------------------------------------------

/// Deterministic uniform values in [lo, hi), drawn from the crate's Philox.
fn uniform(tag: u32, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let bits = rng::random_bits(0x5eed_0001, tag, 99, i as u32)[0];
            lo + (hi - lo) * ((bits >> 8) as f32 / 16_777_216.0)
        })
        .collect()
}

/// Values that probe activations and losses: signed zeros, tiny, large, then uniform ones.
fn with_specials(tag: u32, n: usize, scale: f32) -> Vec<f32> {
    let specials = [
        0.0, -0.0, 1e-8, -1e-8, 30.0, -30.0, 100.0, -100.0, 1.0, -1.0,
    ];
    let mut v = uniform(tag, n, -scale, scale);
    for (dst, src) in v.iter_mut().zip(specials) {
        *dst = src;
    }
    v
}

fn run(ctx: &GpuContext, plan: &Plan) {
    ctx.run(&[plan])
        .unwrap_or_else(|e| panic!("running the plan: {e}"));
}

fn read(ctx: &GpuContext, t: &GpuTensor) -> Vec<f32> {
    ctx.read(t).unwrap_or_else(|e| panic!("reading back: {e}"))
}

fn close(what: &str, got: &[f32], want: &[f32], tol: (f32, f32)) {
    assert_close(what, got, want, tol.0, tol.1);
}

fn step_constants(seed: u64, step: u32) -> StepConstants {
    StepConstants {
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        step,
        _pad: 0,
        lr_t: [0.0; 4],
    }
}

// ---- element-wise -----------------------------------------------------------------------

#[test]
fn leaky_relu_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    let alpha = 0.2;
    for n in LENGTHS {
        let x = with_specials(1, n, 3.0);
        let dy = uniform(2, n, -1.0, 1.0);
        let (gx, gdy) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
        let (gy, gdx) = (ctx.storage("y", n), ctx.storage("dx", n));

        let mut plan = Plan::new();
        ops::leaky_relu_forward(&ctx, &mut plan, &gx, &gy, alpha).unwrap();
        ops::leaky_relu_backward(&ctx, &mut plan, &gx, &gdy, &gdx, alpha).unwrap();
        run(&ctx, &plan);

        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        cpu::leaky_relu_forward(&x, &mut y, alpha);
        cpu::leaky_relu_backward(&x, &dy, &mut dx, alpha);
        close(
            &format!("leaky_relu y (n={n})"),
            &read(&ctx, &gy),
            &y,
            EXACT,
        );
        close(
            &format!("leaky_relu dx (n={n})"),
            &read(&ctx, &gdx),
            &dx,
            EXACT,
        );
    }
}

#[test]
fn tanh_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for n in LENGTHS {
        let x = with_specials(3, n, 4.0);
        let dy = uniform(4, n, -1.0, 1.0);
        let (gx, gdy) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
        let (gy, gdx) = (ctx.storage("y", n), ctx.storage("dx", n));

        // The backward takes the forward output, here the CPU's, so each op is checked alone.
        let mut y = vec![0.0; n];
        cpu::tanh_forward(&x, &mut y);
        let gy_cpu = ctx.upload("y_cpu", &y);
        let mut plan = Plan::new();
        ops::tanh_forward(&ctx, &mut plan, &gx, &gy).unwrap();
        ops::tanh_backward(&ctx, &mut plan, &gy_cpu, &gdy, &gdx).unwrap();
        run(&ctx, &plan);

        let mut dx = vec![0.0; n];
        cpu::tanh_backward(&y, &dy, &mut dx);
        close(
            &format!("tanh y (n={n})"),
            &read(&ctx, &gy),
            &y,
            TRANSCENDENTAL,
        );
        close(
            &format!("tanh dx (n={n})"),
            &read(&ctx, &gdx),
            &dx,
            TRANSCENDENTAL,
        );
    }
}

#[test]
fn sigmoid_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for n in LENGTHS {
        let x = with_specials(5, n, 8.0);
        let dy = uniform(6, n, -1.0, 1.0);
        let (gx, gdy) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
        let (gy, gdx) = (ctx.storage("y", n), ctx.storage("dx", n));

        let mut y = vec![0.0; n];
        cpu::sigmoid_forward(&x, &mut y);
        let gy_cpu = ctx.upload("y_cpu", &y);
        let mut plan = Plan::new();
        ops::sigmoid_forward(&ctx, &mut plan, &gx, &gy).unwrap();
        ops::sigmoid_backward(&ctx, &mut plan, &gy_cpu, &gdy, &gdx).unwrap();
        run(&ctx, &plan);

        let mut dx = vec![0.0; n];
        cpu::sigmoid_backward(&y, &dy, &mut dx);
        close(
            &format!("sigmoid y (n={n})"),
            &read(&ctx, &gy),
            &y,
            TRANSCENDENTAL,
        );
        close(
            &format!("sigmoid dx (n={n})"),
            &read(&ctx, &gdx),
            &dx,
            TRANSCENDENTAL,
        );
    }
}

#[test]
fn dropout_apply_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    let rate = 0.3;
    let scale = rng::dropout_scale(rate);
    for n in LENGTHS {
        let x = uniform(7, n, -2.0, 2.0);
        let mut mask = vec![0.0; n];
        cpu::dropout_mask(11, 3, 16, rate, &mut mask);
        let (gx, gmask, gy) = (
            ctx.upload("x", &x),
            ctx.upload("mask", &mask),
            ctx.storage("y", n),
        );

        let mut plan = Plan::new();
        ops::dropout_apply(&ctx, &mut plan, &gx, &gmask, scale, &gy).unwrap();
        run(&ctx, &plan);

        let mut y = vec![0.0; n];
        cpu::dropout_apply(&x, &mask, scale, &mut y);
        close(
            &format!("dropout_apply y (n={n})"),
            &read(&ctx, &gy),
            &y,
            EXACT,
        );
    }
}

#[test]
fn permute_last_two_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    // (n, a, b): trivial, odd, the generator's reshape, one row, one column; and lengths that
    // are multiples of 8 (the eight-at-a-time kernel) whose rows and samples end inside a run
    // of eight outputs.
    for (n, a, b) in [
        (1, 1, 1),
        (2, 3, 5),
        (3, 49, 128),
        (1, 7, 1),
        (2, 1, 9),
        (1, 128, 49),
        (4, 3, 2),
        (2, 1, 8),
        (3, 5, 8),
    ] {
        let x = uniform(8, n * a * b, -1.0, 1.0);
        let (gx, gy) = (ctx.upload("x", &x), ctx.storage("y", x.len()));
        let mut plan = Plan::new();
        ops::permute_last_two(&ctx, &mut plan, &gx, &gy, n, a, b).unwrap();
        run(&ctx, &plan);

        let mut y = vec![0.0; x.len()];
        cpu::permute_last_two(&x, &mut y, n, a, b);
        close(
            &format!("permute y ({n}x{a}x{b})"),
            &read(&ctx, &gy),
            &y,
            EXACT,
        );
    }
}

/// More elements than one grid dimension covers: 65535 workgroups of ELEMS_PER_WORKGROUP on
/// x, plus one element, so the grid folds into y and the last workgroup is nearly idle.
#[test]
fn elementwise_op_folds_its_grid_past_the_workgroup_limit() {
    let Some(ctx) = context() else { return };
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as u64;
    let n = (max_groups * ELEMS_PER_WORKGROUP + 1) as usize;
    let bytes = n as u64 * 4;
    if bytes > ctx.limits.max_storage_buffer_binding_size || bytes > ctx.limits.max_buffer_size {
        eprintln!(
            "skipping: {n} elements ({bytes} bytes) exceed this device's binding limit, so no \
             bindable tensor can make the grid fold here"
        );
        return;
    }
    let grid = ops::elementwise_grid(&ctx, "test", n).unwrap();
    assert_eq!(grid, [max_groups as u32, 2, 1], "the grid must fold into y");

    // A cheap hash of the index, half negative, instead of Philox over 33M values.
    let x: Vec<f32> = (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 8) as f32 / 8_388_608.0 - 1.0)
        .collect();
    let (gx, gy) = (ctx.upload("x", &x), ctx.storage("y", n));
    let mut plan = Plan::new();
    ops::leaky_relu_forward(&ctx, &mut plan, &gx, &gy, 0.2).unwrap();
    run(&ctx, &plan);

    let mut y = vec![0.0; n];
    cpu::leaky_relu_forward(&x, &mut y, 0.2);
    close(
        &format!("leaky_relu y (n={n})"),
        &read(&ctx, &gy),
        &y,
        EXACT,
    );
}

// ---- per-channel ops --------------------------------------------------------------------

/// (n, c, p) for per-channel ops: batch 1, one channel, the serial path (n * p < the
/// workgroup size: dense-layer biases), the tree path with a ragged last round.
const CHANNEL_SHAPES: [(usize, usize, usize); 18] = [
    (1, 1, 1),
    (1, 1, 7),
    (2, 3, 5),
    (4, 3, 25),
    (32, 300, 1),
    (1, 1, 300),
    (3, 5, 97),
    (2, 16, 49),
    // c a multiple of 4 and p not (BatchNorm's channel groups; so are (32, 300, 1) and
    // (2, 16, 49) above).
    (3, 12, 3),
    // The same with channels long enough for the reductions' workgroup per group, one with
    // an odd p and a ragged last round.
    (40, 8, 49),
    (6, 4, 45),
    // p = 2 mod 4: a row's middle channel boundary falls between two vec4s.
    (5, 8, 2),
    (7, 4, 6),
    // p a multiple of 4: the kernels that move four values per load.
    (1, 2, 8),
    (33, 3, 16),
    (5, 2, 196),
    // Channels longer than one chunk of the element-wise grid, four and one value per load.
    (48, 4, 196),
    (40, 3, 97),
];

#[test]
fn bias_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (n, c, p) in CHANNEL_SHAPES {
        let len = n * c * p;
        let x = uniform(9, len, -1.0, 1.0);
        let b = uniform(10, c, -1.0, 1.0);
        let dy = uniform(11, len, -1.0, 1.0);
        let (gx, gb) = (ctx.upload("x", &x), ctx.upload("b", &b));
        let (gdy, gdb) = (ctx.upload("dy", &dy), ctx.storage("db", c));

        let mut plan = Plan::new();
        ops::bias_add(&ctx, &mut plan, &gx, &gb, n, c, p).unwrap();
        ops::bias_backward(&ctx, &mut plan, &gdy, &gdb, n, c, p).unwrap();
        run(&ctx, &plan);

        let (mut y, mut db) = (x.clone(), vec![0.0; c]);
        cpu::bias_add(&mut y, &b, n, c, p);
        cpu::bias_backward(&dy, &mut db, n, c, p);
        close(
            &format!("bias_add x ({n},{c},{p})"),
            &read(&ctx, &gx),
            &y,
            EXACT,
        );
        close(
            &format!("bias_backward db ({n},{c},{p})"),
            &read(&ctx, &gdb),
            &db,
            CHANNEL_SUM,
        );
    }
}

fn bn_shape(n: usize, c: usize, p: usize) -> BatchNormShape {
    BatchNormShape {
        n,
        c,
        p,
        momentum: 0.99,
        epsilon: 1e-3,
    }
}

#[test]
fn batchnorm_forward_train_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (n, c, p) in CHANNEL_SHAPES {
        let s = bn_shape(n, c, p);
        // A mean far from 0, where a plain sum of squares would cancel, exercises the
        // shifted sums of the variance.
        let x = uniform(12, s.len(), 2.0, 6.0);
        let gamma = uniform(13, c, 0.5, 1.5);
        let beta = uniform(14, c, -0.5, 0.5);
        let rmean = uniform(15, c, -0.1, 0.1);
        let rvar = uniform(16, c, 0.5, 1.5);

        let (gx, gg, gb) = (
            ctx.upload("x", &x),
            ctx.upload("gamma", &gamma),
            ctx.upload("beta", &beta),
        );
        let (grm, grv) = (
            ctx.upload("running_mean", &rmean),
            ctx.upload("running_var", &rvar),
        );
        let gy = ctx.storage("y", s.len());
        let (gsm, gsv) = (ctx.storage("save_mean", c), ctx.storage("save_var", c));
        let mut plan = Plan::new();
        ops::batchnorm_forward_train(
            &ctx, &mut plan, &s, &gx, &gg, &gb, &grm, &grv, &gy, &gsm, &gsv,
        )
        .unwrap();
        run(&ctx, &plan);

        let (mut rm, mut rv) = (rmean.clone(), rvar.clone());
        let (mut y, mut sm, mut sv) = (vec![0.0; s.len()], vec![0.0; c], vec![0.0; c]);
        cpu::batchnorm_forward_train(
            &s, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut sv,
        );
        let shape = format!("({n},{c},{p})");
        close(
            &format!("bn save_mean {shape}"),
            &read(&ctx, &gsm),
            &sm,
            BN_STATS,
        );
        close(
            &format!("bn save_var {shape}"),
            &read(&ctx, &gsv),
            &sv,
            BN_STATS,
        );
        close(
            &format!("bn running_mean {shape}"),
            &read(&ctx, &grm),
            &rm,
            BN_STATS,
        );
        close(
            &format!("bn running_var {shape}"),
            &read(&ctx, &grv),
            &rv,
            BN_STATS,
        );
        close(&format!("bn y {shape}"), &read(&ctx, &gy), &y, BN_OUTPUT);
    }
}

#[test]
fn batchnorm_forward_inference_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (n, c, p) in CHANNEL_SHAPES {
        let s = bn_shape(n, c, p);
        let x = uniform(17, s.len(), -2.0, 2.0);
        let gamma = uniform(18, c, 0.5, 1.5);
        let beta = uniform(19, c, -0.5, 0.5);
        let rmean = uniform(20, c, -0.5, 0.5);
        let rvar = uniform(21, c, 0.1, 2.0);

        let (gx, gg, gb) = (
            ctx.upload("x", &x),
            ctx.upload("gamma", &gamma),
            ctx.upload("beta", &beta),
        );
        let (grm, grv) = (
            ctx.upload("running_mean", &rmean),
            ctx.upload("running_var", &rvar),
        );
        let gy = ctx.storage("y", s.len());
        let mut plan = Plan::new();
        ops::batchnorm_forward_inference(&ctx, &mut plan, &s, &gx, &gg, &gb, &grm, &grv, &gy)
            .unwrap();
        run(&ctx, &plan);

        let mut y = vec![0.0; s.len()];
        cpu::batchnorm_forward_inference(&s, &x, &gamma, &beta, &rmean, &rvar, &mut y);
        close(
            &format!("bn inference y ({n},{c},{p})"),
            &read(&ctx, &gy),
            &y,
            BN_OUTPUT,
        );
        close(
            "bn running_mean unchanged",
            &read(&ctx, &grm),
            &rmean,
            EXACT,
        );
        close("bn running_var unchanged", &read(&ctx, &grv), &rvar, EXACT);
    }
}

#[test]
fn batchnorm_backward_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (n, c, p) in CHANNEL_SHAPES {
        let s = bn_shape(n, c, p);
        let x = uniform(22, s.len(), -1.0, 3.0);
        let dy = uniform(23, s.len(), -1.0, 1.0);
        let gamma = uniform(24, c, 0.5, 1.5);
        // Statistics as the forward pass would save them (biased variance).
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        let (mut y, mut sm, mut sv) = (vec![0.0; s.len()], vec![0.0; c], vec![0.0; c]);
        let beta = vec![0.0; c];
        cpu::batchnorm_forward_train(
            &s, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut sv,
        );

        let (gx, gdy, gg) = (
            ctx.upload("x", &x),
            ctx.upload("dy", &dy),
            ctx.upload("gamma", &gamma),
        );
        let (gsm, gsv) = (ctx.upload("save_mean", &sm), ctx.upload("save_var", &sv));
        let gdx = ctx.storage("dx", s.len());
        let (gdg, gdb) = (ctx.storage("dgamma", c), ctx.storage("dbeta", c));
        let mut plan = Plan::new();
        ops::batchnorm_backward(
            &ctx, &mut plan, &s, &gx, &gdy, &gg, &gsm, &gsv, &gdx, &gdg, &gdb,
        )
        .unwrap();
        run(&ctx, &plan);

        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; s.len()], vec![0.0; c], vec![0.0; c]);
        cpu::batchnorm_backward(
            &s,
            &x,
            &dy,
            &gamma,
            &sm,
            &sv,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let shape = format!("({n},{c},{p})");
        close(
            &format!("bn dbeta {shape}"),
            &read(&ctx, &gdb),
            &dbeta,
            CHANNEL_SUM,
        );
        close(
            &format!("bn dgamma {shape}"),
            &read(&ctx, &gdg),
            &dgamma,
            CHANNEL_SUM,
        );
        close(&format!("bn dx {shape}"), &read(&ctx, &gdx), &dx, BN_OUTPUT);
    }
}

// ---- loss -------------------------------------------------------------------------------

#[test]
fn sigmoid_bce_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    // Batch 1, the model's 32, and more samples than the workgroup has invocations.
    for n in [1, 8, 32, 33, 300, 1000] {
        let logits = with_specials(25, n, 6.0);
        let targets: Vec<f32> = uniform(26, n, 0.0, 1.0).iter().map(|u| u.round()).collect();
        let (gz, gt) = (
            ctx.upload("logits", &logits),
            ctx.upload("targets", &targets),
        );
        let (gl, gd, gr) = (
            ctx.storage("loss_per_sample", n),
            ctx.storage("dlogits", n),
            ctx.storage("result", 2),
        );
        let mut plan = Plan::new();
        ops::sigmoid_bce(&ctx, &mut plan, &gz, &gt, &gl, &gd, &gr).unwrap();
        run(&ctx, &plan);

        let (mut per, mut dz) = (vec![0.0; n], vec![0.0; n]);
        let want = cpu::sigmoid_bce(&logits, &targets, &mut per, &mut dz);
        let result = read(&ctx, &gr);
        close(
            &format!("bce loss_per_sample (n={n})"),
            &read(&ctx, &gl),
            &per,
            BCE_LOSS,
        );
        close(
            &format!("bce dlogits (n={n})"),
            &read(&ctx, &gd),
            &dz,
            BCE_GRAD,
        );
        close(
            &format!("bce loss (n={n})"),
            &result[..1],
            &[want.loss],
            BCE_LOSS,
        );
        close(
            &format!("bce accuracy (n={n})"),
            &result[1..],
            &[want.accuracy],
            EXACT,
        );
    }
}

// ---- optimiser --------------------------------------------------------------------------

#[test]
fn adam_update_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    let cfg = AdamConfig::default();
    for n in [1, 10, 513, 1031, 4, 2048, 2052] {
        let mut param = uniform(27, n, -0.5, 0.5);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let (gp, gm, gv) = (
            ctx.upload("param", &param),
            ctx.storage("m", n),
            ctx.storage("v", n),
        );
        let ggrad = ctx.storage("grad", n);

        // Three updates (t = 1, 2, 3) through the three slots of one step uniform, with
        // gradients that exercise epsilon: exact 0, 1e-9, -3e-7 and 1e3.
        let mut constants = step_constants(5, 1);
        let slots = [adam_slot::D_REAL, adam_slot::D_FAKE, adam_slot::G];
        for (t, &slot) in slots.iter().enumerate() {
            constants.lr_t[slot as usize] = cfg.lr_t(t as u32 + 1);
        }
        let step = ctx.step_uniform(&constants);
        for (t, &slot) in slots.iter().enumerate() {
            let mut grad = uniform(28 + t as u32, n, -1e-2, 1e-2);
            for (g, special) in grad.iter_mut().zip([0.0, 1e-9, -3e-7, 1e3]) {
                *g = special;
            }
            ctx.write(&ggrad, &grad);
            let mut plan = Plan::new();
            ops::adam_update(&ctx, &mut plan, &cfg, &step, slot, &gp, &ggrad, &gm, &gv).unwrap();
            run(&ctx, &plan);

            cpu::adam_update(
                &cfg,
                cfg.lr_t(t as u32 + 1),
                &mut param,
                &grad,
                &mut m,
                &mut v,
            );
            let what = format!("adam (n={n}, t={})", t + 1);
            close(&format!("{what} m"), &read(&ctx, &gm), &m, ADAM_MOMENTS);
            close(&format!("{what} v"), &read(&ctx, &gv), &v, ADAM_MOMENTS);
            close(
                &format!("{what} param"),
                &read(&ctx, &gp),
                &param,
                ADAM_PARAM,
            );
        }
    }
}

// ---- random numbers ---------------------------------------------------------------------

/// Seeds with both halves non-zero, so the key's high word is exercised.
const SEEDS: [u64; 2] = [0x0123_4567_89ab_cdef, 42];

#[test]
fn dropout_mask_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for seed in SEEDS {
        for (n, rate, stream) in [
            (1, 0.3, 16),
            (255, 0.5, 17),
            (513, 0.3, 33),
            (10_007, 0.3, 48),
            // Multiples of 4: the kernel that stores a block's four values at once.
            (4, 0.3, 16),
            (512, 0.5, 17),
            (10_008, 0.3, 48),
        ] {
            let step = ctx.step_uniform(&step_constants(seed, 9));
            let gmask = ctx.storage("mask", n);
            let mut plan = Plan::new();
            ops::dropout_mask(&ctx, &mut plan, &step, stream, rate, &gmask).unwrap();
            run(&ctx, &plan);

            let mut mask = vec![0.0; n];
            cpu::dropout_mask(seed, 9, stream, rate, &mut mask);
            let got = read(&ctx, &gmask);
            assert_eq!(
                got, mask,
                "dropout mask differs (seed {seed:#x}, n {n}, rate {rate})"
            );
        }
    }

    // The extremes keep everything and drop everything.
    let step = ctx.step_uniform(&step_constants(7, 1));
    for (rate, want) in [(0.0, 1.0), (1.0, 0.0)] {
        let gmask = ctx.storage("mask", 300);
        let mut plan = Plan::new();
        ops::dropout_mask(&ctx, &mut plan, &step, 16, rate, &gmask).unwrap();
        run(&ctx, &plan);
        assert!(read(&ctx, &gmask).iter().all(|&m| m == want), "rate {rate}");
    }
}

#[test]
fn gather_batch_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    // (image_len, count, batch): MNIST-sized, lengths that split images across u32 words,
    // a single image, a single pixel, then images of whole words that end in the middle of
    // an invocation's run of words (3 and 5 words).
    for (image_len, count, batch) in [
        (12, 5, 3),
        (20, 7, 5),
        (784, 1000, 32),
        (5, 3, 7),
        (13, 1, 4),
        (1, 9, 1),
        (784, 60, 1),
    ] {
        for seed in SEEDS {
            let images: Vec<u8> = (0..image_len * count)
                .map(|i| (rng::random_bits(3, 0, 1, i as u32)[0] >> 24) as u8)
                .collect();
            let mut words = vec![0u32; images.len().div_ceil(4)];
            bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..images.len()]
                .copy_from_slice(&images);

            let step = ctx.step_uniform(&step_constants(seed, 77));
            let (gimages, gout) = (
                ctx.upload_u32("images", &words),
                ctx.storage("out", batch * image_len),
            );
            let mut plan = Plan::new();
            ops::gather_batch(
                &ctx,
                &mut plan,
                &step,
                &gimages,
                image_len,
                count,
                rng::streams::BATCH_INDICES,
                &gout,
            )
            .unwrap();
            run(&ctx, &plan);

            let mut out = vec![0.0; batch * image_len];
            cpu::gather_batch(
                &images,
                image_len,
                seed,
                77,
                rng::streams::BATCH_INDICES,
                &mut out,
            );
            let what = format!("gather_batch ({image_len} bytes x {count} images, batch {batch})");
            close(&what, &read(&ctx, &gout), &out, GATHER);
        }
    }
}

#[test]
fn normal_noise_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for seed in SEEDS {
        for n in [1, 100, 513, 20_000] {
            let step = ctx.step_uniform(&step_constants(seed, 3));
            let gout = ctx.storage("noise", n);
            let mut plan = Plan::new();
            ops::normal_noise(&ctx, &mut plan, &step, rng::streams::NOISE_D, &gout).unwrap();
            run(&ctx, &plan);

            let mut out = vec![0.0; n];
            cpu::normal_noise(seed, 3, rng::streams::NOISE_D, &mut out);
            close(
                &format!("normal_noise (seed {seed:#x}, n {n})"),
                &read(&ctx, &gout),
                &out,
                NORMAL,
            );
        }
    }
}

#[test]
fn step_uniform_changes_the_draw_without_rebuilding_the_plan() {
    let Some(ctx) = context() else { return };
    let n = 1000;
    let step = ctx.step_uniform(&step_constants(1, 1));
    let gout = ctx.storage("noise", n);
    let mut plan = Plan::new();
    ops::normal_noise(&ctx, &mut plan, &step, rng::streams::NOISE_G, &gout).unwrap();

    for s in [1, 2] {
        ctx.write_step_uniform(&step, &step_constants(1, s));
        run(&ctx, &plan);
        let mut out = vec![0.0; n];
        cpu::normal_noise(1, s, rng::streams::NOISE_G, &mut out);
        close(
            &format!("normal_noise at step {s}"),
            &read(&ctx, &gout),
            &out,
            NORMAL,
        );
    }
}

// ---- plans and counters -----------------------------------------------------------------

#[test]
fn running_a_plan_creates_no_gpu_objects_and_moves_no_data() {
    // Its own context: the counters of the shared one move with other tests.
    let Some(ctx) = fresh_context() else { return };
    let n = 1000;
    let (x, y, dy, dx) = (
        ctx.storage("x", n),
        ctx.storage("y", n),
        ctx.storage("dy", n),
        ctx.storage("dx", n),
    );
    let step = ctx.step_uniform(&StepConstants::default());
    let mut plan = Plan::new();
    ops::normal_noise(&ctx, &mut plan, &step, 2, &x).unwrap();
    ops::leaky_relu_forward(&ctx, &mut plan, &x, &y, 0.2).unwrap();
    ops::leaky_relu_backward(&ctx, &mut plan, &x, &y, &dy, 0.2).unwrap();
    ops::tanh_forward(&ctx, &mut plan, &dy, &dx).unwrap();
    assert_eq!(plan.len(), 4);

    let (objects, bytes, submits) = (
        ctx.objects_created(),
        ctx.bytes_transferred(),
        ctx.submits(),
    );
    run(&ctx, &plan);
    run(&ctx, &plan);
    assert_eq!(
        ctx.objects_created(),
        objects,
        "running a plan must create nothing"
    );
    assert_eq!(
        ctx.bytes_transferred(),
        bytes,
        "running a plan must move no data"
    );
    assert_eq!(ctx.submits(), submits + 2, "one submit per run");

    // A read is counted, and reuses its staging buffer from the second read on.
    read(&ctx, &dx);
    let objects = ctx.objects_created();
    assert_eq!(ctx.bytes_transferred(), bytes + 4 * n as u64);
    read(&ctx, &dx);
    assert_eq!(ctx.objects_created(), objects);

    // Pipelines are cached: the same op again creates only its bind group and params uniform.
    let before = ctx.objects_created();
    ops::tanh_forward(&ctx, &mut plan, &dy, &dx).unwrap();
    assert_eq!(ctx.objects_created(), before + 2);
}

#[test]
fn ops_reject_mismatched_lengths() {
    let Some(ctx) = context() else { return };
    let (x, y) = (ctx.storage("x", 10), ctx.storage("y", 11));
    let mut plan = Plan::new();
    let err = ops::leaky_relu_forward(&ctx, &mut plan, &x, &y, 0.2).unwrap_err();
    assert!(matches!(err, gan_gpu::Error::ShapeMismatch { .. }), "{err}");
    assert!(plan.is_empty(), "a rejected op adds nothing");

    let s = bn_shape(2, 3, 4);
    let (x, c) = (ctx.storage("x", s.len()), ctx.storage("c", 3));
    let short = ctx.storage("short", 2);
    let err = ops::batchnorm_forward_inference(&ctx, &mut plan, &s, &x, &c, &c, &c, &short, &x)
        .unwrap_err();
    assert!(err.to_string().contains("running_var"), "{err}");
}
