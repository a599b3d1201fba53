//! `gan-gpu train`: the training loop around either trainer, and its outputs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use gan_gpu::data::{self, Dataset};
use gan_gpu::gpu::GpuContext;
use gan_gpu::model::{FakeBnMode, IMAGE_SIDE, ModelConfig, Weights};
use gan_gpu::train::cpu::CpuTrainer;
use gan_gpu::train::gpu::GpuTrainer;
use gan_gpu::train::{StepMetrics, Trainer, sample_latents};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// WGSL kernels through wgpu (Vulkan, Metal, DX12, or lavapipe on the CPU).
    Gpu,
    /// The plain CPU reference implementation: slow, for checking.
    Cpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    Mnist,
    FashionMnist,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training steps (each: two D updates and one G update).
    #[arg(long, default_value_t = 200_000)]
    pub steps: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Write a sample grid every this many steps (and at step 0 and the last step).
    #[arg(long, default_value_t = 5000)]
    pub save_interval: u64,
    /// Log losses and append to metrics.csv every this many steps.
    #[arg(long, default_value_t = 100)]
    pub log_interval: u64,
    /// Output folder for sample grids, metrics.csv, run.json and training.gif.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Reuse an --out folder that already holds a run (its files are overwritten).
    #[arg(long)]
    pub force: bool,
    /// Random seed for initial weights, batches, noise and dropout [default: random,
    /// recorded in run.json].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adam learning rate (both models).
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f32,
    /// Adam beta1 (both models).
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f32,
    /// Size of the latent vector G draws from N(0, 1).
    #[arg(long, default_value_t = 100)]
    pub latent_dim: usize,
    /// GPU adapter, by index or by a part of its name (see `gan-gpu devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Where the step runs.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// BatchNorm mode of G when it makes D's fakes. `inference` reproduces the reference
    /// Keras program exactly (it calls generator.predict), but stalls early: D reaches 100%
    /// accuracy and G's loss sits near 0 for hundreds of steps until the slow moving
    /// averages catch up. `training` uses the fake batch's own statistics (and updates the
    /// running ones), as PyTorch DCGANs do, and trains well from the start.
    #[arg(long, value_enum, default_value_t = FakeBnMode::Training)]
    pub fake_bn: FakeBnMode,
    /// Folder with the IDX files (train-images-idx3-ubyte[.gz], ...). Without it the files are
    /// taken from, or downloaded into, a per-user cache folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which dataset to train on.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    pub dataset: DatasetArg,
    /// Base URL to download the dataset from instead of the public mirrors.
    #[arg(long)]
    pub mirror: Option<String>,
    /// Rows of the sample grid.
    #[arg(long, default_value_t = 5)]
    pub grid_rows: usize,
    /// Columns of the sample grid.
    #[arg(long, default_value_t = 5)]
    pub grid_cols: usize,
    /// Upscaling factor of the sample grid, in screen pixels per image pixel.
    #[arg(long, default_value_t = 4)]
    pub grid_scale: u32,
    /// Seconds each frame shows in training.gif.
    #[arg(long, default_value_t = 0.5)]
    pub frame_duration: f64,
}

const METRICS_HEADER: &str =
    "step,d_loss,d_loss_real,d_loss_fake,d_acc,g_loss,ms_per_step,images_per_s";

