//! Gathering per-tap products into an input gradient (`shaders/col2im.wgsl`), the second half
//! of [`super::conv2d_windows`]'s input gradient. Its CPU twin is the whole input gradient,
//! `crate::cpu::conv2d_backward_input`, which the parity tests hold the two halves against.

use super::pack::check_exact_f32;
use super::{ELEMS_PER_WORKGROUP, expect_len, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};
use crate::shapes::Conv2dGeometry;

/// Mirrors `Params` in shaders/col2im.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    pixels: u32,
    has_bias: u32,
    chunks: u32,
    planes: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// `dx[n, i, iy, ix] = sum over the taps reaching (iy, ix) of z[(i, ky, kx), (n, oy, ox)]`,
/// plus `bias[i]`. `z`: `[in_channels * kh * kw, batch * out_h * out_w]`; `dx` overwritten.
pub fn col2im(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    z: &GpuTensor,
    bias: Option<&GpuTensor>,
    dx: &GpuTensor,
) -> Result<()> {
    let op = "col2im:col2im";
    let pixels = g.batch * g.out_h * g.out_w;
    expect_len(op, "z", z, g.in_channels * g.kernel_h * g.kernel_w * pixels)?;
    expect_len(op, "dx", dx, g.input_len())?;
    if let Some(b) = bias {
        expect_len(op, "bias", b, g.in_channels)?;
    }
    let plane = g.in_h * g.in_w;
    // Index arithmetic within a plane divides in f32; the rest stays in u32.
    check_exact_f32(
        op,
        &[plane + g.pad_top + g.pad_left + ELEMS_PER_WORKGROUP as usize],
    )?;
    to_u32(op, z.len)?;
    to_u32(op, dx.len + ELEMS_PER_WORKGROUP as usize)?;
    let u = |v: usize| to_u32(op, v);
    let chunks = plane.div_ceil(ELEMS_PER_WORKGROUP as usize);
    let planes = g.batch * g.in_channels;
    let params = Params {
        channels: u(g.in_channels)?,
        in_h: u(g.in_h)?,
        in_w: u(g.in_w)?,
        out_h: u(g.out_h)?,
        out_w: u(g.out_w)?,
        kernel_h: u(g.kernel_h)?,
        kernel_w: u(g.kernel_w)?,
        stride_h: u(g.stride_h.max(1))?,
        stride_w: u(g.stride_w.max(1))?,
        pad_top: u(g.pad_top)?,
        pad_left: u(g.pad_left)?,
        pixels: u(pixels)?,
        has_bias: u32::from(bias.is_some()),
        chunks: u(chunks)?,
        planes: u(planes)?,
    };
    let grid = ctx.grid(op, (chunks * planes) as u64)?;
    let bindings = [(1, z.into()), (2, bias.unwrap_or(z).into()), (3, dx.into())];
    plan.push(ctx.dispatch(Shader::Col2im, "col2im", &params, &bindings, grid)?);
    Ok(())
}
