//! General matrix multiply, the building block of the dense layer.

use super::check_len;
use crate::shapes::GemmShape;

/// `C[m, n] = op(A)[m, k] · op(B)[k, n]`, row-major, `C` overwritten.
///
/// `A` is `[m, k]`, or `[k, m]` with `trans_a`; `B` is `[k, n]`, or `[n, k]` with `trans_b`.
/// Each dot product is summed in f32 in increasing `k`.
pub fn gemm(shape: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    let GemmShape {
        m,
        n,
        k,
        trans_a,
        trans_b,
    } = *shape;
    check_len("gemm", "a", a.len(), m * k);
    check_len("gemm", "b", b.len(), k * n);
    check_len("gemm", "c", c.len(), m * n);

    let a_at = |row: usize, p: usize| {
        if trans_a {
            a[p * m + row]
        } else {
            a[row * k + p]
        }
    };
    let b_at = |p: usize, col: usize| {
        if trans_b {
            b[col * k + p]
        } else {
            b[p * n + col]
        }
    };
    for row in 0..m {
        for col in 0..n {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a_at(row, p) * b_at(p, col);
            }
            c[row * n + col] = sum;
        }
    }
}
