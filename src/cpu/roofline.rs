//! The ceiling kernels' results, so the benchmark can check them like any other kernel
//! (`shaders/roofline.wgsl`, launchers in `gpu::ops::roofline`).

use super::check_len;

/// Multiply-add chains per invocation of the GPU kernel.
const CHAINS: usize = 16;

/// Steps of each chain per loop trip of the GPU kernel (its four-fold unroll).
const STEPS_PER_ITERATION: u32 = 4;

/// `sums[i]` = the sum over 16 chains `j` of `i % 1024 + j` after `4 * iterations` steps
/// `acc = acc * 1 + 1`, i.e. of `i % 1024 + j + 4 * iterations`. Every partial value is an
/// integer below 2^24, so the f32 result is exact and the same in any order of evaluation.
pub fn fma_peak(iterations: u32, sums: &mut [f32]) {
    let steps = (iterations * STEPS_PER_ITERATION) as f32;
    for (i, s) in sums.iter_mut().enumerate() {
        let start = (i % 1024) as f32;
        *s = (0..CHAINS).map(|j| start + j as f32 + steps).sum();
    }
}

/// `dst = src`.
pub fn copy(src: &[f32], dst: &mut [f32]) {
    check_len("copy", "dst", dst.len(), src.len());
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fma_peak_counts_four_steps_per_iteration_on_sixteen_chains() {
        let mut sums = [0.0; 1026];
        fma_peak(1, &mut sums);
        // Chains start at 0..16 and each adds 4: 120 + 64.
        assert_eq!(sums[0], 184.0);
        assert_eq!(sums[1], 184.0 + 16.0);
        // The start wraps every 1024 invocations.
        assert_eq!(sums[1025], sums[1]);
    }
}
