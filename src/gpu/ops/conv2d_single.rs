//! Convolution passes with a single output channel, four pixels at a time
//! (`shaders/conv2d_single.wgsl`): the forward pass into one channel and the input gradient
//! of a one-channel input, for stride 1, kernels of at most three rows, rows of whole vec4s
//! and tap shifts of at most 4 columns, each invocation over a block of output rows; and the
//! weight gradient of a one-channel input, summed per sample and then over the samples in
//! order. The callers fall back to other kernels otherwise, whose sums run in another order
//! (so the last bits differ).

use super::conv2d::{Params, push_weight_per_sample};
use super::to_u32;
use crate::error::Result;
use crate::gpu::{Bind, GpuContext, GpuTensor, KernelSet, Plan, Shader, UNIFORM_WINDOW_BYTES};
use crate::shapes::Conv2dGeometry;

/// Invocations per workgroup (`@workgroup_size` in the WGSL).
const WORKGROUP_SIZE: u64 = 64;

/// Vec4s of an output row one invocation computes (`SPAN` in the WGSL).
const SPAN: usize = 4;

/// Most kernel rows of the forward and input-gradient kernel, which keeps a running sum per
/// output row a source row reaches.
const MAX_KERNEL_ROWS: usize = 3;

/// Output rows per block, at most, on a CPU driver: a block of B rows reads B + 2 source
/// rows, so taller blocks load less per output, and fewer blocks leave fewer invocations.
/// On lavapipe the generator's 28 rows ran about 10% faster in blocks of 14 than of 7, and
/// 1.5 times slower in one block at batch 32. GPUs take blocks of one row, for the
/// invocations.
const CPU_BLOCK_ROWS: usize = 16;

/// Most kernel rows and columns of the single-channel weight gradient (`KSIZE_SINGLE` in the
/// WGSL), which keeps a sum per tap.
const KSIZE_SINGLE: usize = 3;

/// Which pass: the forward one writes `y` from `x`, the input gradient `dx` from `dy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    Forward,
    BackwardInput,
}

/// The source columns' shifts from their output's, least and most, for `pass` of `g`: the
/// forward pass reads x at ox + kx - PL, the input gradient dy at ix + PL - kx.
fn shifts(pass: Pass, g: &Conv2dGeometry) -> (i64, i64) {
    let (kw, pl) = (g.kernel_w as i64, g.pad_left as i64);
    match pass {
        Pass::Forward => (-pl, kw - 1 - pl),
        Pass::BackwardInput => (pl - (kw - 1), pl),
    }
}

/// What every kernel here needs: stride 1, source and output rows of whole vec4s, source
/// columns at most 4 from their output's (the kernels read one vec4 either side), and every
/// tensor bound at a 16-byte offset.
fn rows_fit(g: &Conv2dGeometry, (least, most): (i64, i64), tensors: &[&GpuTensor]) -> bool {
    least >= -4
        && most <= 4
        && g.stride_h == 1
        && g.stride_w == 1
        && g.in_w.is_multiple_of(4)
        && g.out_w.is_multiple_of(4)
        && tensors.iter().all(|t| t.offset.is_multiple_of(16))
}

/// Whether the single-channel kernel computes `pass` of `g`: one output channel, at most
/// [`MAX_KERNEL_ROWS`] kernel rows, weights (and the bias) that fit one uniform window, and
/// [`rows_fit`].
fn applies(pass: Pass, g: &Conv2dGeometry, tensors: &[&GpuTensor]) -> bool {
    let channels = match pass {
        Pass::Forward => g.out_channels,
        Pass::BackwardInput => g.in_channels,
    };
    channels == 1
        && g.kernel_h <= MAX_KERNEL_ROWS
        && g.weight_len() < (UNIFORM_WINDOW_BYTES / 4) as usize
        && rows_fit(g, shifts(pass, g), tensors)
}

