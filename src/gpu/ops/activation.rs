//! Element-wise activations (`shaders/activation.wgsl`); CPU twins in `crate::cpu::activation`.
//! All tensors are flat f32 of the same length; inputs and outputs must not alias.

use super::{elementwise_grid, expect_len, to_u32};
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

/// `y = f(x)` (binding 1 -> 3).
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
    let grid = elementwise_grid(ctx, &op, x.len)?;
    let d = ctx.dispatch(
        Shader::Activation,
        entry,
        &params,
        &[(1, x.into()), (3, y.into())],
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
    let grid = elementwise_grid(ctx, &op, saved.len)?;
    let bindings = [(1, saved.into()), (2, dy.into()), (3, dx.into())];
    plan.push(ctx.dispatch(Shader::Activation, entry, &params, &bindings, grid)?);
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
