//! Checkpoints: everything a training run needs to continue, in one safetensors file.
//!
//! Tensors, all `F32`, little-endian, row-major, under the names and in the layouts of the
//! golden files (`../shared/golden/README.md`):
//!
//! * `g.dense.w` `[latent, 6272]`, `g.bn0.gamma`, ..., `g.convt3.b`, `d.conv1.w` (OIHW),
//!   ..., `d.dense.b`: every weight of G and D ([`Weights::g`], [`Weights::d`]);
//! * `g.bn{0,1,2}.running_mean` / `running_var`: G's BatchNorm running statistics;
//! * `adam_m.<name>` and `adam_v.<name>` for every trained parameter: Adam's moments.
//!
//! Metadata (string to string) describes the rest:
//!
//! | keys | what |
//! | --- | --- |
//! | `format`, `format_version` | `gan-gpu-checkpoint`, [`FORMAT_VERSION`] |
//! | `program`, `program_version` | who wrote it |
//! | `model.*` | layer sizes (`g_base`, `g_convt_channels`, `d_conv_channels`, `kernel`, `image`), `latent_dim`, LeakyReLU slope, dropout rate, BatchNorm momentum and epsilon |
//! | `train.*` | batch size, Adam's `lr`, `beta1`, `beta2`, `adam_epsilon`, `fake_bn`; the state: `step`, `seed`, `rng`, `adam_g_step`, `adam_d_step` |
//! | `data.*` | `dataset`, `dir` (the `--data` folder, if one was given), `images` (count), `sha256` (of the pixels) |
//! | `device`, `device.*` | `gpu` or `cpu`; `adapter`, `backend`, `driver`, and `kernels`: the kernel choice a GPU resume reuses |
//! | `run.*` | command-line settings that do not change the arithmetic (intervals, grid, total steps) |
//! | `checksum` | `sha256:` of every tensor's bytes in name order |
//!
//! The random streams are counter-based (Philox keyed on the seed, counting steps), so the
//! seed and the step are the whole generator state, and Adam's step counts follow from the
//! step (2s for D, s for G; recorded anyway, and checked).
//!
//! A safetensors file without `format` metadata that holds the weights under these names
//! (such as the golden initial weights) loads too, as a run at step 0 with zero moments,
//! no run information and the default hyperparameters; other tensors in it are ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use sha2::{Digest, Sha256};

use crate::model::{
    D_CONV_CHANNELS, FakeBnMode, G_BASE, G_CONVT_CHANNELS, IMAGE_SIDE, KERNEL, ModelConfig,
    ParamSpec, TensorSet, Weights, discriminator_specs, generator_specs, generator_state_specs,
};
use crate::shapes::AdamConfig;
use crate::train::TrainState;
use crate::{Error, Result, fsutil};

/// The `format` metadata value of every checkpoint.
pub const FORMAT: &str = "gan-gpu-checkpoint";
/// Bumped whenever a change would make an older program misread a newer file (or the other
/// way round); files of any other version are refused.
pub const FORMAT_VERSION: u32 = 1;
/// The name of the random generator, as recorded.
pub const RNG: &str = "philox4x32-10 keyed on the seed, counter (element, step, stream)";
/// `kernels` of a checkpoint written by the CPU reference.
pub const CPU_KERNELS: &str = "cpu-reference";

const FILE_PREFIX: &str = "checkpoint_";
const FILE_SUFFIX: &str = ".safetensors";
const MOMENT_M: &str = "adam_m.";
const MOMENT_V: &str = "adam_v.";

