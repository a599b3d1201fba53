//! Choosing and opening the device, shared by the subcommands that run G or train.

use anyhow::Context;
use clap::ValueEnum;

use gan_gpu::checkpoint::{CPU_KERNELS, DeviceInfo};
use gan_gpu::gpu::{GpuContext, KernelSet};
use gan_gpu::model::{ModelConfig, Weights};
use gan_gpu::sample::{cpu_generator, gpu_generator};
use gan_gpu::train::Trainer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// WGSL kernels through wgpu (Vulkan, Metal, DX12, or lavapipe on the CPU).
    Gpu,
    /// The plain CPU reference implementation: slow, for checking.
    Cpu,
}

/// Where `sample` and `interpolate` run G.
#[derive(clap::Args, Debug)]
pub struct GeneratorDevice {
    /// Where G runs.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// GPU adapter, by index or by a part of its name (see `gan-gpu devices`).
    #[arg(long)]
    pub adapter: Option<String>,
}

/// `--kernels`: which GEMM and convolution kernels the GPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelArg {
    /// The adapter's default.
    Auto,
    /// Register-tiled kernels reading storage buffers.
    Direct,
    /// Operands packed into uniform-buffer windows (needs subgroups).
    UniformWindows,
}

/// `ctx` with the kernels `--kernels` asks for.
pub fn with_kernels(ctx: GpuContext, kernels: KernelArg) -> anyhow::Result<GpuContext> {
    let set = match kernels {
        KernelArg::Auto => return Ok(ctx),
        KernelArg::Direct => KernelSet::Direct,
        KernelArg::UniformWindows => KernelSet::UniformWindows,
    };
    Ok(ctx.with_kernel_set(set)?)
}

pub fn open_gpu(adapter: Option<&str>) -> anyhow::Result<GpuContext> {
    GpuContext::new(adapter).context("opening the GPU")
}

/// The device as a checkpoint records it.
pub fn gpu_info(ctx: &GpuContext) -> DeviceInfo {
    DeviceInfo {
        kind: "gpu".into(),
        adapter: Some(ctx.info.name.clone()),
        backend: Some(format!("{:?}", ctx.info.backend)),
        driver: Some(
            format!("{} {}", ctx.info.driver, ctx.info.driver_info)
                .trim()
                .to_string(),
        ),
        kernels: ctx.kernel_choice(),
    }
}

pub fn cpu_info() -> DeviceInfo {
    DeviceInfo {
        kind: "cpu".into(),
        adapter: None,
        backend: None,
        driver: None,
        kernels: CPU_KERNELS.into(),
    }
}

/// How a device reads in messages: `gpu: llvmpipe (Vulkan, Mesa 25.0)` or `cpu`.
pub fn describe(info: &DeviceInfo) -> String {
    match (&info.adapter, &info.backend) {
        (Some(adapter), Some(backend)) => format!(
            "{} {adapter} ({backend}, {}, {} kernels)",
            info.kind,
            info.driver.as_deref().unwrap_or("unknown driver"),
            info.kernels
        ),
        _ => info.kind.clone(),
    }
}

/// G alone on the chosen device, for `batch` latent vectors per call.
pub fn generator(
    device: DeviceKind,
    adapter: Option<&str>,
    config: ModelConfig,
    weights: &Weights,
    batch: usize,
) -> anyhow::Result<Box<dyn Trainer>> {
    Ok(match device {
        DeviceKind::Gpu => {
            let ctx = open_gpu(adapter)?;
            Box::new(gpu_generator(ctx, config, weights, batch).context("building G on the GPU")?)
        }
        DeviceKind::Cpu => Box::new(cpu_generator(config, weights)),
    })
}
