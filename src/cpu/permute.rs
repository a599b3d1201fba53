//! The layout bridge between Keras' NHWC flatten/reshape order and our NCHW activations.

use super::check_len;

/// Swaps the last two axes: `x [n, a, b]` -> `y [n, b, a]`, `y[n][j][i] = x[n][i][j]`.
///
/// NCHW -> NHWC is `(a, b) = (C, H*W)`; NHWC -> NCHW is `(a, b) = (H*W, C)`. The backward pass
/// of a permute is the permute with `a` and `b` exchanged.
pub fn permute_last_two(x: &[f32], y: &mut [f32], n: usize, a: usize, b: usize) {
    check_len("permute_last_two", "x", x.len(), n * a * b);
    check_len("permute_last_two", "y", y.len(), n * a * b);

    for batch in 0..n {
        let base = batch * a * b;
        for i in 0..a {
            for j in 0..b {
                y[base + j * a + i] = x[base + i * b + j];
            }
        }
    }
}
