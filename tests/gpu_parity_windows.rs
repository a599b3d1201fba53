//! The uniform-window kernels (operands packed into 64 KiB uniform windows, gemm_uniform.wgsl)
//! against the CPU reference and against the direct kernels, on shapes that cross their
//! blocks (32 rows per workgroup, 128 rows or columns per block, 128 k per window, five
//! windows per dispatch, so sums longer than 640 continue across dispatches), both GEMM
//! orientations, every transpose, and the convolutions' three passes. The forward and input
//! gradient sum in the direct kernels' order, so up to 640 terms the two sets agree bit for
//! bit.
//!
//! Needs an adapter with subgroups; without one the tests skip (with a message), unless
//! GAN_GPU_REQUIRE_ADAPTER=1 and no adapter at all is found.

mod common;

use common::golden::assert_close;
use gan_gpu::gpu::{GpuContext, GpuTensor, KernelSet, Plan, ops};
use gan_gpu::shapes::{Conv2dGeometry, GemmShape};
use gan_gpu::{cpu, rng};

/// As in tests/gpu_parity_matmul.rs: sums of K products of values in [-1, 1], in another
/// order than the CPU's, differ by about 1e-8 * K; a wrong index gives errors near 0.1.
const RTOL: f32 = 1e-4;
const ATOL_PER_TERM: f32 = 1e-6;

fn values(tag: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let bits = rng::random_bits(0x77_0001, tag, 5, i as u32)[0];
            (bits >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect()
}

/// The device's uniform-window and direct contexts, or `None` (with a message) when the
/// device cannot run the uniform-window kernels.
fn contexts() -> Option<(GpuContext, GpuContext)> {
    let ctx = common::gpu::context()?;
    let Ok(windows) = ctx.with_kernel_set(KernelSet::UniformWindows) else {
        eprintln!("skipping: {} has no subgroups of 8 or more", ctx.info.name);
        return None;
    };
    let direct = ctx
        .with_kernel_set(KernelSet::Direct)
        .expect("direct kernels");
    Some((windows, direct))
}

fn nan_filled(ctx: &GpuContext, len: usize) -> GpuTensor {
    ctx.upload("out", &vec![f32::NAN; len])
}

fn run_read(ctx: &GpuContext, plan: &Plan, t: &GpuTensor) -> Vec<f32> {
    ctx.run(&[plan]).expect("running the plan");
    ctx.read(t).expect("reading back")
}

/// (m, n, k): one partial block of everything; rows past a block and columns past two; a
/// sum over eleven windows (three dispatches); products that prefer the transposed
/// orientation; a short k over eight column blocks (five blocks in one dispatch, then three);
/// a sum continued in a second dispatch into columns that are not whole vec4s, with the bias.
const GEMM_SHAPES: [(usize, usize, usize); 7] = [
    (33, 130, 129),
    (33, 130, 700),
    (129, 257, 100),
    (40, 140, 1300),
    (300, 40, 70),
    (20, 600, 90),
    (10, 1000, 50),
];

#[test]
fn gemm_uniform_matches_cpu_reference() {
    let Some((ctx, _)) = contexts() else { return };
    for (tag, &(m, n, k)) in GEMM_SHAPES.iter().enumerate() {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let shape = GemmShape {
                m,
                n,
                k,
                trans_a,
                trans_b,
            };
            let tag = 3 * tag as u32;
            let (a, b, bias) = (
                values(tag, m * k),
                values(tag + 1, k * n),
                values(tag + 2, n),
            );
            let mut want = vec![0.0; m * n];
            cpu::gemm(&shape, &a, &b, &mut want);
            for row in want.chunks_mut(n) {
                for (v, b) in row.iter_mut().zip(&bias) {
                    *v += b;
                }
            }

            let (ga, gb, gbias) = (
                ctx.upload("a", &a),
                ctx.upload("b", &b),
                ctx.upload("bias", &bias),
            );
            let gc = nan_filled(&ctx, m * n);
            let mut plan = Plan::new();
            ops::gemm_bias(&ctx, &mut plan, &shape, &ga, &gb, Some(&gbias), &gc).unwrap();
            assert!(
                plan.dispatches()
                    .iter()
                    .any(|d| d.label.starts_with("gemm_uniform")),
                "{shape:?} did not run on the uniform-window kernel"
            );
            let got = run_read(&ctx, &plan, &gc);
            assert_close(
                &format!("gemm_uniform {shape:?}"),
                &got,
                &want,
                RTOL,
                ATOL_PER_TERM * k as f32,
            );
        }
    }
}

