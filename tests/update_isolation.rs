//! Each half of a step changes only its own model: D's two updates leave G's weights and
//! Adam moments as they were, and G's update through the frozen D leaves D's weights and
//! moments bit-identical. Also, running the halves one at a time is exactly a step.

mod common;

use gan_gpu::model::{FakeBnMode, IMAGE_LEN, ModelConfig, TensorSet, Weights};
use gan_gpu::rng::random_bits;
use gan_gpu::train::cpu::CpuTrainer;
use gan_gpu::train::gpu::GpuTrainer;
use gan_gpu::train::{Half, TrainState, Trainer};

const BATCH: usize = 4;
const SEED: u64 = 0x150_1a7e;

fn images(count: usize) -> Vec<u8> {
    (0..count * IMAGE_LEN)
        .map(|i| (random_bits(7, 0, 0, i as u32)[0] >> 24) as u8)
        .collect()
}

fn config() -> ModelConfig {
    ModelConfig {
        batch: BATCH,
        fake_bn: FakeBnMode::Training,
        ..ModelConfig::default()
    }
}

/// Every value's bit pattern, so that -0.0 and 0.0 (or two NaNs) are told apart.
fn bits(set: &TensorSet) -> Vec<Vec<u32>> {
    set.data
        .iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// G's parameters and moments, or D's.
fn model(state: &TrainState, generator: bool) -> [Vec<Vec<u32>>; 3] {
    if generator {
        [bits(&state.weights.g), bits(&state.g_m), bits(&state.g_v)]
    } else {
        [bits(&state.weights.d), bits(&state.d_m), bits(&state.d_v)]
    }
}

fn check_isolation(trainer: &mut dyn Trainer) {
    // One full step first, so that every moment is non-zero and a stray update would show.
    trainer.step().unwrap();
    let start = trainer.state().unwrap();

    trainer.half_step(Half::Discriminator).unwrap();
    let after_d = trainer.state().unwrap();
    assert_eq!(
        model(&after_d, true),
        model(&start, true),
        "D's updates changed G's weights or Adam moments"
    );
    assert_ne!(
        model(&after_d, false)[0],
        model(&start, false)[0],
        "D's updates did not change D"
    );
    assert_eq!(after_d.step, start.step, "the D half advanced the step");

    trainer.half_step(Half::Generator).unwrap();
    let after_g = trainer.state().unwrap();
    assert_eq!(
        model(&after_g, false),
        model(&after_d, false),
        "G's update changed D's weights or Adam moments"
    );
    assert_ne!(
        model(&after_g, true)[0],
        model(&after_d, true)[0],
        "G's update did not change G"
    );
    assert_eq!(after_g.step, start.step + 1);
}

/// Two halves from the state after one step equal one more full step, bit for bit.
fn check_halves_make_a_step(by_halves: &mut dyn Trainer, by_steps: &mut dyn Trainer) {
    by_halves.step().unwrap();
    by_halves.half_step(Half::Discriminator).unwrap();
    by_halves.half_step(Half::Generator).unwrap();
    by_steps.step().unwrap();
    by_steps.step().unwrap();
    let (a, b) = (by_halves.state().unwrap(), by_steps.state().unwrap());
    assert_eq!(a.step, b.step);
    for generator in [true, false] {
        assert_eq!(model(&a, generator), model(&b, generator));
    }
    assert_eq!(bits(&a.weights.g_state), bits(&b.weights.g_state));
}

fn cpu_trainer() -> CpuTrainer {
    let cfg = config();
    CpuTrainer::new(
        cfg,
        Weights::initial(cfg.latent_dim, SEED),
        SEED,
        images(16),
    )
}

fn gpu_trainer() -> Option<GpuTrainer> {
    let ctx = common::gpu::context()?;
    let cfg = config();
    let weights = Weights::initial(cfg.latent_dim, SEED);
    Some(GpuTrainer::new(ctx, cfg, &weights, SEED, &images(16), 4).expect("GPU trainer"))
}

#[test]
fn halves_update_only_their_own_model_on_cpu() {
    check_isolation(&mut cpu_trainer());
}

#[test]
fn halves_update_only_their_own_model_on_gpu() {
    let Some(mut gpu) = gpu_trainer() else {
        return;
    };
    check_isolation(&mut gpu);
}

#[test]
fn two_halves_are_one_step_on_cpu() {
    check_halves_make_a_step(&mut cpu_trainer(), &mut cpu_trainer());
}

#[test]
fn two_halves_are_one_step_on_gpu() {
    let (Some(mut a), Some(mut b)) = (gpu_trainer(), gpu_trainer()) else {
        return;
    };
    check_halves_make_a_step(&mut a, &mut b);
}
