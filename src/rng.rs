//! Counter-based random numbers shared bit for bit by the CPU reference and the GPU.
//!
//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
//! Every random value is a pure function of (seed, step, stream, element): the key is the
//! 64-bit seed and the counter is `[element, step, stream, 0]`. Nothing is carried from one
//! draw to the next, so a GPU invocation and a CPU loop produce identical bits in any
//! order, and no counter wraps before 2^32 steps or 2^32 elements per stream.
//! `shaders/philox.wgsl` is the same function in WGSL.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let product = a as u64 * b as u64;
    ((product >> 32) as u32, product as u32)
}

/// One Philox4x32 block: ten rounds of the bijection keyed by `key`.
pub fn philox4x32(key: [u32; 2], counter: [u32; 4]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four random words of one element of one stream at one step.
pub fn random_bits(seed: u64, step: u32, stream: u32, element: u32) -> [u32; 4] {
    philox4x32(
        [seed as u32, (seed >> 32) as u32],
        [element, step, stream, 0],
    )
}

/// A uniform index in `0..n` from one random word.
///
/// Plain modulo: its bias is below n / 2^32 (1.4e-5 for MNIST's 60 000 images), far below
/// anything a training run can notice, and it is exact and cheap in WGSL, which has no
/// 64-bit multiply.
pub fn uniform_index(bits: u32, n: u32) -> u32 {
    bits % n
}

/// A standard normal value from two random words (Box-Muller, cosine branch), in f32.
///
/// `u1` lies in (0, 1] so the logarithm is finite. The GPU's `log`/`cos` differ from Rust's
/// by a few ulps, so the two sides agree to about 1e-6, not bit for bit.
pub fn normal_from_bits(b0: u32, b1: u32) -> f32 {
    let u1 = ((b0 >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
    let u2 = (b1 >> 8) as f32 * (1.0 / 16_777_216.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The 24-bit threshold under which an element is dropped: keep when `bits >> 8 >= threshold`,
/// so each element is kept with probability `1 - rate` up to 2^-24.
pub fn dropout_threshold(rate: f64) -> u32 {
    (rate.clamp(0.0, 1.0) * 16_777_216.0).round() as u32
}

/// Inverted-dropout scale: the f32 value of 1 / (1 - rate), as TensorFlow multiplies by it.
pub fn dropout_scale(rate: f64) -> f32 {
    if rate >= 1.0 {
        0.0
    } else {
        (1.0 / (1.0 - rate)) as f32
    }
}

/// Stream numbers: one per independent use of randomness within a step.
pub mod streams {
    /// Indices of the real images in a training batch.
    pub const BATCH_INDICES: u32 = 1;
    /// Latent vectors for the fakes that D is trained on.
    pub const NOISE_D: u32 = 2;
    /// Latent vectors for the generator update.
    pub const NOISE_G: u32 = 3;
    /// Dropout masks of D's layers: `base + layer index`, one base per D forward pass.
    pub const DROPOUT_D_REAL: u32 = 16;
    pub const DROPOUT_D_FAKE: u32 = 32;
    pub const DROPOUT_G_STEP: u32 = 48;
    /// The fixed latent vectors of the sample grid (drawn at step 0).
    pub const SAMPLE_LATENT: u32 = 64;
    /// The points of `gan-gpu interpolate`'s latent walk (drawn at step 0).
    pub const INTERPOLATION: u32 = 65;
    /// Parameter initialisation: `base + parameter index` (drawn at step 0).
    pub const INIT: u32 = 128;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors published with the Random123 library (kat_vectors).
    #[test]
    fn philox_matches_published_known_answers() {
        assert_eq!(
            philox4x32([0, 0], [0; 4]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32([0xffffffff; 2], [0xffffffff; 4]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32(
                [0xa4093822, 0x299f31d0],
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn normal_values_have_unit_moments() {
        let n = 200_000;
        let xs: Vec<f64> = (0..n)
            .map(|i| {
                let b = random_bits(7, 0, streams::NOISE_D, i);
                normal_from_bits(b[0], b[1]) as f64
            })
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1/sqrt(n) = 0.0022; of the variance about 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
