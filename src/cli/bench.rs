//! `gan-gpu bench`: every kernel checked against the CPU reference and timed, the adapter's
//! ceilings, and the whole training step; a table on stdout and optionally JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use gan_gpu::bench::{self, BenchConfig};
use gan_gpu::gpu::GpuContext;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Batch sizes whose kernels are checked and timed one by one, comma-separated
    /// [default: 32,256].
    #[arg(long, value_delimiter = ',', default_values_t = [32, 256], hide_default_value = true)]
    pub batches: Vec<usize>,
    /// Sides of the square GEMMs to time, comma-separated [default: 256,512,1024,2048, and
    /// 4096 on a GPU that is not a software rasterizer].
    #[arg(long, value_delimiter = ',')]
    pub gemm_sizes: Option<Vec<usize>>,
    /// Batch sizes of the timed training steps, comma-separated [default: 32,64,128,256].
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [32, 64, 128, 256],
        hide_default_value = true
    )]
    pub step_batches: Vec<usize>,
    /// GPU training steps per timed block, three blocks per batch size after one warm-up
    /// step, the median block reported; 0 skips the step timing [default: as many as fit in
    /// about 1 s, at least 1].
    #[arg(long)]
    pub steps: Option<usize>,
    /// CPU reference steps timed (0 skips them).
    #[arg(long, default_value_t = 1)]
    pub cpu_steps: usize,
    /// Batch size of the CPU reference step.
    #[arg(long, default_value_t = 32)]
    pub cpu_batch: usize,
    /// Time only kernels whose name contains one of these (comma-separated), e.g.
    /// `conv2d,gemm`. The ceilings and the steps are measured regardless.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// Target length of one sample, in milliseconds (a sample repeats the kernel that long).
    #[arg(long, default_value_t = 10)]
    pub sample_ms: u64,
    /// Time to spend sampling each kernel, in milliseconds (at least --min-samples samples).
    #[arg(long, default_value_t = 80)]
    pub kernel_ms: u64,
    /// Fewest samples per kernel (but 2 where that many would take over 2 s).
    #[arg(long, default_value_t = 3)]
    pub min_samples: usize,
    /// Time with the wall clock around submit and wait even where GPU timestamps exist.
    #[arg(long)]
    pub wall_clock: bool,
    /// Size of the buffer the copy ceiling copies, in MiB.
    #[arg(long, default_value_t = 64)]
    pub copy_mib: u64,
    /// Also write the results as one JSON document to this file (`-`: to stdout, instead of
    /// the table).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// GPU adapter, by index or by a part of its name (see `gan-gpu devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// GEMM and convolution kernels to measure (as `train --kernels`).
    #[arg(long, value_enum, default_value_t = super::device::KernelArg::Auto)]
    pub kernels: super::device::KernelArg,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let ctx = GpuContext::new(args.adapter.as_deref()).context("opening the GPU")?;
    let ctx = super::device::with_kernels(ctx, args.kernels)?;
    let defaults = BenchConfig::defaults_for(&ctx);
    let config = BenchConfig {
        kernel_batches: args.batches.clone(),
        gemm_sizes: args
            .gemm_sizes
            .clone()
            .unwrap_or(defaults.gemm_sizes.clone()),
        step_batches: args.step_batches.clone(),
        gpu_steps: args.steps,
        cpu_batch: args.cpu_batch,
        cpu_steps: args.cpu_steps,
        filter: args.filter.clone(),
        sampling: bench::Sampling {
            target_sample: Duration::from_millis(args.sample_ms),
            budget: Duration::from_millis(args.kernel_ms),
            min_samples: args.min_samples,
            ..defaults.sampling
        },
        wall_clock: args.wall_clock,
        copy_bytes: args.copy_mib << 20,
        ..defaults
    };
    let limit = ctx.limits.max_storage_buffer_binding_size;
    if config.copy_bytes > limit {
        bail!(
            "--copy-mib {} is larger than this device's largest storage binding ({} MiB)",
            args.copy_mib,
            limit >> 20
        );
    }

    let report = bench::run(&ctx, &config).context("running the benchmark")?;
    let to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !to_stdout {
        print!("{}", report.table());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        if to_stdout {
            println!("{text}");
        } else {
            gan_gpu::fsutil::write_atomic(path, format!("{text}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    let lists = [
        ("--batches", &args.batches),
        ("--step-batches", &args.step_batches),
    ];
    for (flag, values) in lists {
        if values.contains(&0) {
            bail!("{flag} takes batch sizes of at least 1, got {values:?}");
        }
    }
    if let Some(sizes) = &args.gemm_sizes
        && sizes.contains(&0)
    {
        bail!("--gemm-sizes takes sides of at least 1, got {sizes:?}");
    }
    let positive = [
        ("--cpu-batch", args.cpu_batch as u64),
        ("--sample-ms", args.sample_ms),
        ("--min-samples", args.min_samples as u64),
        ("--copy-mib", args.copy_mib),
    ];
    for (flag, value) in positive {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    // The JSON is written at the end: find a missing folder, or a folder given as the file,
    // before minutes of measuring.
    if let Some(path) = args.json.as_deref().filter(|p| p.as_os_str() != "-") {
        if path.is_dir() {
            bail!(
                "--json {}: that is a folder; give a file name, e.g. {}",
                path.display(),
                path.join("bench.json").display()
            );
        }
        if let Some(folder) = path
            .parent()
            .filter(|f| !f.as_os_str().is_empty() && !f.is_dir())
        {
            bail!(
                "--json {}: the folder {} does not exist",
                path.display(),
                folder.display()
            );
        }
    }
    if args.filter.iter().any(|f| f.trim().is_empty()) {
        bail!("--filter takes non-empty kernel name parts, e.g. --filter conv2d,gemm");
    }
    Ok(())
}
