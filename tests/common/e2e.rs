//! The end-to-end golden cases: the reference program's two training steps, replayed on a
//! trainer from the file's initial weights and injected inputs.

use gan_gpu::model::{FakeBnMode, ModelConfig, Weights};
use gan_gpu::shapes::AdamConfig;
use gan_gpu::train::{StepInputs, Trainer};

use super::golden::{Case, assert_close, tolerance};

/// The model configuration a case's metadata describes.
pub fn config_of(case: &Case) -> ModelConfig {
    let f = |key: &str| case.meta_f64(key);
    let fake_bn = match case.meta.get("fake_batch_bn_mode").map(String::as_str) {
        Some("inference") => FakeBnMode::Inference,
        Some("training") => FakeBnMode::Training,
        other => panic!(
            "{}: fake_batch_bn_mode is {other:?}, expected inference|training",
            case.name
        ),
    };
    ModelConfig {
        latent_dim: case.shape("step1.noise_d")[1],
        batch: f("batch") as usize,
        leaky_alpha: f("leaky_relu_alpha") as f32,
        dropout_rate: f("dropout_rate"),
        bn_momentum: f("bn_momentum") as f32,
        bn_epsilon: f("bn_epsilon") as f32,
        adam: AdamConfig {
            lr: f("adam_lr") as f32,
            beta1: f("adam_beta_1") as f32,
            beta2: f("adam_beta_2") as f32,
            epsilon: f("adam_epsilon") as f32,
        },
        fake_bn,
    }
}

/// The case's initial weights (its unprefixed `g.*` / `d.*` tensors).
pub fn weights_of(case: &Case, cfg: &ModelConfig) -> Weights {
    let mut w = Weights::initial(cfg.latent_dim, 0);
    let names: Vec<String> = w.iter().map(|(spec, _)| spec.name.clone()).collect();
    for name in names {
        w.set(&name, case.tensor(&name))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    w
}

/// Runs every step of the case on `trainer` and checks losses, accuracies, every weight and
/// every running statistic after each step.
pub fn check_e2e(case: &Case, trainer: &mut dyn Trainer, device: &str) {
    check_e2e_with(case, trainer, device, &mut |_, _| {});
}

pub fn check_e2e_with<T: Trainer + ?Sized>(
    case: &Case,
    trainer: &mut T,
    device: &str,
    after: &mut dyn FnMut(&mut T, usize),
) {
    let steps = case.meta_f64("steps") as usize;
    for s in 1..=steps {
        let p = |name: &str| format!("step{s}.{name}");
        let inputs = StepInputs {
            real: case.tensor(&p("real")).to_vec(),
            noise_d: case.tensor(&p("noise_d")).to_vec(),
            noise_g: case.tensor(&p("noise_g")).to_vec(),
        };
        trainer.step_with(&inputs).expect("training step");
        let m = trainer.metrics().expect("metrics");
        after(trainer, s);

        let (rtol, atol) = tolerance("e2e_dcgan", "d_loss_real");
        let scalars = [
            ("d_loss_real", m.d_loss_real),
            ("d_loss_fake", m.d_loss_fake),
            ("d_acc_real", m.d_acc_real),
            ("d_acc_fake", m.d_acc_fake),
            ("g_loss", m.g_loss),
        ];
        for (name, got) in scalars {
            let what = format!("{device} {} {}", case.name, p(name));
            assert_close(&what, &[got], case.tensor(&p(name)), rtol, atol);
        }

        let weights = trainer.weights().expect("weights");
        for (spec, got) in weights.iter() {
            let (rtol, atol) = tolerance("e2e_dcgan", &spec.name);
            let what = format!("{device} {} {}", case.name, p(&spec.name));
            assert_close(&what, got, case.tensor(&p(&spec.name)), rtol, atol);
        }
        println!("{device} {}: step {s} matches", case.name);
    }
}

/// The CPU reference on one end-to-end case.
pub fn check_e2e_cpu(case: &Case) {
    let cfg = config_of(case);
    let weights = weights_of(case, &cfg);
    let mut trainer = gan_gpu::train::cpu::CpuTrainer::new(cfg, weights, 0, Vec::new());
    check_e2e(case, &mut trainer, "cpu");
}
