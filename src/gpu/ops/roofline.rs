//! The two ceiling kernels of the roofline (`shaders/roofline.wgsl`); CPU twins in
//! `crate::cpu::roofline`. They are no part of the model: the benchmark runs them to learn
//! what the adapter can do at best, in multiply-adds per second and bytes per second.

use super::{WORKGROUP_SIZE, elementwise_grid, expect_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Multiply-adds per chain of `fma_peak` per loop trip, times its 16 chains
/// (`FMAS_PER_ITERATION` in the WGSL header: 4 unrolled steps of 4 vec4 accumulators).
pub const FMAS_PER_ITERATION: u64 = 64;

/// Most loop trips `fma_peak` accepts: its chains count up by 4 per trip from below 1040,
/// and the sum of all 16 must stay below 2^24 to be exact in f32.
pub const MAX_FMA_ITERATIONS: u32 = 1 << 17;

/// Mirrors `Params` in shaders/roofline.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// fma_peak: invocations that run.
    invocations: u32,
    /// fma_peak: loop trips of [`FMAS_PER_ITERATION`] multiply-adds.
    iterations: u32,
    /// fma_peak: each step is `acc = acc * a + b`.
    a: f32,
    b: f32,
    /// copy: 16-byte words.
    words: u32,
}

/// Size of the `Params` mirror in bytes, for the layout test.
pub const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Register-only multiply-adds: invocation `i` of `sums.len` runs 16 chains of
/// `iterations * 4` steps `acc = acc * 1 + 1` from `i % 1024 + j` (chain `j`) and writes
/// their sum to `sums[i]`. `2 * FMAS_PER_ITERATION * iterations * sums.len` FLOP; see
/// `cpu::roofline::fma_peak` for the value.
pub fn fma_peak(
    ctx: &GpuContext,
    plan: &mut Plan,
    iterations: u32,
    sums: &GpuTensor,
) -> Result<()> {
    let op = "roofline:fma_peak";
    if iterations > MAX_FMA_ITERATIONS {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: format!("at most {MAX_FMA_ITERATIONS} iterations"),
            got: iterations.to_string(),
        });
    }
    let params = Params {
        invocations: to_u32(op, sums.len)?,
        iterations,
        a: 1.0,
        b: 1.0,
        words: 0,
    };
    let grid = ctx.grid(op, (sums.len as u64).div_ceil(WORKGROUP_SIZE as u64))?;
    let bindings = [(3, sums.into())];
    plan.push(ctx.dispatch(Shader::Roofline, "fma_peak", &params, &bindings, grid)?);
    Ok(())
}

/// `dst = src`, streamed in 16-byte words: `8 * src.len` bytes of memory traffic. Both
/// tensors hold the same number of elements, a multiple of 4, in separate buffers.
pub fn copy(ctx: &GpuContext, plan: &mut Plan, src: &GpuTensor, dst: &GpuTensor) -> Result<()> {
    let op = "roofline:copy";
    expect_len(op, "dst", dst, src.len)?;
    if !src.len.is_multiple_of(4) {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: "a multiple of 4 elements (whole 16-byte words)".into(),
            got: format!("{} elements", src.len),
        });
    }
    super::gemm::expect_separate(op, dst, &[src])?;
    let words = src.len / 4;
    let params = Params {
        words: to_u32(op, words)?,
        ..Params::default()
    };
    let grid = elementwise_grid(ctx, op, words)?;
    let bindings = [(1, src.into()), (2, dst.into())];
    plan.push(ctx.dispatch(Shader::Roofline, "copy", &params, &bindings, grid)?);
    Ok(())
}
