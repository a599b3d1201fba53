//! The reference program's training steps (TensorFlow), replayed on the GPU with every
//! kernel set the device runs. Every end-to-end case in the golden folder's index is run
//! (`golden_cpu` replays them on the CPU reference). Besides the losses, weights and running
//! statistics after each step, the gradients of each model's last update are checked
//! against the case's `stepS.grad.g.*` and `stepS.grad.d_fake.*`.

mod common;

use gan_gpu::gpu::{GpuContext, KernelSet};
use gan_gpu::model::TensorSet;
use gan_gpu::train::gpu::GpuTrainer;

use common::e2e::{check_e2e_with, config_of, weights_of};
use common::golden::{Case, assert_close, cases, tolerance};

fn e2e_cases() -> Vec<Case> {
    let all: Vec<_> = cases()
        .into_iter()
        .filter(|c| c.op == "e2e_dcgan")
        .collect();
    assert!(!all.is_empty(), "the golden folder lists no e2e_dcgan case");
    all
}

/// The device's own choice first, then the direct kernels if that was another set.
fn kernel_sets(ctx: &GpuContext) -> Vec<GpuContext> {
    let mut out = vec![ctx.clone()];
    if ctx.kernel_set() != KernelSet::Direct {
        out.push(
            ctx.with_kernel_set(KernelSet::Direct)
                .expect("direct kernels"),
        );
    }
    out
}

fn check_gradients(case: &Case, step: usize, update: &str, got: &TensorSet, device: &str) {
    for (spec, values) in got.specs.iter().zip(&got.data) {
        let name = format!("step{step}.grad.{update}.{}", spec.name);
        let (rtol, atol) = tolerance("e2e_dcgan", &name);
        let what = format!("{device} {} {name}", case.name);
        assert_close(&what, values, case.tensor(&name), rtol, atol);
    }
}

#[test]
fn gpu_reproduces_golden_training_steps() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    for ctx in kernel_sets(&ctx) {
        let device = format!("gpu ({} kernels)", ctx.kernel_set().name());
        for case in e2e_cases() {
            let cfg = config_of(&case);
            let weights = weights_of(&case, &cfg);
            let mut trainer =
                GpuTrainer::new(ctx.clone(), cfg, &weights, 0, &[], 4).expect("GPU trainer");
            check_e2e_with(
                &case,
                &mut trainer,
                &device,
                &mut |t: &mut GpuTrainer, step| {
                    let (g, d) = t.gradients().expect("reading the gradients back");
                    check_gradients(&case, step, "g", &g, &device);
                    check_gradients(&case, step, "d_fake", &d, &device);
                },
            );
        }
    }
}
