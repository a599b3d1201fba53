//! Element-wise activations (`shaders/activation.wgsl`); CPU twins in `crate::cpu::activation`.
//! All tensors are flat f32 of the same length; inputs and outputs must not alias.

use super::{elementwise_grid, expect_len, four_wide, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Mirrors `Params` in shaders/activation.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements.
    n: u32,
    /// leaky_relu slope for x <= 0; unused by tanh and sigmoid.
    alpha: f32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// The kernel for `n` elements of `tensors`: the four-wide one (entry `{entry}4`, bindings 4
/// to 6) where [`four_wide`] allows, else the f32 one (bindings 1 to 3). Returns the entry,
/// the grid and the bindings of (input, dy, output).
fn variant(
    ctx: &GpuContext,
    op: &str,
    entry: &str,
    n: usize,
    tensors: &[&GpuTensor],
) -> Result<(String, [u32; 3], [u32; 3])> {
    if four_wide(n, tensors) {
        let grid = elementwise_grid(ctx, op, n / 4)?;
        Ok((format!("{entry}4"), grid, [4, 5, 6]))
    } else {
        Ok((entry.to_string(), elementwise_grid(ctx, op, n)?, [1, 2, 3]))
    }
}

/// `y = f(x)`.
fn forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    entry: &str,
    x: &GpuTensor,
    y: &GpuTensor,
    alpha: f32,
) -> Result<()> {
    let op = format!("activation:{entry}");
    expect_len(&op, "y", y, x.len)?;
    let params = Params {
        n: to_u32(&op, x.len)?,
        alpha,
    };
    let (entry, grid, [x_at, _, y_at]) = variant(ctx, &op, entry, x.len, &[x, y])?;
    let d = ctx.dispatch(
        Shader::Activation,
        &entry,
        &params,
        &[(x_at, x.into()), (y_at, y.into())],
        grid,
    )?;
    plan.push(d);
    Ok(())
}

/// `dx = f'(saved) * dy`, `saved` being x or y depending on the activation.
fn backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    entry: &str,
    saved: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
    alpha: f32,
) -> Result<()> {
    let op = format!("activation:{entry}");
    expect_len(&op, "dy", dy, saved.len)?;
    expect_len(&op, "dx", dx, saved.len)?;
    let params = Params {
        n: to_u32(&op, saved.len)?,
        alpha,
    };
    let tensors = [saved, dy, dx];
    let (entry, grid, [saved_at, dy_at, dx_at]) = variant(ctx, &op, entry, saved.len, &tensors)?;
    let bindings = [
        (saved_at, saved.into()),
        (dy_at, dy.into()),
        (dx_at, dx.into()),
    ];
    plan.push(ctx.dispatch(Shader::Activation, &entry, &params, &bindings, grid)?);
    Ok(())
}

/// `y = x > 0 ? x : alpha * x` (exactly 0 takes the alpha branch, like Keras).
pub fn leaky_relu_forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    y: &GpuTensor,
    alpha: f32,
) -> Result<()> {
    forward(ctx, plan, "leaky_relu_forward", x, y, alpha)
}

/// `dx = x > 0 ? dy : alpha * dy`.
pub fn leaky_relu_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
    alpha: f32,
) -> Result<()> {
    backward(ctx, plan, "leaky_relu_backward", x, dy, dx, alpha)
}

/// `y = tanh(x)`.
pub fn tanh_forward(ctx: &GpuContext, plan: &mut Plan, x: &GpuTensor, y: &GpuTensor) -> Result<()> {
    forward(ctx, plan, "tanh_forward", x, y, 0.0)
}

/// `dx = dy * (1 - y^2)` from the forward output `y`.
pub fn tanh_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    y: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<()> {
    backward(ctx, plan, "tanh_backward", y, dy, dx, 0.0)
}

/// `y = 1 / (1 + exp(-x))`, evaluated without overflow for any x.
pub fn sigmoid_forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<()> {
    forward(ctx, plan, "sigmoid_forward", x, y, 0.0)
}

/// `dx = dy * y * (1 - y)` from the forward output `y`.
pub fn sigmoid_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    y: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<()> {
    backward(ctx, plan, "sigmoid_backward", y, dy, dx, 0.0)
}
