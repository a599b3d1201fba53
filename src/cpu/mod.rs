//! The CPU reference: every GPU op as plain loops that can be checked against the math.
//!
//! Each function has the same name as its GPU twin in `gpu::ops`. They take slices and panic
//! only when a slice has the wrong length (the callers guarantee lengths, so a panic here is a
//! bug in the caller, and the message names the op and the slice).

// Index loops here spell out the subscripts of the math (`x[n, c, p]`), which iterator
// chains would hide; that is the point of a reference implementation.
#![allow(clippy::needless_range_loop)]

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod bias;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod dense;
pub mod dropout;
pub mod gemm;
pub mod loss;
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
pub use conv_transpose2d::{
    conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv_transpose2d_forward,
};
pub use conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
pub use dense::{dense_backward, dense_forward};
pub use dropout::{dropout_apply, dropout_mask};
pub use gemm::gemm;
pub use loss::{BceResult, sigmoid_bce};
pub use permute::permute_last_two;
pub use random::{gather_batch, normal_noise};

/// Panics with the op and slice name when a slice does not have the length the shape implies.
#[track_caller]
pub(crate) fn check_len(op: &str, name: &str, got: usize, expected: usize) {
    assert!(
        got == expected,
        "cpu::{op}: `{name}` has {got} elements, the shape needs {expected}"
    );
}
