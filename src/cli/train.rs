//! `gan-gpu train`: the training loop around either trainer, its outputs, checkpoints and
//! resuming from them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use gan_gpu::checkpoint::{self, Checkpoint, DataInfo, RunInfo, pixels_sha256};
use gan_gpu::data::{self, Dataset};
use gan_gpu::model::{FakeBnMode, IMAGE_SIDE, ModelConfig, Weights};
use gan_gpu::train::cpu::CpuTrainer;
use gan_gpu::train::gpu::GpuTrainer;
use gan_gpu::train::{StepMetrics, TrainState, Trainer, sample_latents};

use super::device::{self, DeviceKind};
use super::signals::StopRequests;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    Mnist,
    FashionMnist,
}

impl From<DatasetArg> for Dataset {
    fn from(d: DatasetArg) -> Dataset {
        match d {
            DatasetArg::Mnist => Dataset::Mnist,
            DatasetArg::FashionMnist => Dataset::FashionMnist,
        }
    }
}

/// Flags without a default in clap take the resumed checkpoint's value when not given, so a
/// resumed run needs none of them again; the defaults are in each help text.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training steps in all (each: two D updates and one G update); a resumed run trains
    /// until the total reaches this [default: 200000, or the resumed run's].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Images per batch [default: 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Write a sample grid every this many steps (and at step 0 and the last step)
    /// [default: 5000].
    #[arg(long)]
    pub save_interval: Option<u64>,
    /// Log losses and append to metrics.csv every this many steps [default: 100].
    #[arg(long)]
    pub log_interval: Option<u64>,
    /// Write a checkpoint every this many steps, and at the end, and when stopped by Ctrl-C
    /// or SIGTERM [default: 5000].
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Keep the newest this many checkpoints in --out, deleting older ones; 0 keeps every
    /// one [default: 3].
    #[arg(long)]
    pub keep: Option<usize>,
    /// Continue from a checkpoint: a checkpoint_<step>.safetensors file, or `latest` for the
    /// newest one in --out. Configuration flags left out are taken from the checkpoint;
    /// contradicting ones are refused. A file of weights only (no training state) starts a
    /// new run from those weights.
    #[arg(long, value_name = "FILE|latest")]
    pub resume: Option<String>,
    /// Output folder for sample grids, metrics.csv, run.json, checkpoints and training.gif
    /// [default: out; when resuming from a FILE, the folder that holds it].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start a new run in an --out folder that already holds one (its files are
    /// overwritten). A resumed run continues in its folder without it.
    #[arg(long)]
    pub force: bool,
    /// Random seed for initial weights, batches, noise and dropout [default: random,
    /// recorded in run.json and the checkpoints].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adam learning rate, both models [default: 0.0002].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Adam beta1, both models [default: 0.5].
    #[arg(long)]
    pub beta1: Option<f32>,
    /// Size of the latent vector G draws from N(0, 1) [default: 100].
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// GPU adapter, by index or by a part of its name (see `gan-gpu devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Where the step runs. A checkpoint written on one device resumes on the other.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// GEMM and convolution kernels on the GPU: `auto` picks per adapter (uniform-buffer
    /// windows on CPU drivers such as lavapipe, where they are faster; direct storage-buffer
    /// kernels on GPUs). A resumed run keeps the checkpoint's kernels.
    #[arg(long, value_enum, default_value_t = device::KernelArg::Auto)]
    pub kernels: device::KernelArg,
    /// BatchNorm mode of G when it makes D's fakes [default: training]. `inference`
    /// reproduces the reference Keras program exactly (it calls generator.predict), but
    /// stalls early: D reaches 100% accuracy and G's loss sits near 0 for hundreds of steps
    /// until the slow moving averages catch up. `training` uses the fake batch's own
    /// statistics (and updates the running ones), as PyTorch DCGANs do, and trains well from
    /// the start.
    #[arg(long, value_enum)]
    pub fake_bn: Option<FakeBnMode>,
    /// Folder with the IDX files (train-images-idx3-ubyte[.gz], ...). Without it the files are
    /// taken from, or downloaded into, a per-user cache folder (or, when resuming, from the
    /// folder the run was started with).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which dataset to train on [default: mnist].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// Base URL to download the dataset from instead of the public mirrors.
    #[arg(long)]
    pub mirror: Option<String>,
    /// Rows of the sample grid [default: 5].
    #[arg(long)]
    pub grid_rows: Option<usize>,
    /// Columns of the sample grid [default: 5].
    #[arg(long)]
    pub grid_cols: Option<usize>,
    /// Upscaling factor of the sample grid, in screen pixels per image pixel [default: 4].
    #[arg(long)]
    pub grid_scale: Option<u32>,
    /// Seconds each frame shows in training.gif [default: 0.5].
    #[arg(long)]
    pub frame_duration: Option<f64>,
}

