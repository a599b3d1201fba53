//! The reference program's training steps (TensorFlow), replayed on the GPU. Every
//! end-to-end case in the golden folder's index is run (`golden_cpu` replays them on the CPU
//! reference).

mod common;

use gan_gpu::train::gpu::GpuTrainer;

use common::e2e::{check_e2e, config_of, weights_of};
use common::golden::cases;

fn e2e_cases() -> Vec<common::golden::Case> {
    let all: Vec<_> = cases()
        .into_iter()
        .filter(|c| c.op == "e2e_dcgan")
        .collect();
    assert!(!all.is_empty(), "the golden folder lists no e2e_dcgan case");
    all
}

#[test]
fn gpu_reproduces_golden_training_steps() {
    let Some(_) = common::gpu::context() else {
        return;
    };
    for case in e2e_cases() {
        let ctx = common::gpu::context().expect("adapter");
        let cfg = config_of(&case);
        let weights = weights_of(&case, &cfg);
        let mut trainer = GpuTrainer::new(ctx, cfg, &weights, 0, &[], 4).expect("GPU trainer");
        check_e2e(&case, &mut trainer, "gpu");
    }
}
