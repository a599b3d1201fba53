//! The three convolution passes as packed products on the uniform-window GEMM
//! ([`super::gemm_uniform`]), for devices that use it. Each function returns `false`, having
//! added nothing, when the pass is better left to the direct kernels of `conv2d.wgsl`.
//!
//! With taps `t = (ky, kx, i)` (T of them), small-side pixels `q = (n, oy, ox)` (P per
//! sample) and O small-side channels:
//! - forward: `y[o, q] = sum_t w[o, t] · im2col(x)[t, q]`, stored straight into NCHW;
//! - input gradient: per phase class of the large side's pixels (see `backward_input` in
//!   conv2d.wgsl), `dx[i, q'] = sum over the class's taps and o of w · dy`, stored straight
//!   into the class's pixels; or, for fewer input than output channels,
//!   `Z[t, q] = sum_o w[o, t] dy[o, q]` and a gather of each pixel's taps (`col2im`);
//! - weight gradient: `dw[o, t] = sum_q dy[o, q] · im2col(x)[t, q]`, or its transpose.
//!
//! The forward and per-class input-gradient sums run over k in the direct kernels' order, so
//! for sums of up to 640 terms (one dispatch) both kernel sets give the same bits.

use super::col2im::col2im;
use super::conv2d_one_input as one_input;
use super::gemm_uniform::{
    Bias, ColumnMap, StoreView, better_transposed, gemm_uniform, worthwhile,
};
use super::pack::{Axis, Operand, PhaseClass, View, pack};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan};
use crate::shapes::Conv2dGeometry;

/// How the small side `dy[n, o, p]` steps along a channel o and along a pixel (n, p).
fn small_side_axes(g: &Conv2dGeometry) -> (Axis, Axis) {
    let plane = g.out_h * g.out_w;
    (
        Axis::stride(plane),
        Axis::split(plane, g.out_channels * plane, 1),
    )
}

/// The small side as the matrix `[o, (n, p)]`.
fn channels_by_pixels(g: &Conv2dGeometry) -> View {
    let (channel, pixel) = small_side_axes(g);
    View::Strided {
        offset: 0,
        row: channel,
        col: pixel,
    }
}

/// The small side as the matrix `[(n, p), o]`.
fn pixels_by_channels(g: &Conv2dGeometry) -> View {
    let (channel, pixel) = small_side_axes(g);
    View::Strided {
        offset: 0,
        row: pixel,
        col: channel,
    }
}

fn sizes(g: &Conv2dGeometry) -> (usize, usize, usize) {
    let taps = g.in_channels * g.kernel_h * g.kernel_w;
    let plane = g.out_h * g.out_w;
    (taps, plane, g.batch * plane)
}

/// `y = conv(x, w) + b`, NCHW.
pub(super) fn forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<bool> {
    let (taps, plane, pixels) = sizes(g);
    let o = g.out_channels;
    if !worthwhile(ctx, o, pixels, taps) {
        return Ok(false);
    }

    // w[o, i, ky, kx] at column (ky, kx, i) = tap * I + i.
    let weight = View::Strided {
        offset: 0,
        row: Axis::stride(taps),
        col: Axis::split(g.in_channels, 1, g.kernel_h * g.kernel_w),
    };
    let lhs = pack(ctx, plan, Operand::A, &weight, w, o, taps)?;
    let rhs = pack(ctx, plan, Operand::B, &View::Im2col(*g), x, pixels, taps)?;
    let store = StoreView {
        offset: 0,
        row_stride: plane,
        col: ColumnMap::split(plane, o * plane, 1),
    };
    gemm_uniform(ctx, plan, &lhs, &rhs, b.map(Bias::PerRow), y, &store)?;
    Ok(true)
}

