//! Inverted dropout with a counter-based mask, identical on the CPU and the GPU.

use super::check_len;
use crate::rng::{dropout_threshold, random_bits};

/// Fills `mask` (any shape, `len` elements) with 1.0 (keep) or 0.0 (drop). Element `i` is kept
/// iff the top 24 bits of word `i % 4` of `random_bits(seed, step, stream, i / 4)` are at
/// least `dropout_threshold(rate)`, i.e. with probability `1 - rate`: one Philox block gives
/// four elements their words.
pub fn dropout_mask(seed: u64, step: u32, stream: u32, rate: f64, mask: &mut [f32]) {
    let threshold = dropout_threshold(rate);
    for (block, chunk) in mask.chunks_mut(4).enumerate() {
        let bits = random_bits(seed, step, stream, block as u32);
        for (m, word) in chunk.iter_mut().zip(bits) {
            *m = if word >> 8 >= threshold { 1.0 } else { 0.0 };
        }
    }
}

/// `y = x * mask * scale` with `scale = rng::dropout_scale(rate)`; the backward pass is the
/// same call on the gradient. All slices the same length.
pub fn dropout_apply(x: &[f32], mask: &[f32], scale: f32, y: &mut [f32]) {
    check_len("dropout_apply", "mask", mask.len(), x.len());
    check_len("dropout_apply", "y", y.len(), x.len());
    for ((y, &x), &m) in y.iter_mut().zip(x).zip(mask) {
        *y = x * m * scale;
    }
}
