//! Per-channel bias (`shaders/bias.wgsl`); CPU twins in `crate::cpu::bias`.

use super::{WORKGROUP_SIZE, elementwise_grid, expect_len, four_wide, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Mirrors `Params` in shaders/bias.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Batch.
    n: u32,
    /// Channels.
    c: u32,
    /// Values per channel and sample (`h * w`, or 1 for a dense layer).
    p: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

fn params(op: &str, n: usize, c: usize, p: usize) -> Result<Params> {
    Ok(Params {
        n: to_u32(op, n)?,
        c: to_u32(op, c)?,
        p: to_u32(op, p)?,
    })
}

/// `x[n, c, p] += b[c]`, in place. `x`: `n * c * p` elements, `b`: `c`.
pub fn bias_add(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    b: &GpuTensor,
    n: usize,
    c: usize,
    p: usize,
) -> Result<()> {
    let op = "bias:add";
    expect_len(op, "x", x, n * c * p)?;
    expect_len(op, "b", b, c)?;
    let grid = elementwise_grid(ctx, op, x.len)?;
    let bindings = [(1, b.into()), (2, x.into())];
    plan.push(ctx.dispatch(Shader::Bias, "add", &params(op, n, c, p)?, &bindings, grid)?);
    Ok(())
}

/// `db[c] = sum over n and p of dy[n, c, p]` (overwritten), summed in a fixed order.
pub fn bias_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    dy: &GpuTensor,
    db: &GpuTensor,
    n: usize,
    c: usize,
    p: usize,
) -> Result<()> {
    let op = "bias:backward";
    expect_len(op, "dy", dy, n * c * p)?;
    expect_len(op, "db", db, c)?;
    to_u32(op, dy.len)?;
    let params = params(op, n, c, p)?;

    // Few values per channel (under WORKGROUP_SIZE): one invocation per channel, no
    // barriers. Many: a workgroup per channel so the long sum is spread over
    // REDUCTION_WORKGROUP_SIZE invocations, four values per load where every row of p values
    // starts on a 16-byte boundary, or, for channels in fours, where every group's row of
    // 4 p values does (then a workgroup per group of four channels).
    let (entry, grid, dy_binding) = if n * p < WORKGROUP_SIZE as usize {
        let grid = ctx.grid(op, (c as u64).div_ceil(WORKGROUP_SIZE as u64))?;
        ("backward_serial", grid, 3)
    } else if four_wide(p, &[dy]) {
        ("backward_tree4", ctx.grid(op, c as u64)?, 5)
    } else if c.is_multiple_of(4) && four_wide(4 * p, &[dy]) {
        ("backward_tree_grouped", ctx.grid(op, (c / 4) as u64)?, 5)
    } else {
        ("backward_tree", ctx.grid(op, c as u64)?, 3)
    };
    let bindings = [(dy_binding, dy.into()), (4, db.into())];
    plan.push(ctx.dispatch(Shader::Bias, entry, &params, &bindings, grid)?);
    Ok(())
}
