//! The GPU training step against the CPU reference step, from the same seed, on the same
//! small synthetic training set, with dropout active.

mod common;

use gan_gpu::model::{FakeBnMode, IMAGE_LEN, ModelConfig, Weights};
use gan_gpu::rng::random_bits;
use gan_gpu::train::cpu::CpuTrainer;
use gan_gpu::train::gpu::GpuTrainer;
use gan_gpu::train::{Trainer, sample_latents};

use common::golden::assert_close;

/// Weights after a few steps: summation order differs between the kernels and the loops, so
/// gradients differ by ~1e-6 relative; Adam's first steps move each weight by about lr
/// times the gradient's sign, which keeps those differences near 1e-6 of lr. The bound is
/// the one the golden README gives for TensorFlow's two steps.
const WEIGHT_RTOL: f32 = 1e-4;
const WEIGHT_ATOL: f32 = 1e-5;
/// Losses are means of a handful of softplus values computed from those weights.
const LOSS_ATOL: f32 = 1e-5;

const BATCH: usize = 4;
const STEPS: usize = 3;
const SEED: u64 = 0x5eed_0001;

/// 64 images of random strokes: enough variety for D to learn something, no files needed.
fn synthetic_images(count: usize) -> Vec<u8> {
    (0..count * IMAGE_LEN)
        .map(|i| {
            let bits = random_bits(99, 0, 0, i as u32)[0];
            if bits.is_multiple_of(5) {
                (bits >> 8) as u8
            } else {
                0
            }
        })
        .collect()
}

fn config(fake_bn: FakeBnMode) -> ModelConfig {
    ModelConfig {
        batch: BATCH,
        fake_bn,
        ..ModelConfig::default()
    }
}

fn check_parity(fake_bn: FakeBnMode) {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    let cfg = config(fake_bn);
    let weights = Weights::initial(cfg.latent_dim, SEED);
    let images = synthetic_images(64);
    let mut cpu = CpuTrainer::new(cfg, weights.clone(), SEED, images.clone());
    let mut gpu = GpuTrainer::new(ctx, cfg, &weights, SEED, &images, 4).expect("GPU trainer");

    for step in 1..=STEPS {
        cpu.step().expect("CPU step");
        gpu.step().expect("GPU step");
        let (c, g) = (cpu.metrics().unwrap(), gpu.metrics().unwrap());
        let label = format!("{fake_bn:?} step {step}");
        assert_close(
            &format!("{label} d_loss_real"),
            &[g.d_loss_real],
            &[c.d_loss_real],
            0.0,
            LOSS_ATOL,
        );
        assert_close(
            &format!("{label} d_loss_fake"),
            &[g.d_loss_fake],
            &[c.d_loss_fake],
            0.0,
            LOSS_ATOL,
        );
        assert_close(
            &format!("{label} g_loss"),
            &[g.g_loss],
            &[c.g_loss],
            0.0,
            LOSS_ATOL,
        );
        assert_eq!(
            (g.d_acc_real, g.d_acc_fake),
            (c.d_acc_real, c.d_acc_fake),
            "{label} accuracy"
        );
    }
    let (cw, gw) = (cpu.weights().unwrap(), gpu.weights().unwrap());
    for ((spec, c), (_, g)) in cw.iter().zip(gw.iter()) {
        assert_close(
            &format!("{fake_bn:?} {}", spec.name),
            g,
            c,
            WEIGHT_RTOL,
            WEIGHT_ATOL,
        );
    }
}

#[test]
fn gpu_steps_match_cpu_steps_with_training_mode_fakes() {
    check_parity(FakeBnMode::Training);
}

#[test]
fn gpu_steps_match_cpu_steps_with_inference_mode_fakes() {
    check_parity(FakeBnMode::Inference);
}

#[test]
fn non_logging_step_moves_only_the_step_uniform() {
    // A context of its own: the shared one's counters also count other tests' work.
    let Some(ctx) = common::gpu::fresh_context() else {
        return;
    };
    let cfg = config(FakeBnMode::Training);
    let weights = Weights::initial(cfg.latent_dim, SEED);
    let mut gpu = GpuTrainer::new(ctx, cfg, &weights, SEED, &synthetic_images(16), 4).unwrap();
    gpu.step().unwrap();
    let before = gpu.bytes_transferred();
    let objects = gpu.context().objects_created();
    gpu.step().unwrap();
    gpu.step().unwrap();
    let per_step = (gpu.bytes_transferred() - before) / 2;
    assert!(
        per_step <= 256,
        "a step moved {per_step} bytes between CPU and GPU"
    );
    assert_eq!(
        gpu.context().objects_created(),
        objects,
        "a step created GPU objects"
    );
}

fn grid_keeps_running_stats(trainer: &mut dyn Trainer, latent: usize) {
    trainer.step().unwrap();
    let before = trainer.weights().unwrap();
    trainer.generate(&sample_latents(1, 4, latent)).unwrap();
    let after = trainer.weights().unwrap();
    for ((spec, b), (_, a)) in before.iter().zip(after.iter()) {
        assert_eq!(a, b, "{} changed while writing a sample grid", spec.name);
    }
}

#[test]
fn sample_grid_leaves_running_statistics_unchanged_on_cpu() {
    let cfg = config(FakeBnMode::Training);
    let weights = Weights::initial(cfg.latent_dim, SEED);
    let mut cpu = CpuTrainer::new(cfg, weights, SEED, synthetic_images(16));
    grid_keeps_running_stats(&mut cpu, cfg.latent_dim);
}

#[test]
fn sample_grid_leaves_running_statistics_unchanged_on_gpu() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    let cfg = config(FakeBnMode::Training);
    let weights = Weights::initial(cfg.latent_dim, SEED);
    let mut gpu = GpuTrainer::new(ctx, cfg, &weights, SEED, &synthetic_images(16), 4).unwrap();
    grid_keeps_running_stats(&mut gpu, cfg.latent_dim);
}