pub fn run(args: TrainArgs, verbose: bool) -> anyhow::Result<()> {
    validate(&args)?;
    let seed = args.seed.unwrap_or_else(fresh_seed);
    prepare_out_dir(&args.out, args.force)?;

    // Data, then the trainer on the chosen device.
    let dataset = match args.dataset {
        DatasetArg::Mnist => Dataset::Mnist,
        DatasetArg::FashionMnist => Dataset::FashionMnist,
    };
    let set = data::load_training_set(args.data.as_deref(), dataset, args.mirror.as_deref(), true)
        .context("loading the training set")?;
    log::info!(
        "{} training images from {}",
        set.images.count,
        set.source.display()
    );
    let cfg = ModelConfig {
        latent_dim: args.latent_dim,
        batch: args.batch_size,
        fake_bn: args.fake_bn,
        adam: gan_gpu::shapes::AdamConfig {
            lr: args.lr,
            beta1: args.beta1,
            ..Default::default()
        },
        ..ModelConfig::default()
    };
    let weights = Weights::initial(cfg.latent_dim, seed);
    let grid_count = args.grid_rows * args.grid_cols;
    let (mut trainer, device_desc): (Box<dyn Trainer>, serde_json::Value) = match args.device {
        DeviceKind::Gpu => {
            let ctx = GpuContext::new(args.adapter.as_deref()).context("opening the GPU")?;
            let desc = serde_json::json!({
                "kind": "gpu",
                "adapter": ctx.info.name,
                "backend": format!("{:?}", ctx.info.backend),
                "device_type": format!("{:?}", ctx.info.device_type),
                "driver": ctx.info.driver,
                "driver_info": ctx.info.driver_info,
            });
            let t = GpuTrainer::new(ctx, cfg, &weights, seed, &set.images.pixels, grid_count)
                .context("building the GPU training step")?;
            (Box::new(t), desc)
        }
        DeviceKind::Cpu => {
            let t = CpuTrainer::new(cfg, weights, seed, set.images.pixels.clone());
            (Box::new(t), serde_json::json!({ "kind": "cpu" }))
        }
    };

    write_run_json(&args, &cfg, seed, &device_desc, &set.source)?;
    let mut csv = open_metrics(&args.out)?;
    let latents = sample_latents(seed, grid_count, cfg.latent_dim);
    let mut frames = vec![save_grid(trainer.as_mut(), &latents, &args, 0)?];

    // The loop: step, log at intervals, save grids at intervals.
    let bar = progress_bar(args.steps);
    let mut interval_start = (Instant::now(), 0u64);
    let mut bytes_at_log = trainer.bytes_transferred();
    for step in 1..=args.steps {
        trainer
            .step()
            .with_context(|| format!("training step {step}"))?;
        bar.inc(1);
        let last = step == args.steps;
        if step % args.log_interval == 0 || last {
            let m = trainer.metrics()?;
            let steps = step - interval_start.1;
            let secs = interval_start.0.elapsed().as_secs_f64();
            let ms = 1000.0 * secs / steps as f64;
            let ips = (steps as usize * cfg.batch) as f64 / secs.max(1e-9);
            writeln!(
                csv,
                "{step},{},{},{},{},{},{ms:.3},{ips:.1}",
                m.d_loss(),
                m.d_loss_real,
                m.d_loss_fake,
                m.d_acc(),
                m.g_loss
            )
            .and_then(|_| csv.flush())
            .with_context(|| format!("appending to {}", args.out.join("metrics.csv").display()))?;
            bar.println(log_line(step, args.steps, &m, ms, ips));
            if verbose {
                let bytes = trainer.bytes_transferred() - bytes_at_log;
                bar.println(format!(
                    "  CPU<->GPU traffic: {bytes} bytes over {steps} steps ({} per step, \
                     including this log's readback)",
                    bytes / steps
                ));
            }
            if !m.is_finite() {
                bar.abandon();
                return Err(gan_gpu::Error::NonFiniteLoss {
                    step,
                    d_loss_real: m.d_loss_real,
                    d_loss_fake: m.d_loss_fake,
                    g_loss: m.g_loss,
                }
                .into());
            }
            interval_start = (Instant::now(), step);
            bytes_at_log = trainer.bytes_transferred();
        }
        if step % args.save_interval == 0 || last {
            frames.push(save_grid(trainer.as_mut(), &latents, &args, step)?);
        }
    }
    bar.finish_and_clear();

    // The frames as one animation.
    frames.dedup();
    let gif = args.out.join("training.gif");
    gan_gpu::images::assemble_gif(&frames, &gif, args.frame_duration)
        .with_context(|| format!("writing {}", gif.display()))?;
    println!(
        "wrote {} frames, {} and metrics.csv to {}",
        frames.len(),
        gif.display(),
        args.out.display()
    );
    Ok(())
}