/// Why a checkpoint could not be read. Each names the file and what does not match.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path}: truncated checkpoint: {detail}. The file was cut short (a copy or a disk that \
         filled up); use an earlier checkpoint"
    )]
    Truncated { path: PathBuf, detail: String },

    #[error("{path}: corrupt checkpoint: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "{path}: checkpoint format version {found} (written by gan-gpu {program}), but this \
         gan-gpu {} reads version {FORMAT_VERSION} only",
        env!("CARGO_PKG_VERSION")
    )]
    Version {
        path: PathBuf,
        found: String,
        program: String,
    },

    #[error(
        "{path}: not a gan-gpu checkpoint: metadata `format` is {found:?}, expected {FORMAT:?}"
    )]
    NotCheckpoint { path: PathBuf, found: String },

    #[error(
        "{path}: checkpoint of another model configuration: {what} is {file} in the file, but \
         {ours} in this gan-gpu"
    )]
    Model {
        path: PathBuf,
        what: String,
        file: String,
        ours: String,
    },

    #[error("{path}: tensor `{name}` is missing{hint}")]
    MissingTensor {
        path: PathBuf,
        name: String,
        hint: &'static str,
    },

    #[error(
        "{path}: unexpected tensor `{name}`: a checkpoint of this model holds only the weights \
         and Adam moments of its layers"
    )]
    UnexpectedTensor { path: PathBuf, name: String },

    #[error("{path}: tensor `{name}` is {found}, expected F32")]
    Dtype {
        path: PathBuf,
        name: String,
        found: String,
    },

    #[error("{path}: metadata `{key}` {problem}")]
    Metadata {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// Where the training images came from, to refuse resuming on other data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataInfo {
    /// [`crate::data::Dataset::id`]: `mnist` or `fashion-mnist`.
    pub dataset: String,
    /// The `--data` folder as given, if one was.
    pub dir: Option<String>,
    pub images: u64,
    /// SHA-256 of the pixels, as [`pixels_sha256`] computes it.
    pub sha256: String,
}

/// The device that wrote a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `gpu` or `cpu`.
    pub kind: String,
    pub adapter: Option<String>,
    pub backend: Option<String>,
    pub driver: Option<String>,
    /// [`crate::gpu::GpuContext::kernel_choice`] on the GPU, [`CPU_KERNELS`] on the CPU.
    pub kernels: String,
}

/// What a run adds to its state: the seed, the data, the device and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub seed: u64,
    pub data: DataInfo,
    pub device: DeviceInfo,
    /// Settings that do not change the arithmetic (intervals, grid size, total steps), by name
    /// without the `run.` prefix.
    pub settings: BTreeMap<String, String>,
    /// The version of gan-gpu that wrote the file (this one's when saving).
    pub program_version: String,
}

/// A training run's state with its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub state: TrainState,
    pub config: ModelConfig,
    /// `None` for a file of weights only (such as the golden initial weights).
    pub run: Option<RunInfo>,
}

/// The file name of the checkpoint after `step` steps: `checkpoint_<step>.safetensors`.
pub fn file_name(step: u64) -> String {
    format!("{FILE_PREFIX}{step}{FILE_SUFFIX}")
}

