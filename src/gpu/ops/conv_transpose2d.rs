//! Transposed 2-D convolution (TensorFlow's `Conv2DTranspose`) on the conv2d kernels; CPU
//! twin in `crate::cpu::conv_transpose2d`.
//!
//! `g` is the geometry of the ordinary convolution whose input gradient this transposed
//! convolution is (`Conv2dGeometry::transpose_same` / `transpose_valid`): the transposed conv
//! reads `g`'s small side (`g.output_len()`, `g.out_channels` channels) and writes its large
//! side (`g.input_len()`, `g.in_channels` channels); its IOHW weight is `g`'s OIHW weight and
//! `g.pad_top` / `g.pad_left` are TensorFlow's crop. So each pass is a conv2d pass with the
//! roles swapped.

use super::conv2d::{backward_input_impl, backward_weight_impl, forward_impl};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan};
use crate::shapes::Conv2dGeometry;

/// Forward: `x [batch, out_channels, out_h, out_w]` (small side), `w [out_channels,
/// in_channels, kh, kw]`, optional `b [in_channels]` -> `y [batch, in_channels, in_h, in_w]`
/// (large side, overwritten). The conv2d input-gradient kernel with the bias in its store.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<()> {
    backward_input_impl(
        ctx,
        plan,
        "conv_transpose2d_forward",
        g,
        ("x", x),
        w,
        b,
        ("y", y),
    )
}

/// Input gradient: `dy` (large side) -> `dx` (small side, overwritten): the ordinary
/// convolution of `dy` with the same weight, without bias. The bias gradient is
/// `bias_backward(dy, db, batch, in_channels, in_h * in_w)`.
pub fn conv_transpose2d_backward_input(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
) -> Result<()> {
    let op = "conv_transpose2d_backward_input";
    forward_impl(ctx, plan, op, g, ("dy", dy), w, None, ("dx", dx))
}

/// Weight gradient: `x` (small side), `dy` (large side) -> `dw [out_channels, in_channels, kh,
/// kw]` (overwritten): the ordinary convolution's weight gradient with `dy` as its input and
/// `x` as its output gradient.
pub fn conv_transpose2d_backward_weight(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
) -> Result<()> {
    let op = "conv_transpose2d_backward_weight";
    backward_weight_impl(ctx, plan, op, g, ("dy", dy), ("x", x), dw)
}