const METRICS_HEADER: &str =
    "step,d_loss,d_loss_real,d_loss_fake,d_acc,g_loss,ms_per_step,images_per_s";

/// Settings that do not change the arithmetic: stored in checkpoints as `run.<name>`, taken
/// from them on resume unless given again.
#[derive(Clone, Debug)]
struct RunSettings {
    steps: u64,
    save_interval: u64,
    log_interval: u64,
    checkpoint_interval: u64,
    keep: usize,
    grid_rows: usize,
    grid_cols: usize,
    grid_scale: u32,
    frame_duration: f64,
}

impl RunSettings {
    /// Each flag as given, else the checkpoint's, else the default.
    fn resolve(args: &TrainArgs, stored: Option<&BTreeMap<String, String>>) -> RunSettings {
        fn pick<T: std::str::FromStr>(
            given: Option<T>,
            stored: Option<&BTreeMap<String, String>>,
            key: &str,
            default: T,
        ) -> T {
            given
                .or_else(|| stored?.get(key)?.parse().ok())
                .unwrap_or(default)
        }
        RunSettings {
            steps: pick(args.steps, stored, "steps", 200_000),
            save_interval: pick(args.save_interval, stored, "save_interval", 5000),
            log_interval: pick(args.log_interval, stored, "log_interval", 100),
            checkpoint_interval: pick(
                args.checkpoint_interval,
                stored,
                "checkpoint_interval",
                5000,
            ),
            keep: pick(args.keep, stored, "keep", 3),
            grid_rows: pick(args.grid_rows, stored, "grid_rows", 5),
            grid_cols: pick(args.grid_cols, stored, "grid_cols", 5),
            grid_scale: pick(args.grid_scale, stored, "grid_scale", 4),
            frame_duration: pick(args.frame_duration, stored, "frame_duration", 0.5),
        }
    }

