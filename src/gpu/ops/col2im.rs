//! Gathering per-tap products into an input gradient (`shaders/col2im.wgsl`), the second half
//! of [`super::conv2d_windows`]'s input gradient. Its CPU twin is the whole input gradient,
//! `crate::cpu::conv2d_backward_input`, which the parity tests hold the two halves against.

use super::pack::check_exact_f32;
use super::{ELEMS_PER_WORKGROUP, WORKGROUP_SIZE, expect_len, four_wide, to_u32};
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
    taps_y: u32,
    taps_x: u32,
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
    let planes = g.batch * g.in_channels;
    // Planes of whole vec4s take the four-wide kernel, which divides its vec4 index (and the
    // pixels within a plane) in f32; the rest the plain one, which divides within a plane.
    let wide = four_wide(plane, &[dx]);
    let groups = if wide {
        let quads = dx.len / 4;
        check_exact_f32(
            op,
            &[
                quads + WORKGROUP_SIZE as usize,
                plane + g.pad_top + g.pad_left,
            ],
        )?;
        quads.div_ceil(WORKGROUP_SIZE as usize)
    } else {
        check_exact_f32(
            op,
            &[plane + g.pad_top + g.pad_left + ELEMS_PER_WORKGROUP as usize],
        )?;
        plane.div_ceil(ELEMS_PER_WORKGROUP as usize) * planes
    };
    to_u32(op, z.len)?;
    to_u32(op, dx.len + ELEMS_PER_WORKGROUP as usize)?;
    let u = |v: usize| to_u32(op, v);
    let (stride_h, stride_w) = (g.stride_h.max(1), g.stride_w.max(1));
    let params = Params {
        channels: u(g.in_channels)?,
        in_h: u(g.in_h)?,
        in_w: u(g.in_w)?,
        out_h: u(g.out_h)?,
        out_w: u(g.out_w)?,
        kernel_h: u(g.kernel_h)?,
        kernel_w: u(g.kernel_w)?,
        stride_h: u(stride_h)?,
        stride_w: u(stride_w)?,
        pad_top: u(g.pad_top)?,
        pad_left: u(g.pad_left)?,
        pixels: u(pixels)?,
        has_bias: u32::from(bias.is_some()),
        chunks: u(plane.div_ceil(ELEMS_PER_WORKGROUP as usize))?,
        planes: u(planes)?,
        taps_y: u(g.kernel_h.div_ceil(stride_h))?,
        taps_x: u(g.kernel_w.div_ceil(stride_w))?,
    };
    let grid = ctx.grid(op, groups as u64)?;
    // dx is seen as f32s at binding 3, as vec4s at binding 4 or as pairs at binding 5. The
    // block kernels cover the same four pixels per invocation as col2im4, so the same grid.
    let (entry, dx_binding) = if wide && blocks_of_taps(g) {
        let entry = if g.pad_left == 0 {
            "col2im_block2_pad0"
        } else {
            "col2im_block2_pad1"
        };
        (entry, 5)
    } else if wide {
        ("col2im4", 4)
    } else {
        ("col2im", 3)
    };
    let bindings = [
        (1, z.into()),
        (2, bias.unwrap_or(z).into()),
        (dx_binding, dx.into()),
    ];
    plan.push(ctx.dispatch(Shader::Col2im, entry, &params, &bindings, grid)?);
    Ok(())
}

/// Whether `col2im_block2_pad*` applies: a 3 x 3 kernel at stride 2 with the same padding,
/// 0 or 1, on the top and left, into planes of even height and width (2 x 2 blocks, stored
/// as two pairs; the caller has checked that dx starts on a 16-byte boundary).
fn blocks_of_taps(g: &Conv2dGeometry) -> bool {
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (3, 3, 2, 2)
        && g.pad_top == g.pad_left
        && g.pad_left <= 1
        && g.in_h.is_multiple_of(2)
        && g.in_w.is_multiple_of(2)
}
