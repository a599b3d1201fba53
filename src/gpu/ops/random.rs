//! Random inputs of a training step (`shaders/random.wgsl`); CPU twins in `crate::cpu::random`.
//! Seed and step come from the [`crate::shapes::StepConstants`] uniform when the plan runs,
//! so one recorded plan draws new numbers every step.

use super::{WORKGROUP_SIZE, elementwise_grid, four_wide, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Mirrors `Params` in shaders/random.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Output elements.
    n: u32,
    /// RNG stream.
    stream: u32,
    /// Bytes per image (gather_batch only).
    image_len: u32,
    /// Images to draw from (gather_batch only).
    count: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Draw `out.len / image_len` images (with replacement) from `images` and scale them to
/// [-1, 1]: sample `s` is image `random_bits(seed, step, stream, s)[0] % count`, each pixel
/// `px / 127.5 - 1`.
///
/// `images` holds at least `count * image_len` bytes packed four per u32, little-endian (the first
/// byte in the low bits), as [`GpuContext::upload_u32`] of the dataset; `out`: `[batch,
/// image_len]` f32. The image choice is bit-identical to `cpu::gather_batch`.
#[allow(clippy::too_many_arguments)]
pub fn gather_batch(
    ctx: &GpuContext,
    plan: &mut Plan,
    step: &wgpu::Buffer,
    images: &GpuTensor,
    image_len: usize,
    count: usize,
    stream: u32,
    out: &GpuTensor,
) -> Result<()> {
    let op = "random:gather_batch";
    if image_len == 0 || count == 0 || !out.len.is_multiple_of(image_len) {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: format!(
                "at least one image of at least one byte, and out a whole number of \
                 images of {image_len} bytes"
            ),
            got: format!("{count} images, out of {} elements", out.len),
        });
    }
    let bytes = count * image_len;
    if images.len < bytes.div_ceil(4) {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: format!("images of at least {} u32 words", bytes.div_ceil(4)),
            got: format!("{} words", images.len),
        });
    }

    let params = Params {
        n: to_u32(op, out.len)?,
        stream,
        image_len: to_u32(op, image_len)?,
        count: to_u32(op, count)?,
    };
    to_u32(op, bytes)?;
    // Images of whole words: a word's four pixels at a time, one draw per GATHER_WORDS words.
    let (entry, grid, out_binding) = if four_wide(image_len, &[out]) {
        let chunks = (image_len / 4).div_ceil(GATHER_WORDS);
        let invocations = (out.len / image_len) as u64 * chunks as u64;
        let grid = ctx.grid(op, invocations.div_ceil(u64::from(WORKGROUP_SIZE)))?;
        ("gather_batch4", grid, 4)
    } else {
        ("gather_batch", elementwise_grid(ctx, op, out.len)?, 3)
    };
    let bindings = [
        (1, step.into()),
        (2, images.into()),
        (out_binding, out.into()),
    ];
    plan.push(ctx.dispatch(Shader::Random, entry, &params, &bindings, grid)?);
    Ok(())
}

/// Words of an image each invocation of `gather_batch4` takes (`GATHER_WORDS` in the WGSL).
const GATHER_WORDS: usize = 4;

/// Fill `out` (any shape) with standard normal values: element `i` is
/// `normal_from_bits(b[0], b[1])` with `b = random_bits(seed, step, stream, i)`.
pub fn normal_noise(
    ctx: &GpuContext,
    plan: &mut Plan,
    step: &wgpu::Buffer,
    stream: u32,
    out: &GpuTensor,
) -> Result<()> {
    let op = "random:normal_noise";
    let params = Params {
        n: to_u32(op, out.len)?,
        stream,
        image_len: 0,
        count: 0,
    };
    let grid = elementwise_grid(ctx, op, out.len)?;
    let bindings = [(1, step.into()), (3, out.into())];
    plan.push(ctx.dispatch(Shader::Random, "normal_noise", &params, &bindings, grid)?);
    Ok(())
}
