//! The GEMM, dense, conv2d and conv_transpose2d kernels against their CPU twins: all four
//! transpose combinations, 1 x k and k x 1 products, the model's own layer shapes at batch 2,
//! batch 1, one channel, odd and non-square sizes, a non-square kernel and stride, 'valid'
//! padding, a stride larger than the kernel, and sizes that do not divide the tiles.
//!
//! Needs an adapter: without one the tests skip, unless GAN_GPU_REQUIRE_ADAPTER=1.

mod common;

use common::golden::assert_close;
use common::gpu::context;
use gan_gpu::gpu::ops::gemm_uniform::GEMM_UNIFORM_PARAMS_SIZE;
use gan_gpu::gpu::ops::{self, CONV2D_PARAMS_SIZE, GEMM_PARAMS_SIZE};
use gan_gpu::gpu::{GpuContext, GpuTensor, Plan, Shader};
use gan_gpu::shapes::{Conv2dGeometry, GemmShape};
use gan_gpu::{Error, cpu, rng};

// ---- tolerances: |gpu - cpu| <= atol + rtol * |cpu| -----------------------------------------

/// Every output here is a sum of K products of inputs in [-1, 1]. The CPU adds the terms in
/// sequence, the GPU in another order (per tile, per chunk, maybe fused), so each result can
/// differ by the rounding of its partial sums: about sqrt(K) additions' worth of ulps of
/// values that grow like sqrt(K) / 3, i.e. around 1e-8 * K. A relative bound alone fails
/// for results that cancel to near zero, so the absolute part grows with K; both keep a
/// margin of 50x or more, while a wrong tap, padding side or layout gives errors near 0.1.
const RTOL: f32 = 1e-4;
/// Absolute tolerance per summed term (see [`RTOL`]).
const ATOL_PER_TERM: f32 = 1e-6;

fn check(what: &str, got: &[f32], want: &[f32], terms: usize) {
    assert_close(what, got, want, RTOL, ATOL_PER_TERM * terms.max(1) as f32);
}

// ---- helpers ----------------------------------------------------------------------------

/// Deterministic values in [-1, 1), drawn from the crate's Philox.
fn values(tag: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let bits = rng::random_bits(0x6e6d_0001, tag, 7, i as u32)[0];
            (bits >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect()
}

/// An output tensor full of NaN, so an element the kernel forgets to write fails the check.
fn output(ctx: &GpuContext, label: &str, len: usize) -> GpuTensor {
    ctx.upload(label, &vec![f32::NAN; len])
}

fn run(ctx: &GpuContext, plan: &Plan) {
    ctx.run(&[plan])
        .unwrap_or_else(|e| panic!("running the plan failed: {e}"));
}

fn read(ctx: &GpuContext, t: &GpuTensor) -> Vec<f32> {
    ctx.read(t)
        .unwrap_or_else(|e| panic!("reading back failed: {e}"))
}

// ---- gemm and dense ---------------------------------------------------------------------

/// (m, n, k): odd sizes, 1 x k and k x 1 results, k = 1, tiles' edges (8 rows, 256
/// columns) crossed by one, products of few tiles over a long k, whose sum is split into
/// slices (one tile, a ragged last slice; three tiles), and one-column products with k a
/// multiple of 4 (the vector kernel, whole and split).
const GEMM_SHAPES: [(usize, usize, usize); 11] = [
    (37, 29, 53),
    (1, 300, 17),
    (300, 1, 17),
    (9, 257, 1),
    (17, 513, 40),
    (1, 1, 100),
    (64, 64, 64),
    (3, 5, 1000),
    (2, 700, 1025),
    (300, 1, 64),
    (5, 1, 4100),
];

#[test]
fn gemm_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let shape = GemmShape {
                m,
                n,
                k,
                trans_a,
                trans_b,
            };
            let a = values(tag as u32 * 2, m * k);
            let b = values(tag as u32 * 2 + 1, k * n);
            let mut want = vec![0.0; m * n];
            cpu::gemm(&shape, &a, &b, &mut want);

            let (ga, gb) = (ctx.upload("a", &a), ctx.upload("b", &b));
            let gc = output(&ctx, "c", m * n);
            let mut plan = Plan::new();
            ops::gemm(&ctx, &mut plan, &shape, &ga, &gb, &gc).unwrap();
            run(&ctx, &plan);
            check(&format!("gemm {shape:?}"), &read(&ctx, &gc), &want, k);
        }
    }
}