    fn to_map(&self) -> BTreeMap<String, String> {
        [
            ("steps", self.steps.to_string()),
            ("save_interval", self.save_interval.to_string()),
            ("log_interval", self.log_interval.to_string()),
            ("checkpoint_interval", self.checkpoint_interval.to_string()),
            ("keep", self.keep.to_string()),
            ("grid_rows", self.grid_rows.to_string()),
            ("grid_cols", self.grid_cols.to_string()),
            ("grid_scale", self.grid_scale.to_string()),
            ("frame_duration", self.frame_duration.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn grid_count(&self) -> usize {
        self.grid_rows * self.grid_cols
    }
}

/// Where the run starts from.
enum Start {
    /// Step 0, from these weights: freshly initialised, or a weights-only file's.
    New { weights: Weights },
    /// A checkpoint's state.
    Resume {
        path: PathBuf,
        state: Box<TrainState>,
        run: Box<RunInfo>,
    },
}

/// Everything `train` runs with, resolved from the flags and the checkpoint.
struct Plan {
    cfg: ModelConfig,
    seed: u64,
    dataset: Dataset,
    data: Option<PathBuf>,
    out: PathBuf,
    settings: RunSettings,
    start: Start,
}

pub fn run(args: TrainArgs, verbose: bool) -> anyhow::Result<u8> {
    let plan = resolve(&args)?;
    validate(&plan)?;
    let settings = plan.settings.clone();
    let out = plan.out.clone();
    let start_step = match &plan.start {
        Start::Resume { state, .. } => state.step,
        Start::New { .. } => 0,
    };
    if start_step > settings.steps {
        bail!(
            "--steps {} is below the checkpoint's step {start_step}: --steps is the total, not \
             the steps still to go",
            settings.steps
        );
    }

    // The data first: a resumed run is checked against it before its folder is touched.
    let set = data::load_training_set(
        plan.data.as_deref(),
        plan.dataset,
        args.mirror.as_deref(),
        true,
    )
    .context("loading the training set")?;
    log::info!(
        "{} training images from {}",
        set.images.count,
        set.source.display()
    );
    let data_info = DataInfo {
        dataset: plan.dataset.id().to_string(),
        dir: plan.data.as_ref().map(|d| d.display().to_string()),
        images: set.images.count as u64,
        sha256: pixels_sha256(&set.images.pixels),
    };
    if let Start::Resume { path, run, .. } = &plan.start {
        check_same_data(path, &run.data, &data_info)?;
    }

    // The output folder: a new run refuses one that holds a run; a resumed one is rolled
    // back to the checkpoint's step.
    let mut frames = match &plan.start {
        Start::New { .. } => {
            prepare_out_dir(&out, args.force)?;
            Vec::new()
        }
        Start::Resume { run, .. } => {
            check_resume_folder(&out, run.seed, args.force)?;
            roll_back(&out, start_step)?
        }
    };

    // The trainer on the chosen device.

    let cfg = plan.cfg;
    let (mut trainer, device_info): (Box<dyn Trainer>, _) = match (args.device, plan.start) {
        (DeviceKind::Gpu, start) => {
            let mut ctx = device::open_gpu(args.adapter.as_deref())?;
            let state = match start {
                Start::New { weights, .. } => {
                    ctx = device::with_kernels(ctx, args.kernels)?;
                    TrainState::fresh(weights)
                }
                Start::Resume { state, run, .. } => {
                    ctx = same_kernels(ctx, &run);
                    *state
                }
            };
            let info = device::gpu_info(&ctx);
            let t = GpuTrainer::from_state(
                ctx,
                cfg,
                &state,
                plan.seed,
                &set.images.pixels,
                settings.grid_count(),
            )
            .context("building the GPU training step")?;
            (Box::new(t) as Box<dyn Trainer>, info)
        }
        (DeviceKind::Cpu, start) => {
            let state = match start {
                Start::New { weights, .. } => TrainState::fresh(weights),
                Start::Resume { state, run, .. } => {
                    if run.device.kind != "cpu" {
                        log::info!(
                            "the checkpoint was written on {}; continuing on the CPU reference \
                             (the run goes on, but not bit for bit as if it had never stopped)",
                            device::describe(&run.device)
                        );
                    }
                    *state
                }
            };
            let t = CpuTrainer::from_state(cfg, state, plan.seed, set.images.pixels.clone());
            (Box::new(t) as Box<dyn Trainer>, device::cpu_info())
        }
    };
    let run_info = RunInfo {
        seed: plan.seed,
        data: data_info,
        device: device_info,
        settings: settings.to_map(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    write_run_json(&out, &cfg, &run_info, &settings, &set.source, start_step)?;
    let mut csv = open_metrics(&out, start_step > 0)?;
    let latents = sample_latents(plan.seed, settings.grid_count(), cfg.latent_dim);
    if frames.is_empty() {
        frames.push(save_grid(
            trainer.as_mut(),
            &latents,
            &settings,
            &out,
            start_step,
        )?);
    }
    if start_step == settings.steps {
        println!(
            "{} is at step {start_step} of {}; nothing to train (raise --steps to go on)",
            out.display(),
            settings.steps
        );
        return Ok(0);
    }

    // The loop: step, log at intervals, save grids and checkpoints at intervals, stop
    // cleanly when asked to.
    let stops = StopRequests::install().context("installing the Ctrl-C handler")?;
    let bar = progress_bar(settings.steps, start_step);
    let mut interval_start = (Instant::now(), start_step);
    let mut bytes_at_log = trainer.bytes_transferred();
    for step in start_step + 1..=settings.steps {
        trainer
            .step()
            .with_context(|| format!("training step {step}"))?;
        bar.inc(1);
        let last = step == settings.steps;
        if step % settings.log_interval == 0 || last {
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
            .with_context(|| format!("appending to {}", out.join("metrics.csv").display()))?;
            bar.println(log_line(step, settings.steps, &m, ms, ips));
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
        let stop = stops.requested();
        let mut saved_checkpoint = None;
        if step % settings.save_interval == 0 || last || stop.is_some() {
            frames.push(save_grid(
                trainer.as_mut(),
                &latents,
                &settings,
                &out,
                step,
            )?);
        }
        if step % settings.checkpoint_interval == 0 || last || stop.is_some() {
            saved_checkpoint = Some(save_checkpoint(
                trainer.as_mut(),
                &cfg,
                &run_info,
                &out,
                settings.keep,
            )?);
        }
        if let (Some(stop), false, Some(checkpoint)) = (stop, last, saved_checkpoint) {
            bar.abandon();
            write_gif(&mut frames, &out, settings.frame_duration)?;
            println!(
                "stopped by {} after step {step} of {}: wrote {}, mnist_{step}.png and \
                 training.gif; `gan-gpu train --resume latest --out {}` continues",
                stop.name(),
                settings.steps,
                checkpoint.display(),
                out.display()
            );
            return Ok(stop.exit_code());
        }
    }
    bar.finish_and_clear();

    // The frames as one animation.
    write_gif(&mut frames, &out, settings.frame_duration)?;
    println!(
        "wrote {} frames, training.gif, metrics.csv and {} to {}",
        frames.len(),
        checkpoint::file_name(settings.steps),
        out.display()
    );
    Ok(0)
}

/// Reads the checkpoint (if resuming) and resolves every setting.
fn resolve(args: &TrainArgs) -> anyhow::Result<Plan> {
    let default_out = || args.out.clone().unwrap_or_else(|| PathBuf::from("out"));
    let Some(resume) = args.resume.as_deref() else {
        return Ok(new_run(args, None, default_out()));
    };

    let (path, out) = if resume == "latest" {
        let out = default_out();
        let path = checkpoint::latest(&out)
            .with_context(|| format!("looking for checkpoints in {}", out.display()))?
            .with_context(|| {
                format!(
                    "--resume latest: no checkpoint_<step>.safetensors in {}",
                    out.display()
                )
            })?;
        (path, out)
    } else {
        let path = PathBuf::from(resume);
        let out = args.out.clone().unwrap_or_else(|| match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
        (path, out)
    };
    let ckpt = Checkpoint::load(&path).with_context(|| {
        let older = checkpoint::list(&out)
            .ok()
            .and_then(|all| all.into_iter().rev().map(|(_, p)| p).find(|p| *p != path))
            .map(|p| format!(" (an earlier one: {})", p.display()))
            .unwrap_or_default();
        format!("reading the checkpoint to resume from{older}")
    })?;

    let Some(run) = ckpt.run else {
        // Weights only: a new run from them, in a folder of its own.
        if let Some(l) = args.latent_dim.filter(|&l| l != ckpt.config.latent_dim) {
            bail!(
                "--latent-dim {l} contradicts {}, whose G takes latent vectors of {}",
                path.display(),
                ckpt.config.latent_dim
            );
        }
        log::info!(
            "{} holds weights only: starting a new run from them at step 0",
            path.display()
        );
        let mut plan = new_run(args, Some(ckpt.state.weights), default_out());
        plan.cfg.latent_dim = ckpt.config.latent_dim;
        return Ok(plan);
    };

    // A resumed run keeps everything that shapes its arithmetic.
    let c = &ckpt.config;
    let mut conflicts = Vec::new();
    conflict(
        &mut conflicts,
        "--latent-dim",
        args.latent_dim,
        c.latent_dim,
    );
    conflict(&mut conflicts, "--batch-size", args.batch_size, c.batch);
    conflict(&mut conflicts, "--lr", args.lr, c.adam.lr);
    conflict(&mut conflicts, "--beta1", args.beta1, c.adam.beta1);
    conflict(
        &mut conflicts,
        "--fake-bn",
        args.fake_bn.map(FakeBnMode::as_str),
        c.fake_bn.as_str(),
    );
    conflict(&mut conflicts, "--seed", args.seed, run.seed);
    conflict(
        &mut conflicts,
        "--dataset",
        args.dataset.map(|d| Dataset::from(d).id()),
        run.data.dataset.as_str(),
    );
    if !conflicts.is_empty() {
        bail!(
            "cannot resume {} with {}. A resumed run keeps the configuration it was trained \
             with: leave these flags out, or start a new run in another --out folder",
            path.display(),
            conflicts.join(", ")
        );
    }
    let dataset: Dataset = run
        .data
        .dataset
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{}: data.dataset: {e}", path.display()))?;
    log::info!(
        "resuming {} at step {} (written by gan-gpu {} on {})",
        path.display(),
        ckpt.state.step,
        run.program_version,
        device::describe(&run.device)
    );
    Ok(Plan {
        cfg: ckpt.config,
        seed: run.seed,
        dataset,
        data: args
            .data
            .clone()
            .or_else(|| run.data.dir.as_ref().map(PathBuf::from)),
        out,
        settings: RunSettings::resolve(args, Some(&run.settings)),
        start: Start::Resume {
            path,
            state: Box::new(ckpt.state),
            run: Box::new(run),
        },
    })
}

/// Records `flag value (the checkpoint's: x)` when a flag is given and differs.
fn conflict<T: PartialEq + std::fmt::Display>(
    out: &mut Vec<String>,
    flag: &str,
    given: Option<T>,
    stored: T,
) {
    if let Some(given) = given
        && given != stored
    {
        out.push(format!("{flag} {given} (the checkpoint's is {stored})"));
    }
}

/// A run from step 0: the flags, and the defaults for flags not given.
fn new_run(args: &TrainArgs, from: Option<Weights>, out: PathBuf) -> Plan {
    let cfg = ModelConfig {
        latent_dim: args.latent_dim.unwrap_or(100),
        batch: args.batch_size.unwrap_or(32),
        fake_bn: args.fake_bn.unwrap_or(FakeBnMode::Training),
        adam: gan_gpu::shapes::AdamConfig {
            lr: args.lr.unwrap_or(2e-4),
            beta1: args.beta1.unwrap_or(0.5),
            ..Default::default()
        },
        ..ModelConfig::default()
    };
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let weights = match from {
        Some(weights) => weights,
        None => Weights::initial(cfg.latent_dim, seed),
    };
    Plan {
        cfg,
        seed,
        dataset: args.dataset.map_or(Dataset::Mnist, Dataset::from),
        data: args.data.clone(),
        out,
        settings: RunSettings::resolve(args, None),
        start: Start::New { weights },
    }
}

fn validate(plan: &Plan) -> anyhow::Result<()> {
    let s = &plan.settings;
    let positive = [
        ("--steps", s.steps),
        ("--batch-size", plan.cfg.batch as u64),
        ("--save-interval", s.save_interval),
        ("--log-interval", s.log_interval),
        ("--checkpoint-interval", s.checkpoint_interval),
        ("--latent-dim", plan.cfg.latent_dim as u64),
        ("--grid-rows", s.grid_rows as u64),
        ("--grid-cols", s.grid_cols as u64),
        ("--grid-scale", s.grid_scale as u64),
    ];
    for (flag, value) in positive {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if s.steps > u32::MAX as u64 {
        bail!(
            "--steps must be at most {} (the random streams count steps in 32 bits)",
            u32::MAX
        );
    }
    let adam = &plan.cfg.adam;
    if !(adam.lr.is_finite() && adam.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", adam.lr);
    }
    if !(0.0..1.0).contains(&adam.beta1) {
        bail!("--beta1 must be in [0, 1), got {}", adam.beta1);
    }
    if !(s.frame_duration > 0.0 && s.frame_duration <= 655.35) {
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
            "{} already holds a training run (run.json / metrics.csv); choose another --out, \
             pass --resume latest to continue it, or --force to overwrite it",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// A resumed run may go into its own folder, or a new one, but not into another run's.
fn check_resume_folder(out: &Path, seed: u64, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let Ok(text) = std::fs::read_to_string(out.join("run.json")) else {
        return Ok(());
    };
    let other = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["seed"].as_u64());
    if let Some(other) = other
        && other != seed
        && !force
    {
        bail!(
            "{} holds another run (seed {other}, the checkpoint's is {seed}); resume into its \
             own folder or a new one, or pass --force to take this one over",
            out.display()
        );
    }
    Ok(())
}

/// Rolls `out` back to `step`: metrics.csv keeps its rows up to the step, and grids and
/// checkpoints of later steps (a part of the run that will be trained again) are removed.
/// Returns the grids up to the step, in step order: the frames so far.
fn roll_back(out: &Path, step: u64) -> anyhow::Result<Vec<PathBuf>> {
    let metrics = out.join("metrics.csv");
    if let Ok(text) = std::fs::read_to_string(&metrics) {
        let mut kept = String::new();
        let mut cut = 0;
        for (i, line) in text.lines().enumerate() {
            let row_step = line
                .split(',')
                .next()
                .and_then(|s| s.trim().parse::<u64>().ok());
            match row_step {
                Some(s) if s > step => cut += 1,
                _ if i == 0 || row_step.is_some() => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                _ => cut += 1,
            }
        }
        if cut > 0 {
            log::info!("metrics.csv: removed {cut} rows after step {step}");
            gan_gpu::fsutil::write_atomic(&metrics, kept.as_bytes())
                .with_context(|| format!("cutting {} back", metrics.display()))?;
        }
    }

    let mut frames = Vec::new();
    let entries = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", out.display()))?
            .path();
        let later = match (checkpoint::step_of(&path), grid_step(&path)) {
            (Some(s), _) => s > step,
            (_, Some(s)) if s <= step => {
                frames.push((s, path));
                continue;
            }
            (_, Some(_)) => true,
            _ => false,
        };
        if later {
            log::info!(
                "removing {} (after the checkpoint's step {step})",
                path.display()
            );
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    frames.sort();
    Ok(frames.into_iter().map(|(_, p)| p).collect())
}

/// The step of a sample grid's file name, `mnist_<step>.png`.
fn grid_step(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix("mnist_")?.strip_suffix(".png")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

fn check_same_data(path: &Path, trained: &DataInfo, now: &DataInfo) -> anyhow::Result<()> {
    if trained.images != now.images || trained.sha256 != now.sha256 {
        bail!(
            "cannot resume {}: it was trained on {} images (pixels sha256 {}), but the \
             training set found now holds {} images (sha256 {}). Point --data at the files \
             the run started with",
            path.display(),
            trained.images,
            trained.sha256,
            now.images,
            now.sha256
        );
    }
    Ok(())
}

/// The context to resume on: with the kernels the checkpoint was written with when it is
/// the same adapter, so that the sums, and so the run, continue bit for bit.
fn same_kernels(ctx: gan_gpu::gpu::GpuContext, run: &RunInfo) -> gan_gpu::gpu::GpuContext {
    let here = device::gpu_info(&ctx);
    let same_adapter = run.device.kind == "gpu"
        && run.device.adapter == here.adapter
        && run.device.backend == here.backend
        && run.device.driver == here.driver;
    if !same_adapter {
        log::info!(
            "the checkpoint was written on {}; continuing on {} (the run goes on, but not bit \
             for bit as if it had never stopped)",
            device::describe(&run.device),
            device::describe(&here)
        );
        return ctx;
    }
    if run.device.kernels == here.kernels {
        return ctx;
    }
    match ctx.with_kernel_choice(&run.device.kernels) {
        Ok(same) => {
            log::info!(
                "using the checkpoint's kernel choice '{}' (this adapter's default is '{}')",
                run.device.kernels,
                here.kernels
            );
            same
        }
        Err(why) => {
            log::warn!(
                "the checkpoint was written with kernels '{}', which cannot be used here \
                 ({why}); continuing with '{}' (the last bits of the results may differ)",
                run.device.kernels,
                here.kernels
            );
            ctx
        }
    }
}

fn save_checkpoint(
    trainer: &mut dyn Trainer,
    cfg: &ModelConfig,
    run: &RunInfo,
    out: &Path,
    keep: usize,
) -> anyhow::Result<PathBuf> {
    let state = trainer.state().context("reading the training state")?;
    let path = out.join(checkpoint::file_name(state.step));
    let ckpt = Checkpoint {
        state,
        config: *cfg,
        run: Some(run.clone()),
    };
    ckpt.save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    for old in checkpoint::prune(out, keep).context("removing old checkpoints")? {
        log::debug!("removed {}", old.display());
    }
    Ok(path)
}

fn write_run_json(
    out: &Path,
    cfg: &ModelConfig,
    run: &RunInfo,
    settings: &RunSettings,
    data_source: &Path,
    start_step: u64,
) -> anyhow::Result<()> {
    let d = &run.device;
    let mut json = serde_json::json!({
        "program": "gan-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "seed": run.seed,
        "device": {
            "kind": d.kind,
            "adapter": d.adapter,
            "backend": d.backend,
            "driver": d.driver,
            "kernels": d.kernels,
        },
        "data": data_source.display().to_string(),
        "dataset": run.data.dataset,
        "data_images": run.data.images,
        "data_sha256": run.data.sha256,
        "steps": settings.steps,
        "batch_size": cfg.batch,
        "latent_dim": cfg.latent_dim,
        "fake_bn": cfg.fake_bn.as_str(),
        "adam": { "lr": cfg.adam.lr, "beta1": cfg.adam.beta1, "beta2": cfg.adam.beta2,
                  "epsilon": cfg.adam.epsilon },
        "leaky_relu_alpha": cfg.leaky_alpha,
        "dropout_rate": cfg.dropout_rate,
        "bn_momentum": cfg.bn_momentum,
        "bn_epsilon": cfg.bn_epsilon,
        "save_interval": settings.save_interval,
        "log_interval": settings.log_interval,
        "checkpoint_interval": settings.checkpoint_interval,
        "keep": settings.keep,
        "grid": [settings.grid_rows, settings.grid_cols],
    });
    if start_step > 0 {
        json["resumed_at_step"] = start_step.into();
    }
    let path = out.join("run.json");
    let text = serde_json::to_string_pretty(&json).context("encoding run.json")?;
    gan_gpu::fsutil::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// metrics.csv is appended and flushed line by line, so it is the one output not written
/// by rename: a crash keeps every line logged before it. A resumed run appends to the rows
/// `roll_back` kept.
fn open_metrics(out: &Path, resumed: bool) -> anyhow::Result<File> {
    let path = out.join("metrics.csv");
    if resumed && path.exists() {
        return OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()));
    }
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
    settings: &RunSettings,
    out: &Path,
    step: u64,
) -> anyhow::Result<PathBuf> {
    let images = trainer
        .generate(latents)
        .context("generating the sample grid")?;
    let path = out.join(format!("mnist_{step}.png"));
    gan_gpu::images::grid_png(
        &images,
        settings.grid_rows,
        settings.grid_cols,
        IMAGE_SIDE,
        IMAGE_SIDE,
        settings.grid_scale,
        &path,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn write_gif(frames: &mut Vec<PathBuf>, out: &Path, frame_duration: f64) -> anyhow::Result<()> {
    frames.dedup();
    let gif = out.join("training.gif");
    gan_gpu::images::assemble_gif(frames, &gif, frame_duration)
        .with_context(|| format!("writing {}", gif.display()))
}

fn progress_bar(steps: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps).with_position(done);
    let style = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} steps  {per_sec}  elapsed {elapsed_precise}  ETA {eta_precise}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.reset_eta();
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
