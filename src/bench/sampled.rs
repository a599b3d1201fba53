//! Single output elements of the contractions, computed in f64 from the same inputs as the
//! kernel: the check of a large GEMM or convolution, where running the whole CPU reference
//! (`crate::cpu`, plain f32 loops) would take longer than timing the kernel. Each function is
//! the CPU reference's sum for one index, in the same notation; the unit tests hold them to
//! the CPU reference on small shapes.

use crate::shapes::{Conv2dGeometry, GemmShape};

/// `C[row, col]` of `op(A) · op(B)` (see [`GemmShape`] for the layouts).
pub fn gemm_entry(shape: &GemmShape, a: &[f32], b: &[f32], row: usize, col: usize) -> f64 {
    let (m, n, k) = (shape.m, shape.n, shape.k);
    (0..k)
        .map(|p| {
            let av = if shape.trans_a {
                a[p * m + row]
            } else {
                a[row * k + p]
            };
            let bv = if shape.trans_b {
                b[col * k + p]
            } else {
                b[p * n + col]
            };
            av as f64 * bv as f64
        })
        .sum()
}

/// The input row (or column) that output position `out` reads through tap `tap`, as in
/// `cpu::conv2d`.
fn input_pos(out: usize, tap: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (out * stride + tap).checked_sub(pad).filter(|&p| p < size)
}

/// The output position that reads input position `input` through tap `tap`, if any: the
/// inverse of [`input_pos`].
fn output_pos(input: usize, tap: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    let shifted = (input + pad).checked_sub(tap)?;
    (shifted.is_multiple_of(stride) && shifted / stride < size).then_some(shifted / stride)
}

/// `(n, c, y, x)` of a flat NCHW index.
fn nchw(index: usize, channels: usize, h: usize, w: usize) -> (usize, usize, usize, usize) {
    let x = index % w;
    let y = (index / w) % h;
    let c = (index / (w * h)) % channels;
    (index / (w * h * channels), c, y, x)
}

/// `y[index]` of `cpu::conv2d_forward` (small side), without bias.
pub fn conv2d_forward_entry(g: &Conv2dGeometry, x: &[f32], w: &[f32], index: usize) -> f64 {
    let (n, o, oy, ox) = nchw(index, g.out_channels, g.out_h, g.out_w);
    let mut sum = 0.0;
    for i in 0..g.in_channels {
        for ky in 0..g.kernel_h {
            let Some(iy) = input_pos(oy, ky, g.stride_h, g.pad_top, g.in_h) else {
                continue;
            };
            for kx in 0..g.kernel_w {
                let Some(ix) = input_pos(ox, kx, g.stride_w, g.pad_left, g.in_w) else {
                    continue;
                };
                let xv = x[((n * g.in_channels + i) * g.in_h + iy) * g.in_w + ix];
                let wv = w[((o * g.in_channels + i) * g.kernel_h + ky) * g.kernel_w + kx];
                sum += xv as f64 * wv as f64;
            }
        }
    }
    sum
}

