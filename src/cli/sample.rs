//! `gan-gpu sample`: images from a trained generator, as a grid, single PNGs or IDX.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use gan_gpu::checkpoint::Checkpoint;
use gan_gpu::data::ImagesWriter;
use gan_gpu::images::{grid_png, to_gray};
use gan_gpu::model::{IMAGE_LEN, IMAGE_SIDE};
use gan_gpu::sample::{generate_batched, sample_latents};

use super::device;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Checkpoint whose G makes the samples (any checkpoint_<step>.safetensors, or a file of
    /// weights only).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// How many samples to make.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Seed of the latent vectors; sample i is the same whatever --count and --batch-size
    /// [default: the run's seed, so the first samples are the cells of its sample grids].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write all samples as one grid PNG, row by row.
    #[arg(long, value_name = "PNG")]
    pub grid: Option<PathBuf>,
    /// Rows of the grid [default: as many as --count needs].
    #[arg(long)]
    pub grid_rows: Option<usize>,
    /// Columns of the grid [default: the square root of --count, rounded up].
    #[arg(long)]
    pub grid_cols: Option<usize>,
    /// Upscaling factor of the grid, in screen pixels per image pixel.
    #[arg(long, default_value_t = 4)]
    pub grid_scale: u32,
    /// Write each sample as its own 28x28 grayscale PNG in this folder (sample_0000.png,
    /// sample_0001.png, ...).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write the samples as an IDX images file in MNIST's format (gzipped when the name ends
    /// in .gz), pixel = round((x + 1) * 127.5), for tools that score samples.
    #[arg(long, value_name = "FILE")]
    pub idx: Option<PathBuf>,
    /// Latent vectors G runs on at once: the GPU holds this many images' activations,
    /// whatever --count is.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub on: device::GeneratorDevice,
}

/// Rows and columns of a grid for `count` images, from what was given.
pub fn grid_shape(
    count: usize,
    rows: Option<usize>,
    cols: Option<usize>,
) -> anyhow::Result<(usize, usize)> {
    let (rows, cols) = match (rows, cols) {
        (Some(r), Some(c)) => (r, c),
        (Some(r), None) => (r, count.div_ceil(r.max(1))),
        (None, Some(c)) => (count.div_ceil(c.max(1)), c),
        (None, None) => {
            let c = (count as f64).sqrt().ceil() as usize;
            (count.div_ceil(c.max(1)), c)
        }
    };
    if rows == 0 || cols == 0 {
        bail!("--grid-rows and --grid-cols must be at least 1");
    }
    if rows.saturating_mul(cols) < count {
        bail!(
            "a {rows}x{cols} grid holds {} images, fewer than --count {count}",
            rows * cols
        );
    }
    Ok((rows, cols))
}

pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.batch_size == 0 || args.grid_scale == 0 {
        bail!("--count, --batch-size and --grid-scale must be at least 1");
    }
    if args.grid.is_none() && args.dir.is_none() && args.idx.is_none() {
        bail!("nothing to write: give --grid PNG, --dir DIR or --idx FILE (or several)");
    }
    let grid = match &args.grid {
        Some(path) => Some((
            path,
            grid_shape(args.count, args.grid_rows, args.grid_cols)?,
        )),
        None => None,
    };
    let ckpt = Checkpoint::load(&args.checkpoint).context("reading the checkpoint")?;
    let seed = args.seed.or(ckpt.run.as_ref().map(|r| r.seed)).unwrap_or(0);
    let latent = ckpt.config.latent_dim;
    let batch = args.batch_size.min(args.count);
    let mut g = device::generator(
        args.on.device,
        args.on.adapter.as_deref(),
        ckpt.config,
        &ckpt.state.weights,
        batch,
    )?;

    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut idx = match &args.idx {
        Some(path) => Some(
            ImagesWriter::create(path, args.count, IMAGE_SIDE, IMAGE_SIDE)
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    let digits = (args.count - 1).to_string().len().max(4);
    let mut kept = Vec::new();
    let bar = ProgressBar::new(args.count as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} samples  ETA {eta}") {
        bar.set_style(style);
    }
    generate_batched(
        g.as_mut(),
        latent,
        args.count,
        batch,
        |first, n| sample_latents(seed, first, n, latent),
        |first, images| {
            if let Some(idx) = idx.as_mut() {
                let gray: Vec<u8> = images.iter().map(|&x| to_gray(x)).collect();
                idx.write(&gray)?;
            }
            if let Some(dir) = &args.dir {
                for (k, image) in images.chunks_exact(IMAGE_LEN).enumerate() {
                    let path = dir.join(format!("sample_{:0digits$}.png", first + k));
                    grid_png(image, 1, 1, IMAGE_SIDE, IMAGE_SIDE, 1, &path)?;
                }
            }
            if grid.is_some() {
                kept.extend_from_slice(images);
            }
            bar.inc((images.len() / IMAGE_LEN) as u64);
            Ok(())
        },
    )
    .context("generating samples")?;
    bar.finish_and_clear();

    let mut wrote = Vec::new();
    if let (Some(writer), Some(path)) = (idx, &args.idx) {
        writer
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        wrote.push(path.display().to_string());
    }
    if let Some(dir) = &args.dir {
        wrote.push(format!("{}/sample_*.png", dir.display()));
    }
    if let Some((path, (rows, cols))) = grid {
        grid_png(
            &kept,
            rows,
            cols,
            IMAGE_SIDE,
            IMAGE_SIDE,
            args.grid_scale,
            path,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        wrote.push(format!("{} ({rows}x{cols})", path.display()));
    }
    println!(
        "{} samples (seed {seed}) from {}: wrote {}",
        args.count,
        args.checkpoint.display(),
        wrote.join(", ")
    );
    Ok(())
}
