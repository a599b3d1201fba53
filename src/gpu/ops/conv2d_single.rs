//! Convolution passes with a single output channel, four pixels at a time
//! (`shaders/conv2d_single.wgsl`): the forward pass into one channel and the input gradient
//! of a one-channel input, for stride 1 and rows of whole vec4s. Same sums in the same order
//! as the general direct kernels of `conv2d.wgsl`, which the callers fall back to otherwise.

use super::conv2d::Params;
use super::to_u32;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};
use crate::shapes::Conv2dGeometry;

/// Invocations per workgroup (`@workgroup_size` in the WGSL).
const WORKGROUP_SIZE: u64 = 64;

/// Vec4s of an output row one invocation computes (`SPAN` in the WGSL).
const SPAN: usize = 4;

/// Which pass: the forward one writes `y` from `x`, the input gradient `dx` from `dy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    Forward,
    BackwardInput,
}

/// Whether the single-channel kernel computes `pass` of `g`: one output channel, stride 1,
/// source and output rows of whole vec4s, and every tensor bound at a 16-byte offset.
fn applies(pass: Pass, g: &Conv2dGeometry, tensors: &[&GpuTensor]) -> bool {
    let channels = match pass {
        Pass::Forward => g.out_channels,
        Pass::BackwardInput => g.in_channels,
    };
    channels == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.in_w.is_multiple_of(4)
        && g.out_w.is_multiple_of(4)
        && tensors.iter().all(|t| t.offset.is_multiple_of(16))
}

/// Adds the pass's dispatch and returns `true` when the kernel applies; `false` (nothing
/// added) leaves it to the general kernels. `src` is x (forward) or dy (input gradient),
/// `out` y or dx; `params` the geometry's kernel parameters.
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
    let invocations = g.batch * rows * (width / 4).div_ceil(SPAN);
    to_u32(op, invocations)?;
    params.has_bias = u32::from(bias.is_some());
    let entry = match pass {
        Pass::Forward => "forward_single",
        Pass::BackwardInput => "backward_input_single",
    };
    let grid = ctx.grid(op, (invocations as u64).div_ceil(WORKGROUP_SIZE))?;
    let bindings = [
        (2, w.into()),
        (3, bias.unwrap_or(w).into()),
        (7, src.into()),
        (8, out.into()),
    ];
    plan.push(ctx.dispatch(Shader::Conv2dSingle, entry, &params, &bindings, grid)?);
    Ok(true)
}