/// `dx = conv_input_grad(dy, w) (+ bias per input channel)`: one product per phase class of
/// the large side's pixels, summed in the direct kernels' order, or one product per tap and a
/// gather, see [`backward_input_by_tap`]. The classes pack `out_channels * taps` values per
/// small-side pixel into windows, the taps write and gather `in_channels * taps`; a gathered
/// value costs more than a packed one, so the taps go first only when the input has at most
/// half the output's channels (on lavapipe, equal channel counts ran about 1.4x slower by tap
/// and half as many input channels about 1.1x faster). Each route leaves to the other what it
/// cannot fill tiles with (few input channels: the class rows would be nearly empty).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_input(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    dx: &GpuTensor,
) -> Result<bool> {
    let taps_first = 2 * g.in_channels <= g.out_channels;
    for by_tap in [taps_first, !taps_first] {
        let taken = if by_tap {
            backward_input_by_tap(ctx, plan, g, dy, w, bias, dx)?
        } else {
            backward_input_by_class(ctx, plan, g, dy, w, bias, dx)?
        };
        if taken {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The input gradient as `Z = W^T dy`, a row per tap `(i, ky, kx)` and a column per
/// small-side pixel, then [`col2im`] gathering each large-side pixel's taps in order: rows
/// are taps, so a one-channel input still fills them. Each pixel's sum is the sum of its
/// taps' sums, not one chain over k, so its last bits differ from the direct kernels'.
fn backward_input_by_tap(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    dx: &GpuTensor,
) -> Result<bool> {
    let (taps, _, pixels) = sizes(g);
    let o = g.out_channels;
    if !worthwhile(ctx, taps, pixels, o) {
        return Ok(false);
    }
    // Made once, with the plan.
    let z = ctx.storage("conv2d:input gradient per tap", taps * pixels);
    // One input channel: a row per tap, which the one-input kernel fills directly.
    if !one_input::tap_products(ctx, plan, g, dy, w, &z)? {
        // w[o, i, ky, kx] = w[o * taps + t] is W^T[t, o].
        let weight = View::Strided {
            offset: 0,
            row: Axis::stride(1),
            col: Axis::stride(taps),
        };
        let lhs = pack(ctx, plan, Operand::A, &weight, w, taps, o)?;
        let rhs = pack(ctx, plan, Operand::B, &channels_by_pixels(g), dy, pixels, o)?;
        let store = StoreView::row_major(pixels);
        gemm_uniform(ctx, plan, &lhs, &rhs, None, &z, &store)?;
    }
    col2im(ctx, plan, g, &z, bias, dx)?;
    Ok(true)
}

/// The input gradient as one product per phase class of the large side's pixels, summed in
/// the direct kernels' order.
fn backward_input_by_class(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    dx: &GpuTensor,
) -> Result<bool> {
    let classes = PhaseClass::all(g);
    // A class without taps (stride above the kernel) leaves pixels to the direct kernel.
    if classes.iter().any(|c| c.k(g) == 0) {
        return Ok(false);
    }
    let i = g.in_channels;
    let widest = classes[0];
    if !worthwhile(ctx, i, g.batch * widest.qh * widest.qw, widest.k(g)) {
        return Ok(false);
    }

    let plane = g.in_h * g.in_w;
    for class in classes.into_iter().filter(|c| c.qh > 0 && c.qw > 0) {
        let (k, pixels) = (class.k(g), g.batch * class.qh * class.qw);
        let lhs = pack(
            ctx,
            plan,
            Operand::A,
            &View::ClassWeight(*g, class),
            w,
            i,
            k,
        )?;
        let rhs = pack(
            ctx,
            plan,
            Operand::B,
            &View::ClassGradient(*g, class),
            dy,
            pixels,
            k,
        )?;
        // Column (n, qy, qx) is pixel (py + qy * SH, px + qx * SW) of sample n.
        let store = StoreView {
            offset: class.py * g.in_w + class.px,
            row_stride: plane,
            col: ColumnMap {
                div1: class.qh * class.qw,
                div2: class.qw,
                s1: i * plane,
                s2: g.stride_h * g.in_w,
                s3: g.stride_w,
            },
        };
        gemm_uniform(ctx, plan, &lhs, &rhs, bias.map(Bias::PerRow), dx, &store)?;
    }
    Ok(true)
}

/// `dw[o, t] = sum over pixels of dy · im2col(x)`, t in OIHW order; or, when that fills the
/// tiles better (few output channels or few taps), `dw^T[t, o]` stored transposed.
pub(super) fn backward_weight(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
) -> Result<bool> {
    let (taps, _, pixels) = sizes(g);
    let o = g.out_channels;
    let transposed = better_transposed(o, taps);
    let (m, n) = if transposed { (taps, o) } else { (o, taps) };
    if !worthwhile(ctx, m, n, pixels) {
        return Ok(false);
    }
    if transposed {
        // im2col(x) as [t, (n, p)] times dy^T as [(n, p), o].
        let lhs = pack(
            ctx,
            plan,
            Operand::A,
            &View::Im2colOihw(*g),
            x,
            taps,
            pixels,
        )?;
        let rhs = pack(ctx, plan, Operand::B, &pixels_by_channels(g), dy, o, pixels)?;
        let store = StoreView {
            offset: 0,
            row_stride: 1,
            col: ColumnMap::stride(taps),
        };
        gemm_uniform(ctx, plan, &lhs, &rhs, None, dw, &store)?;
        return Ok(true);
    }
    let lhs = pack(ctx, plan, Operand::A, &channels_by_pixels(g), dy, o, pixels)?;
    let rhs = pack(
        ctx,
        plan,
        Operand::B,
        &View::Im2colTransposed(*g),
        x,
        taps,
        pixels,
    )?;
    gemm_uniform(ctx, plan, &lhs, &rhs, None, dw, &StoreView::row_major(taps))?;
    Ok(true)
}
