//! Element-wise activations. Backward passes of tanh and sigmoid take the forward *output*,
//! as TensorFlow does, so no input needs to be kept.

use super::check_len;

/// The logistic function without overflow: `exp` is only ever taken of a non-positive
/// number, so large |x| gives 0 or 1 instead of inf/NaN along the way.
pub(crate) fn stable_sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `y = x` where `x > 0`, else `alpha * x` (so `x = 0` and `-0` give `±0`). Any shape.
pub fn leaky_relu_forward(x: &[f32], y: &mut [f32], alpha: f32) {
    check_len("leaky_relu_forward", "y", y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x > 0.0 { x } else { alpha * x };
    }
}

/// `dx = dy` where `x > 0`, else `alpha * dy`: at exactly 0 the slope is alpha, as in TF.
pub fn leaky_relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32], alpha: f32) {
    check_len("leaky_relu_backward", "dy", dy.len(), x.len());
    check_len("leaky_relu_backward", "dx", dx.len(), x.len());
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        *dx = if x > 0.0 { dy } else { alpha * dy };
    }
}

/// `y = tanh(x)`. Any shape.
pub fn tanh_forward(x: &[f32], y: &mut [f32]) {
    check_len("tanh_forward", "y", y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.tanh();
    }
}

/// `dx = dy * (1 - y²)` from the forward output `y`.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    check_len("tanh_backward", "dy", dy.len(), y.len());
    check_len("tanh_backward", "dx", dx.len(), y.len());
    for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
        *dx = dy * (1.0 - y * y);
    }
}

/// `y = 1 / (1 + exp(-x))`, computed without overflow for large |x|. Any shape.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    check_len("sigmoid_forward", "y", y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = stable_sigmoid(x);
    }
}

/// `dx = dy * y * (1 - y)` from the forward output `y`.
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    check_len("sigmoid_backward", "dy", dy.len(), y.len());
    check_len("sigmoid_backward", "dx", dx.len(), y.len());
    for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
        *dx = dy * y * (1.0 - y);
    }
}
