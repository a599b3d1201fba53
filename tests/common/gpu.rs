//! The GPU context shared by the tests of one binary.
//!
//! Without an adapter the GPU tests skip with a message, unless the environment sets
//! `GAN_GPU_REQUIRE_ADAPTER=1` (CI does), in which case they fail. `GAN_GPU_ADAPTER` picks an
//! adapter by index or name, like `--device`.

use std::sync::OnceLock;

use gan_gpu::gpu::GpuContext;

/// Whether a missing GPU fails the tests instead of skipping them.
pub fn adapter_required() -> bool {
    std::env::var("GAN_GPU_REQUIRE_ADAPTER").is_ok_and(|v| v.trim() == "1")
}

/// The adapter selector for tests, from `GAN_GPU_ADAPTER`.
pub fn selector() -> Option<String> {
    std::env::var("GAN_GPU_ADAPTER")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Skip (returning `None`) or fail, as the environment asks, when no device could be opened.
pub fn unavailable(why: &str) -> Option<GpuContext> {
    if adapter_required() {
        panic!("GAN_GPU_REQUIRE_ADAPTER=1 but no GPU device could be opened: {why}");
    }
    eprintln!("skipping GPU test: {why} (set GAN_GPU_REQUIRE_ADAPTER=1 to make this a failure)");
    None
}

/// The context of this test binary, opened once; clones share its device and caches.
pub fn context() -> Option<GpuContext> {
    static CONTEXT: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let opened = CONTEXT.get_or_init(|| {
        let _ = env_logger::builder().is_test(true).try_init();
        GpuContext::new(selector().as_deref()).map_err(|e| e.to_string())
    });
    match opened {
        Ok(ctx) => Some(ctx.clone()),
        Err(why) => unavailable(why),
    }
}

/// A context of its own (not shared with other tests), for tests that watch the counters.
pub fn fresh_context() -> Option<GpuContext> {
    match GpuContext::new(selector().as_deref()) {
        Ok(ctx) => Some(ctx),
        Err(e) => unavailable(&e.to_string()),
    }
}
