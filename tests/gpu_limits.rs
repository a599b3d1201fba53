//! Limits and failures: every kernel builds within WebGPU's default limits, an op that would
//! exceed a limit says which one and by how much, and a GPU validation error comes back as
//! `Error::Gpu` instead of wgpu's default panic.
//!
//! Needs an adapter: without one the tests skip, unless GAN_GPU_REQUIRE_ADAPTER=1.

mod common;

use common::gpu::{selector, unavailable};
use gan_gpu::Error;
use gan_gpu::gpu::{GpuContext, GpuTensor, Plan, Shader, all_pipelines, ops};

/// A device with `wgpu::Limits::default()`, of its own (the error tests leave errors behind).
fn default_limits_context() -> Option<GpuContext> {
    match GpuContext::new_with_default_limits(selector().as_deref()) {
        Ok(ctx) => Some(ctx),
        Err(e) => unavailable(&e.to_string()),
    }
}

#[test]
fn every_pipeline_builds_with_default_limits() {
    let Some(ctx) = default_limits_context() else {
        return;
    };
    assert_eq!(ctx.limits, wgpu::Limits::default());
    let pipelines = all_pipelines().expect("every registered shader parses");
    for shader in Shader::ALL {
        assert!(
            pipelines.iter().any(|(s, _)| *s == shader),
            "{} has no entry point",
            shader.name()
        );
    }
    for (shader, entry) in pipelines {
        if let Err(e) = ctx.pipeline(shader, &entry) {
            panic!(
                "{}:{entry} does not build within the default limits: {e}",
                shader.name()
            );
        }
    }
}

#[test]
fn oversized_binding_is_limit_exceeded_naming_the_limit() {
    let Some(ctx) = default_limits_context() else {
        return;
    };
    let max = ctx.limits.max_storage_buffer_binding_size;

    // A view claiming one element more than a binding may hold: the op refuses it before
    // anything is created, so the buffer behind it can stay small.
    let small = ctx.storage("small", 16);
    let len = (max / 4 + 1) as usize;
    let huge = GpuTensor {
        buffer: small.buffer.clone(),
        offset: 0,
        len,
    };
    let mut plan = Plan::new();
    let err = ops::leaky_relu_forward(&ctx, &mut plan, &huge, &huge.clone(), 0.2).unwrap_err();
    match &err {
        Error::LimitExceeded {
            needed,
            max: limit,
            hint,
            ..
        } => {
            assert_eq!(*needed, len as u64 * 4);
            assert_eq!(*limit, max);
            assert!(hint.contains("max_storage_buffer_binding_size"), "{hint}");
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&(len as u64 * 4).to_string()), "{message}");
    assert!(
        message.contains("max_storage_buffer_binding_size"),
        "{message}"
    );
    assert!(plan.is_empty());
}

#[test]
fn grid_beyond_two_dimensions_is_limit_exceeded() {
    let Some(ctx) = default_limits_context() else {
        return;
    };
    let max = ctx.limits.max_compute_workgroups_per_dimension as u64;
    assert_eq!(
        ctx.grid("fits", max * max).unwrap(),
        [max as u32, max as u32, 1]
    );
    let err = ctx.grid("too big", max * max + 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("max_compute_workgroups_per_dimension"),
        "{err}"
    );
}

#[test]
fn gpu_validation_errors_become_error_gpu() {
    let Some(ctx) = default_limits_context() else {
        return;
    };
    let x = ctx.storage("x", 64);
    let y = ctx.storage("y", 64);
    let y8 = ctx.storage("y8", 8);

    // At creation: a binding offset off the device's storage alignment.
    let align = ctx.limits.min_storage_buffer_offset_alignment as u64;
    let misaligned = GpuTensor {
        buffer: x.buffer.clone(),
        offset: 4,
        len: 8,
    };
    assert!(align > 4, "the default limits require 256-byte offsets");
    let mut plan = Plan::new();
    match ops::leaky_relu_forward(&ctx, &mut plan, &misaligned, &y8, 0.2) {
        Err(Error::Gpu { label, message }) => {
            // A tensor off a 16-byte boundary takes the f32 kernel, not its vec4 twin.
            assert_eq!(label, "activation:leaky_relu_forward");
            assert!(!message.is_empty());
        }
        other => panic!("expected Error::Gpu, got {other:?}"),
    }

    // At submission: one buffer bound read-only and read-write in the same dispatch.
    let mut plan = Plan::labelled("in_place");
    ops::leaky_relu_forward(&ctx, &mut plan, &x, &x, 0.2).expect("the conflict shows at submit");
    match ctx.run(&[&plan]) {
        Err(Error::Gpu { label, .. }) => assert_eq!(label, "in_place"),
        other => panic!("expected Error::Gpu, got {other:?}"),
    }

    // The device stays usable.
    let mut plan = Plan::new();
    ops::leaky_relu_forward(&ctx, &mut plan, &x, &y, 0.2).unwrap();
    ctx.run(&[&plan])
        .expect("a valid plan runs after the errors");
    assert_eq!(ctx.read(&y).unwrap(), vec![0.0; 64]);
}

#[test]
fn unknown_adapter_names_the_available_ones() {
    if GpuContext::adapters().is_empty() {
        unavailable("no adapter");
        return;
    }
    match GpuContext::new(Some("no such adapter, surely")) {
        Err(Error::AdapterNotFound { wanted, available }) => {
            assert_eq!(wanted, "no such adapter, surely");
            assert!(available.starts_with("0: "), "{available}");
        }
        Err(other) => panic!("expected AdapterNotFound, got {other}"),
        Ok(ctx) => panic!("matched adapter {}", ctx.info.name),
    }
}
