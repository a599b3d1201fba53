//! Training loops on the CPU reference and on the GPU. Both run the same step, described
//! once here:
//!
//! 1. draw `batch` real images (indices from the `BATCH_INDICES` stream) and two sets of
//!    latent vectors (`NOISE_D`, `NOISE_G`), or take them injected;
//! 2. G makes fakes from `noise_d`, its BatchNorm in `--fake-bn` mode;
//! 3. D is updated on the real batch (target 1), then on the fakes (target 0): two Adam
//!    updates with step counts 2s+1 and 2s+2 for 0-based step s;
//! 4. G is updated through a frozen D on `noise_g` (target 1, G's BatchNorm in training
//!    mode, D's dropout still active), Adam step count s+1.

pub mod cpu;
pub mod gpu;

use crate::Result;
use crate::model::{TensorSet, Weights};

/// The numbers a step reports, each measured before that update's weight change.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepMetrics {
    pub d_loss_real: f32,
    pub d_loss_fake: f32,
    pub d_acc_real: f32,
    pub d_acc_fake: f32,
    pub g_loss: f32,
}

impl StepMetrics {
    /// D's loss as the reference reports it: the mean of its two updates' losses.
    pub fn d_loss(&self) -> f32 {
        0.5 * (self.d_loss_real + self.d_loss_fake)
    }

    /// D's accuracy over both batches.
    pub fn d_acc(&self) -> f32 {
        0.5 * (self.d_acc_real + self.d_acc_fake)
    }

    pub fn is_finite(&self) -> bool {
        [self.d_loss_real, self.d_loss_fake, self.g_loss]
            .iter()
            .all(|x| x.is_finite())
    }
}

/// A step's inputs given from outside instead of drawn from the step's random streams.
#[derive(Clone, Debug)]
pub struct StepInputs {
    /// `[batch, 1, 28, 28]` in [-1, 1].
    pub real: Vec<f32>,
    /// `[batch, latent]`.
    pub noise_d: Vec<f32>,
    /// `[batch, latent]`.
    pub noise_g: Vec<f32>,
}

/// Everything a run needs to continue exactly where it stopped. The random streams are
/// counter-based (seed, step, element), so the seed and `step` stand in for a generator state.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub weights: Weights,
    /// Adam's first and second moments, shaped like `weights.g` and `weights.d`.
    pub g_m: TensorSet,
    pub g_v: TensorSet,
    pub d_m: TensorSet,
    pub d_v: TensorSet,
    /// Steps completed; Adam's step counts follow from it (see [`adam_steps`]).
    pub step: u64,
}

impl TrainState {
    /// The state before the first step: the given weights and zero moments.
    pub fn fresh(weights: Weights) -> Self {
        TrainState {
            g_m: TensorSet::zeros(weights.g.specs.clone()),
            g_v: TensorSet::zeros(weights.g.specs.clone()),
            d_m: TensorSet::zeros(weights.d.specs.clone()),
            d_v: TensorSet::zeros(weights.d.specs.clone()),
            weights,
            step: 0,
        }
    }
}

/// The two halves of a step. A step is the D half followed by the G half; running them one
/// at a time lets a caller look at the state in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// Draw the real batch and D's noise, make the fakes, update D twice.
    Discriminator,
    /// Draw G's noise and update G through the frozen D; the step count then advances.
    Generator,
}

/// What the command line needs from either device.
pub trait Trainer {
    /// Runs one step with inputs drawn from the random streams.
    fn step(&mut self) -> Result<()>;
    /// Runs one half of the current step with inputs drawn from the random streams.
    fn half_step(&mut self, half: Half) -> Result<()>;
    /// Runs one step on the given inputs.
    fn step_with(&mut self, inputs: &StepInputs) -> Result<()>;
    /// The metrics of the most recent step (on the GPU this waits for it and reads back).
    fn metrics(&mut self) -> Result<StepMetrics>;
    /// G's output in inference mode for the given latent vectors `[count, latent]`; BatchNorm
    /// running statistics are read, never changed.
    fn generate(&mut self, latent: &[f32]) -> Result<Vec<f32>>;
    /// All weights and running statistics as they are now.
    fn weights(&mut self) -> Result<Weights>;
    /// Weights, running statistics, Adam moments and step count as they are now.
    fn state(&mut self) -> Result<TrainState>;
    /// Steps completed.
    fn steps_done(&self) -> u64;
    /// CPU<->GPU bytes moved so far (0 on the CPU).
    fn bytes_transferred(&self) -> u64 {
        0
    }
}

/// Keras 2's Adam step counts of a 0-based training step: D's real and fake updates, G's.
pub fn adam_steps(step: u64) -> [u32; 3] {
    [
        (2 * step + 1) as u32,
        (2 * step + 2) as u32,
        (step + 1) as u32,
    ]
}

/// Latent vectors of the fixed sample grid: drawn once from the seed, never from the step.
pub fn sample_latents(seed: u64, count: usize, latent: usize) -> Vec<f32> {
    let mut z = vec![0.0; count * latent];
    crate::cpu::normal_noise(seed, 0, crate::rng::streams::SAMPLE_LATENT, &mut z);
    z
}
