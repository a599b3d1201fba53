//! Swap of the last two axes (`shaders/permute.wgsl`); CPU twin `crate::cpu::permute_last_two`.

use super::pack::EXACT_F32_LIMIT;
use super::{WORKGROUP_SIZE, elementwise_grid, expect_len, four_wide, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Mirrors `Params` in shaders/permute.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Leading (batch) extent.
    n: u32,
    /// x's middle extent, y's last.
    a: u32,
    /// x's last extent, y's middle.
    b: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// `y[s][j][i] = x[s][i][j]`: x `[n, a, b]` to y `[n, b, a]`. E.g. the generator's dense
/// output `[N, 49 * 128]` (NHWC) with `a = 49, b = 128` becomes NCHW `[N, 128, 7, 7]`.
pub fn permute_last_two(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    y: &GpuTensor,
    n: usize,
    a: usize,
    b: usize,
) -> Result<()> {
    let op = "permute:permute_last_two";
    expect_len(op, "x", x, n * a * b)?;
    expect_len(op, "y", y, n * a * b)?;
    let params = Params {
        n: to_u32(op, n)?,
        a: to_u32(op, a)?,
        b: to_u32(op, b)?,
    };
    let len = n * a * b;
    // Eight outputs per invocation and two vec4 stores where the length and y allow them
    // and the indices stay where f32 division is exact.
    if len.is_multiple_of(8) && four_wide(len, &[y]) && len <= EXACT_F32_LIMIT {
        let groups = (len as u64 / 8).div_ceil(u64::from(WORKGROUP_SIZE));
        let grid = ctx.grid(op, groups)?;
        let bindings = [(1, x.into()), (3, y.into())];
        let entry = "permute_last_two8";
        plan.push(ctx.dispatch(Shader::Permute, entry, &params, &bindings, grid)?);
        return Ok(());
    }
    let grid = elementwise_grid(ctx, op, x.len)?;
    let bindings = [(1, x.into()), (2, y.into())];
    plan.push(ctx.dispatch(
        Shader::Permute,
        "permute_last_two",
        &params,
        &bindings,
        grid,
    )?);
    Ok(())
}
