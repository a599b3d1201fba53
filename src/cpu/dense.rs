//! Fully connected layer, `y = x · W + b`, as a GEMM plus a bias (Keras' `Dense` layout).

use super::{bias_add, bias_backward, check_len, gemm};
use crate::shapes::GemmShape;

/// Forward: `x [n, inputs]`, `w [inputs, outputs]`, `b [outputs]` -> `y [n, outputs]`.
pub fn dense_forward(
    n: usize,
    inputs: usize,
    outputs: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let shape = GemmShape {
        m: n,
        n: outputs,
        k: inputs,
        trans_a: false,
        trans_b: false,
    };
    gemm(&shape, x, w, y);
    bias_add(y, b, n, outputs, 1);
}

/// Backward of [`dense_forward`] given `dy [n, outputs]` (all outputs overwritten):
/// `dx = dy · Wᵀ [n, inputs]` (skipped when `None`, e.g. for the first layer),
/// `dw = xᵀ · dy [inputs, outputs]`, `db = sum over n of dy [outputs]`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward(
    n: usize,
    inputs: usize,
    outputs: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
) {
    check_len("dense_backward", "x", x.len(), n * inputs);
    check_len("dense_backward", "w", w.len(), inputs * outputs);
    check_len("dense_backward", "dy", dy.len(), n * outputs);

    // dx: W is stored [inputs, outputs] = [n, k] of this product, hence trans_b.
    if let Some(dx) = dx {
        let shape = GemmShape {
            m: n,
            n: inputs,
            k: outputs,
            trans_a: false,
            trans_b: true,
        };
        gemm(&shape, dy, w, dx);
    }

    // dw: x is stored [n, inputs] = [k, m] of this product, hence trans_a.
    let shape = GemmShape {
        m: inputs,
        n: outputs,
        k: n,
        trans_a: true,
        trans_b: false,
    };
    gemm(&shape, x, dy, dw);
    bias_backward(dy, db, n, outputs, 1);
}