/// The step in a name [`file_name`] made, or `None` for any other file.
pub fn step_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoints in `dir` (by their names), oldest step first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if let Some(step) = step_of(&path)
            && path.is_file()
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The checkpoint of the highest step in `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(dir)?.pop().map(|(_, path)| path))
}

/// Deletes all but the `keep` newest checkpoints in `dir` (`keep == 0` keeps them all) and
/// returns what it deleted.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let all = list(dir)?;
    if keep == 0 || all.len() <= keep {
        return Ok(Vec::new());
    }
    let old = &all[..all.len() - keep];
    for (_, path) in old {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    fsutil::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(old.iter().map(|(_, p)| p.clone()).collect())
}

/// SHA-256 of a training set's pixels, hex.
pub fn pixels_sha256(pixels: &[u8]) -> String {
    hex(&Sha256::digest(pixels))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically (temporary file in the same folder,
    /// `sync_all`, rename, folder sync).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|message| Error::File {
            path: path.to_path_buf(),
            message,
        })?;
        fsutil::write_atomic(path, &bytes)
    }

    /// Reads and checks a checkpoint (or a file of weights only).
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_bytes(&bytes, path)?)
    }

    /// The safetensors bytes of the checkpoint.
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let s = &self.state;
        let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
        let mut add = |name: String, spec: &ParamSpec, data: &[f32]| {
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.insert(name, (spec.shape.clone(), bytes));
        };
        for (spec, data) in s.weights.iter() {
            add(spec.name.clone(), spec, data);
        }
        for (prefix, sets) in [(MOMENT_M, [&s.g_m, &s.d_m]), (MOMENT_V, [&s.g_v, &s.d_v])] {
            for set in sets {
                for (spec, data) in set.specs.iter().zip(&set.data) {
                    add(format!("{prefix}{}", spec.name), spec, data);
                }
            }
        }

        let mut meta = self.metadata();
        meta.insert(
            "checksum".into(),
            checksum(tensors.values().map(|t| &t.1[..])),
        );
        let views = tensors
            .iter()
            .map(|(name, (shape, bytes))| {
                TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("encoding checkpoint: {e}"))?;
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| format!("encoding checkpoint: {e}"))?;
        Ok(with_sorted_header(bytes))
    }

    fn metadata(&self) -> HashMap<String, String> {
        let c = &self.config;
        let step = self.state.step;
        let (adam_d_step, adam_g_step) = adam_steps_done(step);
        let (c0, h0, w0) = G_BASE;
        let list = |xs: &[usize]| {
            xs.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut m: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("format_version", FORMAT_VERSION.to_string()),
            ("program", "gan-gpu".to_string()),
            ("program_version", env!("CARGO_PKG_VERSION").to_string()),
            ("model.g_base", format!("{c0}x{h0}x{w0}")),
            ("model.g_convt_channels", list(&G_CONVT_CHANNELS)),
            ("model.d_conv_channels", list(&D_CONV_CHANNELS)),
            ("model.kernel", format!("{KERNEL}x{KERNEL}")),
            ("model.image", format!("1x{IMAGE_SIDE}x{IMAGE_SIDE}")),
            ("model.latent_dim", c.latent_dim.to_string()),
            ("model.leaky_relu_alpha", c.leaky_alpha.to_string()),
            ("model.dropout_rate", c.dropout_rate.to_string()),
            ("model.bn_momentum", c.bn_momentum.to_string()),
            ("model.bn_epsilon", c.bn_epsilon.to_string()),
            ("train.batch_size", c.batch.to_string()),
            ("train.lr", c.adam.lr.to_string()),
            ("train.beta1", c.adam.beta1.to_string()),
            ("train.beta2", c.adam.beta2.to_string()),
            ("train.adam_epsilon", c.adam.epsilon.to_string()),
            ("train.fake_bn", c.fake_bn.as_str().to_string()),
            ("train.step", step.to_string()),
            ("train.adam_g_step", adam_g_step.to_string()),
            ("train.adam_d_step", adam_d_step.to_string()),
            ("train.rng", RNG.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(run) = &self.run {
            let mut put = |k: &str, v: &str| m.insert(k.to_string(), v.to_string());
            put("train.seed", &run.seed.to_string());
            put("data.dataset", &run.data.dataset);
            put("data.images", &run.data.images.to_string());
            put("data.sha256", &run.data.sha256);
            put("device", &run.device.kind);
            put("device.kernels", &run.device.kernels);
            let optional = [
                ("data.dir", &run.data.dir),
                ("device.adapter", &run.device.adapter),
                ("device.backend", &run.device.backend),
                ("device.driver", &run.device.driver),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    put(k, v);
                }
            }
            for (k, v) in &run.settings {
                put(&format!("run.{k}"), v);
            }
        }
        m
    }

    /// Parses and checks checkpoint bytes; `path` names the file in errors.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
    ) -> std::result::Result<Checkpoint, CheckpointError> {
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| container_error(path, bytes, e))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| container_error(path, bytes, e))?;
        let empty = HashMap::new();
        let meta = Meta {
            path,
            map: header.metadata().as_ref().unwrap_or(&empty),
        };
        let full = match meta.get("format") {
            Some(FORMAT) => true,
            Some(other) => {
                return Err(CheckpointError::NotCheckpoint {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                });
            }
            None => false,
        };
        if full {
            let version = meta.required("format_version")?;
            if version.trim() != FORMAT_VERSION.to_string() {
                return Err(CheckpointError::Version {
                    path: path.to_path_buf(),
                    found: version.to_string(),
                    program: meta.get("program_version").unwrap_or("unknown").to_string(),
                });
            }
            check_layers(&meta)?;
        }

        // The latent size: from the metadata, else from G's first weight.
        let tensors: HashMap<&str, TensorView> = st.iter().collect();
        let latent_dim = if full {
            meta.parse::<usize>("model.latent_dim")?
        } else {
            match tensors.get("g.dense.w").map(|t| t.shape()) {
                Some([latent, _]) => *latent,
                _ => {
                    return Err(CheckpointError::MissingTensor {
                        path: path.to_path_buf(),
                        name: "g.dense.w".into(),
                        hint: " (a [latent, 6272] F32 tensor): this is not a gan-gpu checkpoint \
                               or weights file",
                    });
                }
            }
        };
        let config = if full {
            config_of(&meta, latent_dim)?
        } else {
            ModelConfig {
                latent_dim,
                ..ModelConfig::default()
            }
        };

        // Every tensor, shapes checked against the model.
        let reader = TensorReader {
            path,
            tensors: &tensors,
        };
        let g_specs = generator_specs(latent_dim);
        let d_specs = discriminator_specs();
        let weights = Weights {
            g: reader.set(g_specs.clone(), "")?,
            g_state: reader.set(generator_state_specs(), "")?,
            d: reader.set(d_specs.clone(), "")?,
        };
        let mut expected: Vec<String> = weights.iter().map(|(s, _)| s.name.clone()).collect();
        let state = if full {
            let step = meta.parse::<u64>("train.step")?;
            check_adam_steps(&meta, step)?;
            let state = TrainState {
                g_m: reader.set(g_specs.clone(), MOMENT_M)?,
                g_v: reader.set(g_specs.clone(), MOMENT_V)?,
                d_m: reader.set(d_specs.clone(), MOMENT_M)?,
                d_v: reader.set(d_specs.clone(), MOMENT_V)?,
                weights,
                step,
            };
            for prefix in [MOMENT_M, MOMENT_V] {
                for spec in g_specs.iter().chain(&d_specs) {
                    expected.push(format!("{prefix}{}", spec.name));
                }
            }
            state
        } else {
            TrainState::fresh(weights)
        };

        if full {
            let mut names: Vec<&str> = tensors.keys().copied().collect();
            names.sort_unstable();
            if let Some(extra) = names.iter().find(|n| !expected.iter().any(|e| e == *n)) {
                return Err(CheckpointError::UnexpectedTensor {
                    path: path.to_path_buf(),
                    name: extra.to_string(),
                });
            }
            let found = checksum(names.iter().map(|n| tensors[n].data()));
            let stored = meta.required("checksum")?;
            if stored != found {
                return Err(CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "the tensor data do not match the checksum written with them (stored \
                         {stored}, computed {found}); some bytes changed after writing"
                    ),
                });
            }
        }

        let run = if full && meta.get("train.seed").is_some() {
            Some(run_of(&meta)?)
        } else {
            None
        };
        Ok(Checkpoint { state, config, run })
    }
}

/// The same safetensors bytes with the header's JSON keys sorted. safetensors writes its
/// metadata map in hash order, which changes from run to run; sorted, the same state always
/// gives the same file, byte for byte.
fn with_sorted_header(bytes: Vec<u8>) -> Vec<u8> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            other => other,
        }
    }
    let Some(n) = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(|b| u64::from_le_bytes(b) as usize)
    else {
        return bytes;
    };
    let Some(Ok(header)) = bytes
        .get(8..8 + n)
        .map(serde_json::from_slice::<serde_json::Value>)
    else {
        return bytes;
    };
    let Ok(mut text) = serde_json::to_vec(&sorted(header)) else {
        return bytes;
    };
    // Padded with spaces to a multiple of 8, as safetensors pads it, so the data stay aligned.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// Adam's step counts after `step` completed training steps: D's and G's (see
/// [`crate::train::adam_steps`]).
fn adam_steps_done(step: u64) -> (u64, u64) {
    (2 * step, step)
}

fn checksum<'a>(data: impl Iterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for d in data {
        h.update(d);
    }
    format!("sha256:{}", hex(&h.finalize()))
}

/// A safetensors container error, told as truncation where the sizes say so.
fn container_error(path: &Path, bytes: &[u8], e: SafeTensorError) -> CheckpointError {
    let path = path.to_path_buf();
    let len = bytes.len();
    match e {
        SafeTensorError::HeaderTooSmall => CheckpointError::Truncated {
            path,
            detail: format!("only {len} bytes, less than the 8-byte header length"),
        },
        SafeTensorError::InvalidHeaderLength => {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
            CheckpointError::Truncated {
                path,
                detail: format!(
                    "the header is {n} bytes long but the file holds only {} after the length \
                     (or this is not a safetensors file)",
                    len - 8
                ),
            }
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            let (declared, held) = data_sizes(bytes).unwrap_or((0, 0));
            let detail = format!(
                "the header describes {declared} bytes of tensor data, the file holds {held}"
            );
            if held < declared {
                CheckpointError::Truncated { path, detail }
            } else {
                CheckpointError::Corrupt { path, detail }
            }
        }
        other => CheckpointError::Corrupt {
            path,
            detail: format!("not a readable safetensors file ({other})"),
        },
    }
}

/// The tensor data a header declares and the bytes the file holds after it.
fn data_sizes(bytes: &[u8]) -> Option<(u64, u64)> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + n)?).ok()?;
    let declared = header
        .as_object()?
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    Some((declared, (bytes.len() - 8 - n) as u64))
}

struct Meta<'a> {
    path: &'a Path,
    map: &'a HashMap<String, String>,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    fn required(&self, key: &str) -> std::result::Result<&str, CheckpointError> {
        self.get(key).ok_or_else(|| CheckpointError::Metadata {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: "is missing".into(),
        })
    }

    fn parse<T: FromStr>(&self, key: &str) -> std::result::Result<T, CheckpointError> {
        let value = self.required(key)?;
        value.trim().parse().map_err(|_| CheckpointError::Metadata {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: format!("is {value:?}, not a valid {}", std::any::type_name::<T>()),
        })
    }
}

/// The layer sizes in the file against this program's model.
fn check_layers(meta: &Meta) -> std::result::Result<(), CheckpointError> {
    let (c0, h0, w0) = G_BASE;
    let list = |xs: &[usize]| {
        xs.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let ours = [
        ("model.g_base", format!("{c0}x{h0}x{w0}")),
        ("model.g_convt_channels", list(&G_CONVT_CHANNELS)),
        ("model.d_conv_channels", list(&D_CONV_CHANNELS)),
        ("model.kernel", format!("{KERNEL}x{KERNEL}")),
        ("model.image", format!("1x{IMAGE_SIDE}x{IMAGE_SIDE}")),
    ];
    for (key, ours) in ours {
        let file = meta.required(key)?;
        if file != ours {
            return Err(CheckpointError::Model {
                path: meta.path.to_path_buf(),
                what: key.to_string(),
                file: file.to_string(),
                ours,
            });
        }
    }
    Ok(())
}

fn check_adam_steps(meta: &Meta, step: u64) -> std::result::Result<(), CheckpointError> {
    let (d, g) = adam_steps_done(step);
    for (key, expected) in [("train.adam_d_step", d), ("train.adam_g_step", g)] {
        let found = meta.parse::<u64>(key)?;
        if found != expected {
            return Err(CheckpointError::Metadata {
                path: meta.path.to_path_buf(),
                key: key.to_string(),
                problem: format!(
                    "is {found}, but after {step} training steps it must be {expected} (D's \
                     Adam counts two updates per step, G's one)"
                ),
            });
        }
    }
    Ok(())
}

fn config_of(meta: &Meta, latent_dim: usize) -> std::result::Result<ModelConfig, CheckpointError> {
    let fake_bn = match meta.required("train.fake_bn")? {
        "inference" => FakeBnMode::Inference,
        "training" => FakeBnMode::Training,
        other => {
            return Err(CheckpointError::Metadata {
                path: meta.path.to_path_buf(),
                key: "train.fake_bn".into(),
                problem: format!("is {other:?}, expected inference or training"),
            });
        }
    };
    Ok(ModelConfig {
        latent_dim,
        batch: meta.parse("train.batch_size")?,
        leaky_alpha: meta.parse("model.leaky_relu_alpha")?,
        dropout_rate: meta.parse("model.dropout_rate")?,
        bn_momentum: meta.parse("model.bn_momentum")?,
        bn_epsilon: meta.parse("model.bn_epsilon")?,
        adam: AdamConfig {
            lr: meta.parse("train.lr")?,
            beta1: meta.parse("train.beta1")?,
            beta2: meta.parse("train.beta2")?,
            epsilon: meta.parse("train.adam_epsilon")?,
        },
        fake_bn,
    })
}

fn run_of(meta: &Meta) -> std::result::Result<RunInfo, CheckpointError> {
    let opt = |k: &str| meta.get(k).map(str::to_string);
    let settings = meta
        .map
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("run.")?.to_string(), v.clone())))
        .collect();
    Ok(RunInfo {
        seed: meta.parse("train.seed")?,
        data: DataInfo {
            dataset: meta.required("data.dataset")?.to_string(),
            dir: opt("data.dir"),
            images: meta.parse("data.images")?,
            sha256: meta.required("data.sha256")?.to_string(),
        },
        device: DeviceInfo {
            kind: meta.required("device")?.to_string(),
            adapter: opt("device.adapter"),
            backend: opt("device.backend"),
            driver: opt("device.driver"),
            kernels: meta.required("device.kernels")?.to_string(),
        },
        settings,
        program_version: meta.get("program_version").unwrap_or("unknown").to_string(),
    })
}

struct TensorReader<'a, 'data> {
    path: &'a Path,
    tensors: &'a HashMap<&'a str, TensorView<'data>>,
}

impl TensorReader<'_, '_> {
    /// The tensors of `specs`, each under `prefix` + its name, shapes checked.
    fn set(
        &self,
        specs: Vec<ParamSpec>,
        prefix: &str,
    ) -> std::result::Result<TensorSet, CheckpointError> {
        let mut set = TensorSet::zeros(specs);
        for (spec, data) in set.specs.iter().zip(&mut set.data) {
            let name = format!("{prefix}{}", spec.name);
            let Some(view) = self.tensors.get(name.as_str()) else {
                return Err(CheckpointError::MissingTensor {
                    path: self.path.to_path_buf(),
                    name,
                    hint: "",
                });
            };
            if view.dtype() != Dtype::F32 {
                return Err(CheckpointError::Dtype {
                    path: self.path.to_path_buf(),
                    name,
                    found: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != spec.shape.as_slice() {
                return Err(CheckpointError::Model {
                    path: self.path.to_path_buf(),
                    what: format!("the shape of `{name}`"),
                    file: format!("{:?}", view.shape()),
                    ours: format!("{:?}", spec.shape),
                });
            }
            for (x, b) in data.iter_mut().zip(view.data().chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(set)
    }
}
