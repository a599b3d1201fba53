//! `gan-gpu interpolate`: a looping walk through latent space, as a GIF of a grid.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use gan_gpu::checkpoint::Checkpoint;
use gan_gpu::images::GridGif;
use gan_gpu::model::{IMAGE_LEN, IMAGE_SIDE};
use gan_gpu::sample::{LatentWalk, generate_batched};

use super::device;

#[derive(Args, Debug)]
pub struct InterpolateArgs {
    /// Checkpoint whose G draws the walk (or a file of weights only).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The looping GIF to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Random latent points each cell's walk passes through, then back to the first.
    #[arg(long, default_value_t = 4)]
    pub points: usize,
    /// Frames from one point to the next (spherical interpolation).
    #[arg(long, default_value_t = 24)]
    pub frames_per_segment: usize,
    /// Rows of the grid: one walk per cell.
    #[arg(long, default_value_t = 4)]
    pub grid_rows: usize,
    /// Columns of the grid.
    #[arg(long, default_value_t = 4)]
    pub grid_cols: usize,
    /// Upscaling factor of the grid, in screen pixels per image pixel.
    #[arg(long, default_value_t = 4)]
    pub grid_scale: u32,
    /// Seconds each frame shows (stored in hundredths).
    #[arg(long, default_value_t = 0.08)]
    pub frame_duration: f64,
    /// Seed of the latent points [default: the run's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Latent vectors G runs on at once.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub on: device::GeneratorDevice,
}

pub fn run(args: InterpolateArgs) -> anyhow::Result<()> {
    let positive = [
        ("--points", args.points),
        ("--frames-per-segment", args.frames_per_segment),
        ("--grid-rows", args.grid_rows),
        ("--grid-cols", args.grid_cols),
        ("--grid-scale", args.grid_scale as usize),
        ("--batch-size", args.batch_size),
    ];
    for (flag, value) in positive {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if args.points < 2 {
        bail!("--points must be at least 2 (a walk goes from one point to another)");
    }
    if !(args.frame_duration > 0.0 && args.frame_duration <= 655.35) {
        bail!("--frame-duration must be between 0.01 and 655.35 seconds");
    }
    let ckpt = Checkpoint::load(&args.checkpoint).context("reading the checkpoint")?;
    let seed = args.seed.or(ckpt.run.as_ref().map(|r| r.seed)).unwrap_or(0);
    let latent = ckpt.config.latent_dim;
    let cells = args.grid_rows * args.grid_cols;
    let walk = LatentWalk::new(seed, args.points, cells, latent, args.frames_per_segment)?;
    let items = walk.frames() * cells;
    let batch = args.batch_size.min(items);
    let mut gif = GridGif::new(
        args.grid_rows,
        args.grid_cols,
        IMAGE_SIDE,
        IMAGE_SIDE,
        args.grid_scale,
        args.frame_duration,
        &args.out,
    )?;
    let mut g = device::generator(
        args.on.device,
        args.on.adapter.as_deref(),
        ckpt.config,
        &ckpt.state.weights,
        batch,
    )?;

    // Batches cut across frames: collect images until a frame's grid is whole.
    let frame_len = cells * IMAGE_LEN;
    let mut pending: Vec<f32> = Vec::with_capacity(frame_len + batch * IMAGE_LEN);
    generate_batched(
        g.as_mut(),
        latent,
        items,
        batch,
        |first, n| Ok(walk.latents(first, n)),
        |_, images| {
            pending.extend_from_slice(images);
            while pending.len() >= frame_len {
                gif.push(&pending[..frame_len])?;
                pending.drain(..frame_len);
            }
            Ok(())
        },
    )
    .context("generating the walk")?;
    let frames = gif.frames();
    gif.finish()
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {frames} frames of a {}x{} grid, {} points per cell (seed {seed})",
        args.out.display(),
        args.grid_rows,
        args.grid_cols,
        args.points
    );
    Ok(())
}
