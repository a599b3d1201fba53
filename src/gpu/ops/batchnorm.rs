//! Batch normalisation (`shaders/batchnorm.wgsl`); CPU twins in `crate::cpu::batchnorm`.
//!
//! `x`, `y`, `dy`, `dx`: `[n, c, p]` with `p = h * w`; every per-channel tensor: `[c]`.
//! Written tensors must not share a buffer with tensors the same op only reads (see
//! `gpu::ops`): keep running statistics out of the parameter arena, for instance.

use super::{WORKGROUP_SIZE, expect_len, four_wide, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, KernelSet, Plan, Shader};
use crate::shapes::BatchNormShape;

/// Mirrors `Params` in shaders/batchnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Batch.
    n: u32,
    /// Channels.
    c: u32,
    /// Values per channel and sample (h * w).
    p: u32,
    /// running = momentum * running + (1 - momentum) * batch statistic.
    momentum: f32,
    /// Added to the variance before the square root.
    epsilon: f32,
    /// The element-wise kernels' layout of a chunk (see the WGSL): invocation l takes items
    /// `first + l * lane_step + k * item_step`.
    lane_step: u32,
    item_step: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Items (f32 or vec4) of one channel each invocation of `normalize` / `backward_dx`
/// handles (`CHUNK_PER_INVOCATION` in the WGSL).
const CHUNK_PER_INVOCATION: u32 = 8;

/// How a kernel walks a channel's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    /// One value per load.
    Scalar,
    /// Four values of one channel per load (`{name}4`): every row of `p` values on a 16-byte
    /// boundary, `four_wide(s.p, ..)`.
    Four,
    /// Four values of a group of four channels per load (`{name}_grouped`), for `c` a
    /// multiple of 4 and `p` not: a group's `4 p` values of one sample are then whole vec4s.
    Groups,
}

impl Width {
    fn of(s: &BatchNormShape, tensors: &[&GpuTensor]) -> Width {
        if four_wide(s.p, tensors) {
            Width::Four
        } else if four_wide(4 * s.p, tensors) && s.c.is_multiple_of(4) {
            Width::Groups
        } else {
            Width::Scalar
        }
    }

    /// The kernel's entry point.
    fn entry(self, name: &str) -> String {
        match self {
            Width::Scalar => name.to_string(),
            Width::Four => format!("{name}4"),
            Width::Groups => format!("{name}_grouped"),
        }
    }

    /// The binding of a data tensor: the vec4 views sit at bindings 17 to 20 for x, y, dy
    /// and dx (1, 10, 11 and 16).
    fn binding(self, binding: u32) -> u32 {
        match (self, binding) {
            (Width::Scalar, _) => binding,
            (_, 1) => 17,
            (_, 10) => 18,
            (_, 11) => 19,
            (_, 16) => 20,
            _ => binding,
        }
    }

    /// Bytes of one sample's contiguous run of a channel, or of a group of four.
    fn run_bytes(self, s: &BatchNormShape) -> usize {
        match self {
            Width::Scalar | Width::Four => 4 * s.p,
            Width::Groups => 16 * s.p,
        }
    }

    /// Items (f32s or vec4s) of one channel, or of one group, and how many channels or
    /// groups.
    fn items_and_rows(self, s: &BatchNormShape) -> (usize, usize) {
        match self {
            Width::Scalar => (s.n * s.p, s.c),
            Width::Four => (s.n * s.p / 4, s.c),
            Width::Groups => (s.n * s.p, s.c / 4),
        }
    }
}

/// The grid of the element-wise kernels: x = chunk of one channel's (or group's) items,
/// y = channel (or group), so every invocation reads the per-channel values once. The
/// dispatch checks both against the device's per-dimension limit.
fn channel_chunk_grid(op: &str, s: &BatchNormShape, width: Width) -> Result<[u32; 3]> {
    let (items, rows) = width.items_and_rows(s);
    let chunk = (WORKGROUP_SIZE * CHUNK_PER_INVOCATION) as usize;
    // Headroom so the last chunk's `first index + k * WORKGROUP_SIZE` cannot wrap.
    to_u32(op, items + chunk)?;
    Ok([to_u32(op, items.div_ceil(chunk))?, to_u32(op, rows)?, 1])
}

