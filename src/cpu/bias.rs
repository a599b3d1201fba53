//! Per-channel bias, for dense layers (`p = 1`) and convolutions (`p = h * w`).

use super::check_len;

/// `x[n, c, p] += b[c]` in place. `x` has `n * c * p` elements, `b` has `c`.
pub fn bias_add(x: &mut [f32], b: &[f32], n: usize, c: usize, p: usize) {
    check_len("bias_add", "x", x.len(), n * c * p);
    check_len("bias_add", "b", b.len(), c);

    for batch in 0..n {
        for ch in 0..c {
            let start = (batch * c + ch) * p;
            for v in &mut x[start..start + p] {
                *v += b[ch];
            }
        }
    }
}

/// `db[c] = sum over n and p of dy[n, c, p]` (overwritten). Summed in f32, batch-major order.
pub fn bias_backward(dy: &[f32], db: &mut [f32], n: usize, c: usize, p: usize) {
    check_len("bias_backward", "dy", dy.len(), n * c * p);
    check_len("bias_backward", "db", db.len(), c);

    db.fill(0.0);
    for batch in 0..n {
        for (ch, d) in db.iter_mut().enumerate() {
            let start = (batch * c + ch) * p;
            *d += dy[start..start + p].iter().sum::<f32>();
        }
    }
}
