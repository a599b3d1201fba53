//! The library's error type. The binary adds file and device context with `anyhow`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found. Install a GPU driver with Vulkan, Metal or DX12 support, or on \
         Linux Mesa's software rasterizer lavapipe (Debian/Ubuntu: apt-get install \
         mesa-vulkan-drivers libvulkan1), or train on the CPU with --device cpu"
    )]
    NoAdapter,

    #[error("no adapter matches '{wanted}'; `gan-gpu devices` lists the adapters: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("requesting a device from adapter '{adapter}': {message}")]
    RequestDevice { adapter: String, message: String },

    #[error("{what} needs {needed}, but the device allows at most {max} ({hint})")]
    LimitExceeded {
        what: String,
        needed: u64,
        max: u64,
        hint: String,
    },

    #[error("GPU error in '{label}': {message}")]
    Gpu { label: String, message: String },

    #[error("timed out after {seconds} s waiting for the GPU ({what})")]
    GpuTimeout { what: String, seconds: u64 },

    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    ShapeMismatch {
        op: String,
        expected: String,
        got: String,
    },

    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error(
        "non-finite loss at step {step} (d_loss_real {d_loss_real}, d_loss_fake {d_loss_fake}, \
         g_loss {g_loss}); training stopped, outputs written so far are kept"
    )]
    NonFiniteLoss {
        step: u64,
        d_loss_real: f32,
        d_loss_fake: f32,
        g_loss: f32,
    },

    #[error("{0}")]
    CheckFailed(Box<CheckFailure>),

    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A kernel's output that disagrees with the CPU reference, at its worst element.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kernel} ({shape}) disagrees with the CPU reference in `{output}`: element {index} is \
     {got}, the reference {want} (error {error:.3e}, allowed {allowed:.3e}; {bad} of \
     {checked} checked elements outside the tolerance)"
)]
pub struct CheckFailure {
    pub kernel: String,
    pub shape: String,
    pub output: String,
    pub index: usize,
    pub got: f32,
    pub want: f64,
    pub error: f64,
    pub allowed: f64,
    pub bad: usize,
    pub checked: usize,
}