/// The element-wise kernels' entry point and grid: by chunks of a channel (or group), or, for
/// channel groups on the uniform-window kernel set, whose CPU drivers want every invocation
/// at the same place of its row, a row per invocation (`*_grouped_rows`, see the WGSL).
fn elementwise_launch(
    ctx: &GpuContext,
    op: &str,
    name: &str,
    s: &BatchNormShape,
    width: Width,
) -> Result<(String, [u32; 3])> {
    if width == Width::Groups && ctx.kernel_set() == KernelSet::UniformWindows {
        let rows = s.n * (s.c / 4);
        let grid = ctx.grid(op, (rows as u64).div_ceil(u64::from(WORKGROUP_SIZE)))?;
        return Ok((format!("{name}_grouped_rows"), grid));
    }
    Ok((width.entry(name), channel_chunk_grid(op, s, width)?))
}

/// The grid of the reductions: one workgroup per channel (or group).
fn reduction_grid(
    ctx: &GpuContext,
    op: &str,
    s: &BatchNormShape,
    width: Width,
) -> Result<[u32; 3]> {
    ctx.grid(op, width.items_and_rows(s).1 as u64)
}

/// Bytes of a channel's (or a channel group's) contiguous run in one sample below which the
/// element-wise kernels of the CPU drivers' kernel set give each invocation consecutive items.
const SHORT_RUN_BYTES: usize = 1024;

/// The kernels' parameters, with the element-wise layout for `width`, the width of the
/// dispatch they go with.
fn params(ctx: &GpuContext, op: &str, s: &BatchNormShape, width: Width) -> Result<Params> {
    to_u32(op, s.len())?;
    // Neighbouring items across invocations, as GPUs coalesce them; but consecutive items per
    // invocation on the CPU drivers' kernel set when a channel's runs are short, so that the
    // memory is streamed rather than visited a piece of each of many runs at a time (at batch
    // 256 on lavapipe the 14 x 14 channels' normalisation ran about 1.5x faster, the 28 x 28
    // ones' about 10% slower).
    let consecutive =
        ctx.kernel_set() == KernelSet::UniformWindows && width.run_bytes(s) < SHORT_RUN_BYTES;
    let (lane_step, item_step) = if consecutive {
        (CHUNK_PER_INVOCATION, 1)
    } else {
        (1, WORKGROUP_SIZE)
    };
    Ok(Params {
        n: to_u32(op, s.n)?,
        c: to_u32(op, s.c)?,
        p: to_u32(op, s.p)?,
        momentum: s.momentum,
        epsilon: s.epsilon,
        lane_step,
        item_step,
    })
}

fn expect_lens(
    op: &str,
    s: &BatchNormShape,
    data: &[(&str, &GpuTensor)],
    per_channel: &[(&str, &GpuTensor)],
) -> Result<()> {
    for (name, t) in data {
        expect_len(op, name, t, s.len())?;
    }
    for (name, t) in per_channel {
        expect_len(op, name, t, s.c)?;
    }
    Ok(())
}

/// `y = gamma * (x - mean) / sqrt(var + eps) + beta` with the given per-channel statistics.
#[allow(clippy::too_many_arguments)]
fn normalize(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    s: &BatchNormShape,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    mean: &GpuTensor,
    var: &GpuTensor,
    y: &GpuTensor,
) -> Result<()> {
    let bindings = [
        (1, x.into()),
        (2, gamma.into()),
        (3, beta.into()),
        (8, mean.into()),
        (9, var.into()),
        (10, y.into()),
    ];
    let width = Width::of(s, &[x, y]);
    let bindings = bindings.map(|(b, t)| (width.binding(b), t));
    let (entry, grid) = elementwise_launch(ctx, op, "normalize", s, width)?;
    plan.push(ctx.dispatch(
        Shader::BatchNorm,
        &entry,
        &params(ctx, op, s, width)?,
        &bindings,
        grid,
    )?);
    Ok(())
}

