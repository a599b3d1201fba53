//! Cases of the GEMM, dense and convolution launchers: inputs in [-1, 1), the launcher's
//! plan, and the CPU reference whole or, past `case::FULL_REFERENCE_MAX_FLOPS`, sampled in
//! f64 (`bench::sampled`).

use super::case::Builder;
use super::check::{Tolerance, sum_of};
use super::cost::Kernel;
use super::sampled::{
    conv2d_backward_input_entry, conv2d_backward_weight_entry, conv2d_forward_entry, gemm_entry,
};
use crate::Result;
use crate::cpu;
use crate::gpu::ops;
use crate::shapes::{Conv2dGeometry, GemmShape};

/// Builds `kernel`'s case into `b`; `false` when it is not a contraction.
pub(super) fn build(b: &mut Builder<'_>, kernel: &Kernel) -> Result<bool> {
    let tol = sum_of(kernel.terms());
    match *kernel {
        Kernel::Gemm(s) => gemm(b, &s, tol)?,
        Kernel::DenseForward { n, inputs, outputs } => dense_forward(b, n, inputs, outputs, tol)?,
        Kernel::DenseBackward {
            n,
            inputs,
            outputs,
            input_grad,
        } => dense_backward(b, n, inputs, outputs, input_grad)?,
        Kernel::Conv2dForward(g) => conv_forward(b, &g, false, tol)?,
        Kernel::ConvTranspose2dBackwardInput(g) => conv_forward(b, &g, true, tol)?,
        Kernel::Conv2dBackwardInput(g) => conv_backward_input(b, &g, false, tol)?,
        Kernel::ConvTranspose2dForward(g) => conv_backward_input(b, &g, true, tol)?,
        Kernel::Conv2dBackwardWeight(g) => conv_backward_weight(b, &g, false, tol)?,
        Kernel::ConvTranspose2dBackwardWeight(g) => conv_backward_weight(b, &g, true, tol)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn gemm(b: &mut Builder<'_>, s: &GemmShape, tol: Tolerance) -> Result<()> {
    let (a, bm) = (
        b.values(s.m * s.k, -1.0, 1.0),
        b.values(s.k * s.n, -1.0, 1.0),
    );
    let (ga, gb) = (b.input("a", &a), b.input("b", &bm));
    let gc = b.output("c", s.m * s.n);
    ops::gemm(b.ctx, &mut b.plan, s, &ga, &gb, &gc)?;

    if b.full {
        let mut c = vec![0.0; s.m * s.n];
        cpu::gemm(s, &a, &bm, &mut c);
        b.expect("c", &gc, c, tol);
    } else {
        let n = s.n;
        b.expect_sampled("c", &gc, tol, |i| gemm_entry(s, &a, &bm, i / n, i % n));
    }
    Ok(())
}

fn dense_forward(
    b: &mut Builder<'_>,
    n: usize,
    inputs: usize,
    outputs: usize,
    tol: Tolerance,
) -> Result<()> {
    let x = b.values(n * inputs, -1.0, 1.0);
    let w = b.values(inputs * outputs, -1.0, 1.0);
    let bias = b.values(outputs, -1.0, 1.0);
    let (gx, gw, gbias) = (b.input("x", &x), b.input("w", &w), b.input("b", &bias));
    let gy = b.output("y", n * outputs);
    ops::dense_forward(
        b.ctx,
        &mut b.plan,
        n,
        inputs,
        outputs,
        &gx,
        &gw,
        &gbias,
        &gy,
    )?;

    if b.full {
        let mut y = vec![0.0; n * outputs];
        cpu::dense_forward(n, inputs, outputs, &x, &w, &bias, &mut y);
        b.expect("y", &gy, y, tol);
    } else {
        let s = GemmShape {
            m: n,
            n: outputs,
            k: inputs,
            trans_a: false,
            trans_b: false,
        };
        b.expect_sampled("y", &gy, tol, |i| {
            gemm_entry(&s, &x, &w, i / outputs, i % outputs) + bias[i % outputs] as f64
        });
    }
    Ok(())
}

fn dense_backward(
    b: &mut Builder<'_>,
    n: usize,
    inputs: usize,
    outputs: usize,
    input_grad: bool,
) -> Result<()> {
    let x = b.values(n * inputs, -1.0, 1.0);
    let w = b.values(inputs * outputs, -1.0, 1.0);
    let dy = b.values(n * outputs, -1.0, 1.0);
    let (gx, gw, gdy) = (b.input("x", &x), b.input("w", &w), b.input("dy", &dy));
    let gdx = input_grad.then(|| b.output("dx", n * inputs));
    let (gdw, gdb) = (b.output("dw", inputs * outputs), b.output("db", outputs));
    ops::dense_backward(
        b.ctx,
        &mut b.plan,
        n,
        inputs,
        outputs,
        &gx,
        &gw,
        &gdy,
        gdx.as_ref(),
        &gdw,
        &gdb,
    )?;

    // The bias gradient is cheap to check whole at any size.
    let mut db = vec![0.0; outputs];
    cpu::bias_backward(&dy, &mut db, n, outputs, 1);
    b.expect("db", &gdb, db, sum_of(n));

    // dw = x^T dy (n terms), dx = dy w^T (outputs terms).
    let dw_shape = GemmShape {
        m: inputs,
        n: outputs,
        k: n,
        trans_a: true,
        trans_b: false,
    };
    let dx_shape = GemmShape {
        m: n,
        n: inputs,
        k: outputs,
        trans_a: false,
        trans_b: true,
    };
    if b.full {
        let mut dw = vec![0.0; inputs * outputs];
        cpu::gemm(&dw_shape, &x, &dy, &mut dw);
        b.expect("dw", &gdw, dw, sum_of(n));
        if let Some(gdx) = &gdx {
            let mut dx = vec![0.0; n * inputs];
            cpu::gemm(&dx_shape, &dy, &w, &mut dx);
            b.expect("dx", gdx, dx, sum_of(outputs));
        }
    } else {
        b.expect_sampled("dw", &gdw, sum_of(n), |i| {
            gemm_entry(&dw_shape, &x, &dy, i / outputs, i % outputs)
        });
        if let Some(gdx) = &gdx {
            b.expect_sampled("dx", gdx, sum_of(outputs), |i| {
                gemm_entry(&dx_shape, &dy, &w, i / inputs, i % inputs)
            });
        }
    }
    Ok(())
}

/// Small side from large side: conv2d forward (with bias), or the transposed conv's input
/// gradient (without).
fn conv_forward(
    b: &mut Builder<'_>,
    g: &Conv2dGeometry,
    transposed: bool,
    tol: Tolerance,
) -> Result<()> {
    let x = b.values(g.input_len(), -1.0, 1.0);
    let w = b.values(g.weight_len(), -1.0, 1.0);
    let bias = (!transposed).then(|| b.values(g.out_channels, -1.0, 1.0));
    let (gx, gw) = (b.input("x", &x), b.input("w", &w));
    let gbias = bias.as_ref().map(|v| b.input("b", v));
    let gy = b.output("y", g.output_len());
    if transposed {
        ops::conv_transpose2d_backward_input(b.ctx, &mut b.plan, g, &gx, &gw, &gy)?;
    } else {
        ops::conv2d_forward(b.ctx, &mut b.plan, g, &gx, &gw, gbias.as_ref(), &gy)?;
    }

    let plane = g.out_h * g.out_w;
    let bias_at = |i: usize| {
        bias.as_ref()
            .map_or(0.0, |v| v[(i / plane) % g.out_channels])
    };
    if b.full {
        let mut y = vec![0.0; g.output_len()];
        if transposed {
            cpu::conv_transpose2d_backward_input(g, &x, &w, &mut y);
        } else {
            cpu::conv2d_forward(g, &x, &w, bias.as_deref(), &mut y);
        }
        b.expect("y", &gy, y, tol);
    } else {
        b.expect_sampled("y", &gy, tol, |i| {
            conv2d_forward_entry(g, &x, &w, i) + bias_at(i) as f64
        });
    }
    Ok(())
}

/// Large side from small side: conv2d's input gradient (without bias), or the transposed
/// conv's forward (with).
fn conv_backward_input(
    b: &mut Builder<'_>,
    g: &Conv2dGeometry,
    transposed: bool,
    tol: Tolerance,
) -> Result<()> {
    let dy = b.values(g.output_len(), -1.0, 1.0);
    let w = b.values(g.weight_len(), -1.0, 1.0);
    let bias = transposed.then(|| b.values(g.in_channels, -1.0, 1.0));
    let (gdy, gw) = (b.input("dy", &dy), b.input("w", &w));
    let gbias = bias.as_ref().map(|v| b.input("b", v));
    let gdx = b.output("dx", g.input_len());
    if transposed {
        ops::conv_transpose2d_forward(b.ctx, &mut b.plan, g, &gdy, &gw, gbias.as_ref(), &gdx)?;
    } else {
        ops::conv2d_backward_input(b.ctx, &mut b.plan, g, &gdy, &gw, &gdx)?;
    }

    let plane = g.in_h * g.in_w;
    let bias_at = |i: usize| {
        bias.as_ref()
            .map_or(0.0, |v| v[(i / plane) % g.in_channels])
    };
    if b.full {
        let mut dx = vec![0.0; g.input_len()];
        if transposed {
            cpu::conv_transpose2d_forward(g, &dy, &w, bias.as_deref(), &mut dx);
        } else {
            cpu::conv2d_backward_input(g, &dy, &w, &mut dx);
        }
        b.expect("dx", &gdx, dx, tol);
    } else {
        b.expect_sampled("dx", &gdx, tol, |i| {
            conv2d_backward_input_entry(g, &dy, &w, i) + bias_at(i) as f64
        });
    }
    Ok(())
}

/// The weight gradient from both sides: conv2d's (large side as input), or the transposed
/// conv's (its large-side gradient as input, its small-side input as output gradient).
fn conv_backward_weight(
    b: &mut Builder<'_>,
    g: &Conv2dGeometry,
    transposed: bool,
    tol: Tolerance,
) -> Result<()> {
    let large = b.values(g.input_len(), -1.0, 1.0);
    let small = b.values(g.output_len(), -1.0, 1.0);
    let (glarge, gsmall) = (b.input("large", &large), b.input("small", &small));
    let gdw = b.output("dw", g.weight_len());
    if transposed {
        ops::conv_transpose2d_backward_weight(b.ctx, &mut b.plan, g, &gsmall, &glarge, &gdw)?;
    } else {
        ops::conv2d_backward_weight(b.ctx, &mut b.plan, g, &glarge, &gsmall, &gdw)?;
    }

    if b.full {
        let mut dw = vec![0.0; g.weight_len()];
        if transposed {
            cpu::conv_transpose2d_backward_weight(g, &small, &large, &mut dw);
        } else {
            cpu::conv2d_backward_weight(g, &large, &small, &mut dw);
        }
        b.expect("dw", &gdw, dw, tol);
    } else {
        b.expect_sampled("dw", &gdw, tol, |i| {
            conv2d_backward_weight_entry(g, &large, &small, i)
        });
    }
    Ok(())
}
