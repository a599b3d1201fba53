//! Sigmoid + binary cross-entropy from logits (`shaders/loss.wgsl`); CPU twin
//! `crate::cpu::sigmoid_bce`.

use super::{expect_len, to_u32};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};

/// Mirrors `Params` in shaders/loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Samples.
    n: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Per-sample loss `max(z, 0) - z * t + ln(1 + exp(-|z|))` into `loss_per_sample`, gradient
/// of the mean `(sigmoid(z) - t) / n` into `dlogits`, and `[mean loss, accuracy]` into
/// `result` (2 elements). `logits`, `targets`, `loss_per_sample`, `dlogits`: `[n]`.
///
/// One workgroup does it all, so the mean is reduced in a fixed order without a second
/// dispatch; n is a batch size, small enough for that to be the fast choice too.
pub fn sigmoid_bce(
    ctx: &GpuContext,
    plan: &mut Plan,
    logits: &GpuTensor,
    targets: &GpuTensor,
    loss_per_sample: &GpuTensor,
    dlogits: &GpuTensor,
    result: &GpuTensor,
) -> Result<()> {
    let op = "loss:sigmoid_bce";
    let n = logits.len;
    expect_len(op, "targets", targets, n)?;
    expect_len(op, "loss_per_sample", loss_per_sample, n)?;
    expect_len(op, "dlogits", dlogits, n)?;
    expect_len(op, "result", result, 2)?;

    let params = Params { n: to_u32(op, n)? };
    let bindings = [
        (1, logits.into()),
        (2, targets.into()),
        (3, loss_per_sample.into()),
        (4, dlogits.into()),
        (5, result.into()),
    ];
    plan.push(ctx.dispatch(Shader::Loss, "sigmoid_bce", &params, &bindings, [1, 1, 1])?);
    Ok(())
}
