//! Convolutions from a single input channel (`shaders/conv2d_one_input.wgsl`): the forward
//! pass, four output pixels per invocation, with the weights and bias packed into a uniform
//! buffer first (its sums run in the general kernels' order); the weight gradient, as sums
//! per sample; and the input gradient's products per tap, for `col2im`. They take kernels
//! of at most 3 x 3, any stride and padding, output channels in fours and output planes of
//! whole vec4s; the callers fall back to other kernels otherwise.

use super::conv2d::{Params, geometry_params, push_weight_per_sample};
use super::to_u32;
use crate::error::Result;
use crate::gpu::{Bind, GpuContext, GpuTensor, Plan, Shader, UNIFORM_WINDOW_BYTES};
use crate::shapes::Conv2dGeometry;

/// Invocations per workgroup (`WG_ONE` in the WGSL).
const WORKGROUP_SIZE: u64 = 64;

/// Most kernel rows and columns (the WGSL's slots are 3 x 3).
const KSIZE: usize = 3;

/// Rows of the packed weights: the 3 x 3 taps, then the bias (`SLOTS` in the WGSL).
const SLOTS: usize = KSIZE * KSIZE + 1;

/// Most bytes of output one invocation's run of channels spans (its four pixels in each
/// channel's plane). On lavapipe the generator's 64 planes of 28 x 28 (200 KB) ran at half
/// the speed of two runs of 32, and 64 planes of 14 x 14 (50 KB) no slower than one run.
const RUN_SPAN_BYTES: usize = 128 << 10;

/// Runs the output channels are cut into, one per workgroup: the fewest that divide the
/// groups of four and keep a run's span within [`RUN_SPAN_BYTES`] (or one group per run).
fn channel_runs(g: &Conv2dGeometry) -> usize {
    let groups = g.out_channels / 4;
    let plane_bytes = g.out_h * g.out_w * 4;
    (1..=groups)
        .filter(|runs| groups.is_multiple_of(*runs))
        .find(|runs| groups / runs * 4 * plane_bytes <= RUN_SPAN_BYTES)
        .unwrap_or(groups.max(1))
}

/// Whether the kernel computes the forward pass of `g` into `y`: one input channel, a kernel
/// of at most [`KSIZE`] x [`KSIZE`], output channels in fours whose packed weights fit one
/// uniform window, and output planes of whole vec4s with `y` at byte `y_offset`, a multiple
/// of 16.
fn applies(g: &Conv2dGeometry, y_offset: u64) -> bool {
    let window_floats = (UNIFORM_WINDOW_BYTES / 4) as usize;
    g.in_channels == 1
        && g.kernel_h <= KSIZE
        && g.kernel_w <= KSIZE
        && g.out_channels.is_multiple_of(4)
        && SLOTS * g.out_channels <= window_floats
        && (g.out_h * g.out_w).is_multiple_of(4)
        && y_offset.is_multiple_of(16)
}

/// Packs `w` (and `bias`, or zeros) into a uniform buffer made here, once, with the plan:
/// `SLOTS` rows of `out_channels` values, the 3 x 3 taps then the bias.
fn pack_weights(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    params: &Params,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
) -> Result<GpuTensor> {
    let taps = ctx.uniform_storage("conv2d_one_input:packed weights", SLOTS * g.out_channels);
    let mut params = *params;
    params.has_bias = u32::from(bias.is_some());
    let packing = (SLOTS * g.out_channels) as u64;
    let bindings = [
        (2, w.into()),
        (3, bias.unwrap_or(w).into()),
        (9, (&taps).into()),
    ];
    let grid = ctx.grid(op, packing.div_ceil(WORKGROUP_SIZE))?;
    plan.push(ctx.dispatch(
        Shader::Conv2dOneInput,
        "pack_one_input",
        &params,
        &bindings,
        grid,
    )?);
    Ok(taps)
}

/// Adds the packing and the convolution and returns `true` when the kernel applies; `false`
/// (nothing added) leaves the pass to the other kernels. The packed weights' buffer is made
/// here, once, with the plan.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    mut params: Params,
    x: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<bool> {
    if !applies(g, y.offset) {
        return Ok(false);
    }
    let chunks = channel_runs(g);
    params.chunks = to_u32(op, chunks)?;
    let quads = g.batch * g.out_h * g.out_w / 4;
    let invocations = quads.div_ceil(WORKGROUP_SIZE as usize) * WORKGROUP_SIZE as usize * chunks;
    to_u32(op, invocations)?;
    params.has_bias = u32::from(bias.is_some());
    let taps = pack_weights(ctx, plan, op, g, &params, w, bias)?;

    // x is seen as f32s at binding 1, or as vec4s at binding 12 by the 'same' 3 x 3 kernel.
    let (entry, x_binding) = if same_3x3_rows(g, x) {
        ("forward_one_input_3x3", 12)
    } else {
        ("forward_one_input", 1)
    };
    let bindings = [
        (x_binding, x.into()),
        (7, Bind::Window(&taps, 0)),
        (8, y.into()),
    ];
    let grid = ctx.grid(op, (invocations as u64).div_ceil(WORKGROUP_SIZE))?;
    plan.push(ctx.dispatch(Shader::Conv2dOneInput, entry, &params, &bindings, grid)?);
    Ok(true)
}

