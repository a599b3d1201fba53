//! Launchers: one module per kernel family, named like the CPU twins in `crate::cpu`.
//!
//! Every op checks tensor lengths ([`Error::ShapeMismatch`]) and device limits
//! ([`Error::LimitExceeded`]) and then adds its dispatches to a plan; nothing runs until the
//! plan does. Shared conventions for the element-wise kernels of this directory: a workgroup
//! of [`WORKGROUP_SIZE`] invocations covers [`ELEMS_PER_WORKGROUP`] consecutive elements,
//! invocation `l` touching `l, l + WORKGROUP_SIZE, ...`, so loads and stores are coalesced.
//!
//! Binding rule (wgpu's usage tracking): within one dispatch a buffer may not be both read
//! through a read-only binding and written through another, even in disjoint ranges, so
//! tensors an op writes must not share a buffer (e.g. an arena) with tensors it only reads.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::shaders::Shader;
use crate::gpu::tensor::GpuTensor;

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod bias;
pub mod col2im;
pub mod conv2d;
mod conv2d_one_input;
mod conv2d_single;
mod conv2d_windows;
pub mod conv_transpose2d;
pub mod dense;
pub mod dropout;
pub mod gemm;
pub mod gemm_uniform;
pub mod loss;
pub mod pack;
pub mod permute;
pub mod random;
pub mod roofline;

pub use activation::{
    leaky_relu_backward, leaky_relu_forward, sigmoid_backward, sigmoid_forward, tanh_backward,
    tanh_forward,
};
pub use adam::adam_update;
pub use batchnorm::{batchnorm_backward, batchnorm_forward_inference, batchnorm_forward_train};
pub use bias::{bias_add, bias_backward};
pub use conv_transpose2d::*;
pub use conv2d::*;
pub use dense::*;
pub use dropout::{dropout_apply, dropout_mask};
pub use gemm::*;
pub use loss::sigmoid_bce;
pub use permute::permute_last_two;
pub use random::{gather_batch, normal_noise};

/// Invocations per workgroup of every kernel in the families above that this module's
/// helpers serve (`WORKGROUP_SIZE` in their WGSL).
pub const WORKGROUP_SIZE: u32 = 256;

/// Invocations of the per-channel reductions (BatchNorm statistics and gradients, conv
/// bias gradients; `REDUCTION_SIZE` in their WGSL), which run one workgroup per channel, so
/// no grid depends on it. 64, not [`WORKGROUP_SIZE`]: a CPU driver switches between all of a
/// workgroup's lane groups at every barrier, and at the model's batch 32 a channel has only
/// 1568 to 25088 values. (A GPU would rather split a long channel over several workgroups.)
pub const REDUCTION_WORKGROUP_SIZE: u32 = 64;

/// Entry points that are per-channel reductions, sized [`REDUCTION_WORKGROUP_SIZE`].
pub const PER_CHANNEL_REDUCTIONS: [&str; 9] = [
    "forward_train_stats",
    "forward_train_stats4",
    "forward_train_stats_grouped",
    "backward_reduce",
    "backward_reduce4",
    "backward_reduce_grouped",
    "backward_tree",
    "backward_tree4",
    "backward_tree_grouped",
];

/// Elements each invocation of an element-wise kernel handles (`ELEMS_PER_INVOCATION` in
/// WGSL). Two keep a workgroup's span at 512 elements, so a grid one dimension wide covers
/// 65535 * 512 * 4 bytes, just under the 128 MiB default storage binding: the fold into y is
/// reachable, and tested, on every device.
pub const ELEMS_PER_INVOCATION: u32 = 2;

/// Consecutive elements one workgroup of an element-wise kernel covers.
pub const ELEMS_PER_WORKGROUP: u64 = (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) as u64;

/// Fail with [`Error::ShapeMismatch`] unless `t` has `want` elements.
pub fn expect_len(op: &str, name: &str, t: &GpuTensor, want: usize) -> Result<()> {
    if t.len != want {
        return Err(Error::ShapeMismatch {
            op: op.to_string(),
            expected: format!("{name} of {want} elements"),
            got: format!("{} elements", t.len),
        });
    }
    Ok(())
}

/// `value` as a kernel parameter; WGSL indexes with u32.
pub fn to_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::LimitExceeded {
        what: what.to_string(),
        needed: value as u64,
        max: u32::MAX as u64,
        hint: "kernels index with 32-bit integers".into(),
    })
}

/// Whether a kernel that sees its tensors as vec4s may take them: `len` (the elements of
/// each, or of each row it walks) a multiple of 4 and every binding 16-byte aligned (a
/// device's storage offset alignment may be smaller than a vec4).
pub fn four_wide(len: usize, tensors: &[&GpuTensor]) -> bool {
    len.is_multiple_of(4) && tensors.iter().all(|t| t.offset.is_multiple_of(16))
}

/// The grid of an element-wise kernel over `n` elements (folded into y when needed).
pub fn elementwise_grid(ctx: &GpuContext, what: &str, n: usize) -> Result<[u32; 3]> {
    // Headroom so `first index + k * WORKGROUP_SIZE` in the last workgroup cannot wrap.
    to_u32(what, n + ELEMS_PER_WORKGROUP as usize)?;
    ctx.grid(what, (n as u64).div_ceil(ELEMS_PER_WORKGROUP))
}

/// `(family, size of its Rust Params mirror in bytes)` for the families whose WGSL declares
/// `struct Params`, so a test can compare them with naga's layout of the WGSL struct.
pub fn params_layouts() -> Vec<(Shader, usize)> {
    vec![
        (Shader::Activation, activation::PARAMS_SIZE),
        (Shader::Adam, adam::PARAMS_SIZE),
        (Shader::BatchNorm, batchnorm::PARAMS_SIZE),
        (Shader::Bias, bias::PARAMS_SIZE),
        (Shader::Col2im, col2im::PARAMS_SIZE),
        (Shader::Dropout, dropout::PARAMS_SIZE),
        (Shader::Loss, loss::PARAMS_SIZE),
        (Shader::Pack, pack::PARAMS_SIZE),
        (Shader::Permute, permute::PARAMS_SIZE),
        (Shader::Random, random::PARAMS_SIZE),
    ]
}
