//! The whole training step: time per step on the GPU at several batch sizes and on the CPU
//! reference, and what a step costs in launches, submissions, new objects and traffic.

use std::time::{Duration, Instant};

use super::inventory::step_flops;
use crate::Result;
use crate::gpu::GpuContext;
use crate::model::{IMAGE_LEN, ModelConfig, Weights};
use crate::train::Trainer;
use crate::train::cpu::CpuTrainer;
use crate::train::gpu::GpuTrainer;

/// When the step count is not given, each block of steps is timed for about this long.
pub const STEP_BUDGET: Duration = Duration::from_secs(1);

/// Most steps per block when the count is not given.
const MAX_STEPS: usize = 20;

/// Blocks of steps timed one after the other; the time per step is the median block's, as a
/// kernel's is its median sample's, so that one slow spell of a shared machine does not make
/// the figure (on a 2-core virtual machine one block in several can run 1.3 times slower).
pub const STEP_BLOCKS: usize = 3;

/// One row of the step table. Counts are per step.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepEntry {
    /// `"gpu"` or `"cpu"`.
    pub device: &'static str,
    pub batch: usize,
    /// Steps timed (after one warm-up step on the GPU).
    pub steps_timed: usize,
    pub ms_per_step: f64,
    pub images_per_s: f64,
    /// The step's floating-point work (`bench::inventory::step_flops`), in GFLOP.
    pub gflop_per_step: f64,
    /// That work over the time per step.
    pub gflops: f64,
    /// Kernel launches, command buffers, queue submissions, GPU objects created and bytes
    /// moved between CPU and GPU, per step (all 0 on the CPU).
    pub dispatches: f64,
    pub command_buffers: f64,
    pub submits: f64,
    pub objects_created: f64,
    pub bytes_transferred: f64,
}

/// Synthetic training images, `count` of `IMAGE_LEN` bytes: the step's cost does not depend
/// on what the pixels are.
pub fn synthetic_images(count: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut images = vec![0; count * IMAGE_LEN];
    rng.fill_bytes(&mut images);
    images
}

/// Times [`STEP_BLOCKS`] blocks of `steps` GPU training steps at `batch` (`None`: as many as
/// fit in [`STEP_BUDGET`], judged by a warm-up step), each submitted back to back as training
/// does until the block's last metrics are read back, and reports the median block. The
/// counters cover the timed steps' submissions only.
pub fn time_gpu_steps(
    ctx: &GpuContext,
    cfg: &ModelConfig,
    batch: usize,
    images: &[u8],
    steps: Option<usize>,
) -> Result<StepEntry> {
    let cfg = ModelConfig { batch, ..*cfg };
    let weights = Weights::initial(cfg.latent_dim, 1);
    let mut trainer = GpuTrainer::new(ctx.clone(), cfg, &weights, 1, images, 1)?;

    // Warm-up: the first step also clears the freshly allocated buffers.
    let start = Instant::now();
    trainer.step()?;
    trainer.metrics()?;
    let warm = start.elapsed().as_secs_f64();
    let steps = steps.unwrap_or_else(|| {
        ((STEP_BUDGET.as_secs_f64() / warm.max(1e-6)) as usize).clamp(1, MAX_STEPS)
    });

    let counters = |c: &GpuContext| {
        [
            c.dispatches(),
            c.command_buffers(),
            c.submits(),
            c.objects_created(),
            c.bytes_transferred(),
        ]
    };
    let mut blocks = Vec::with_capacity(STEP_BLOCKS);
    let mut counted = [0u64; 5];
    for _ in 0..STEP_BLOCKS {
        let before = counters(ctx);
        let start = Instant::now();
        for _ in 0..steps {
            trainer.step()?;
        }
        let after = counters(ctx);
        trainer.metrics()?;
        blocks.push(start.elapsed().as_secs_f64());
        for (total, (a, b)) in counted.iter_mut().zip(after.iter().zip(before)) {
            *total += a - b;
        }
    }
    blocks.sort_by(f64::total_cmp);
    let median = blocks[STEP_BLOCKS / 2];

    let timed = steps * STEP_BLOCKS;
    let per_step = |i: usize| counted[i] as f64 / timed as f64;
    let flop = step_flops(&cfg, batch, images.len() / IMAGE_LEN) as f64;
    // The median block's time per step, over all the blocks' steps.
    let seconds = median * STEP_BLOCKS as f64;
    Ok(entry("gpu", batch, timed, seconds, flop, per_step))
}

/// Times `steps` steps of the CPU reference at `batch`, from the start (no warm-up: its
/// first step is like any other).
pub fn time_cpu_steps(
    cfg: &ModelConfig,
    batch: usize,
    images: &[u8],
    steps: usize,
) -> Result<StepEntry> {
    let cfg = ModelConfig { batch, ..*cfg };
    let weights = Weights::initial(cfg.latent_dim, 1);
    let mut trainer = CpuTrainer::new(cfg, weights, 1, images.to_vec());
    let steps = steps.max(1);
    let start = Instant::now();
    for _ in 0..steps {
        trainer.step()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let flop = step_flops(&cfg, batch, images.len() / IMAGE_LEN) as f64;
    Ok(entry("cpu", batch, steps, seconds, flop, |_| 0.0))
}

fn entry(
    device: &'static str,
    batch: usize,
    steps: usize,
    seconds: f64,
    flop: f64,
    per_step: impl Fn(usize) -> f64,
) -> StepEntry {
    let step_s = seconds / steps as f64;
    StepEntry {
        device,
        batch,
        steps_timed: steps,
        ms_per_step: 1e3 * step_s,
        images_per_s: batch as f64 / step_s,
        gflop_per_step: flop * 1e-9,
        gflops: flop * 1e-9 / step_s,
        dispatches: per_step(0),
        command_buffers: per_step(1),
        submits: per_step(2),
        objects_created: per_step(3),
        bytes_transferred: per_step(4),
    }
}
