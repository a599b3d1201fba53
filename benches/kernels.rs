//! `cargo bench`: the GEMM and convolution kernels at the model's batch-32 shapes and one
//! whole training step, through the same library code as `gan-gpu bench` (each kernel is
//! checked against the CPU reference first). Criterion reports time per run with its
//! statistics; the throughput it prints as "elements" is FLOP for a kernel (its bytes are
//! the compulsory traffic of `bench::cost`) and images for the step.
//!
//! Kernel times come from GPU timestamps where the adapter has them, else the wall clock
//! around one submit of all of an iteration batch's runs. Without an adapter it prints why
//! and measures nothing.

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

use gan_gpu::bench::{Case, DATASET_IMAGES, Kernel, Timer, model_kernels, training};
use gan_gpu::gpu::GpuContext;
use gan_gpu::model::{ModelConfig, Weights};
use gan_gpu::train::Trainer;
use gan_gpu::train::gpu::GpuTrainer;

/// The batch the model trains at.
const BATCH: usize = 32;

fn context() -> Option<GpuContext> {
    match GpuContext::new(None) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            eprintln!("no GPU benchmarks: {e}");
            None
        }
    }
}

fn is_contraction(kernel: &Kernel) -> bool {
    kernel.flops() > 0
}

fn kernels(c: &mut Criterion) {
    let Some(ctx) = context() else { return };
    let timer = Timer::new(&ctx, false).expect("timestamp queries are created");
    let mut group = c.benchmark_group(format!("kernels at batch {BATCH}"));
    // Flat sampling (the same runs in every sample): the slow kernels of a software
    // rasterizer would otherwise need 55 runs for 10 samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let cfg = ModelConfig::default();
    for (kernel, _) in model_kernels(&cfg, BATCH, DATASET_IMAGES) {
        if !is_contraction(&kernel) {
            continue;
        }
        let case = Case::new(&ctx, kernel, 1).expect("the case is built");
        if let Err(e) = case.verify(&ctx) {
            panic!("{e}");
        }
        group.throughput(Throughput::ElementsAndBytes {
            elements: kernel.flops(),
            bytes: kernel.bytes(),
        });
        let id = BenchmarkId::new(kernel.name(), kernel.shape());
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let repeats = u32::try_from(iters).unwrap_or(u32::MAX);
                let seconds = timer
                    .time(&[case.plan()], repeats)
                    .expect("the kernel runs");
                Duration::from_secs_f64(seconds)
            })
        });
    }
    group.finish();
}

fn step(c: &mut Criterion) {
    let Some(ctx) = context() else { return };
    let cfg = ModelConfig {
        batch: BATCH,
        ..ModelConfig::default()
    };
    let images = training::synthetic_images(DATASET_IMAGES, 1);
    let weights = Weights::initial(cfg.latent_dim, 1);
    let mut trainer =
        GpuTrainer::new(ctx, cfg, &weights, 1, &images, 1).expect("the trainer is built");

    // Steps are submitted back to back, as training does, until the last one's metrics are
    // read back: wall clock, since a step is several submissions' worth of work.
    let mut group = c.benchmark_group("training step");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new("gpu", format!("batch {BATCH}")), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                trainer.step().expect("the step runs");
            }
            trainer.metrics().expect("the metrics are read");
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, kernels, step);
criterion_main!(benches);
