//! Inverted dropout (`shaders/dropout.wgsl`); CPU twins in `crate::cpu::dropout`.

use super::{ELEMS_PER_WORKGROUP, elementwise_grid, expect_len, four_wide, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};
use crate::rng::dropout_threshold;

/// Mirrors `Params` in shaders/dropout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements.
    n: u32,
    /// RNG stream (mask only).
    stream: u32,
    /// 24-bit drop threshold, `rng::dropout_threshold(rate)` (mask only).
    threshold: u32,
    /// `rng::dropout_scale(rate)` (apply only).
    scale: f32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Fill `mask` (any shape) with 1.0 (keep) or 0.0 (drop): element `i` is kept iff
/// `(random_bits(seed, step, stream, i / 4)[i % 4] >> 8) >= dropout_threshold(rate)`, with
/// seed and step read from the `step` uniform ([`crate::shapes::StepConstants`]) when the
/// plan runs. Bit-identical to `cpu::dropout_mask`.
pub fn dropout_mask(
    ctx: &GpuContext,
    plan: &mut Plan,
    step: &wgpu::Buffer,
    stream: u32,
    rate: f64,
    mask: &GpuTensor,
) -> Result<()> {
    let op = "dropout:dropout_mask";
    let params = Params {
        n: to_u32(op, mask.len)?,
        stream,
        threshold: dropout_threshold(rate),
        scale: 0.0,
    };
    // One invocation item per Philox block of four elements; the kernel's element index
    // (four per item, up to a workgroup past the end) must not wrap.
    let blocks = mask.len.div_ceil(4);
    to_u32(op, 4 * (blocks + ELEMS_PER_WORKGROUP as usize))?;
    let grid = elementwise_grid(ctx, op, blocks)?;
    // A block's four values in one store where they are whole vec4s.
    let (entry, mask_at) = if four_wide(mask.len, &[mask]) {
        ("dropout_mask4", 9)
    } else {
        ("dropout_mask", 2)
    };
    let bindings = [(1, step.into()), (mask_at, mask.into())];
    plan.push(ctx.dispatch(Shader::Dropout, entry, &params, &bindings, grid)?);
    Ok(())
}

/// `y = x * mask * scale` (forward; with `dy`, `dx` in place of `x`, `y` also the backward).
/// `scale` is `rng::dropout_scale(rate)`. All tensors have the same length; `y` must not
/// alias `x`.
pub fn dropout_apply(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    mask: &GpuTensor,
    scale: f32,
    y: &GpuTensor,
) -> Result<()> {
    let op = "dropout:dropout_apply";
    expect_len(op, "mask", mask, x.len)?;
    expect_len(op, "y", y, x.len)?;
    let params = Params {
        n: to_u32(op, x.len)?,
        stream: 0,
        threshold: 0,
        scale,
    };
    // Four values per load where the length allows it (same products, same bits).
    let (entry, items, [x_at, mask_at, y_at]) = if four_wide(x.len, &[x, mask, y]) {
        ("dropout_apply4", x.len / 4, [6, 7, 8])
    } else {
        ("dropout_apply", x.len, [3, 4, 5])
    };
    let grid = elementwise_grid(ctx, op, items)?;
    let bindings = [(x_at, x.into()), (mask_at, mask.into()), (y_at, y.into())];
    plan.push(ctx.dispatch(Shader::Dropout, entry, &params, &bindings, grid)?);
    Ok(())
}
