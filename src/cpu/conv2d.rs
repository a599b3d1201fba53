//! 2-D convolution over NCHW tensors with OIHW weights (see `Conv2dGeometry` for the indexing
//! and TensorFlow's asymmetric 'same' padding).
//!
//! All three passes walk the same (n, o, oy, ox, i, ky, kx) nest and differ only in which
//! tensor they write, so a reader can check each against
//! `y[n, o, oy, ox] = b[o] + sum_{i, ky, kx} w[o, i, ky, kx] * x[n, i, oy*sh + ky - pad_top,
//! ox*sw + kx - pad_left]` (positions outside the input read zero).

use super::check_len;
use crate::shapes::Conv2dGeometry;

/// The input row (or column) that output position `out` reads through kernel tap `tap`, or
/// `None` when it falls in the zero padding.
fn input_pos(out: usize, tap: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (out * stride + tap).checked_sub(pad).filter(|&p| p < size)
}

fn check_lens(op: &str, g: &Conv2dGeometry, large: usize, small: usize, w: usize) {
    check_len(op, "input (large side)", large, g.input_len());
    check_len(op, "output (small side)", small, g.output_len());
    check_len(op, "weight", w, g.weight_len());
}

/// Forward: `x [batch, in_channels, in_h, in_w]`, `w [out_channels, in_channels, kh, kw]`,
/// optional `b [out_channels]` -> `y [batch, out_channels, out_h, out_w]` (overwritten).
pub fn conv2d_forward(g: &Conv2dGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    check_lens("conv2d_forward", g, x.len(), y.len(), w.len());
    if let Some(b) = b {
        check_len("conv2d_forward", "b", b.len(), g.out_channels);
    }

    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut sum = 0.0f32;
                    for i in 0..g.in_channels {
                        for ky in 0..g.kernel_h {
                            let Some(iy) = input_pos(oy, ky, g.stride_h, g.pad_top, g.in_h) else {
                                continue;
                            };
                            for kx in 0..g.kernel_w {
                                let Some(ix) = input_pos(ox, kx, g.stride_w, g.pad_left, g.in_w)
                                else {
                                    continue;
                                };
                                let xv = x[((n * g.in_channels + i) * g.in_h + iy) * g.in_w + ix];
                                let wv = w
                                    [((o * g.in_channels + i) * g.kernel_h + ky) * g.kernel_w + kx];
                                sum += xv * wv;
                            }
                        }
                    }
                    let bias = b.map_or(0.0, |b| b[o]);
                    y[((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox] = sum + bias;
                }
            }
        }
    }
}

/// Input gradient: `dy [batch, out_channels, out_h, out_w]`, `w` OIHW ->
/// `dx [batch, in_channels, in_h, in_w]` (overwritten). Each output gradient is scattered back
/// through the taps that read it; padding positions receive nothing, and input rows that no
/// window reaches ('valid' leftovers) get zero.
pub fn conv2d_backward_input(g: &Conv2dGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    check_lens("conv2d_backward_input", g, dx.len(), dy.len(), w.len());

    dx.fill(0.0);
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let d = dy[((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox];
                    for i in 0..g.in_channels {
                        for ky in 0..g.kernel_h {
                            let Some(iy) = input_pos(oy, ky, g.stride_h, g.pad_top, g.in_h) else {
                                continue;
                            };
                            for kx in 0..g.kernel_w {
                                let Some(ix) = input_pos(ox, kx, g.stride_w, g.pad_left, g.in_w)
                                else {
                                    continue;
                                };
                                let wv = w
                                    [((o * g.in_channels + i) * g.kernel_h + ky) * g.kernel_w + kx];
                                dx[((n * g.in_channels + i) * g.in_h + iy) * g.in_w + ix] += d * wv;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Weight gradient: `x [batch, in_channels, in_h, in_w]`, `dy [batch, out_channels, out_h,
/// out_w]` -> `dw [out_channels, in_channels, kh, kw]` (overwritten), a sum over
/// batch * out_h * out_w positions per weight, in f32.
pub fn conv2d_backward_weight(g: &Conv2dGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    check_lens("conv2d_backward_weight", g, x.len(), dy.len(), dw.len());

    for o in 0..g.out_channels {
        for i in 0..g.in_channels {
            for ky in 0..g.kernel_h {
                for kx in 0..g.kernel_w {
                    let mut sum = 0.0f32;
                    for n in 0..g.batch {
                        for oy in 0..g.out_h {
                            let Some(iy) = input_pos(oy, ky, g.stride_h, g.pad_top, g.in_h) else {
                                continue;
                            };
                            for ox in 0..g.out_w {
                                let Some(ix) = input_pos(ox, kx, g.stride_w, g.pad_left, g.in_w)
                                else {
                                    continue;
                                };
                                let xv = x[((n * g.in_channels + i) * g.in_h + iy) * g.in_w + ix];
                                let d =
                                    dy[((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox];
                                sum += xv * d;
                            }
                        }
                    }
                    dw[((o * g.in_channels + i) * g.kernel_h + ky) * g.kernel_w + kx] = sum;
                }
            }
        }
    }
}
