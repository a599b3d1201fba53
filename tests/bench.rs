//! The benchmark: `gan-gpu bench --json` on small shapes writes the documented fields with
//! sane values, the check before timing catches a kernel that disagrees with its reference
//! (whole or sampled), the step inventory is the trainer's step dispatch for dispatch, and
//! bad flags are refused before any GPU work.
//!
//! The GPU tests need an adapter: without one they skip, unless GAN_GPU_REQUIRE_ADAPTER=1.

mod common;

use std::process::{Command, Output};

use gan_gpu::Error;
use gan_gpu::bench::{Case, Kernel, inventory};
use gan_gpu::gpu::Plan;
use gan_gpu::model::{IMAGE_LEN, ModelConfig, Weights};
use gan_gpu::shapes::{Conv2dGeometry, GemmShape};
use gan_gpu::train::gpu::GpuTrainer;

fn gan_gpu(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gan-gpu"));
    cmd.args(args).env("RUST_LOG", "warn");
    cmd.output().expect("running gan-gpu")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn number(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

fn check_kernel_entry(e: &serde_json::Value) {
    for key in ["name", "shape"] {
        assert!(
            e[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {e}"
        );
    }
    let (median, min) = (number(e, "median_ms"), number(e, "min_ms"));
    assert!(min > 0.0 && min <= median && median.is_finite(), "{e}");
    let fraction = number(e, "fraction_of_ceiling");
    assert!(fraction.is_finite() && fraction > 0.0, "{e}");
    assert!(number(e, "gbs") > 0.0, "{e}");
    if number(e, "flops") > 0.0 {
        assert!(number(e, "gflops") > 0.0, "{e}");
    }
    let check = &e["check"];
    assert!(
        number(check, "checked") > 0.0 && number(check, "worst") <= 1.0,
        "{e}"
    );
}

#[test]
fn bench_json_has_the_documented_fields_with_sane_values() {
    if common::gpu::context().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let args = [
        "bench",
        "--batches",
        "2",
        "--filter",
        "conv2d_forward,gemm,leaky_relu_forward",
        "--gemm-sizes",
        "16,40",
        "--step-batches",
        "2",
        "--steps",
        "1",
        "--cpu-batch",
        "2",
        "--cpu-steps",
        "1",
        "--copy-mib",
        "1",
        "--sample-ms",
        "1",
        "--kernel-ms",
        "5",
        "--min-samples",
        "2",
        "--json",
        json.to_str().unwrap(),
    ];
    let out = gan_gpu(&args);
    assert!(out.status.success(), "bench failed:\n{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("conv2d_forward") && table.contains("ms/step"),
        "{table}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["device"]["adapter"].as_str().is_some());
    let ceilings = &report["ceilings"];
    assert!(number(ceilings, "fma_gflops") > 0.0 && number(ceilings, "copy_gbs") > 0.0);

    // The filter picked exactly these families: both D convs, the frozen-D GEMM and the two
    // square ones, and every LeakyReLU.
    let kernels = report["kernels"].as_array().unwrap();
    let names: Vec<&str> = kernels.iter().filter_map(|k| k["name"].as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| ["conv2d_forward", "gemm", "leaky_relu_forward"].contains(n)),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "conv2d_forward").count(), 2);
    assert_eq!(names.iter().filter(|n| **n == "gemm").count(), 3);
    for e in kernels
        .iter()
        .chain(report["ceiling_kernels"].as_array().unwrap())
    {
        check_kernel_entry(e);
    }

    // One GPU row and one CPU row; the GPU step moves only its uniform and creates nothing.
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    for s in steps {
        assert_eq!(number(s, "batch"), 2.0);
        for key in ["ms_per_step", "images_per_s", "gflops"] {
            assert!(
                number(s, key) > 0.0 && number(s, key).is_finite(),
                "{key}: {s}"
            );
        }
    }
    let gpu = &steps[0];
    assert_eq!(gpu["device"], "gpu");
    assert!(number(gpu, "dispatches") > 100.0, "{gpu}");
    assert_eq!(number(gpu, "submits"), 1.0, "{gpu}");
    assert_eq!(number(gpu, "objects_created"), 0.0, "{gpu}");
    let bytes = number(gpu, "bytes_transferred");
    assert!(bytes > 0.0 && bytes <= 256.0, "{gpu}");
    assert_eq!(steps[1]["device"], "cpu");
}

#[test]
fn check_catches_kernels_that_disagree_with_the_reference() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    let kernels = [
        // Checked whole against the CPU reference.
        Kernel::Conv2dForward(Conv2dGeometry::conv_same(2, 3, (9, 7), 5, (3, 3), (2, 2))),
        Kernel::LeakyReluForward { len: 1000 },
        // Just past the whole-check limit: checked on sampled entries in f64.
        Kernel::Gemm(GemmShape {
            m: 372,
            n: 372,
            k: 372,
            trans_a: true,
            trans_b: false,
        }),
    ];
    for kernel in kernels {
        let mut case = Case::new(&ctx, kernel, 7).unwrap();
        let agreement = case
            .verify(&ctx)
            .unwrap_or_else(|e| panic!("{} does not match: {e}", kernel.name()));
        assert!(agreement.checked > 0 && agreement.worst <= 1.0);

        case.perturb_reference();
        match case.verify(&ctx) {
            Err(Error::CheckFailed(f)) => assert_eq!(f.kernel, kernel.name()),
            other => panic!("{}: expected CheckFailed, got {other:?}", kernel.name()),
        }
    }
}

#[test]
fn step_inventory_is_the_trainers_step_dispatch_for_dispatch() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    let batch = 3;
    let images = vec![7u8; 16 * IMAGE_LEN];
    let cfg = ModelConfig {
        batch,
        ..ModelConfig::default()
    };
    let weights = Weights::initial(cfg.latent_dim, 1);
    let trainer = GpuTrainer::new(ctx.clone(), cfg, &weights, 1, &images, 1).unwrap();

    // Each listed launcher call, built through the launchers on the same device, makes the
    // same dispatches as the trainer records, in the same order and with the same grids.
    let mut plan = Plan::new();
    for kernel in inventory::step_kernels(&cfg, batch, 16) {
        let case = Case::new(&ctx, kernel, 1).unwrap();
        for d in case.plan().dispatches() {
            plan.push(d.clone());
        }
    }
    let listed: Vec<(String, [u32; 3])> = plan
        .dispatches()
        .iter()
        .map(|d| (d.label.clone(), d.workgroups))
        .collect();
    assert_eq!(listed, trainer.step_dispatches());
}

#[test]
fn bad_bench_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    for (args, flag) in [
        (vec!["bench", "--batches", "32,0"], "--batches"),
        (vec!["bench", "--gemm-sizes", "0"], "--gemm-sizes"),
        (vec!["bench", "--min-samples", "0"], "--min-samples"),
        (vec!["bench", "--filter", ","], "--filter"),
        (
            vec!["bench", "--json", "/nonexistent/folder/b.json"],
            "/nonexistent/folder",
        ),
        // A folder where the file should be, refused before the measuring.
        (vec!["bench", "--json", folder], "that is a folder"),
    ] {
        let out = gan_gpu(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let message = text(&out);
        assert!(message.contains(flag), "{args:?}: {message}");
    }
}
