//! The benchmark behind `gan-gpu bench` and `cargo bench`: every kernel at the shapes the
//! model runs, square GEMMs, the adapter's own ceilings and the whole training step.
//!
//! Each kernel goes through the same path: a [`Case`] uploads seeded inputs and records
//! the launcher's plan once; [`Case::verify`] runs it and compares with the CPU reference
//! (failing the run on a mismatch); [`measure`] warms up and samples it; and
//! [`KernelEntry`] rates the median against the roofline of the measured ceilings.

pub mod case;
pub mod check;
mod contractions;
pub mod cost;
pub mod inventory;
mod pointwise;
pub mod report;
pub mod sampled;
pub mod timer;
pub mod training;

use std::time::Instant;

pub use case::Case;
pub use cost::Kernel;
pub use report::{Ceilings, DeviceInfo, KernelEntry, Report};
pub use timer::{Clock, Sampling, Timer, Timing, measure};
pub use training::StepEntry;

use crate::Result;
use crate::gpu::{GpuContext, device_type_name};
use crate::model::{FakeBnMode, ModelConfig};
use crate::shapes::GemmShape;
use timer::SamplePlan;

/// Images in MNIST's training set: the size of the dataset the gather draws from.
pub const DATASET_IMAGES: usize = 60_000;

/// What a run measures.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// Batch sizes whose kernels are timed one by one.
    pub kernel_batches: Vec<usize>,
    /// Sides of the square GEMMs.
    pub gemm_sizes: Vec<usize>,
    /// Batch sizes of the timed GPU training steps.
    pub step_batches: Vec<usize>,
    /// GPU steps timed per batch size; `None` picks a count per size, `Some(0)` skips them.
    pub gpu_steps: Option<usize>,
    /// Batch size and step count of the CPU reference step (0 steps skips it).
    pub cpu_batch: usize,
    pub cpu_steps: usize,
    /// Kernels whose name contains one of these (all when empty).
    pub filter: Vec<String>,
    pub sampling: Sampling,
    /// Time with the wall clock even where GPU timestamps exist.
    pub wall_clock: bool,
    /// Bytes the copy ceiling copies (and as many it writes).
    pub copy_bytes: u64,
    /// Images of the synthetic training set.
    pub dataset_images: usize,
    pub seed: u64,
}

impl BenchConfig {
    /// The default run on `ctx`: batches 32 and 256, square GEMMs up to 2048 (4096 on a
    /// real GPU), steps at 32 to 256 and the CPU step at 32.
    pub fn defaults_for(ctx: &GpuContext) -> BenchConfig {
        let mut gemm_sizes = vec![256, 512, 1024, 2048];
        if !ctx.is_software() {
            gemm_sizes.push(4096);
        }
        BenchConfig {
            kernel_batches: vec![32, 256],
            gemm_sizes,
            step_batches: vec![32, 64, 128, 256],
            gpu_steps: None,
            cpu_batch: 32,
            cpu_steps: 1,
            filter: Vec::new(),
            sampling: Sampling::default(),
            wall_clock: false,
            copy_bytes: 64 << 20,
            dataset_images: DATASET_IMAGES,
            seed: 0x6265_6e63_6800,
        }
    }

    fn selects(&self, kernel: &Kernel) -> bool {
        self.filter.is_empty()
            || self
                .filter
                .iter()
                .any(|f| kernel.name().contains(f.as_str()))
    }
}

/// The ceiling kernels' sizes: enough invocations to fill the device, enough loop trips
/// (or bytes) that launching them costs little next to the work.
fn ceiling_kernels(ctx: &GpuContext, copy_bytes: u64) -> [Kernel; 2] {
    let (invocations, iterations) = if ctx.is_software() {
        (1 << 16, 64)
    } else {
        (1 << 20, 256)
    };
    let fma = Kernel::FmaPeak {
        invocations,
        iterations,
    };
    let copy = Kernel::Copy {
        len: (copy_bytes / 16 * 4) as usize,
    };
    [fma, copy]
}

/// Checks `kernel` against the CPU reference, then times it.
pub fn check_and_time(
    ctx: &GpuContext,
    timer: &Timer,
    kernel: Kernel,
    config: &BenchConfig,
) -> Result<(Timing, check::Agreement)> {
    let case = Case::new(ctx, kernel, config.seed)?;
    let agreement = case.verify(ctx)?;
    let timing = measure(timer, &[case.plan()], &config.sampling)?;
    log_timing(&kernel, &timing, &agreement);
    Ok((timing, agreement))
}

