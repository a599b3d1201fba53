//! The GPU side: device, buffers, command plans and the WGSL kernels' launchers.
//!
//! Ops never run anything themselves: each adds its dispatches (pipeline, bind group and
//! params uniform, all created right then) to a [`Plan`], which [`GpuContext::run`] replays
//! in one compute pass. Building the plan for a training step once and running it every step
//! keeps the per-step cost at one submit and the uploads and reads the step needs.

pub mod context;
pub mod ops;
pub mod plan;
pub mod shaders;
pub mod tensor;

pub use context::{
    Bind, DEFAULT_POLL_TIMEOUT, GpuContext, KernelSet, Recorded, UNIFORM_WINDOW_BYTES,
    device_type_name,
};
pub use plan::{Dispatch, Plan};
pub use shaders::{Shader, all_pipelines, all_sources};
pub use tensor::{GpuTensor, arena};