/// The model's layers at batch 2 and 3, odd channel counts and sizes, a non-square kernel
/// and stride, 'valid' padding, and one channel on the large side; then one-channel layers
/// with enough pixels that their weight gradients run transposed on the windows (with
/// channels in fours the one-input-channel kernels take them, and at stride 1 the
/// single-channel weight-gradient kernel), and whose input gradients' products per tap run
/// on the one-input-channel kernel (3x3 and 2x3); then a
/// forward pass over 720 taps (two dispatches) into whole vec4 rows, with the bias; then
/// an input gradient by tap into planes of an odd number of pixels; then padding 1 at
/// stride 2.
fn geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::conv_same(2, 64, (14, 14), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(3, 128, (14, 14), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 64, (28, 28), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 1, (28, 28), 64, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(3, 37, (9, 11), 45, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 40, (10, 7), 70, (3, 2), (2, 1)),
        Conv2dGeometry::conv_valid(2, 33, (12, 11), 50, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(8, 1, (28, 28), 62, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(8, 1, (28, 28), 64, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(8, 1, (20, 20), 64, (2, 3), (2, 2)),
        Conv2dGeometry::conv_same(4, 1, (16, 16), 64, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(2, 80, (14, 14), 64, (3, 3), (1, 1)),
        Conv2dGeometry::conv_same(8, 3, (21, 19), 40, (3, 3), (2, 2)),
        // Padding 1 on every side at stride 2 (the input gradients gather by 2 x 2 blocks
        // from the padded layout), rows of 14 and of 12.
        Conv2dGeometry {
            out_h: 7,
            out_w: 7,
            pad_top: 1,
            pad_left: 1,
            ..Conv2dGeometry::conv_valid(3, 16, (14, 14), 48, (3, 3), (2, 2))
        },
        Conv2dGeometry {
            out_h: 6,
            out_w: 6,
            pad_top: 1,
            pad_left: 1,
            ..Conv2dGeometry::conv_valid(4, 16, (12, 12), 48, (3, 3), (2, 2))
        },
    ]
}

/// Which kernels a pass ran on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Route {
    /// The uniform-window GEMM.
    windows: bool,
    /// One product per tap gathered by col2im (an input gradient over few channels), whose
    /// sums are grouped by tap rather than in the direct kernels' order.
    by_tap: bool,
    /// The products per tap of a one-input-channel input gradient, from their own kernel.
    one_input_taps: bool,
    /// The gather of those products by 2 x 2 blocks of pixels (3 x 3 at stride 2).
    blocks: bool,
    /// The gather four pixels at a time, tap by tap.
    quads: bool,
    /// The one-input-channel forward pass with each row's sources loaded as vec4s.
    one_input_rows: bool,
}

/// Forward, input gradient and weight gradient on `ctx`, and the route each took.
fn passes(ctx: &GpuContext, g: &Conv2dGeometry, tag: u32) -> ([Vec<f32>; 3], [Route; 3]) {
    let x = ctx.upload("x", &values(tag, g.input_len()));
    let w = ctx.upload("w", &values(tag + 1, g.weight_len()));
    let b = ctx.upload("b", &values(tag + 2, g.out_channels));
    let dy = ctx.upload("dy", &values(tag + 3, g.output_len()));
    let outs = [g.output_len(), g.input_len(), g.weight_len()].map(|n| nan_filled(ctx, n));
    let mut results: [Vec<f32>; 3] = Default::default();
    let mut routes = [Route::default(); 3];
    for pass in 0..3 {
        let mut plan = Plan::new();
        match pass {
            0 => ops::conv2d_forward(ctx, &mut plan, g, &x, &w, Some(&b), &outs[0]),
            1 => ops::conv2d_backward_input(ctx, &mut plan, g, &dy, &w, &outs[1]),
            _ => ops::conv2d_backward_weight(ctx, &mut plan, g, &x, &dy, &outs[2]),
        }
        .unwrap();
        let ran = |family: &str| {
            plan.dispatches()
                .iter()
                .any(|d| d.label.starts_with(family))
        };
        routes[pass] = Route {
            windows: ran("gemm_uniform"),
            by_tap: ran("col2im"),
            one_input_taps: ran("conv2d_one_input:tap_products"),
            blocks: ran("col2im:col2im_block2"),
            quads: ran("col2im:col2im4"),
            one_input_rows: ran("conv2d_one_input:forward_one_input_3x3"),
        };
        results[pass] = run_read(ctx, &plan, &outs[pass]);
    }
    (results, routes)
}

#[test]
fn conv2d_on_uniform_windows_matches_cpu_reference_and_direct_kernels() {
    let Some((ctx, direct)) = contexts() else {
        return;
    };
    for (i, g) in geometries().iter().enumerate() {
        let tag = 10 * i as u32;
        let (got, routes) = passes(&ctx, g, tag);
        let (plain, _) = passes(&direct, g, tag);

        let (x, w, b, dy) = (
            values(tag, g.input_len()),
            values(tag + 1, g.weight_len()),
            values(tag + 2, g.out_channels),
            values(tag + 3, g.output_len()),
        );
        let mut want = [g.output_len(), g.input_len(), g.weight_len()].map(|n| vec![0.0; n]);
        cpu::conv2d_forward(g, &x, &w, Some(&b), &mut want[0]);
        cpu::conv2d_backward_input(g, &dy, &w, &mut want[1]);
        cpu::conv2d_backward_weight(g, &x, &dy, &mut want[2]);

        let taps = g.in_channels * g.kernel_h * g.kernel_w;
        let terms = [
            taps,
            g.out_channels * g.kernel_h * g.kernel_w,
            g.batch * g.out_h * g.out_w,
        ];
        for (pass, name) in ["forward", "backward_input", "backward_weight"]
            .iter()
            .enumerate()
        {
            let what = format!("conv2d {name} {g:?}");
            assert_close(
                &what,
                &got[pass],
                &want[pass],
                RTOL,
                ATOL_PER_TERM * terms[pass] as f32,
            );
            let route = routes[pass];
            if pass < 2 && route.windows && !route.by_tap && terms[pass] <= 640 {
                let same = got[pass]
                    .iter()
                    .zip(&plain[pass])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{what}: uniform windows and direct kernels differ in bits"
                );
            }
        }
    }
    // The shapes above must exercise the uniform path, not only the fallback, and the
    // input gradient by tap.
    let routes: Vec<[Route; 3]> = geometries().iter().map(|g| passes(&ctx, g, 0).1).collect();
    assert!(routes[0].iter().all(|r| r.windows), "{:?}", routes[0]);
    assert!(
        routes.iter().any(|r| r[1].windows && !r[1].by_tap),
        "no geometry took the input gradient by phase class"
    );
    // One input channel into channels in fours: the products per tap on their own kernel,
    // with a 3x3 kernel and a 2x3 one.
    let one_input: Vec<usize> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r[1].one_input_taps)
        .map(|(i, _)| geometries()[i].kernel_h)
        .collect();
    assert!(
        one_input.contains(&3) && one_input.contains(&2),
        "one-input products per tap ran for kernel heights {one_input:?}"
    );
    // By 2 x 2 blocks: 'same' padding (none on the top and left at stride 2 from an even
    // size) and padding 1 on every side.
    for pad in [0, 1] {
        let blocks = geometries()
            .iter()
            .zip(&routes)
            .any(|(g, r)| r[1].blocks && g.pad_left == pad);
        assert!(
            blocks,
            "no input gradient was gathered by blocks with padding {pad}"
        );
    }
    assert!(
        routes.iter().any(|r| r[0].one_input_rows),
        "no one-input-channel forward pass loaded its rows as vec4s"
    );
    assert!(
        routes.iter().any(|r| r[1].quads),
        "no input gradient was gathered four pixels at a time"
    );
    // By tap: planes of whole vec4s and not.
    for four_wide in [true, false] {
        let by_tap = geometries()
            .iter()
            .zip(&routes)
            .any(|(g, r)| r[1].by_tap && (g.in_h * g.in_w).is_multiple_of(4) == four_wide);
        assert!(
            by_tap,
            "no geometry took the input gradient by tap (four wide: {four_wide})"
        );
    }
}
