//! Adam, Keras 2 form (`shaders/adam.wgsl`); CPU twin `crate::cpu::adam_update`.

use super::{elementwise_grid, expect_len, four_wide, to_u32};
use crate::cpu::adam::one_minus;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};
use crate::shapes::AdamConfig;

/// Mirrors `Params` in shaders/adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements.
    n: u32,
    /// Which `StepConstants::lr_t` to use.
    slot: u32,
    /// `cpu::adam::one_minus(beta1)`: the same f32 factor as the CPU.
    one_minus_beta1: f32,
    /// `cpu::adam::one_minus(beta2)`.
    one_minus_beta2: f32,
    /// Added to sqrt(v).
    epsilon: f32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// One Adam update of `param` in place: `m += (g - m)(1 - beta1)`, `v += (g² - v)(1 - beta2)`,
/// `param -= lr_t * m / (sqrt(v) + epsilon)` with `lr_t = step.lr_t[slot]` read from the
/// [`crate::shapes::StepConstants`] uniform when the plan runs (see `shapes::adam_slot`).
///
/// `param`, `grad`, `m`, `v`: the same length; whole arenas are fine (gaps stay zero).
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    ctx: &GpuContext,
    plan: &mut Plan,
    cfg: &AdamConfig,
    step: &wgpu::Buffer,
    slot: u32,
    param: &GpuTensor,
    grad: &GpuTensor,
    m: &GpuTensor,
    v: &GpuTensor,
) -> Result<()> {
    let op = "adam:adam_update";
    expect_len(op, "grad", grad, param.len)?;
    expect_len(op, "m", m, param.len)?;
    expect_len(op, "v", v, param.len)?;
    if slot > 3 {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: "an lr_t slot in 0..4".into(),
            got: slot.to_string(),
        });
    }

    let params = Params {
        n: to_u32(op, param.len)?,
        slot,
        one_minus_beta1: one_minus(cfg.beta1),
        one_minus_beta2: one_minus(cfg.beta2),
        epsilon: cfg.epsilon,
    };
    // Four values per load where the length allows it (arenas are padded for it).
    let (entry, items, first_binding) = if four_wide(param.len, &[param, grad, m, v]) {
        ("adam_update4", param.len / 4, 6)
    } else {
        ("adam_update", param.len, 2)
    };
    let bindings = [
        (1, step.into()),
        (first_binding, param.into()),
        (first_binding + 1, grad.into()),
        (first_binding + 2, m.into()),
        (first_binding + 3, v.into()),
    ];
    let grid = elementwise_grid(ctx, op, items)?;
    plan.push(ctx.dispatch(Shader::Adam, entry, &params, &bindings, grid)?);
    Ok(())
}