/// `dx[index]` of `cpu::conv2d_backward_input` (large side): the output gradients of every
/// window that reads this input position, through the tap that reads it.
pub fn conv2d_backward_input_entry(g: &Conv2dGeometry, dy: &[f32], w: &[f32], index: usize) -> f64 {
    let (n, i, iy, ix) = nchw(index, g.in_channels, g.in_h, g.in_w);
    let mut sum = 0.0;
    for o in 0..g.out_channels {
        for ky in 0..g.kernel_h {
            let Some(oy) = output_pos(iy, ky, g.stride_h, g.pad_top, g.out_h) else {
                continue;
            };
            for kx in 0..g.kernel_w {
                let Some(ox) = output_pos(ix, kx, g.stride_w, g.pad_left, g.out_w) else {
                    continue;
                };
                let d = dy[((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox];
                let wv = w[((o * g.in_channels + i) * g.kernel_h + ky) * g.kernel_w + kx];
                sum += d as f64 * wv as f64;
            }
        }
    }
    sum
}

/// `dw[index]` of `cpu::conv2d_backward_weight`: a sum over `batch * out_h * out_w` pixels.
pub fn conv2d_backward_weight_entry(
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    index: usize,
) -> f64 {
    let (o, i, ky, kx) = nchw(index, g.in_channels, g.kernel_h, g.kernel_w);
    let mut sum = 0.0;
    for n in 0..g.batch {
        for oy in 0..g.out_h {
            let Some(iy) = input_pos(oy, ky, g.stride_h, g.pad_top, g.in_h) else {
                continue;
            };
            for ox in 0..g.out_w {
                let Some(ix) = input_pos(ox, kx, g.stride_w, g.pad_left, g.in_w) else {
                    continue;
                };
                let xv = x[((n * g.in_channels + i) * g.in_h + iy) * g.in_w + ix];
                let d = dy[((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox];
                sum += xv as f64 * d as f64;
            }
        }
    }
    sum
}

/// `count` indices below `len` to check: the first and the last, and the rest spread by a
/// fixed stride prime to most sizes, so they cross rows, channels and tiles.
pub fn sample_indices(len: usize, count: usize) -> Vec<usize> {
    if len <= count {
        return (0..len).collect();
    }
    let mut out = vec![0, len - 1];
    let step = 2_654_435_761usize % len;
    let mut at = len / 2;
    while out.len() < count {
        at = (at + step) % len;
        if !out.contains(&at) {
            out.push(at);
        } else {
            at = (at + 1) % len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5 - 1.0)
            .collect()
    }

    fn close(entry: f64, reference: f32, terms: usize) {
        // The f32 reference's own rounding: well under 1e-6 per term at these sizes.
        let allowed = 1e-6 * terms as f64 + 1e-5 * entry.abs();
        assert!(
            (entry - reference as f64).abs() <= allowed,
            "f64 entry {entry} vs CPU reference {reference}"
        );
    }

    #[test]
    fn gemm_entries_match_the_cpu_reference_in_every_layout() {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let shape = GemmShape {
                m: 5,
                n: 7,
                k: 9,
                trans_a,
                trans_b,
            };
            let (a, b) = (values(45, 1), values(63, 2));
            let mut c = vec![0.0; 35];
            cpu::gemm(&shape, &a, &b, &mut c);
            for (index, &v) in c.iter().enumerate() {
                close(gemm_entry(&shape, &a, &b, index / 7, index % 7), v, 9);
            }
        }
    }

    #[test]
    fn conv_entries_match_the_cpu_reference_with_padding_and_strides() {
        let geometries = [
            Conv2dGeometry::conv_same(2, 3, (7, 6), 4, (3, 3), (2, 2)),
            Conv2dGeometry::conv_valid(1, 2, (6, 7), 3, (3, 2), (1, 2)),
            Conv2dGeometry::transpose_same(2, 4, (3, 3), 2, (3, 3), (2, 2)),
        ];
        for g in geometries {
            let (x, w) = (values(g.input_len(), 3), values(g.weight_len(), 4));
            let dy = values(g.output_len(), 5);
            let (mut y, mut dx, mut dw) = (
                vec![0.0; g.output_len()],
                vec![0.0; g.input_len()],
                vec![0.0; g.weight_len()],
            );
            cpu::conv2d_forward(&g, &x, &w, None, &mut y);
            cpu::conv2d_backward_input(&g, &dy, &w, &mut dx);
            cpu::conv2d_backward_weight(&g, &x, &dy, &mut dw);
            for (i, &v) in y.iter().enumerate() {
                close(conv2d_forward_entry(&g, &x, &w, i), v, 64);
            }
            for (i, &v) in dx.iter().enumerate() {
                close(conv2d_backward_input_entry(&g, &dy, &w, i), v, 64);
            }
            for (i, &v) in dw.iter().enumerate() {
                close(conv2d_backward_weight_entry(&g, &x, &dy, i), v, 128);
            }
        }
    }

    #[test]
    fn samples_include_both_ends_and_no_repeats() {
        let s = sample_indices(1000, 50);
        assert_eq!(s.len(), 50);
        assert!(s.contains(&0) && s.contains(&999));
        let mut sorted = s.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 50);
        assert_eq!(sample_indices(5, 50), vec![0, 1, 2, 3, 4]);
    }
}
