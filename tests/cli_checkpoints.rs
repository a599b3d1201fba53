//! Checkpoints, resume, interruption, sampling, interpolation and plots through the command
//! line, on a small IDX fixture.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use gan_gpu::checkpoint::Checkpoint;
use gan_gpu::model::{ModelConfig, TensorSet, Weights};
use gan_gpu::train::TrainState;

use common::fixture::{
    gan_gpu, gan_gpu_command, png_size, text, write_fixture, write_fixture_seeded,
};

/// A temporary folder with the fixture's data in `data/`.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_fixture(&data, 40);
    (dir, data)
}

/// `train` on the fixture: seed 3, a row of metrics every step, grids and checkpoints every
/// 3 steps, every checkpoint kept.
fn train_args<'a>(
    data: &'a str,
    out: &'a str,
    steps: &'a str,
    batch: &'a str,
    device: &'a str,
) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--out",
        out,
        "--steps",
        steps,
        "--batch-size",
        batch,
        "--seed",
        "3",
        "--log-interval",
        "1",
        "--save-interval",
        "3",
        "--checkpoint-interval",
        "3",
        "--keep",
        "0",
        "--grid-rows",
        "2",
        "--grid-cols",
        "3",
        "--device",
        device,
    ]
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn load(path: impl AsRef<Path>) -> Checkpoint {
    Checkpoint::load(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// Every tensor of two states, bit for bit, and the step.
fn assert_same_state(what: &str, a: &TrainState, b: &TrainState) {
    assert_eq!(a.step, b.step, "{what}: steps");
    let sets = |s: &TrainState| -> Vec<(&'static str, TensorSet)> {
        vec![
            ("weights g", s.weights.g.clone()),
            ("running stats", s.weights.g_state.clone()),
            ("weights d", s.weights.d.clone()),
            ("adam_m g", s.g_m.clone()),
            ("adam_v g", s.g_v.clone()),
            ("adam_m d", s.d_m.clone()),
            ("adam_v d", s.d_v.clone()),
        ]
    };
    for ((kind, x), (_, y)) in sets(a).into_iter().zip(sets(b)) {
        for ((spec, u), v) in x.specs.iter().zip(&x.data).zip(&y.data) {
            let differ = u
                .iter()
                .zip(v)
                .filter(|(p, q)| p.to_bits() != q.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "{what}: {kind} {}: {differ} values differ",
                spec.name
            );
        }
    }
}

/// metrics.csv without the timing columns.
fn metric_rows(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

fn gif_frames(path: &Path) -> Vec<(u16, u16, u16)> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options
        .read_info(std::fs::File::open(path).unwrap())
        .unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        frames.push((frame.width, frame.height, frame.delay));
    }
    frames
}

/// Starts `train`, waits for its first metrics row, sends `signal`, and waits for the exit.
#[cfg(unix)]
fn interrupt(args: &[&str], out: &Path, signal: &str) -> Output {
    let mut child = gan_gpu_command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting gan-gpu");
    let start = Instant::now();
    loop {
        let rows = std::fs::read_to_string(out.join("metrics.csv"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if rows >= 2 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("train exited ({status}) before its first step was logged");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no step logged in 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("running kill");
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// The checkpoint a run stopped with: the newest, with its grid and the GIF beside it.
fn check_stopped_run(out: &Path, result: &Output, code: i32) -> u64 {
    assert_eq!(result.status.code(), Some(code), "{}", text(result));
    let path = gan_gpu::checkpoint::latest(out)
        .unwrap()
        .expect("a checkpoint");
    let ckpt = load(&path);
    let step = ckpt.state.step;
    assert!(step >= 1, "stopped at step {step}");
    assert!(
        text(result).contains(&format!("after step {step}")),
        "{}",
        text(result)
    );
    assert!(
        out.join(format!("mnist_{step}.png")).exists(),
        "the last frame"
    );
    let frames = gif_frames(&out.join("training.gif"));
    assert!(frames.len() >= 2, "{} frames", frames.len());
    step
}

#[cfg(unix)]
#[test]
fn interrupted_cpu_run_resumes_bit_identical_to_a_straight_run() {
    let (dir, data) = workspace();
    let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));

    // Four steps in one go: checkpoints at 3 and 4.
    ok(
        gan_gpu(&train_args(s(&data), s(&straight), "4", "4", "cpu")),
        "straight run",
    );

    // Four steps, stopped by Ctrl-C after a step, then resumed with nothing but --resume.
    let args = train_args(s(&data), s(&stopped), "4", "4", "cpu");
    let result = interrupt(&args, &stopped, "-INT");
    let step = check_stopped_run(&stopped, &result, 130);
    assert_eq!(metric_rows(&stopped).len(), 1 + step as usize);
    if step < 4 {
        ok(
            gan_gpu(&[
                "train",
                "--resume",
                "latest",
                "--out",
                s(&stopped),
                "--device",
                "cpu",
            ]),
            "resume latest",
        );
    }
    let (a, b) = (
        load(straight.join("checkpoint_4.safetensors")),
        load(stopped.join("checkpoint_4.safetensors")),
    );
    assert_same_state("cpu, interrupted and resumed", &a.state, &b.state);
    assert_eq!(metric_rows(&straight), metric_rows(&stopped));
    assert_eq!(
        std::fs::read(straight.join("mnist_4.png")).unwrap(),
        std::fs::read(stopped.join("mnist_4.png")).unwrap()
    );

    // `sample` with the run's seed draws the cells of the run's grids.
    let grid = dir.path().join("sample.png");
    ok(
        gan_gpu(&[
            "sample",
            "--checkpoint",
            s(&straight.join("checkpoint_4.safetensors")),
            "--count",
            "6",
            "--grid",
            s(&grid),
            "--grid-cols",
            "3",
            "--device",
            "cpu",
        ]),
        "sample",
    );
    assert_eq!(
        std::fs::read(&grid).unwrap(),
        std::fs::read(straight.join("mnist_4.png")).unwrap()
    );

    // Resuming from an older checkpoint cuts the folder back to it.
    let result = ok(
        gan_gpu(&[
            "train",
            "--resume",
            s(&straight.join("checkpoint_3.safetensors")),
            "--steps",
            "3",
            "--device",
            "cpu",
        ]),
        "resume from step 3",
    );
    assert!(
        text(&result).contains("nothing to train"),
        "{}",
        text(&result)
    );
    let rows = metric_rows(&straight);
    assert_eq!(rows.len(), 1 + 3, "{rows:?}");
    assert_eq!(rows[..], metric_rows(&stopped)[..4]);
    assert!(!straight.join("checkpoint_4.safetensors").exists());
    assert!(!straight.join("mnist_4.png").exists());
    assert!(straight.join("checkpoint_3.safetensors").exists());

    // A CPU checkpoint resumes on the GPU.
    if common::gpu::context().is_some() {
        let on_gpu = dir.path().join("on_gpu");
        ok(
            gan_gpu(&[
                "train",
                "--resume",
                s(&stopped.join("checkpoint_4.safetensors")),
                "--out",
                s(&on_gpu),
                "--steps",
                "5",
                "--device",
                "gpu",
            ]),
            "resume a CPU checkpoint on the GPU",
        );
        let ckpt = load(on_gpu.join("checkpoint_5.safetensors"));
        assert_eq!(ckpt.state.step, 5);
        assert_eq!(ckpt.run.unwrap().device.kind, "gpu");
    }
}

#[test]
fn gpu_run_resumes_bit_identical_on_the_same_adapter() {
    if common::gpu::context().is_none() {
        return;
    }
    let (dir, data) = workspace();
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    ok(
        gan_gpu(&train_args(s(&data), s(&straight), "6", "4", "gpu")),
        "straight run",
    );
    ok(
        gan_gpu(&train_args(s(&data), s(&split), "3", "4", "gpu")),
        "first half",
    );
    let resumed = ok(
        gan_gpu(&[
            "train",
            "--resume",
            "latest",
            "--out",
            s(&split),
            "--steps",
            "6",
        ]),
        "second half",
    );
    assert!(text(&resumed).contains("resuming"), "{}", text(&resumed));
    let (a, b) = (
        load(straight.join("checkpoint_6.safetensors")),
        load(split.join("checkpoint_6.safetensors")),
    );
    assert_same_state("gpu, 3 + 3 steps", &a.state, &b.state);
    assert_eq!(metric_rows(&straight), metric_rows(&split));
    let run = a.run.unwrap();
    assert_eq!(run.device.kind, "gpu");
    assert_eq!(
        run.device.kernels,
        common::gpu::context().unwrap().kernel_choice()
    );

    // A GPU checkpoint resumes on the CPU.
    let on_cpu = dir.path().join("on_cpu");
    ok(
        gan_gpu(&[
            "train",
            "--resume",
            s(&split.join("checkpoint_6.safetensors")),
            "--out",
            s(&on_cpu),
            "--steps",
            "7",
            "--device",
            "cpu",
        ]),
        "resume a GPU checkpoint on the CPU",
    );
    let ckpt = load(on_cpu.join("checkpoint_7.safetensors"));
    assert_eq!(ckpt.state.step, 7);
    assert_eq!(ckpt.run.unwrap().device.kind, "cpu");
    // A new folder starts its own metrics.csv with the steps trained there.
    assert_eq!(metric_rows(&on_cpu).len(), 2);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_after_the_step_with_a_checkpoint_and_143() {
    let (dir, data) = workspace();
    let out = dir.path().join("run");
    let args = train_args(s(&data), s(&out), "1000", "1", "cpu");
    let result = interrupt(&args, &out, "-TERM");
    let step = check_stopped_run(&out, &result, 143);
    assert!(step < 1000);
}

/// A one-step run on the fixture to resume from: its folder and checkpoint.
fn one_step_run(dir: &Path, data: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("one");
    ok(
        gan_gpu(&train_args(s(data), s(&out), "1", "1", "cpu")),
        "one step",
    );
    let path = out.join("checkpoint_1.safetensors");
    (out, path)
}

#[test]
fn resuming_with_contradicting_flags_is_refused_harmless_ones_allowed() {
    let (dir, data) = workspace();
    let (_, ckpt) = one_step_run(dir.path(), &data);
    let base = ["train", "--resume", s(&ckpt), "--device", "cpu"];
    let refused = [
        (
            vec!["--lr", "0.001"],
            "--lr 0.001 (the checkpoint's is 0.0002)",
        ),
        (
            vec!["--batch-size", "4"],
            "--batch-size 4 (the checkpoint's is 1)",
        ),
        (
            vec!["--latent-dim", "64"],
            "--latent-dim 64 (the checkpoint's is 100)",
        ),
        (
            vec!["--beta1", "0.9"],
            "--beta1 0.9 (the checkpoint's is 0.5)",
        ),
        (
            vec!["--fake-bn", "inference"],
            "--fake-bn inference (the checkpoint's is training)",
        ),
        (vec!["--seed", "4"], "--seed 4 (the checkpoint's is 3)"),
        (
            vec!["--dataset", "fashion-mnist"],
            "--dataset fashion-mnist (the checkpoint's is mnist)",
        ),
    ];
    for (flags, reason) in refused {
        let mut args = base.to_vec();
        args.extend(&flags);
        let result = gan_gpu(&args);
        assert!(!result.status.success(), "{flags:?} was accepted");
        assert!(
            text(&result).contains(reason),
            "{flags:?}: {}",
            text(&result)
        );
    }

    // Other training images.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    write_fixture_seeded(&other, 40, 6);
    let mut args = base.to_vec();
    args.extend(["--data", s(&other)]);
    let result = gan_gpu(&args);
    assert!(!result.status.success());
    assert!(text(&result).contains("sha256"), "{}", text(&result));

    // Intervals, grid and kept checkpoints may change; --steps is the total.
    let mut args = base.to_vec();
    args.extend([
        "--log-interval",
        "7",
        "--save-interval",
        "9",
        "--checkpoint-interval",
        "11",
        "--keep",
        "5",
        "--grid-rows",
        "1",
        "--frame-duration",
        "0.2",
        "--steps",
        "1",
    ]);
    let result = ok(gan_gpu(&args), "harmless flags");
    assert!(
        text(&result).contains("nothing to train"),
        "{}",
        text(&result)
    );
    let mut args = base.to_vec();
    args.extend(["--steps", "0"]);
    assert!(!gan_gpu(&args).status.success());
}

#[test]
fn bad_checkpoints_are_refused_with_the_reason() {
    let (dir, data) = workspace();
    let (out, ckpt) = one_step_run(dir.path(), &data);
    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    for command in [
        vec!["train", "--resume", s(&cut), "--device", "cpu"],
        vec![
            "sample",
            "--checkpoint",
            s(&cut),
            "--grid",
            "x.png",
            "--device",
            "cpu",
        ],
    ] {
        let result = gan_gpu(&command);
        assert!(!result.status.success());
        let message = text(&result);
        assert!(
            message.contains("cut.safetensors") && message.contains("truncated"),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }

    // `latest` in a folder without checkpoints says so.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let result = gan_gpu(&[
        "train",
        "--resume",
        "latest",
        "--out",
        s(&empty),
        "--device",
        "cpu",
    ]);
    assert!(!result.status.success());
    assert!(text(&result).contains("no checkpoint"), "{}", text(&result));

    // A new run in the folder still needs --force; the message offers --resume.
    let result = gan_gpu(&train_args(s(&data), s(&out), "1", "1", "cpu"));
    assert!(!result.status.success());
    assert!(
        text(&result).contains("--resume latest"),
        "{}",
        text(&result)
    );
}

#[test]
fn golden_weights_start_a_run_and_sample() {
    let golden = common::golden::golden_dir().join("e2e_E1_predict_inference_bn.safetensors");
    let (dir, data) = workspace();
    let out = dir.path().join("from_golden");
    let result = ok(
        gan_gpu(&[
            "train",
            "--resume",
            s(&golden),
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--steps",
            "1",
            "--batch-size",
            "1",
            "--seed",
            "2",
            "--device",
            "cpu",
        ]),
        "a run from the golden weights",
    );
    assert!(text(&result).contains("weights only"), "{}", text(&result));
    assert_eq!(load(out.join("checkpoint_1.safetensors")).state.step, 1);
    let grid = dir.path().join("golden.png");
    ok(
        gan_gpu(&[
            "sample",
            "--checkpoint",
            s(&golden),
            "--count",
            "4",
            "--grid",
            s(&grid),
            "--device",
            "cpu",
        ]),
        "sampling the golden weights",
    );
    assert_eq!(png_size(&grid), ((2 * 28 + 2) * 4, (2 * 28 + 2) * 4));
}

/// A checkpoint of freshly initialised weights, made without training.
fn untrained_checkpoint(dir: &Path) -> PathBuf {
    let cfg = ModelConfig::default();
    let path = dir.join("untrained.safetensors");
    Checkpoint {
        state: TrainState::fresh(Weights::initial(cfg.latent_dim, 8)),
        config: cfg,
        run: None,
    }
    .save(&path)
    .unwrap();
    path
}

fn sample_outputs(device: &str, dir: &Path, ckpt: &Path) -> Option<Vec<u8>> {
    if device == "gpu" {
        common::gpu::context()?;
    }
    let grid = dir.join(format!("{device}-grid.png"));
    let singles = dir.join(format!("{device}-singles"));
    let idx = dir.join(format!("{device}-images-idx3-ubyte.gz"));
    let result = ok(
        gan_gpu(&[
            "sample",
            "--checkpoint",
            s(ckpt),
            "--count",
            "10",
            "--seed",
            "5",
            "--batch-size",
            "4",
            "--grid",
            s(&grid),
            "--grid-cols",
            "5",
            "--dir",
            s(&singles),
            "--idx",
            s(&idx),
            "--device",
            device,
        ]),
        "sample",
    );
    assert!(text(&result).contains("10 samples"), "{}", text(&result));

    // 5 x 2 cells of 28 px with 2-px gaps, 4 times upscaled.
    assert_eq!(png_size(&grid), ((5 * 28 + 4 * 2) * 4, (2 * 28 + 2) * 4));

    // The IDX file reads back with our reader, as MNIST does, and holds the single PNGs.
    let images = gan_gpu::data::read_images(&idx).expect("reading the samples' IDX");
    assert_eq!((images.count, images.rows, images.cols), (10, 28, 28));
    let mut names: Vec<_> = std::fs::read_dir(&singles)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 10);
    assert_eq!(names[0], "sample_0000.png");
    for (i, name) in names.iter().enumerate() {
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(singles.join(name)).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (28, 28));
        assert_eq!(
            &buf[..784],
            &images.pixels[i * 784..(i + 1) * 784],
            "{name}"
        );
    }
    Some(images.pixels)
}

#[test]
fn sample_writes_grid_pngs_and_idx_on_either_device() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = untrained_checkpoint(dir.path());
    let cpu = sample_outputs("cpu", dir.path(), &ckpt).unwrap();

    // The IDX pixels are round((x + 1) * 127.5) of G's output.
    let ck = load(&ckpt);
    let mut g = gan_gpu::sample::cpu_generator(ck.config, &ck.state.weights);
    let z = gan_gpu::sample::sample_latents(5, 0, 10, 100).unwrap();
    let want: Vec<u8> = gan_gpu::train::Trainer::generate(&mut g, &z)
        .unwrap()
        .iter()
        .map(|&x| gan_gpu::images::to_gray(x))
        .collect();
    assert_eq!(cpu, want);

    if let Some(gpu) = sample_outputs("gpu", dir.path(), &ckpt) {
        let worst = cpu
            .iter()
            .zip(&gpu)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= 1,
            "GPU and CPU samples differ by {worst} gray levels"
        );
    }

    // Nothing to write is an error, not a silent no-op.
    let result = gan_gpu(&["sample", "--checkpoint", s(&ckpt), "--device", "cpu"]);
    assert!(!result.status.success());
    assert!(text(&result).contains("--grid"), "{}", text(&result));
}