/// Whether `forward_one_input_3x3` takes `g`: a 3 x 3 kernel at stride 1 padded by one on the
/// top and left, output planes the source's size, and rows of whole vec4s from a 16-byte
/// boundary, so that a quad's sources are the three aligned vec4s around it in each row.
fn same_3x3_rows(g: &Conv2dGeometry, x: &GpuTensor) -> bool {
    (
        g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
    ) == (3, 3, 1, 1, 1, 1)
        && (g.out_h, g.out_w) == (g.in_h, g.in_w)
        && g.in_w.is_multiple_of(4)
        && x.offset.is_multiple_of(16)
}

/// The weight gradient for the shapes [`forward`] takes (`y` standing for `dy`), as sums
/// per sample ([`push_weight_per_sample`]), one invocation per sample and eight output
/// channels, or four where they do not come in eights. Returns `false` (nothing added) when
/// the shape does not fit.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_weight(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    params: Params,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
) -> Result<bool> {
    if !applies(g, dy.offset) {
        return Ok(false);
    }
    let width = if g.out_channels.is_multiple_of(8) {
        8
    } else {
        4
    };
    let entry = if width == 8 {
        "backward_weight_one_input8"
    } else {
        "backward_weight_one_input"
    };
    let inputs = [(1, x.into()), (10, dy.into())];
    let invocations = g.batch * g.out_channels / width;
    let kernel = (Shader::Conv2dOneInput, entry);
    push_weight_per_sample(ctx, plan, op, g, params, kernel, invocations, inputs, dw)?;
    Ok(true)
}

/// The products per tap of the input gradient, `z[t, (n, p)] = sum over o of w[o, t] *
/// dy[n, o, p]` with `t = ky * KW + kx`, in the layout `col2im` gathers, for the shapes
/// [`forward`] takes (`y` standing for `dy`): the weights' packing and one dispatch, one
/// invocation per four pixels of dy. Returns `false` (nothing added) when the shape does
/// not fit.
pub(super) fn tap_products(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    z: &GpuTensor,
) -> Result<bool> {
    if !applies(g, dy.offset) || !z.offset.is_multiple_of(16) {
        return Ok(false);
    }
    let op = "conv2d_backward_input";
    let params = geometry_params(op, g)?;
    let taps = pack_weights(ctx, plan, op, g, &params, w, None)?;
    let quads = g.batch * g.out_h * g.out_w / 4;
    to_u32(op, quads)?;
    let bindings = [(7, Bind::Window(&taps, 0)), (10, dy.into()), (11, z.into())];
    let grid = ctx.grid(op, (quads as u64).div_ceil(WORKGROUP_SIZE))?;
    plan.push(ctx.dispatch(
        Shader::Conv2dOneInput,
        "tap_products_one_input",
        &params,
        &bindings,
        grid,
    )?);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_one_input_channel_into_channels_in_fours_over_whole_vec4_planes() {
        let d_first = Conv2dGeometry::conv_same(32, 1, (28, 28), 64, (3, 3), (2, 2));
        let g_last = Conv2dGeometry::transpose_same(32, 64, (28, 28), 1, (3, 3), (1, 1));
        assert!(applies(&d_first, 0));
        assert!(applies(&g_last, 0));
        assert!(!applies(&d_first, 4), "y at an offset that is not a vec4's");
        let two_inputs = Conv2dGeometry::conv_same(2, 2, (8, 8), 8, (3, 3), (1, 1));
        let odd_outputs = Conv2dGeometry::conv_same(2, 1, (8, 8), 6, (3, 3), (1, 1));
        let odd_plane = Conv2dGeometry::conv_same(2, 1, (7, 7), 8, (3, 3), (1, 1));
        let wide_kernel = Conv2dGeometry::conv_same(2, 1, (8, 8), 8, (3, 5), (1, 1));
        for g in [two_inputs, odd_outputs, odd_plane, wide_kernel] {
            assert!(!applies(&g, 0), "{g:?}");
        }
    }

    #[test]
    fn channel_runs_divide_the_channels_and_bound_the_span() {
        let d_first = Conv2dGeometry::conv_same(32, 1, (28, 28), 64, (3, 3), (2, 2));
        let g_last = Conv2dGeometry::transpose_same(32, 64, (28, 28), 1, (3, 3), (1, 1));
        assert_eq!(channel_runs(&d_first), 1);
        assert_eq!(channel_runs(&g_last), 2);
        // Planes past the span: one group of four per run.
        let huge = Conv2dGeometry::conv_same(1, 1, (256, 256), 12, (3, 3), (1, 1));
        assert_eq!(channel_runs(&huge), 3);
        // 24 groups of 784-pixel planes: 2 runs would span 150 KB, 3 span 100 KB.
        let wide = Conv2dGeometry::conv_same(1, 1, (28, 28), 96, (3, 3), (1, 1));
        assert_eq!(channel_runs(&wide), 3);
    }
}
