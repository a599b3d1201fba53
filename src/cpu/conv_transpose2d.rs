//! Transposed 2-D convolution, as TensorFlow's `Conv2DTranspose` computes it.
//!
//! A transposed convolution is the input gradient of an ordinary convolution, so each pass
//! here is one pass of [`super::conv2d`] with the roles of the two sides swapped. `g` is the
//! geometry of that ordinary convolution (`Conv2dGeometry::transpose_same` /
//! `transpose_valid`): the transposed conv reads its *small* side (`g.output_len()`, channels
//! `g.out_channels`) and writes its *large* side (`g.input_len()`, channels `g.in_channels`).
//! The IOHW weight `[t_in, t_out, kh, kw]` is exactly `g`'s OIHW weight, and `g.pad_top` /
//! `g.pad_left` are the crop that TensorFlow applies to the full output.

use super::{bias_add, check_len, conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use crate::shapes::Conv2dGeometry;

/// Forward: `x [batch, out_channels, out_h, out_w]` (small), `w [out_channels, in_channels,
/// kh, kw]`, optional `b [in_channels]` -> `y [batch, in_channels, in_h, in_w]` (large,
/// overwritten).
pub fn conv_transpose2d_forward(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    conv2d_backward_input(g, x, w, y);
    if let Some(b) = b {
        check_len("conv_transpose2d_forward", "b", b.len(), g.in_channels);
        bias_add(y, b, g.batch, g.in_channels, g.in_h * g.in_w);
    }
}

/// Input gradient: `dy` (large side) -> `dx` (small side, overwritten), which is the ordinary
/// convolution of `dy` with the same weight. The bias gradient is
/// `bias_backward(dy, db, batch, in_channels, in_h * in_w)`.
pub fn conv_transpose2d_backward_input(g: &Conv2dGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    conv2d_forward(g, dy, w, None, dx);
}

/// Weight gradient: `x` (small side), `dy` (large side) -> `dw [out_channels, in_channels, kh,
/// kw]` (overwritten): the ordinary convolution's weight gradient with `dy` as its input and
/// `x` as its output gradient.
pub fn conv_transpose2d_backward_weight(g: &Conv2dGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    conv2d_backward_weight(g, dy, x, dw);
}
