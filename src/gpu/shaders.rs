//! The registry of WGSL sources. Every kernel family has one file `shaders/<family>.wgsl`,
//! embedded at compile time, some with a shared file prepended:
//! - the families that draw random numbers get `shaders/philox.wgsl`, so the generator
//!   exists once and matches `src/rng.rs` bit for bit;
//! - the subgroup, single-channel and one-input-channel variants of the convolutions get
//!   `conv2d.wgsl`, for its Params, bindings and helpers;
//! - the uniform-window families, col2im and the permute get `shaders/exact_div.wgsl`;
//! - the per-channel families (bias, batch normalisation) get `shaders/channel_walk.wgsl`.

use crate::error::{Error, Result};

/// Philox4x32-10 and the normal transform, shared with `src/rng.rs`.
const PHILOX: &str = include_str!("../../shaders/philox.wgsl");

/// Exact integer division through f32, for the uniform-window kernels' index arithmetic.
const EXACT_DIV: &str = include_str!("../../shaders/exact_div.wgsl");

/// Walking and reducing the channels of NCHW data, for the per-channel families.
const CHANNEL_WALK: &str = include_str!("../../shaders/channel_walk.wgsl");

/// One kernel family: one WGSL file, one launcher module under `src/gpu/ops/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shader {
    Gemm,
    /// The GEMM over uniform-buffer windows; only on devices with subgroup operations.
    GemmUniform,
    /// Packing operands into those windows.
    Pack,
    Conv2d,
    /// `conv2d.wgsl` plus `conv2d_subgroup.wgsl`; only on devices with subgroup operations.
    Conv2dSubgroup,
    /// `conv2d.wgsl` plus `conv2d_single.wgsl`: single-channel passes, four pixels at a time.
    Conv2dSingle,
    /// `conv2d.wgsl` plus `conv2d_one_input.wgsl`: the forward pass from one input channel.
    Conv2dOneInput,
    Bias,
    BatchNorm,
    Activation,
    Loss,
    Dropout,
    Adam,
    Permute,
    /// Gathering per-tap products into an input gradient.
    Col2im,
    Random,
    /// The benchmark's ceiling kernels (peak multiply-adds, copy bandwidth); not the model's.
    Roofline,
}

impl Shader {
    /// Every family in the registry.
    pub const ALL: [Shader; 17] = [
        Shader::Gemm,
        Shader::GemmUniform,
        Shader::Pack,
        Shader::Conv2d,
        Shader::Conv2dSubgroup,
        Shader::Conv2dSingle,
        Shader::Conv2dOneInput,
        Shader::Bias,
        Shader::BatchNorm,
        Shader::Activation,
        Shader::Loss,
        Shader::Dropout,
        Shader::Adam,
        Shader::Permute,
        Shader::Col2im,
        Shader::Random,
        Shader::Roofline,
    ];

    /// The file stem, also the first half of every GPU object label (`"batchnorm:normalize"`).
    pub fn name(self) -> &'static str {
        match self {
            Shader::Gemm => "gemm",
            Shader::GemmUniform => "gemm_uniform",
            Shader::Pack => "pack",
            Shader::Conv2d => "conv2d",
            Shader::Conv2dSubgroup => "conv2d_subgroup",
            Shader::Conv2dSingle => "conv2d_single",
            Shader::Conv2dOneInput => "conv2d_one_input",
            Shader::Bias => "bias",
            Shader::BatchNorm => "batchnorm",
            Shader::Activation => "activation",
            Shader::Loss => "loss",
            Shader::Dropout => "dropout",
            Shader::Adam => "adam",
            Shader::Permute => "permute",
            Shader::Col2im => "col2im",
            Shader::Random => "random",
            Shader::Roofline => "roofline",
        }
    }

    /// Whether `philox.wgsl` is prepended to this family's source.
    pub fn uses_random(self) -> bool {
        matches!(self, Shader::Dropout | Shader::Random)
    }

    /// Whether the family needs `wgpu::Features::SUBGROUP` (and a subgroup size of 8 or more).
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Shader::Conv2dSubgroup | Shader::GemmUniform)
    }

    /// The naga capabilities its source needs to validate.
    pub fn naga_capabilities(self) -> naga::valid::Capabilities {
        if self.needs_subgroups() {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::default()
        }
    }

    /// What is prepended to the family's own file.
    fn prelude(self) -> Option<&'static str> {
        match self {
            _ if self.uses_random() => Some(PHILOX),
            Shader::Conv2dSubgroup | Shader::Conv2dSingle | Shader::Conv2dOneInput => {
                Some(Shader::Conv2d.body())
            }
            Shader::GemmUniform | Shader::Pack | Shader::Col2im | Shader::Permute => {
                Some(EXACT_DIV)
            }
            Shader::BatchNorm | Shader::Bias => Some(CHANNEL_WALK),
            _ => None,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Gemm => include_str!("../../shaders/gemm.wgsl"),
            Shader::GemmUniform => include_str!("../../shaders/gemm_uniform.wgsl"),
            Shader::Pack => include_str!("../../shaders/pack.wgsl"),
            Shader::Conv2d => include_str!("../../shaders/conv2d.wgsl"),
            Shader::Conv2dSubgroup => include_str!("../../shaders/conv2d_subgroup.wgsl"),
            Shader::Conv2dSingle => include_str!("../../shaders/conv2d_single.wgsl"),
            Shader::Conv2dOneInput => include_str!("../../shaders/conv2d_one_input.wgsl"),
            Shader::Bias => include_str!("../../shaders/bias.wgsl"),
            Shader::BatchNorm => include_str!("../../shaders/batchnorm.wgsl"),
            Shader::Activation => include_str!("../../shaders/activation.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Dropout => include_str!("../../shaders/dropout.wgsl"),
            Shader::Adam => include_str!("../../shaders/adam.wgsl"),
            Shader::Permute => include_str!("../../shaders/permute.wgsl"),
            Shader::Col2im => include_str!("../../shaders/col2im.wgsl"),
            Shader::Random => include_str!("../../shaders/random.wgsl"),
            Shader::Roofline => include_str!("../../shaders/roofline.wgsl"),
        }
    }

    /// The source as compiled: the family's file after its prelude, if any (the list in the
    /// module documentation).
    pub fn source(self) -> String {
        match self.prelude() {
            Some(prelude) => format!("{prelude}\n{}", self.body()),
            None => self.body().to_string(),
        }
    }

    /// Names of the compute entry points of this family's own file (not its prelude's), in
    /// source order, read with naga so the list can never drift from the WGSL.
    pub fn entry_points(self) -> Result<Vec<String>> {
        let module = naga::front::wgsl::parse_str(&self.source()).map_err(|e| Error::Gpu {
            label: format!("{}.wgsl", self.name()),
            message: e.emit_to_string(&self.source()),
        })?;
        Ok(module
            .entry_points
            .iter()
            .filter(|ep| ep.stage == naga::ShaderStage::Compute)
            .filter(|ep| self.body().contains(&format!("fn {}(", ep.name)))
            .map(|ep| ep.name.clone())
            .collect())
    }
}

/// `(file name, assembled source)` of every family, for validating them without a GPU.
pub fn all_sources() -> Vec<(&'static str, String)> {
    Shader::ALL.iter().map(|s| (s.name(), s.source())).collect()
}

/// Every `(family, entry point)` pipeline the registry can build.
pub fn all_pipelines() -> Result<Vec<(Shader, String)>> {
    let mut out = Vec::new();
    for shader in Shader::ALL {
        for entry in shader.entry_points()? {
            out.push((shader, entry));
        }
    }
    Ok(out)
}