fn validate(args: &TrainArgs) -> anyhow::Result<()> {
    let positive = [
        ("--steps", args.steps),
        ("--batch-size", args.batch_size as u64),
        ("--save-interval", args.save_interval),
        ("--log-interval", args.log_interval),
        ("--latent-dim", args.latent_dim as u64),
        ("--grid-rows", args.grid_rows as u64),
        ("--grid-cols", args.grid_cols as u64),
        ("--grid-scale", args.grid_scale as u64),
    ];
    for (flag, value) in positive {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if args.steps > u32::MAX as u64 {
        bail!(
            "--steps must be at most {} (the random streams count steps in 32 bits)",
            u32::MAX
        );
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", args.lr);
    }
    if !(0.0..1.0).contains(&args.beta1) {
        bail!("--beta1 must be in [0, 1), got {}", args.beta1);
    }
    if !(args.frame_duration > 0.0 && args.frame_duration <= 655.35) {
        bail!("--frame-duration must be between 0.01 and 655.35 seconds");
    }
    Ok(())
}

/// A fresh seed from the operating system's entropy; `run.json` records it so the run can
/// be repeated.
fn fresh_seed() -> u64 {
    rand::random()
}

/// Refuses to mix two runs in one folder unless asked to.
fn prepare_out_dir(out: &Path, force: bool) -> anyhow::Result<()> {
    let holds_run = ["run.json", "metrics.csv"]
        .iter()
        .any(|f| out.join(f).exists());
    if holds_run && !force {
        bail!(
            "{} already holds a training run (run.json / metrics.csv); choose another --out \
             or pass --force to overwrite it",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

fn write_run_json(
    args: &TrainArgs,
    cfg: &ModelConfig,
    seed: u64,
    device: &serde_json::Value,
    data_source: &Path,
) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "program": "gan-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "seed": seed,
        "device": device,
        "data": data_source.display().to_string(),
        "dataset": format!("{:?}", args.dataset).to_lowercase(),
        "steps": args.steps,
        "batch_size": cfg.batch,
        "latent_dim": cfg.latent_dim,
        "fake_bn": cfg.fake_bn.as_str(),
        "adam": { "lr": cfg.adam.lr, "beta1": cfg.adam.beta1, "beta2": cfg.adam.beta2,
                  "epsilon": cfg.adam.epsilon },
        "leaky_relu_alpha": cfg.leaky_alpha,
        "dropout_rate": cfg.dropout_rate,
        "bn_momentum": cfg.bn_momentum,
        "bn_epsilon": cfg.bn_epsilon,
        "save_interval": args.save_interval,
        "log_interval": args.log_interval,
        "grid": [args.grid_rows, args.grid_cols],
    });
    let path = args.out.join("run.json");
    let text = serde_json::to_string_pretty(&json).context("encoding run.json")?;
    gan_gpu::fsutil::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// metrics.csv is appended and flushed line by line, so it is the one output not written
/// by rename: a crash keeps every line logged before it.
fn open_metrics(out: &Path) -> anyhow::Result<File> {
    let path = out.join("metrics.csv");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{METRICS_HEADER}").with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

fn save_grid(
    trainer: &mut dyn Trainer,
    latents: &[f32],
    args: &TrainArgs,
    step: u64,
) -> anyhow::Result<PathBuf> {
    let images = trainer
        .generate(latents)
        .context("generating the sample grid")?;
    let path = args.out.join(format!("mnist_{step}.png"));
    gan_gpu::images::grid_png(
        &images,
        args.grid_rows,
        args.grid_cols,
        IMAGE_SIDE,
        IMAGE_SIDE,
        args.grid_scale,
        &path,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn progress_bar(steps: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    let style = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps  {per_sec}  elapsed {elapsed_precise}  ETA {eta_precise}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn log_line(step: u64, total: u64, m: &StepMetrics, ms: f64, ips: f64) -> String {
    format!(
        "step {step}/{total}  D loss {:.4} (real {:.4}, fake {:.4})  D acc {:5.1}%  \
         G loss {:.4}  {ms:.1} ms/step  {ips:.0} images/s",
        m.d_loss(),
        m.d_loss_real,
        m.d_loss_fake,
        100.0 * m.d_acc(),
        m.g_loss
    )
}