#[test]
fn interpolate_writes_a_looping_gif_of_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = untrained_checkpoint(dir.path());
    let gif = dir.path().join("walk.gif");
    ok(
        gan_gpu(&[
            "interpolate",
            "--checkpoint",
            s(&ckpt),
            "--out",
            s(&gif),
            "--points",
            "3",
            "--frames-per-segment",
            "2",
            "--grid-rows",
            "2",
            "--grid-cols",
            "3",
            "--grid-scale",
            "2",
            "--frame-duration",
            "0.1",
            "--batch-size",
            "5",
            "--device",
            "cpu",
        ]),
        "interpolate",
    );
    let side = |n: u16| (n * 28 + (n - 1) * 2) * 2;
    let frames = gif_frames(&gif);
    assert_eq!(frames.len(), 3 * 2);
    assert!(
        frames.iter().all(|&f| f == (side(3), side(2), 10)),
        "{frames:?}"
    );

    let result = gan_gpu(&[
        "interpolate",
        "--checkpoint",
        s(&ckpt),
        "--out",
        s(&gif),
        "--points",
        "1",
        "--device",
        "cpu",
    ]);
    assert!(!result.status.success());
    assert!(text(&result).contains("--points"), "{}", text(&result));
}

#[test]
fn plot_draws_losses_and_accuracy_from_metrics_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    let mut text_csv =
        String::from("step,d_loss,d_loss_real,d_loss_fake,d_acc,g_loss,ms_per_step,images_per_s\n");
    for i in 1..=300 {
        let x = i as f64;
        let d = 0.6 + 0.1 * (x / 20.0).sin();
        let g = 1.0 + 0.3 * (x / 30.0).cos();
        text_csv.push_str(&format!("{},{d},{d},{d},{},{g},3.0,1000\n", i * 100, 0.7));
    }
    std::fs::write(&csv, text_csv).unwrap();
    let png = dir.path().join("losses.png");
    let result = ok(
        gan_gpu(&[
            "plot",
            "--metrics",
            s(&csv),
            "--out",
            s(&png),
            "--width",
            "900",
            "--height",
            "600",
        ]),
        "plot",
    );
    assert!(
        text(&result).contains("moving average over 6"),
        "{}",
        text(&result)
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 600));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let has = |rgb: [u8; 3]| buf.chunks_exact(3).any(|p| p == rgb);
    assert!(has([214, 39, 40]), "no D loss line");
    assert!(has([31, 119, 180]), "no G loss line");
    assert!(has([44, 160, 44]), "no accuracy line");
    // Text was drawn: dark pixels that are neither lines nor white.
    assert!(
        buf.chunks_exact(3)
            .filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60)
            .count()
            > 500
    );

    // A folder stands for its metrics.csv; a CSV without rows is an error.
    ok(
        gan_gpu(&["plot", "--metrics", s(dir.path()), "--out", s(&png)]),
        "plot of a folder",
    );
    std::fs::write(&csv, "step,d_loss,d_acc,g_loss\n").unwrap();
    let result = gan_gpu(&["plot", "--metrics", s(&csv), "--out", s(&png)]);
    assert!(!result.status.success());
    assert!(text(&result).contains("no rows"), "{}", text(&result));
}
