//! The command line end to end on a small IDX fixture.

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{gan_gpu, png_size, text, write_fixture};

fn train_small(device: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    if device == "gpu" {
        common::gpu::context()?;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_fixture(&data, 40);
    let out = dir.path().join("run");
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "4",
        "--save-interval",
        "2",
        "--log-interval",
        "2",
        "--batch-size",
        "4",
        "--seed",
        "3",
        "--device",
        device,
        "--grid-rows",
        "2",
        "--grid-cols",
        "3",
    ];
    let result = gan_gpu(&args);
    assert!(result.status.success(), "train failed:\n{}", text(&result));
    Some((dir, out))
}

fn check_outputs(out: &Path) {
    // Grids at steps 0, 2 and 4: 2 x 3 cells of 28 px at scale 4 with 2-px gaps.
    for step in [0, 2, 4] {
        let (w, h) = png_size(&out.join(format!("mnist_{step}.png")));
        assert!(
            w > 3 * 28 * 4 && h > 2 * 28 * 4 && w > h,
            "grid {step} is {w}x{h}"
        );
    }
    let gif = std::fs::File::open(out.join("training.gif")).unwrap();
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(gif).unwrap();
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 3);

    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "step,d_loss,d_loss_real,d_loss_fake,d_acc,g_loss,ms_per_step,images_per_s"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for line in &lines[1..] {
        let values: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(values.iter().all(|v| v.is_finite()), "{line}");
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["seed"], 3);
    assert_eq!(run["batch_size"], 4);

    // The checkpoint of the end, loadable.
    let ckpt = gan_gpu::checkpoint::Checkpoint::load(out.join("checkpoint_4.safetensors")).unwrap();
    assert_eq!(ckpt.state.step, 4);
    assert_eq!(ckpt.run.unwrap().seed, 3);
}

#[test]
fn train_on_gpu_writes_frames_gif_and_metrics() {
    if let Some((_dir, out)) = train_small("gpu") {
        check_outputs(&out);
    }
}

#[test]
fn train_on_cpu_writes_frames_gif_and_metrics() {
    let (_dir, out) = train_small("cpu").expect("the CPU needs no adapter");
    check_outputs(&out);
}

#[test]
fn refuses_an_out_folder_that_holds_a_run_without_force() {
    let (dir, out) = train_small("cpu").unwrap();
    let data = dir.path().join("data");
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ];
    let refused = gan_gpu(&args);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    let mut forced = args.to_vec();
    forced.push("--force");
    let result = gan_gpu(&forced);
    assert!(result.status.success(), "{}", text(&result));
}

#[test]
fn explicit_data_folder_without_files_is_an_error_not_a_download() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let result = gan_gpu(&[
        "train",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--steps",
        "1",
    ]);
    assert!(!result.status.success());
    assert!(text(&result).contains("train-images"), "{}", text(&result));
}

#[test]
fn truncated_image_file_is_reported_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), 8);
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("run");
    let result = gan_gpu(&[
        "train",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--steps",
        "1",
    ]);
    assert!(!result.status.success());
    assert!(
        text(&result).contains("train-images-idx3-ubyte.gz"),
        "{}",
        text(&result)
    );
    assert!(!text(&result).contains("panicked"), "{}", text(&result));
}

#[test]
fn gif_subcommand_orders_frames_by_number() {
    let (dir, out) = train_small("cpu").unwrap();
    let gif = dir.path().join("again.gif");
    let result = gan_gpu(&[
        "gif",
        "--input",
        out.to_str().unwrap(),
        "--output",
        gif.to_str().unwrap(),
        "--duration",
        "0.25",
    ]);
    assert!(result.status.success(), "{}", text(&result));
    let mut decoder = gif::DecodeOptions::new()
        .read_info(std::fs::File::open(&gif).unwrap())
        .unwrap();
    let frame = decoder.read_next_frame().unwrap().unwrap();
    assert_eq!(frame.delay, 25);
}

#[test]
fn devices_lists_an_adapter() {
    if common::gpu::context().is_none() {
        return;
    }
    let result = gan_gpu(&["devices"]);
    assert!(result.status.success(), "{}", text(&result));
    assert!(text(&result).starts_with("0: "), "{}", text(&result));
}
