//! Using a trained generator: its latent vectors, walks between them, and generation in
//! batches of a fixed size.
//!
//! Latent vectors are drawn from the counter-based streams like everything else, so sample
//! `i` of a seed is the same whatever the count and the batch size, on either device.

use crate::cpu::normal_noise;
use crate::gpu::GpuContext;
use crate::model::{IMAGE_LEN, ModelConfig, Weights};
use crate::rng::{normal_from_bits, random_bits, streams};
use crate::train::cpu::CpuTrainer;
use crate::train::gpu::GpuTrainer;
use crate::train::{TrainState, Trainer};
use crate::{Error, Result};

/// Latent vectors `first..first + count` of `seed`: vector `i` is elements
/// `i * latent..(i + 1) * latent` of the `SAMPLE_LATENT` stream at step 0. These are the
/// vectors of a training run's sample grids, so the first `rows * cols` samples of a run's
/// seed are the cells of its `mnist_<step>.png`.
pub fn sample_latents(seed: u64, first: usize, count: usize, latent: usize) -> Result<Vec<f32>> {
    stream_values(seed, streams::SAMPLE_LATENT, first, count, latent)
}

/// `count` vectors of `latent` normal values starting at vector `first` of one stream.
fn stream_values(
    seed: u64,
    stream: u32,
    first: usize,
    count: usize,
    latent: usize,
) -> Result<Vec<f32>> {
    let end = first
        .checked_add(count)
        .and_then(|n| n.checked_mul(latent))
        .filter(|&n| n <= u32::MAX as usize + 1)
        .ok_or_else(|| {
            Error::Config(format!(
                "latent vectors up to {} of size {latent} are past the 2^32 values a random \
                 stream holds",
                first.saturating_add(count)
            ))
        })?;
    if first == 0 {
        let mut z = vec![0.0; end];
        normal_noise(seed, 0, stream, &mut z);
        return Ok(z);
    }
    Ok((first * latent..end)
        .map(|e| {
            let b = random_bits(seed, 0, stream, e as u32);
            normal_from_bits(b[0], b[1])
        })
        .collect())
}

/// Spherical interpolation between `a` and `b` at `t` in [0, 1]: along the great circle
/// through them, with the norm interpolated linearly, so intermediate vectors keep the length
/// of typical Gaussian samples instead of shrinking towards the origin as a straight line
/// does. Nearly parallel vectors fall back to a straight line.
pub fn slerp(a: &[f32], b: &[f32], t: f32, out: &mut [f32]) {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let t = t as f64;
    let cos = if na > 0.0 && nb > 0.0 {
        (dot / (na * nb)).clamp(-1.0, 1.0)
    } else {
        1.0
    };
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        (
            ((1.0 - t) * omega).sin() / omega.sin(),
            (t * omega).sin() / omega.sin(),
        )
    };
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = (wa * x as f64 + wb * y as f64) as f32;
    }
}

/// A looping walk through latent space for each cell of a grid: `points` random points per
/// cell, visited in order and back to the first, `frames_per_segment` frames from one point
/// to the next (the point itself is the segment's first frame).
#[derive(Clone, Debug)]
pub struct LatentWalk {
    /// `[points, cells, latent]`.
    points: Vec<f32>,
    n_points: usize,
    cells: usize,
    latent: usize,
    frames_per_segment: usize,
}

impl LatentWalk {
    /// Points drawn from `seed`'s `INTERPOLATION` stream: point `p` of cell `c` is vector
    /// `p * cells + c` of it.
    pub fn new(
        seed: u64,
        points: usize,
        cells: usize,
        latent: usize,
        frames_per_segment: usize,
    ) -> Result<Self> {
        if points < 2 || cells == 0 || latent == 0 || frames_per_segment == 0 {
            return Err(Error::Config(format!(
                "a latent walk needs at least 2 points, 1 cell and 1 frame per segment (got \
                 {points} points, {cells} cells, {frames_per_segment} frames per segment)"
            )));
        }
        let vectors = points.checked_mul(cells).ok_or_else(|| {
            Error::Config(format!(
                "{points} points for each of {cells} cells is too many"
            ))
        })?;
        Ok(LatentWalk {
            points: stream_values(seed, streams::INTERPOLATION, 0, vectors, latent)?,
            n_points: points,
            cells,
            latent,
            frames_per_segment,
        })
    }

    /// Frames of the whole loop.
    pub fn frames(&self) -> usize {
        self.n_points * self.frames_per_segment
    }

    pub fn cells(&self) -> usize {
        self.cells
    }

    /// The latent vectors of items `first..first + count`, item `i` being cell
    /// `i % cells` of frame `i / cells`.
    pub fn latents(&self, first: usize, count: usize) -> Vec<f32> {
        let l = self.latent;
        let mut out = vec![0.0; count * l];
        for (k, z) in out.chunks_exact_mut(l).enumerate() {
            let item = first + k;
            let (frame, cell) = (item / self.cells, item % self.cells);
            let segment = (frame / self.frames_per_segment) % self.n_points;
            let t = (frame % self.frames_per_segment) as f32 / self.frames_per_segment as f32;
            let point = |p: usize| {
                let v = (p % self.n_points) * self.cells + cell;
                &self.points[v * l..(v + 1) * l]
            };
            slerp(point(segment), point(segment + 1), t, z);
        }
        out
    }
}

/// G on its own for sampling, on the GPU: the weights are uploaded, no training set is, and
/// the training step's buffers are those of a batch of one. Its inference plan for `batch`
/// vectors is recorded up front; [`generate_batched`] only ever asks for that size.
pub fn gpu_generator(
    ctx: GpuContext,
    config: ModelConfig,
    weights: &Weights,
    batch: usize,
) -> Result<GpuTrainer> {
    let config = ModelConfig { batch: 1, ..config };
    let state = TrainState::fresh(weights.clone());
    GpuTrainer::from_state(ctx, config, &state, 0, &[], batch)
}

/// G on its own for sampling, on the CPU reference.
pub fn cpu_generator(config: ModelConfig, weights: &Weights) -> CpuTrainer {
    CpuTrainer::from_state(config, TrainState::fresh(weights.clone()), 0, Vec::new())
}

/// Runs G in inference mode on `count` latent vectors, `batch` at a time (fewer when
/// `count` is smaller), and hands each batch's images (`[n, 784]` in [-1, 1]) to `sink` with
/// the index of its first item. `latents(first, n)` gives the vectors of items
/// `first..first + n`. Every `generate` call has the same size (a short last batch is padded
/// with zero vectors and the padding dropped), so the GPU records one plan and holds one
/// batch's activations however many samples are made.
pub fn generate_batched(
    trainer: &mut dyn Trainer,
    latent_dim: usize,
    count: usize,
    batch: usize,
    mut latents: impl FnMut(usize, usize) -> Result<Vec<f32>>,
    mut sink: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    if batch == 0 {
        return Err(Error::Config("the batch size must be at least 1".into()));
    }
    let size = batch.min(count);
    let mut first = 0;
    while first < count {
        let n = size.min(count - first);
        let mut z = latents(first, n)?;
        if z.len() != n * latent_dim {
            return Err(Error::ShapeMismatch {
                op: "generate_batched latents".into(),
                expected: format!("{} values", n * latent_dim),
                got: z.len().to_string(),
            });
        }
        z.resize(size * latent_dim, 0.0);
        let images = trainer.generate(&z)?;
        sink(first, &images[..n * IMAGE_LEN])?;
        first += n;
    }
    Ok(())
}
