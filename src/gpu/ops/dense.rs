//! Fully connected layer `y = x · W + b` (Keras' `Dense` layout) as GEMMs on the GPU; CPU
//! twin in `crate::cpu::dense`.

use super::bias::bias_backward;
use super::expect_len;
use super::gemm::{gemm, gemm_bias};
use crate::error::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan};
use crate::shapes::GemmShape;

/// Forward: `x [n, inputs]`, `w [inputs, outputs]`, `b [outputs]` -> `y [n, outputs]`
/// (overwritten). One dispatch: the bias is added in the GEMM's store.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    n: usize,
    inputs: usize,
    outputs: usize,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
) -> Result<()> {
    let shape = GemmShape {
        m: n,
        n: outputs,
        k: inputs,
        trans_a: false,
        trans_b: false,
    };
    gemm_bias(ctx, plan, &shape, x, w, Some(b), y)
}

/// Backward of [`dense_forward`] given `dy [n, outputs]`, all outputs overwritten:
/// `dx = dy · Wᵀ [n, inputs]` (skipped when `None`), `dw = xᵀ · dy [inputs, outputs]`,
/// `db = sum over n of dy [outputs]` (a fixed-order reduction).
#[allow(clippy::too_many_arguments)]
pub fn dense_backward(
    ctx: &GpuContext,
    plan: &mut Plan,
    n: usize,
    inputs: usize,
    outputs: usize,
    x: &GpuTensor,
    w: &GpuTensor,
    dy: &GpuTensor,
    dx: Option<&GpuTensor>,
    dw: &GpuTensor,
    db: &GpuTensor,
) -> Result<()> {
    let op = "dense:backward";
    expect_len(op, "x", x, n * inputs)?;
    expect_len(op, "w", w, inputs * outputs)?;
    expect_len(op, "dy", dy, n * outputs)?;

    // dx: W is stored [inputs, outputs], the [n, k] layout of this product's B.
    if let Some(dx) = dx {
        let shape = GemmShape {
            m: n,
            n: inputs,
            k: outputs,
            trans_a: false,
            trans_b: true,
        };
        gemm(ctx, plan, &shape, dy, w, dx)?;
    }

    // dw: x is stored [n, inputs], the [k, m] layout of this product's A.
    let shape = GemmShape {
        m: inputs,
        n: outputs,
        k: n,
        trans_a: true,
        trans_b: false,
    };
    gemm(ctx, plan, &shape, x, dy, dw)?;
    bias_backward(ctx, plan, dy, db, n, outputs, 1)
}