/// (n, inputs, outputs): small odd shapes, and the model's dense layers at batch 2 (the
/// generator's 100 -> 7 * 7 * 128 and the discriminator's 7 * 7 * 128 -> 1 head).
const DENSE_SHAPES: [(usize, usize, usize); 5] = [
    (3, 7, 5),
    (1, 100, 16),
    (4, 12, 1),
    (2, 100, 6272),
    (2, 6272, 1),
];

#[test]
fn dense_forward_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, &(n, inputs, outputs)) in DENSE_SHAPES.iter().enumerate() {
        let tag = 10 + 3 * tag as u32;
        let (x, w, b) = (
            values(tag, n * inputs),
            values(tag + 1, inputs * outputs),
            values(tag + 2, outputs),
        );
        let mut want = vec![0.0; n * outputs];
        cpu::dense_forward(n, inputs, outputs, &x, &w, &b, &mut want);

        let (gx, gw, gb) = (
            ctx.upload("x", &x),
            ctx.upload("w", &w),
            ctx.upload("b", &b),
        );
        let gy = output(&ctx, "y", n * outputs);
        let mut plan = Plan::new();
        ops::dense_forward(&ctx, &mut plan, n, inputs, outputs, &gx, &gw, &gb, &gy).unwrap();
        run(&ctx, &plan);
        check(
            &format!("dense_forward {n}x{inputs}->{outputs}"),
            &read(&ctx, &gy),
            &want,
            inputs,
        );
    }
}

#[test]
fn dense_backward_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, &(n, inputs, outputs)) in DENSE_SHAPES.iter().enumerate() {
        let tag = 40 + 3 * tag as u32;
        let (x, w, dy) = (
            values(tag, n * inputs),
            values(tag + 1, inputs * outputs),
            values(tag + 2, n * outputs),
        );
        let (mut dx, mut dw, mut db) = (
            vec![0.0; n * inputs],
            vec![0.0; inputs * outputs],
            vec![0.0; outputs],
        );
        cpu::dense_backward(
            n,
            inputs,
            outputs,
            &x,
            &w,
            &dy,
            Some(&mut dx),
            &mut dw,
            &mut db,
        );

        // With dx, and without (the first layer): dw and db must not depend on it.
        for with_dx in [true, false] {
            let (gx, gw, gdy) = (
                ctx.upload("x", &x),
                ctx.upload("w", &w),
                ctx.upload("dy", &dy),
            );
            let gdx = output(&ctx, "dx", n * inputs);
            let gdw = output(&ctx, "dw", inputs * outputs);
            let gdb = output(&ctx, "db", outputs);
            let mut plan = Plan::new();
            let dx_arg = with_dx.then_some(&gdx);
            ops::dense_backward(
                &ctx, &mut plan, n, inputs, outputs, &gx, &gw, &gdy, dx_arg, &gdw, &gdb,
            )
            .unwrap();
            run(&ctx, &plan);

            let what = format!("dense_backward {n}x{inputs}->{outputs} (dx: {with_dx})");
            if with_dx {
                check(&format!("{what} dx"), &read(&ctx, &gdx), &dx, outputs);
            }
            check(&format!("{what} dw"), &read(&ctx, &gdw), &dw, n);
            check(&format!("{what} db"), &read(&ctx, &gdb), &db, n);
        }
    }
}

// ---- conv2d -----------------------------------------------------------------------------

