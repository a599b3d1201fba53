//! Random inputs of a training step (real batch, latent noise), drawn from the counter-based
//! generator so the GPU draws the same values.

use crate::rng::{normal_from_bits, random_bits, uniform_index};

/// Gathers a batch of images scaled to [-1, 1].
///
/// `images` holds `count = images.len() / image_len` images of `image_len` bytes each;
/// `out` holds `batch = out.len() / image_len` images as f32. Sample `s` is image
/// `uniform_index(random_bits(seed, step, stream, s)[0], count)` (with replacement), and each
/// pixel becomes `px / 127.5 - 1`.
pub fn gather_batch(
    images: &[u8],
    image_len: usize,
    seed: u64,
    step: u32,
    stream: u32,
    out: &mut [f32],
) {
    assert!(
        image_len > 0,
        "cpu::gather_batch: image_len must be positive"
    );
    let count = images.len() / image_len;
    assert!(count > 0, "cpu::gather_batch: no images to draw from");
    assert!(
        out.len().is_multiple_of(image_len),
        "cpu::gather_batch: `out` has {} elements, not a multiple of image_len {image_len}",
        out.len()
    );

    for (s, sample) in out.chunks_exact_mut(image_len).enumerate() {
        let bits = random_bits(seed, step, stream, s as u32)[0];
        let index = uniform_index(bits, count as u32) as usize;
        let pixels = &images[index * image_len..(index + 1) * image_len];
        for (o, &px) in sample.iter_mut().zip(pixels) {
            *o = px as f32 / 127.5 - 1.0;
        }
    }
}

/// Fills `out` (any shape) with standard normal values: element `i` is
/// `normal_from_bits(b[0], b[1])` with `b = random_bits(seed, step, stream, i)`.
pub fn normal_noise(seed: u64, step: u32, stream: u32, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let b = random_bits(seed, step, stream, i as u32);
        *o = normal_from_bits(b[0], b[1]);
    }
}
