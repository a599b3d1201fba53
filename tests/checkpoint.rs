//! Checkpoint files: the round trip of every tensor and metadata field, the golden initial
//! weights as a checkpoint, an error for each kind of bad file, the file bookkeeping, and
//! sampling from a checkpoint in batches.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use gan_gpu::checkpoint::{
    self, Checkpoint, CheckpointError, DataInfo, DeviceInfo, FORMAT_VERSION, RunInfo,
};
use gan_gpu::model::{FakeBnMode, IMAGE_LEN, ModelConfig, TensorSet, Weights};
use gan_gpu::rng::random_bits;
use gan_gpu::sample::{self, generate_batched, sample_latents};
use gan_gpu::shapes::AdamConfig;
use gan_gpu::train::{TrainState, Trainer};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use common::golden::{assert_close, golden_dir};

/// Values that differ in every tensor and every element, so a swapped or misplaced tensor
/// shows.
fn filled(specs: &TensorSet, salt: u32) -> TensorSet {
    let mut set = specs.clone();
    for (t, data) in set.data.iter_mut().enumerate() {
        for (i, x) in data.iter_mut().enumerate() {
            let bits = random_bits(11, salt, t as u32, i as u32)[0];
            *x = (bits >> 8) as f32 / 16_777_216.0 - 0.5;
        }
    }
    set
}