fn log_timing(kernel: &Kernel, timing: &Timing, check: &check::Agreement) {
    log::debug!(
        "{} {}: median {:.4} ms over {} x {} runs (worst error {:.2} of allowed)",
        kernel.name(),
        kernel.shape(),
        1e3 * timing.median_s,
        timing.samples,
        timing.repeats,
        check.worst
    );
}

/// Runs everything `config` asks for on `ctx`.
pub fn run(ctx: &GpuContext, config: &BenchConfig) -> Result<Report> {
    let started = Instant::now();
    let timer = Timer::new(ctx, config.wall_clock)?;
    // The ceilings bracket the kernels: measured first and again last, each the faster of
    // the two, so a slow spell of a shared machine during one of them does not lower it.
    let first = time_ceilings(ctx, &timer, config, "measuring the ceilings")?;
    let timed = time_kernels(ctx, &timer, config, started)?;
    let last = time_ceilings(ctx, &timer, config, "measuring the ceilings again")?;
    let (ceilings, ceiling_kernels) = best_ceilings(first, last);
    let kernels = timed
        .into_iter()
        .map(|t| {
            KernelEntry::new(
                &t.kernel, &t.group, t.per_step, &t.timing, t.check, &ceilings,
            )
        })
        .collect();
    let steps = measure_steps(ctx, config, started)?;
    log::info!("benchmark done in {:.1} s", started.elapsed().as_secs_f64());

    let info = &ctx.info;
    Ok(Report {
        program: "gan-gpu",
        version: env!("CARGO_PKG_VERSION"),
        device: DeviceInfo {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: device_type_name(info.device_type).to_string(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            subgroup_kernels: ctx.subgroup_kernels(),
            kernels: ctx.kernel_choice(),
        },
        clock: timer.clock(),
        steps_clock: Clock::WallClock,
        ceilings,
        ceiling_kernels,
        kernels,
        steps,
    })
}

/// Logs the next section of the run with the time spent so far.
fn section(started: Instant, what: &str) {
    log::info!("{what} ({:.0} s in)", started.elapsed().as_secs_f64());
}

/// A kernel, checked and timed, not yet rated against the ceilings.
#[derive(Clone, Copy)]
struct Timed {
    kernel: Kernel,
    timing: Timing,
    check: check::Agreement,
}

/// One measurement of the two ceiling kernels, peak multiply-adds and copy, logged as `what`.
fn time_ceilings(
    ctx: &GpuContext,
    timer: &Timer,
    config: &BenchConfig,
    what: &str,
) -> Result<[Timed; 2]> {
    log::info!("{what} ({})", timer.clock().describe());
    let [fma, copy] = ceiling_kernels(ctx, config.copy_bytes);
    let time = |kernel: Kernel| -> Result<Timed> {
        let (timing, check) = check_and_time(ctx, timer, kernel, config)?;
        Ok(Timed {
            kernel,
            timing,
            check,
        })
    };
    Ok([time(fma)?, time(copy)?])
}

/// The ceilings from two measurements of each kernel: a ceiling is the best the device
/// does, so the fastest sample of the faster measurement, not the typical one. The entries
/// show the measurement each ceiling came from.
fn best_ceilings(first: [Timed; 2], last: [Timed; 2]) -> (Ceilings, Vec<KernelEntry>) {
    let faster = |a: Timed, b: Timed| {
        if b.timing.min_s < a.timing.min_s {
            b
        } else {
            a
        }
    };
    let [fma, copy] = [faster(first[0], last[0]), faster(first[1], last[1])];
    let ceilings = Ceilings {
        fma_gflops: fma.kernel.flops() as f64 / fma.timing.min_s * 1e-9,
        copy_gbs: copy.kernel.bytes() as f64 / copy.timing.min_s * 1e-9,
    };
    let entries = [fma, copy]
        .into_iter()
        .map(|t| KernelEntry::new(&t.kernel, "ceiling", 0, &t.timing, t.check, &ceilings))
        .collect();
    (ceilings, entries)
}

/// A model kernel or square GEMM, timed: its group and runs per training step besides.
struct TimedKernel {
    kernel: Kernel,
    group: String,
    per_step: usize,
    timing: Timing,
    check: check::Agreement,
}

/// The model's kernels at each batch (grouped by launcher), then the square GEMMs.
fn time_kernels(
    ctx: &GpuContext,
    timer: &Timer,
    config: &BenchConfig,
    started: Instant,
) -> Result<Vec<TimedKernel>> {
    let cfg = ModelConfig::default();
    let mut todo: Vec<(Kernel, String, usize)> = Vec::new();
    for &batch in &config.kernel_batches {
        let mut at_batch = model_kernels(&cfg, batch, config.dataset_images);
        at_batch.sort_by_key(|(k, _)| k.name());
        todo.extend(
            at_batch
                .into_iter()
                .map(|(k, n)| (k, format!("batch {batch}"), n)),
        );
    }
    for &side in &config.gemm_sizes {
        let square = GemmShape {
            m: side,
            n: side,
            k: side,
            trans_a: false,
            trans_b: false,
        };
        todo.push((Kernel::Gemm(square), "square gemm".into(), 0));
    }

    let todo: Vec<_> = todo
        .into_iter()
        .filter(|(k, ..)| config.selects(k))
        .collect();
    if todo.is_empty() && !config.filter.is_empty() {
        log::warn!(
            "no kernel's name contains any of --filter {}: only the ceilings and the steps are \
             measured",
            config.filter.join(",")
        );
    }
    let mut timed: Vec<TimedKernel> = Vec::new();
    for members in todo.chunk_by(|a, b| a.1 == b.1) {
        section(
            started,
            &format!("timing the kernels of group '{}'", members[0].1),
        );
        timed.extend(time_group(ctx, timer, config, members)?);
    }
    Ok(timed)
}

/// Passes over a group's kernels, each taking its share of every kernel's samples: a slow
/// spell of a shared machine then falls on a few samples of many kernels, which their
/// medians pass over, rather than on all the samples of the few kernels timed during it.
const SAMPLE_PASSES: usize = 3;

/// Checks every kernel of one group, then samples them in [`SAMPLE_PASSES`] passes.
fn time_group(
    ctx: &GpuContext,
    timer: &Timer,
    config: &BenchConfig,
    members: &[(Kernel, String, usize)],
) -> Result<Vec<TimedKernel>> {
    let mut cases = Vec::with_capacity(members.len());
    for (kernel, ..) in members {
        let case = Case::new(ctx, *kernel, config.seed)?;
        let check = case.verify(ctx)?;
        let plan = SamplePlan::new(timer, &[case.plan()], &config.sampling)?;
        cases.push((case, check, plan));
    }
    for pass in 1..=SAMPLE_PASSES {
        for (case, _, plan) in &mut cases {
            let count = (plan.samples * pass).div_ceil(SAMPLE_PASSES);
            plan.take(timer, &[case.plan()], count)?;
        }
    }
    Ok(members
        .iter()
        .zip(cases)
        .map(|((kernel, group, per_step), (_, check, plan))| {
            let timing = plan.timing();
            log_timing(kernel, &timing, &check);
            TimedKernel {
                kernel: *kernel,
                group: group.clone(),
                per_step: *per_step,
                timing,
                check,
            }
        })
        .collect())
}

/// Whole training steps on the GPU at each batch, then the CPU reference's.
fn measure_steps(
    ctx: &GpuContext,
    config: &BenchConfig,
    started: Instant,
) -> Result<Vec<StepEntry>> {
    let cfg = ModelConfig::default();
    let images = training::synthetic_images(config.dataset_images, config.seed);
    let mut steps = Vec::new();
    if config.gpu_steps != Some(0) {
        for &batch in &config.step_batches {
            section(
                started,
                &format!("timing GPU training steps at batch {batch}"),
            );
            let entry = training::time_gpu_steps(ctx, &cfg, batch, &images, config.gpu_steps)?;
            steps.push(entry);
        }
    }
    if config.cpu_steps > 0 {
        let batch = config.cpu_batch;
        section(
            started,
            &format!("timing the CPU reference step at batch {batch}"),
        );
        let entry = training::time_cpu_steps(&cfg, batch, &images, config.cpu_steps)?;
        steps.push(entry);
    }
    Ok(steps)
}

/// The distinct kernels the model runs at `batch`, each with how often the configured step
/// runs it: the step's own, then the inference-mode BatchNorm of the other `--fake-bn`
/// setting (and of the sample grids).
pub fn model_kernels(cfg: &ModelConfig, batch: usize, images: usize) -> Vec<(Kernel, usize)> {
    let mut kernels = inventory::distinct(&inventory::step_kernels(cfg, batch, images));
    let other = ModelConfig {
        fake_bn: match cfg.fake_bn {
            FakeBnMode::Training => FakeBnMode::Inference,
            FakeBnMode::Inference => FakeBnMode::Training,
        },
        ..*cfg
    };
    for (kernel, _) in inventory::distinct(&inventory::step_kernels(&other, batch, images)) {
        if !kernels.iter().any(|(k, _)| *k == kernel) {
            kernels.push((kernel, 0));
        }
    }
    kernels
}