/// Output rows per invocation for `rows` output rows: blocks of at most [`CPU_BLOCK_ROWS`]
/// as even as they come on the uniform-window (CPU driver) kernel set, single rows
/// otherwise.
fn block_rows(kernels: KernelSet, rows: usize) -> usize {
    match kernels {
        KernelSet::UniformWindows => rows.div_ceil(rows.div_ceil(CPU_BLOCK_ROWS)).max(1),
        KernelSet::Direct => 1,
    }
}

/// Adds the pass's dispatches (the weights' packing, then the pass) and returns `true` when
/// the kernel applies; `false` (nothing added) leaves it to the general kernels. `src` is x
/// (forward) or dy (input gradient), `out` y or dx; `params` the geometry's kernel
/// parameters.
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    pass: Pass,
    g: &Conv2dGeometry,
    mut params: Params,
    src: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    out: &GpuTensor,
) -> Result<bool> {
    if !applies(pass, g, &[src, out]) {
        return Ok(false);
    }
    let (rows, width) = match pass {
        Pass::Forward => (g.out_h, g.out_w),
        Pass::BackwardInput => (g.in_h, g.in_w),
    };
    let block = block_rows(ctx.kernel_set(), rows);
    let invocations = g.batch * rows.div_ceil(block) * (width / 4).div_ceil(SPAN);
    to_u32(op, invocations)?;
    params.has_bias = u32::from(bias.is_some());
    params.chunk_len = to_u32(op, block)?;

    // The weights and the bias into a uniform buffer (made once, with the plan).
    let packed = ctx.uniform_storage("conv2d_single:packed weights", g.weight_len() + 1);
    let bindings = [
        (2, w.into()),
        (3, bias.unwrap_or(w).into()),
        (11, (&packed).into()),
    ];
    let grid = ctx.grid(op, (g.weight_len() as u64 + 1).div_ceil(WORKGROUP_SIZE))?;
    plan.push(ctx.dispatch(
        Shader::Conv2dSingle,
        "pack_single_weights",
        &params,
        &bindings,
        grid,
    )?);

    let base = match pass {
        Pass::Forward => "forward_single",
        Pass::BackwardInput => "backward_input_single",
    };
    // The entry point with the kernel's size and padding as literals, for 'same' 3 x 3.
    let same_3x3 = (g.kernel_h, g.kernel_w, g.pad_top, g.pad_left) == (3, 3, 1, 1);
    let entry = if same_3x3 {
        format!("{base}_3x3")
    } else {
        base.to_string()
    };
    let grid = ctx.grid(op, (invocations as u64).div_ceil(WORKGROUP_SIZE))?;
    let bindings = [
        (7, src.into()),
        (8, out.into()),
        (10, Bind::Window(&packed, 0)),
    ];
    plan.push(ctx.dispatch(Shader::Conv2dSingle, &entry, &params, &bindings, grid)?);
    Ok(true)
}

/// The weight gradient of a one-channel input with at most 3 x 3 taps and [`rows_fit`] (its
/// shifts are the forward pass's), as sums per sample ([`push_weight_per_sample`]), one
/// invocation per sample and output channel, or four where they come in fours. Returns
/// `false` (nothing added) when the shape does not fit.
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
    let fits = g.in_channels == 1
        && g.kernel_h <= KSIZE_SINGLE
        && g.kernel_w <= KSIZE_SINGLE
        && rows_fit(g, shifts(Pass::Forward, g), &[x, dy]);
    if !fits {
        return Ok(false);
    }
    let width = if g.out_channels.is_multiple_of(4) {
        4
    } else {
        1
    };
    // Four channels per invocation where they come in fours, and the shift as a literal for
    // one column of left padding.
    let entry = format!(
        "backward_weight_single{}{}",
        if width == 4 { "4" } else { "" },
        if g.pad_left == 1 { "_pad1" } else { "" }
    );
    let inputs = [(7, x.into()), (9, dy.into())];
    let invocations = g.batch * g.out_channels / width;
    let kernel = (Shader::Conv2dSingle, entry.as_str());
    push_weight_per_sample(ctx, plan, op, g, params, kernel, invocations, inputs, dw)?;
    Ok(true)
}
