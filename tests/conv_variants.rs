//! The subgroup variants of the convolution kernels compute the same sums in the same order
//! as the plain ones, only with fewer loads, so on one device both give the same bits. The
//! plain kernels' agreement with the CPU reference is then also the subgroup kernels'
//! (tests/gpu_parity_matmul.rs runs whichever the device picks).
//!
//! Needs an adapter with subgroups; without one the test skips (with a message), unless
//! GAN_GPU_REQUIRE_ADAPTER=1 and no adapter at all is found.

mod common;

use gan_gpu::gpu::{GpuContext, GpuTensor, KernelSet, Plan, ops};
use gan_gpu::rng;
use gan_gpu::shapes::Conv2dGeometry;

fn values(tag: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let bits = rng::random_bits(0x5b_0001, tag, 3, i as u32)[0];
            (bits >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect()
}

/// The model's layers at batch 2 and shapes that cross the 16-row tiles of the subgroup
/// kernels (17, 33 channels) and the 8-row tiles of the plain ones.
fn geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::conv_same(2, 1, (28, 28), 64, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 64, (14, 14), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 128, (14, 14), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(2, 64, (28, 28), 128, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(3, 17, (7, 9), 33, (3, 3), (2, 2)),
        Conv2dGeometry::conv_same(1, 33, (5, 6), 17, (3, 2), (2, 1)),
        Conv2dGeometry::conv_valid(2, 9, (9, 8), 23, (3, 3), (1, 1)),
    ]
}

/// Forward, input gradient and weight gradient of `g` on `ctx`, read back.
fn run_all(ctx: &GpuContext, g: &Conv2dGeometry, tag: u32) -> [Vec<f32>; 3] {
    let x = ctx.upload("x", &values(tag, g.input_len()));
    let w = ctx.upload("w", &values(tag + 1, g.weight_len()));
    let b = ctx.upload("b", &values(tag + 2, g.out_channels));
    let dy = ctx.upload("dy", &values(tag + 3, g.output_len()));
    let out = |len: usize| -> GpuTensor { ctx.upload("out", &vec![f32::NAN; len]) };
    let (y, dx, dw) = (out(g.output_len()), out(g.input_len()), out(g.weight_len()));
    let mut plan = Plan::new();
    ops::conv2d_forward(ctx, &mut plan, g, &x, &w, Some(&b), &y).unwrap();
    ops::conv2d_backward_input(ctx, &mut plan, g, &dy, &w, &dx).unwrap();
    ops::conv2d_backward_weight(ctx, &mut plan, g, &x, &dy, &dw).unwrap();
    ctx.run(&[&plan]).unwrap();
    [y, dx, dw].map(|t| ctx.read(&t).unwrap())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn subgroup_kernels_give_the_plain_kernels_bits() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    if !ctx.subgroup_kernels() {
        eprintln!(
            "skipping: {} has no subgroups of 8 or more, so only the plain kernels run",
            ctx.info.name
        );
        return;
    }
    // Both on the direct kernels; the uniform-window ones sum in another order.
    let ctx = ctx.with_kernel_set(KernelSet::Direct).unwrap();
    let plain = ctx.without_subgroup_kernels();
    for (i, g) in geometries().iter().enumerate() {
        let tag = 10 * i as u32;
        let with = run_all(&ctx, g, tag);
        let without = run_all(&plain, g, tag);
        for ((name, a), b) in ["forward", "backward_input", "backward_weight"]
            .iter()
            .zip(&with)
            .zip(&without)
        {
            assert!(a.iter().all(|v| v.is_finite()), "{name} {g:?} left NaN");
            assert_eq!(
                bits(a),
                bits(b),
                "{name} differs between variants for {g:?}"
            );
        }
    }
}