/// Ordinary convolutions: the discriminator's two layers at batch 2, batch 1 with one
/// channel, odd and non-square inputs, a 3x2 kernel with a 2x1 stride, 'valid' padding, a
/// stride larger than the kernel (input pixels no window reads), channel and pixel counts
/// just past the tiles (9 > 8 and 17 > 16 channels, 3 * 11 * 13 > 256 pixels), and one
/// output or one input channel at stride 1.
fn conv_geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::conv_same(2, 1, (28, 28), 64, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 64, (14, 14), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(1, 1, (7, 9), 1, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(2, 3, (7, 9), 5, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 3, (5, 6), 4, (3, 2), (2, 1)),
        Conv2dGeometry::conv_valid(2, 2, (9, 8), 3, (3, 3), (2, 2)),
        Conv2dGeometry::conv_valid(1, 3, (6, 5), 2, (3, 3), (1, 1)),
        Conv2dGeometry::conv_valid(2, 2, (10, 9), 3, (2, 2), (3, 3)),
        Conv2dGeometry::conv_same(3, 5, (11, 13), 9, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(2, 19, (6, 5), 17, (3, 3), (2, 2)),
        // One output channel at stride 1, rows of whole vec4s: the single-channel kernel,
        // with every shift modulo 4 (3x5 'same') and a row of 3 vec4s, and 'same' 3x3 over
        // 19 rows (blocks of 10 and 9 rows on a CPU driver); five kernel rows are more than
        // it takes.
        Conv2dGeometry::conv_same(2, 3, (8, 12), 1, (3, 5), (1, 1)),
        Conv2dGeometry::conv_same(2, 6, (19, 12), 1, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(2, 3, (8, 12), 1, (5, 5), (1, 1)),
        // One input channel at stride 1, rows of whole vec4s: the weight gradient's
        // single-channel kernel, with a 3x3 kernel, a 3x2 one (no left padding, two columns
        // of taps) and a 2x3 one (two rows of taps).
        Conv2dGeometry::conv_same(12, 1, (16, 16), 64, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(3, 1, (8, 12), 5, (3, 2), (1, 1)),
        Conv2dGeometry::conv_same(2, 1, (6, 8), 3, (2, 3), (1, 1)),
        // ... and with output channels in fours, four per invocation, 3x2 (no left padding).
        Conv2dGeometry::conv_same(2, 1, (8, 12), 8, (3, 2), (1, 1)),
        // One input channel into channels in fours over planes of whole vec4s: the
        // one-input kernel, with a 2x3 kernel, 'valid' with unequal strides past the kernel,
        // a 1x1 kernel, and 96 channels of 28 x 28 (its channels in three runs).
        Conv2dGeometry::conv_same(2, 1, (6, 8), 8, (2, 3), (1, 1)),
        Conv2dGeometry::conv_valid(3, 1, (9, 10), 12, (3, 3), (2, 3)),
        Conv2dGeometry::conv_same(1, 1, (5, 4), 4, (1, 1), (1, 1)),
        Conv2dGeometry::conv_same(2, 1, (28, 28), 96, (3, 3), (1, 1)),
    ]
}

/// Transposed convolutions (by the geometry of the convolution they are the gradient of):
/// the generator's three layers at batch 2, batch 1 with one channel, odd and non-square
/// inputs, a 3x2 kernel with a 2x1 stride, 'valid', and sizes past the tiles.
fn transpose_geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::transpose_same(2, 128, (7, 7), 128, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_same(2, 128, (14, 14), 64, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_same(2, 64, (28, 28), 1, (3, 3), (1, 1)),
        // The generator's last layer at the model's batch: the weight gradient's samples
        // times channels span several workgroups.
        Conv2dGeometry::transpose_same(32, 64, (28, 28), 1, (3, 3), (1, 1)),
        Conv2dGeometry::transpose_same(1, 1, (5, 5), 1, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_same(2, 3, (3, 5), 4, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_same(2, 3, (4, 5), 2, (3, 2), (2, 1)),
        Conv2dGeometry::transpose_valid(2, 3, (4, 4), 2, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_valid(1, 2, (5, 5), 3, (3, 3), (1, 1)),
        Conv2dGeometry::transpose_same(3, 9, (6, 7), 11, (3, 3), (2, 2)),
        Conv2dGeometry::transpose_same(2, 17, (3, 4), 19, (3, 3), (2, 2)),
        // Into one channel at stride 1 with a 3x2 kernel ('same' pads unevenly), rows of
        // 2 vec4s.
        Conv2dGeometry::transpose_same(1, 5, (6, 8), 1, (3, 2), (1, 1)),
    ]
}

fn describe(g: &Conv2dGeometry) -> String {
    format!(
        "batch {} in {}x{}x{} out {}x{}x{} kernel {}x{} stride {}x{} pad {},{}",
        g.batch,
        g.in_channels,
        g.in_h,
        g.in_w,
        g.out_channels,
        g.out_h,
        g.out_w,
        g.kernel_h,
        g.kernel_w,
        g.stride_h,
        g.stride_w,
        g.pad_top,
        g.pad_left
    )
}

/// Terms of one weight-gradient sum.
fn pixels(g: &Conv2dGeometry) -> usize {
    g.batch * g.out_h * g.out_w
}

/// Terms of one forward sum (a large-side gradient sums over fewer).
fn taps(g: &Conv2dGeometry) -> usize {
    g.in_channels * g.kernel_h * g.kernel_w
}

fn reach(g: &Conv2dGeometry) -> usize {
    g.out_channels * g.kernel_h * g.kernel_w
}

#[test]
fn conv2d_forward_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in conv_geometries().iter().enumerate() {
        let tag = 100 + 3 * tag as u32;
        let (x, w, b) = (
            values(tag, g.input_len()),
            values(tag + 1, g.weight_len()),
            values(tag + 2, g.out_channels),
        );
        // Alternate bias and no bias.
        let bias = tag.is_multiple_of(2).then_some(&b[..]);
        let mut want = vec![0.0; g.output_len()];
        cpu::conv2d_forward(g, &x, &w, bias, &mut want);

        let (gx, gw, gb) = (
            ctx.upload("x", &x),
            ctx.upload("w", &w),
            ctx.upload("b", &b),
        );
        let gy = output(&ctx, "y", g.output_len());
        let mut plan = Plan::new();
        let gbias = bias.is_some().then_some(&gb);
        ops::conv2d_forward(&ctx, &mut plan, g, &gx, &gw, gbias, &gy).unwrap();
        run(&ctx, &plan);
        check(
            &format!("conv2d_forward {}", describe(g)),
            &read(&ctx, &gy),
            &want,
            taps(g),
        );
    }
}

#[test]
fn conv2d_backward_input_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in conv_geometries().iter().enumerate() {
        let tag = 200 + 2 * tag as u32;
        let (dy, w) = (values(tag, g.output_len()), values(tag + 1, g.weight_len()));
        let mut want = vec![0.0; g.input_len()];
        cpu::conv2d_backward_input(g, &dy, &w, &mut want);

        let (gdy, gw) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
        let gdx = output(&ctx, "dx", g.input_len());
        let mut plan = Plan::new();
        ops::conv2d_backward_input(&ctx, &mut plan, g, &gdy, &gw, &gdx).unwrap();
        run(&ctx, &plan);
        let what = format!("conv2d_backward_input {}", describe(g));
        check(&what, &read(&ctx, &gdx), &want, reach(g));
    }
}

#[test]
fn conv2d_backward_weight_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in conv_geometries().iter().enumerate() {
        let tag = 300 + 2 * tag as u32;
        let (x, dy) = (values(tag, g.input_len()), values(tag + 1, g.output_len()));
        let mut want = vec![0.0; g.weight_len()];
        cpu::conv2d_backward_weight(g, &x, &dy, &mut want);

        let (gx, gdy) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
        let gdw = output(&ctx, "dw", g.weight_len());
        let mut plan = Plan::new();
        ops::conv2d_backward_weight(&ctx, &mut plan, g, &gx, &gdy, &gdw).unwrap();
        run(&ctx, &plan);
        let what = format!("conv2d_backward_weight {}", describe(g));
        check(&what, &read(&ctx, &gdw), &want, pixels(g));
    }
}

// ---- conv_transpose2d -------------------------------------------------------------------

#[test]
fn conv_transpose2d_forward_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in transpose_geometries().iter().enumerate() {
        let tag = 400 + 3 * tag as u32;
        let (x, w, b) = (
            values(tag, g.output_len()),
            values(tag + 1, g.weight_len()),
            values(tag + 2, g.in_channels),
        );
        let bias = tag.is_multiple_of(2).then_some(&b[..]);
        let mut want = vec![0.0; g.input_len()];
        cpu::conv_transpose2d_forward(g, &x, &w, bias, &mut want);

        let (gx, gw, gb) = (
            ctx.upload("x", &x),
            ctx.upload("w", &w),
            ctx.upload("b", &b),
        );
        let gy = output(&ctx, "y", g.input_len());
        let mut plan = Plan::new();
        let gbias = bias.is_some().then_some(&gb);
        ops::conv_transpose2d_forward(&ctx, &mut plan, g, &gx, &gw, gbias, &gy).unwrap();
        run(&ctx, &plan);
        let what = format!("conv_transpose2d_forward {}", describe(g));
        check(&what, &read(&ctx, &gy), &want, reach(g));
    }
}

#[test]
fn conv_transpose2d_backward_input_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in transpose_geometries().iter().enumerate() {
        let tag = 500 + 2 * tag as u32;
        let (dy, w) = (values(tag, g.input_len()), values(tag + 1, g.weight_len()));
        let mut want = vec![0.0; g.output_len()];
        cpu::conv_transpose2d_backward_input(g, &dy, &w, &mut want);

        let (gdy, gw) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
        let gdx = output(&ctx, "dx", g.output_len());
        let mut plan = Plan::new();
        ops::conv_transpose2d_backward_input(&ctx, &mut plan, g, &gdy, &gw, &gdx).unwrap();
        run(&ctx, &plan);
        let what = format!("conv_transpose2d_backward_input {}", describe(g));
        check(&what, &read(&ctx, &gdx), &want, taps(g));
    }
}

#[test]
fn conv_transpose2d_backward_weight_matches_cpu_reference() {
    let Some(ctx) = context() else { return };
    for (tag, g) in transpose_geometries().iter().enumerate() {
        let tag = 600 + 2 * tag as u32;
        let (x, dy) = (values(tag, g.output_len()), values(tag + 1, g.input_len()));
        let mut want = vec![0.0; g.weight_len()];
        cpu::conv_transpose2d_backward_weight(g, &x, &dy, &mut want);

        let (gx, gdy) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
        let gdw = output(&ctx, "dw", g.weight_len());
        let mut plan = Plan::new();
        ops::conv_transpose2d_backward_weight(&ctx, &mut plan, g, &gx, &gdy, &gdw).unwrap();
        run(&ctx, &plan);
        let what = format!("conv_transpose2d_backward_weight {}", describe(g));
        check(&what, &read(&ctx, &gdw), &want, pixels(g));
    }
}

// ---- validation -------------------------------------------------------------------------

#[test]
fn matmul_and_conv_ops_reject_mismatched_lengths() {
    let Some(ctx) = context() else { return };
    let t = |len| ctx.storage("t", len);
    let mut plan = Plan::new();

    let shape = GemmShape {
        m: 3,
        n: 4,
        k: 5,
        trans_a: false,
        trans_b: true,
    };
    let err = ops::gemm(&ctx, &mut plan, &shape, &t(15), &t(19), &t(12)).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

    let g = Conv2dGeometry::conv_same(2, 3, (7, 9), 5, (3, 3), (2, 2));
    let (x, y, w) = (t(g.input_len()), t(g.output_len()), t(g.weight_len()));
    let err = ops::conv2d_forward(&ctx, &mut plan, &g, &y, &w, None, &y).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = ops::conv2d_backward_weight(&ctx, &mut plan, &g, &x, &y, &t(3)).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = ops::conv_transpose2d_forward(&ctx, &mut plan, &g, &x, &w, None, &y).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

    let zero_stride = Conv2dGeometry { stride_h: 0, ..g };
    let err = ops::conv2d_forward(&ctx, &mut plan, &zero_stride, &x, &w, None, &y).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    assert!(plan.is_empty(), "a rejected op must not add dispatches");
}

#[test]
fn gemm_and_conv2d_params_match_their_wgsl_structs() {
    // (Shader::Pack's Params is checked with the element-wise families.)
    for (shader, rust_size) in [
        (Shader::Gemm, GEMM_PARAMS_SIZE),
        (Shader::Conv2d, CONV2D_PARAMS_SIZE),
        (Shader::GemmUniform, GEMM_UNIFORM_PARAMS_SIZE),
    ] {
        let source = shader.source();
        let module = naga::front::wgsl::parse_str(&source).expect("the registry's WGSL parses");
        let wgsl_size = module.types.iter().find_map(|(_, ty)| match &ty.inner {
            naga::TypeInner::Struct { span, .. } if ty.name.as_deref() == Some("Params") => {
                Some(*span as usize)
            }
            _ => None,
        });
        assert_eq!(
            wgsl_size,
            Some(rust_size),
            "{}.wgsl Params vs its Rust mirror",
            shader.name()
        );
    }
}
