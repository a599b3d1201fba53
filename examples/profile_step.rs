use gan_gpu::gpu::GpuContext;
use gan_gpu::model::{ModelConfig, Weights};
use gan_gpu::train::Trainer;
use gan_gpu::train::gpu::GpuTrainer;

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let cfg = ModelConfig {
        batch,
        ..ModelConfig::default()
    };
    let ctx = GpuContext::new(None).unwrap();
    let images = vec![0u8; 784 * 64];
    let w = Weights::initial(100, 1);
    let mut t = GpuTrainer::new(ctx, cfg, &w, 1, &images, 25).unwrap();
    for _ in 0..2 {
        t.step().unwrap();
    }
    t.metrics().unwrap();
    let s = std::time::Instant::now();
    for _ in 0..3 {
        t.step().unwrap();
    }
    t.metrics().unwrap();
    println!("step: {:.1} ms", s.elapsed().as_secs_f64() * 1e3 / 3.0);
    let times = t.time_step_dispatches(3).unwrap();
    let total: f64 = times.iter().map(|x| x.1).sum();
    let dispatches = t.step_dispatches();
    for ((l, ms), (_, wg)) in times.iter().zip(dispatches) {
        println!(
            "{:8.2} ms {:5.1}%  {l} {wg:?}",
            ms * 1e3,
            100.0 * ms / total
        );
    }
    println!("sum {:.1} ms", total * 1e3);
}
