//! Shapes shared by the CPU reference and the GPU kernels.

/// `C[m, n] = op(A)[m, k] · op(B)[k, n]`, all row-major.
///
/// With `trans_a` the buffer `A` is stored as `[k, m]`; with `trans_b`, `B` is stored as
/// `[n, k]`. `C` is always `[m, n]` and is overwritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl GemmShape {
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }
}

/// Geometry of a 2-D convolution over NCHW tensors, seen from the convolution's side.
///
/// `in_*` is the large (strided) side and `out_*` the small side:
/// `y[n, o, oy, ox] = sum_{i, ky, kx} w[o, i, ky, kx]
///     * x[n, i, oy*sh + ky - pad_top, ox*sw + kx - pad_left]`,
/// with out-of-range input positions reading zero. Weights are OIHW `[out, in, kh, kw]`.
///
/// A transposed convolution is described by the geometry of the convolution whose input
/// gradient it is: its input is this geometry's *output* side, its output this geometry's
/// *input* side, its IOHW weight is this geometry's OIHW weight, and its crop is `pad_top` /
/// `pad_left`. So `in_channels` is the transposed convolution's *output* channel count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// TensorFlow's 'same' rule along one axis: output size and padding before the data.
fn same_axis(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (out, total / 2)
}

impl Conv2dGeometry {
    /// Conv2D with TensorFlow's 'same' padding: out = ceil(in / s), the odd pixel of
    /// padding at the bottom/right.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_same(
        batch: usize,
        in_channels: usize,
        in_hw: (usize, usize),
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        let (out_h, pad_top) = same_axis(in_hw.0, kernel.0, stride.0);
        let (out_w, pad_left) = same_axis(in_hw.1, kernel.1, stride.1);
        Conv2dGeometry {
            batch,
            in_channels,
            in_h: in_hw.0,
            in_w: in_hw.1,
            out_channels,
            out_h,
            out_w,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_top,
            pad_left,
        }
    }

    /// Conv2D with 'valid' padding: out = floor((in - k) / s) + 1, no padding.
    pub fn conv_valid(
        batch: usize,
        in_channels: usize,
        in_hw: (usize, usize),
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        Conv2dGeometry {
            batch,
            in_channels,
            in_h: in_hw.0,
            in_w: in_hw.1,
            out_channels,
            out_h: (in_hw.0 - kernel.0) / stride.0 + 1,
            out_w: (in_hw.1 - kernel.1) / stride.1 + 1,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_top: 0,
            pad_left: 0,
        }
    }

    /// Conv2DTranspose with TensorFlow's 'same' rule: out = in * s, the full output cropped
    /// by floor(max(k - s, 0) / 2) at the top/left (k3 s2: nothing at the top, one row at the
    /// bottom). `t_in_channels` / `t_out_channels` are the transposed convolution's own.
    pub fn transpose_same(
        batch: usize,
        t_in_channels: usize,
        t_in_hw: (usize, usize),
        t_out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        Conv2dGeometry {
            batch,
            in_channels: t_out_channels,
            in_h: t_in_hw.0 * stride.0,
            in_w: t_in_hw.1 * stride.1,
            out_channels: t_in_channels,
            out_h: t_in_hw.0,
            out_w: t_in_hw.1,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_top: kernel.0.saturating_sub(stride.0) / 2,
            pad_left: kernel.1.saturating_sub(stride.1) / 2,
        }
    }

    /// Conv2DTranspose with 'valid': out = in * s + max(k - s, 0), nothing cropped.
    pub fn transpose_valid(
        batch: usize,
        t_in_channels: usize,
        t_in_hw: (usize, usize),
        t_out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        Conv2dGeometry {
            batch,
            in_channels: t_out_channels,
            in_h: t_in_hw.0 * stride.0 + kernel.0.saturating_sub(stride.0),
            in_w: t_in_hw.1 * stride.1 + kernel.1.saturating_sub(stride.1),
            out_channels: t_in_channels,
            out_h: t_in_hw.0,
            out_w: t_in_hw.1,
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_top: 0,
            pad_left: 0,
        }
    }

    /// Elements of the large side `[batch, in_channels, in_h, in_w]`.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }

    /// Elements of the small side `[batch, out_channels, out_h, out_w]`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h * self.out_w
    }

    /// Elements of the OIHW weight `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Multiply-adds times two of one pass (forward, or either gradient).
    pub fn flops(&self) -> u64 {
        2 * (self.output_len() * self.in_channels * self.kernel_h * self.kernel_w) as u64
    }
}

/// A BatchNorm over NCHW data viewed as `[n, c, p]` with `p = h * w`; statistics are per
/// channel over `n * p` values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormShape {
    pub n: usize,
    pub c: usize,
    pub p: usize,
    pub momentum: f32,
    pub epsilon: f32,
}

impl BatchNormShape {
    pub fn len(&self) -> usize {
        self.n * self.c * self.p
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Adam hyper-parameters, in Keras 2's form (see `cpu::adam`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

impl AdamConfig {
    /// The bias-corrected step size of update number `t` (1-based):
    /// `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`, computed in f64 and rounded once so the CPU
    /// and the GPU use the same f32.
    pub fn lr_t(&self, t: u32) -> f32 {
        let t = t as i32;
        let b1 = (self.beta1 as f64).powi(t);
        let b2 = (self.beta2 as f64).powi(t);
        (self.lr as f64 * (1.0 - b2).sqrt() / (1.0 - b1)) as f32
    }
}

/// Constants that change every training step, uploaded as one small uniform per step.
///
/// The RNG kernels read `seed`/`step`; each Adam update reads its own `lr_t` slot, so the
/// three updates of one step (D on real, D on fake, G) can share one command buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepConstants {
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub step: u32,
    pub _pad: u32,
    pub lr_t: [f32; 4],
}

/// Which `StepConstants::lr_t` slot each optimiser update reads.
pub mod adam_slot {
    pub const D_REAL: u32 = 0;
    pub const D_FAKE: u32 = 1;
    pub const G: u32 = 2;
}