/// A checkpoint whose every field differs from the defaults.
fn example() -> Checkpoint {
    let config = ModelConfig {
        latent_dim: 12,
        batch: 7,
        leaky_alpha: 0.15,
        dropout_rate: 0.25,
        bn_momentum: 0.95,
        bn_epsilon: 2e-3,
        adam: AdamConfig {
            lr: 3.3e-4,
            beta1: 0.45,
            beta2: 0.995,
            epsilon: 1e-6,
        },
        fake_bn: FakeBnMode::Inference,
    };
    let w = Weights::initial(config.latent_dim, 5);
    let weights = Weights {
        g: filled(&w.g, 1),
        g_state: filled(&w.g_state, 2),
        d: filled(&w.d, 3),
    };
    let state = TrainState {
        g_m: filled(&w.g, 4),
        g_v: filled(&w.g, 5),
        d_m: filled(&w.d, 6),
        d_v: filled(&w.d, 7),
        weights,
        step: 1234,
    };
    let settings: BTreeMap<String, String> = [("log_interval", "10"), ("grid_rows", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Checkpoint {
        state,
        config,
        run: Some(RunInfo {
            seed: u64::MAX - 3,
            data: DataInfo {
                dataset: "fashion-mnist".into(),
                dir: Some("/data/fashion".into()),
                images: 60_000,
                sha256: "ab".repeat(32),
            },
            device: DeviceInfo {
                kind: "gpu".into(),
                adapter: Some("Some GPU".into()),
                backend: Some("Vulkan".into()),
                driver: Some("driver 1.2".into()),
                kernels: "subgroup".into(),
            },
            settings,
            program_version: env!("CARGO_PKG_VERSION").into(),
        }),
    }
}

fn bytes_of(ckpt: &Checkpoint) -> Vec<u8> {
    ckpt.to_bytes().expect("encoding the checkpoint")
}

fn load(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::from_bytes(bytes, Path::new("ckpt.safetensors"))
}

/// A tensor as stored: name, shape, little-endian bytes.
type Stored = (String, Vec<usize>, Vec<u8>);

/// The file's tensors and metadata, to make bad files from.
fn parts(bytes: &[u8]) -> (Vec<Stored>, HashMap<String, String>) {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let tensors = st
        .iter()
        .map(|(name, view)| {
            (
                name.to_string(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    (tensors, meta.metadata().clone().unwrap_or_default())
}

fn assemble(tensors: &[Stored], meta: HashMap<String, String>) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap();
            (name.as_str(), view)
        })
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

/// The file with one metadata entry changed (or removed, for `None`).
fn with_meta(bytes: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
    let (tensors, mut meta) = parts(bytes);
    match value {
        Some(v) => meta.insert(key.to_string(), v.to_string()),
        None => meta.remove(key),
    };
    assemble(&tensors, meta)
}

fn expect_err(bytes: &[u8], check: impl Fn(&CheckpointError) -> bool, what: &str) -> String {
    match load(bytes) {
        Ok(_) => panic!("{what}: the bad checkpoint loaded"),
        Err(e) => {
            let message = e.to_string();
            assert!(check(&e), "{what}: unexpected error {e:?}");
            assert!(message.contains("ckpt.safetensors"), "{what}: {message}");
            message
        }
    }
}

#[test]
fn round_trip_keeps_every_tensor_and_metadata_field() {
    let ckpt = example();
    let bytes = bytes_of(&ckpt);
    let back = load(&bytes).expect("loading the checkpoint");
    assert_eq!(back, ckpt);

    // Bit for bit, including values that print alike.
    for (spec, data) in ckpt.state.weights.iter() {
        let got = back.state.weights.get(&spec.name).unwrap();
        assert!(
            data.iter()
                .zip(got)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    // The names and layouts of the golden files, the moments beside them.
    let (tensors, meta) = parts(&bytes);
    let shapes: HashMap<&str, &[usize]> = tensors
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_slice()))
        .collect();
    assert_eq!(shapes["g.dense.w"], &[12, 6272]);
    assert_eq!(shapes["g.convt1.w"], &[128, 128, 3, 3]);
    assert_eq!(shapes["d.conv2.w"], &[128, 64, 3, 3]);
    assert_eq!(shapes["g.bn2.running_var"], &[64]);
    assert_eq!(shapes["adam_m.g.dense.w"], &[12, 6272]);
    assert_eq!(shapes["adam_v.d.dense.b"], &[1]);
    assert_eq!(tensors.len(), 14 + 6 + 6 + 2 * (14 + 6));
    for (key, value) in [
        ("format", "gan-gpu-checkpoint"),
        ("format_version", &FORMAT_VERSION.to_string()),
        ("train.step", "1234"),
        ("train.adam_d_step", "2468"),
        ("train.adam_g_step", "1234"),
        ("train.seed", &(u64::MAX - 3).to_string()),
        ("train.fake_bn", "inference"),
        ("model.g_convt_channels", "128,64,1"),
        ("device.kernels", "subgroup"),
        ("run.log_interval", "10"),
    ] {
        assert_eq!(meta.get(key).map(String::as_str), Some(value), "{key}");
    }
}

#[test]
fn the_same_state_gives_the_same_bytes() {
    let ckpt = example();
    assert_eq!(bytes_of(&ckpt), bytes_of(&ckpt));
}

#[test]
fn a_checkpoint_without_run_information_loads_without_it() {
    let ckpt = Checkpoint {
        run: None,
        ..example()
    };
    assert_eq!(load(&bytes_of(&ckpt)).unwrap(), ckpt);
}

#[test]
fn save_and_load_go_through_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(checkpoint::file_name(1234));
    let ckpt = example();
    ckpt.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left behind");
}

#[test]
fn golden_initial_weights_load_as_a_checkpoint() {
    let path = golden_dir().join("e2e_E1_predict_inference_bn.safetensors");
    let ckpt = Checkpoint::load(&path).expect("the golden file loads");
    assert!(ckpt.run.is_none());
    assert_eq!(ckpt.state.step, 0);
    assert_eq!(ckpt.config.latent_dim, 100);
    assert!(ckpt.state.g_m.data.iter().flatten().all(|&x| x == 0.0));

    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensor = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    for (spec, data) in ckpt.state.weights.iter() {
        assert_eq!(data, tensor(&spec.name).as_slice(), "{}", spec.name);
    }

    // G from the file makes the fakes TensorFlow made with those weights.
    let mut g = sample::cpu_generator(ckpt.config, &ckpt.state.weights);
    let fake = g.generate(&tensor("step1.noise_d")).unwrap();
    assert_close(
        "golden step1.fake",
        &fake,
        &tensor("step1.fake"),
        1e-4,
        2e-5,
    );
}

#[test]
fn truncated_files_are_reported_as_truncated() {
    let bytes = bytes_of(&example());
    for cut in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
        let message = expect_err(
            &bytes[..cut],
            |e| matches!(e, CheckpointError::Truncated { .. }),
            &format!("cut at {cut}"),
        );
        assert!(message.contains("truncated"), "{message}");
    }
    let message = expect_err(
        &bytes[..bytes.len() - 1000],
        |e| matches!(e, CheckpointError::Truncated { .. }),
        "data cut short",
    );
    assert!(
        message.contains(&format!(
            "holds {}",
            bytes.len() - 1000 - header_end(&bytes)
        )),
        "{message}"
    );
}

fn header_end(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn changed_bytes_fail_the_checksum() {
    let mut bytes = bytes_of(&example());
    let at = bytes.len() - 12_345;
    bytes[at] ^= 0x40;
    let message = expect_err(
        &bytes,
        |e| matches!(e, CheckpointError::Corrupt { .. }),
        "flipped bit",
    );
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn a_broken_header_is_corrupt() {
    let mut bytes = bytes_of(&example());
    bytes[9] = b'#';
    expect_err(
        &bytes,
        |e| matches!(e, CheckpointError::Corrupt { .. }),
        "broken JSON",
    );
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0; 64]);
    expect_err(
        &png,
        |e| {
            matches!(
                e,
                CheckpointError::Corrupt { .. } | CheckpointError::Truncated { .. }
            )
        },
        "a PNG",
    );
}

#[test]
fn another_model_configuration_is_named() {
    let bytes = bytes_of(&example());
    let changed = with_meta(&bytes, "model.g_convt_channels", Some("256,64,1"));
    let message = expect_err(
        &changed,
        |e| matches!(e, CheckpointError::Model { .. }),
        "other layer sizes",
    );
    assert!(
        message.contains("model.g_convt_channels") && message.contains("256,64,1"),
        "{message}"
    );

    // A tensor of another shape (a wider D).
    let (mut tensors, meta) = parts(&bytes);
    for (name, shape, data) in &mut tensors {
        if name == "d.conv1.b" {
            *shape = vec![32];
            data.truncate(32 * 4);
        }
    }
    let message = expect_err(
        &assemble(&tensors, meta),
        |e| matches!(e, CheckpointError::Model { .. }),
        "other tensor shape",
    );
    assert!(
        message.contains("d.conv1.b") && message.contains("[32]"),
        "{message}"
    );
}

#[test]
fn another_format_version_is_refused_with_both_versions() {
    let bytes = bytes_of(&example());
    let newer = with_meta(&bytes, "format_version", Some("7"));
    let newer = with_meta(&newer, "program_version", Some("9.0.0"));
    let message = expect_err(
        &newer,
        |e| matches!(e, CheckpointError::Version { .. }),
        "newer format",
    );
    assert!(
        message.contains("version 7") && message.contains("9.0.0"),
        "{message}"
    );
    let other = with_meta(&bytes, "format", Some("something-else"));
    expect_err(
        &other,
        |e| matches!(e, CheckpointError::NotCheckpoint { .. }),
        "other format",
    );
}

#[test]
fn missing_extra_and_inconsistent_parts_are_named() {
    let bytes = bytes_of(&example());
    let (tensors, meta) = parts(&bytes);

    let without: Vec<_> = tensors
        .iter()
        .filter(|t| t.0 != "adam_v.g.bn1.beta")
        .cloned()
        .collect();
    let message = expect_err(
        &assemble(&without, meta.clone()),
        |e| matches!(e, CheckpointError::MissingTensor { .. }),
        "missing moment",
    );
    assert!(message.contains("adam_v.g.bn1.beta"), "{message}");

    let mut with_extra = tensors.clone();
    with_extra.push(("g.bn3.gamma".into(), vec![1], vec![0; 4]));
    let message = expect_err(
        &assemble(&with_extra, meta.clone()),
        |e| matches!(e, CheckpointError::UnexpectedTensor { .. }),
        "extra tensor",
    );
    assert!(message.contains("g.bn3.gamma"), "{message}");

    let message = expect_err(
        &with_meta(&bytes, "train.adam_d_step", Some("7")),
        |e| matches!(e, CheckpointError::Metadata { .. }),
        "Adam step count",
    );
    assert!(message.contains("train.adam_d_step"), "{message}");

    let message = expect_err(
        &with_meta(&bytes, "train.lr", None),
        |e| matches!(e, CheckpointError::Metadata { .. }),
        "missing hyperparameter",
    );
    assert!(
        message.contains("train.lr") && message.contains("missing"),
        "{message}"
    );

    let message = expect_err(
        &with_meta(&bytes, "train.batch_size", Some("many")),
        |e| matches!(e, CheckpointError::Metadata { .. }),
        "unreadable hyperparameter",
    );
    assert!(message.contains("\"many\""), "{message}");

    // Weights of something else altogether.
    let foreign = assemble(&tensors[..1], HashMap::new());
    expect_err(
        &foreign,
        |e| matches!(e, CheckpointError::MissingTensor { .. }),
        "foreign weights",
    );
}

#[test]
fn files_are_named_listed_and_pruned_by_step() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(checkpoint::latest(dir.path()).unwrap(), None);
    for step in [5, 40, 300, 1000] {
        std::fs::write(dir.path().join(checkpoint::file_name(step)), b"x").unwrap();
    }
    for other in ["checkpoint_x.safetensors", "checkpoint_9.bin", "notes.txt"] {
        std::fs::write(dir.path().join(other), b"x").unwrap();
    }
    assert_eq!(
        checkpoint::step_of(Path::new("a/checkpoint_40.safetensors")),
        Some(40)
    );
    assert_eq!(
        checkpoint::step_of(Path::new("checkpoint_.safetensors")),
        None
    );
    let steps = |d: &Path| -> Vec<u64> {
        checkpoint::list(d)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(steps(dir.path()), [5, 40, 300, 1000]);
    assert_eq!(
        checkpoint::latest(dir.path()).unwrap().unwrap(),
        dir.path().join("checkpoint_1000.safetensors")
    );
    assert!(checkpoint::prune(dir.path(), 0).unwrap().is_empty());
    assert_eq!(checkpoint::prune(dir.path(), 2).unwrap().len(), 2);
    assert_eq!(steps(dir.path()), [300, 1000]);
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn slerp_follows_the_great_circle() {
    let a = [3.0, 0.0, 0.0];
    let b = [0.0, 3.0, 0.0];
    let mut out = [0.0; 3];
    sample::slerp(&a, &b, 0.0, &mut out);
    assert_eq!(out, a);
    sample::slerp(&a, &b, 1.0, &mut out);
    assert!(
        out.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
        "{out:?}"
    );
    sample::slerp(&a, &b, 0.5, &mut out);
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 3.0).abs() < 1e-5,
        "the midpoint keeps the norm: {norm}"
    );
    assert!((out[0] - out[1]).abs() < 1e-6);
    // Parallel vectors: a straight line, no division by zero.
    sample::slerp(&a, &a, 0.3, &mut out);
    assert!(out.iter().all(|x| x.is_finite()));
}

#[test]
fn sample_latents_do_not_depend_on_where_a_batch_starts() {
    let all = sample_latents(9, 0, 10, 7).unwrap();
    let tail = sample_latents(9, 4, 6, 7).unwrap();
    assert_eq!(&all[4 * 7..], tail.as_slice());
    // The training run's grid latents are the first samples.
    assert_eq!(all, gan_gpu::train::sample_latents(9, 10, 7));
}

#[test]
fn cpu_sampling_in_batches_matches_one_batch() {
    let cfg = ModelConfig::default();
    let weights = Weights::initial(cfg.latent_dim, 21);
    let latents = sample_latents(4, 0, 7, cfg.latent_dim).unwrap();
    let mut g = sample::cpu_generator(cfg, &weights);
    let whole = g.generate(&latents).unwrap();
    let mut batched = Vec::new();
    generate_batched(
        &mut g,
        cfg.latent_dim,
        7,
        3,
        |first, n| sample_latents(4, first, n, cfg.latent_dim),
        |first, images| {
            assert_eq!(first * IMAGE_LEN, batched.len());
            batched.extend_from_slice(images);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        batched, whole,
        "inference mode: a sample does not depend on its batch"
    );
}

#[test]
fn gpu_sampling_reuses_one_batch_of_memory() {
    let Some(ctx) = common::gpu::fresh_context() else {
        return;
    };
    let cfg = ModelConfig::default();
    let weights = Weights::initial(cfg.latent_dim, 21);
    let batch = 8;
    let mut g = sample::gpu_generator(ctx.clone(), cfg, &weights, batch).unwrap();
    let latents = |first, n| sample_latents(4, first, n, cfg.latent_dim);

    // The first batch may create the staging buffer for reading back; after it, nothing.
    let mut images = Vec::new();
    let mut objects_after_first = None;
    generate_batched(&mut g, cfg.latent_dim, 29, batch, latents, |first, out| {
        if first == 0 {
            objects_after_first = Some(ctx.objects_created());
        }
        images.extend_from_slice(out);
        Ok(())
    })
    .unwrap();
    assert_eq!(images.len(), 29 * IMAGE_LEN);
    assert_eq!(
        Some(ctx.objects_created()),
        objects_after_first,
        "later batches (the last one short) created GPU objects"
    );

    // The same samples as the CPU reference makes.
    let mut cpu = sample::cpu_generator(cfg, &weights);
    let want = cpu.generate(&latents(0, 29).unwrap()).unwrap();
    assert_close("GPU samples", &images, &want, 1e-4, 2e-5);
}
