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
    // dx is seen as f32s at binding 3 or as vec4s at binding 4; z as f32s at binding 1, or
    // as pairs at binding 5 for the stride-2 kernel.
    let (entry, dx_binding, z_binding) = if wide && pairs_of_taps(g, z) {
        let entry = if g.pad_left == 0 {
            "col2im4_stride2_pad0"
        } else {
            "col2im4_stride2_pad1"
        };
        (entry, 4, 5)
    } else if wide {
        ("col2im4", 4, 1)
    } else {
        ("col2im", 3, 1)
    };
    let bindings = [
        (z_binding, z.into()),
        (2, bias.unwrap_or(z).into()),
        (dx_binding, dx.into()),
    ];
    plan.push(ctx.dispatch(Shader::Col2im, entry, &params, &bindings, grid)?);
    Ok(())
}

/// Whether `col2im4_stride2_pad*` applies: a 3 x 3 kernel at stride 2 with no padding or
/// one on the left, large-side rows of whole vec4s at most twice the small side's, and Z's
/// rows, the small side's rows and Z's start all on 8-byte boundaries, so an even column pair
/// is one aligned vec2 (the WGSL says which pairs hold the taps).
fn pairs_of_taps(g: &Conv2dGeometry, z: &GpuTensor) -> bool {
    let pixels = g.batch * g.out_h * g.out_w;
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (3, 3, 2, 2)
        && g.pad_left <= 1
        && g.in_w.is_multiple_of(4)
        && g.in_w <= 2 * g.out_w
        && g.out_w.is_multiple_of(2)
        && pixels.is_multiple_of(2)
        && z.offset.is_multiple_of(8)
}