/// Training-mode forward: batch mean and biased variance per channel (one sweep) into
/// `save_mean` / `save_var`, running statistics updated in place (unbiased variance), then
/// `y` normalised with the batch statistics. Two dispatches.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train(
    ctx: &GpuContext,
    plan: &mut Plan,
    s: &BatchNormShape,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &GpuTensor,
    running_var: &GpuTensor,
    y: &GpuTensor,
    save_mean: &GpuTensor,
    save_var: &GpuTensor,
) -> Result<()> {
    let op = "batchnorm:forward_train";
    let per_channel = [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("save_mean", save_mean),
        ("save_var", save_var),
    ];
    expect_lens(op, s, &[("x", x), ("y", y)], &per_channel)?;

    // Statistics: one workgroup per channel.
    let bindings = [
        (1, x.into()),
        (4, running_mean.into()),
        (5, running_var.into()),
        (6, save_mean.into()),
        (7, save_var.into()),
    ];
    // The statistics kernel reads x; the normalisation takes its own width from x and y.
    let width = Width::of(s, &[x]);
    let bindings = bindings.map(|(b, t)| (width.binding(b), t));
    let params = params(ctx, op, s, width)?;
    plan.push(ctx.dispatch(
        Shader::BatchNorm,
        &width.entry("forward_train_stats"),
        &params,
        &bindings,
        reduction_grid(ctx, op, s, width)?,
    )?);

    // Normalise with them.
    normalize(ctx, plan, op, s, x, gamma, beta, save_mean, save_var, y)
}

/// Inference-mode forward: normalises with the running statistics, which stay unchanged.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_inference(
    ctx: &GpuContext,
    plan: &mut Plan,
    s: &BatchNormShape,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &GpuTensor,
    running_var: &GpuTensor,
    y: &GpuTensor,
) -> Result<()> {
    let op = "batchnorm:forward_inference";
    let per_channel = [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ];
    expect_lens(op, s, &[("x", x), ("y", y)], &per_channel)?;
    normalize(
        ctx,
        plan,
        op,
        s,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
    )
}

/// Training-mode backward from the statistics `batchnorm_forward_train` saved:
/// `dbeta = sum dy`, `dgamma = sum dy * xhat` per channel (one workgroup each), then
/// `dx = gamma / sqrt(var + eps) * (dy - dbeta / count - xhat * dgamma / count)` with
/// `count = n * p`. Outputs are overwritten. Two dispatches.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    s: &BatchNormShape,
    x: &GpuTensor,
    dy: &GpuTensor,
    gamma: &GpuTensor,
    save_mean: &GpuTensor,
    save_var: &GpuTensor,
    dx: &GpuTensor,
    dgamma: &GpuTensor,
    dbeta: &GpuTensor,
) -> Result<()> {
    let op = "batchnorm:backward";
    let per_channel = [
        ("gamma", gamma),
        ("save_mean", save_mean),
        ("save_var", save_var),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
    ];
    expect_lens(op, s, &[("x", x), ("dy", dy), ("dx", dx)], &per_channel)?;
    let width = Width::of(s, &[x, dy, dx]);
    let params = params(ctx, op, s, width)?;

    // Reductions: one workgroup per channel.
    let bindings = [
        (1, x.into()),
        (8, save_mean.into()),
        (9, save_var.into()),
        (11, dy.into()),
        (12, dgamma.into()),
        (13, dbeta.into()),
    ];
    let bindings = bindings.map(|(b, t)| (width.binding(b), t));
    plan.push(ctx.dispatch(
        Shader::BatchNorm,
        &width.entry("backward_reduce"),
        &params,
        &bindings,
        reduction_grid(ctx, op, s, width)?,
    )?);

    // Input gradient, element-wise.
    let bindings = [
        (1, x.into()),
        (2, gamma.into()),
        (8, save_mean.into()),
        (9, save_var.into()),
        (11, dy.into()),
        (14, dgamma.into()),
        (15, dbeta.into()),
        (16, dx.into()),
    ];
    let bindings = bindings.map(|(b, t)| (width.binding(b), t));
    let (entry, grid) = elementwise_launch(ctx, op, "backward_dx", s, width)?;
    plan.push(ctx.dispatch(Shader::BatchNorm, &entry, &params, &bindings, grid)?);
    Ok(())
}
