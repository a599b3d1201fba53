//! What each kernel costs at a shape: its floating-point work and its compulsory memory
//! traffic, the two numbers the roofline needs. A new kernel gets a [`Kernel`] variant and
//! one arm in each of [`Kernel::flops`] and [`Kernel::bytes`].
//!
//! `flops` counts 2 per multiply-add of a contraction (GEMM, convolution), the work a
//! kernel's GFLOP/s is quoted for. The other kernels do a few operations per element they
//! move, under one per byte, below the ridge point (peak FLOP/s over bandwidth) of any
//! machine we know; they are rated by bytes alone and their `flops` are 0. That also makes
//! the sum over a training step the usual model FLOP count.
//!
//! `bytes` counts every input read once and every output written once, in 4-byte elements
//! (the dataset's pixels in bytes): the traffic no implementation can avoid. A kernel that
//! rereads its input (BatchNorm's statistics, then its normalisation) or spills partial sums
//! (the chunked weight gradient) moves more, and that shows as a lower fraction of the
//! roofline.

use crate::gpu::ops::roofline::FMAS_PER_ITERATION;
use crate::shapes::{BatchNormShape, Conv2dGeometry, GemmShape};

/// One launcher of `gpu::ops` at one shape: what the benchmark times and a training step is
/// made of. Each variant is named after its launcher and CPU twin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Gemm(GemmShape),
    /// `x [n, inputs] · w [inputs, outputs] + b`.
    DenseForward {
        n: usize,
        inputs: usize,
        outputs: usize,
    },
    /// Weight and bias gradients, and the input gradient when `input_grad`.
    DenseBackward {
        n: usize,
        inputs: usize,
        outputs: usize,
        input_grad: bool,
    },
    /// With a bias, as the model runs it.
    Conv2dForward(Conv2dGeometry),
    Conv2dBackwardInput(Conv2dGeometry),
    Conv2dBackwardWeight(Conv2dGeometry),
    /// With a bias; `g` is the ordinary convolution it transposes (see `Conv2dGeometry`).
    ConvTranspose2dForward(Conv2dGeometry),
    ConvTranspose2dBackwardInput(Conv2dGeometry),
    ConvTranspose2dBackwardWeight(Conv2dGeometry),
    /// `db[c] = sum over n, p of dy[n, c, p]`.
    BiasBackward {
        n: usize,
        c: usize,
        p: usize,
    },
    BatchNormForwardTrain(BatchNormShape),
    BatchNormForwardInference(BatchNormShape),
    BatchNormBackward(BatchNormShape),
    LeakyReluForward {
        len: usize,
    },
    LeakyReluBackward {
        len: usize,
    },
    TanhForward {
        len: usize,
    },
    TanhBackward {
        len: usize,
    },
    DropoutMask {
        len: usize,
    },
    DropoutApply {
        len: usize,
    },
    /// `[n, a, b] -> [n, b, a]`.
    PermuteLastTwo {
        n: usize,
        a: usize,
        b: usize,
    },
    SigmoidBce {
        n: usize,
    },
    /// One update of `len` parameters.
    AdamUpdate {
        len: usize,
    },
    /// `batch` images of `image_len` bytes drawn from `count`.
    GatherBatch {
        batch: usize,
        image_len: usize,
        count: usize,
    },
    NormalNoise {
        len: usize,
    },
    /// The arithmetic ceiling: `invocations` of `iterations` loop trips.
    FmaPeak {
        invocations: usize,
        iterations: u32,
    },
    /// The bandwidth ceiling: `len` f32 copied.
    Copy {
        len: usize,
    },
}

/// Bytes of `elements` f32.
fn f32s(elements: usize) -> u64 {
    4 * elements as u64
}

impl Kernel {
    /// The launcher's name (and its CPU twin's).
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Gemm(_) => "gemm",
            Kernel::DenseForward { .. } => "dense_forward",
            Kernel::DenseBackward { .. } => "dense_backward",
            Kernel::Conv2dForward(_) => "conv2d_forward",
            Kernel::Conv2dBackwardInput(_) => "conv2d_backward_input",
            Kernel::Conv2dBackwardWeight(_) => "conv2d_backward_weight",
            Kernel::ConvTranspose2dForward(_) => "conv_transpose2d_forward",
            Kernel::ConvTranspose2dBackwardInput(_) => "conv_transpose2d_backward_input",
            Kernel::ConvTranspose2dBackwardWeight(_) => "conv_transpose2d_backward_weight",
            Kernel::BiasBackward { .. } => "bias_backward",
            Kernel::BatchNormForwardTrain(_) => "batchnorm_forward_train",
            Kernel::BatchNormForwardInference(_) => "batchnorm_forward_inference",
            Kernel::BatchNormBackward(_) => "batchnorm_backward",
            Kernel::LeakyReluForward { .. } => "leaky_relu_forward",
            Kernel::LeakyReluBackward { .. } => "leaky_relu_backward",
            Kernel::TanhForward { .. } => "tanh_forward",
            Kernel::TanhBackward { .. } => "tanh_backward",
            Kernel::DropoutMask { .. } => "dropout_mask",
            Kernel::DropoutApply { .. } => "dropout_apply",
            Kernel::PermuteLastTwo { .. } => "permute_last_two",
            Kernel::SigmoidBce { .. } => "sigmoid_bce",
            Kernel::AdamUpdate { .. } => "adam_update",
            Kernel::GatherBatch { .. } => "gather_batch",
            Kernel::NormalNoise { .. } => "normal_noise",
            Kernel::FmaPeak { .. } => "fma_peak",
            Kernel::Copy { .. } => "copy",
        }
    }

    /// The shape in a line: `m x n x k` for a GEMM, `N C HxW -> K HxW` for a convolution
    /// (input side first), `n c p` for per-channel ops, the element count otherwise.
    pub fn shape(&self) -> String {
        let conv = |g: &Conv2dGeometry, transposed: bool| {
            let large = format!("{} {}x{}", g.in_channels, g.in_h, g.in_w);
            let small = format!("{} {}x{}", g.out_channels, g.out_h, g.out_w);
            let (from, to) = if transposed {
                (small, large)
            } else {
                (large, small)
            };
            format!(
                "N{} {from} -> {to} k{}x{} s{}",
                g.batch, g.kernel_h, g.kernel_w, g.stride_h
            )
        };
        match self {
            Kernel::Gemm(s) => {
                let t = |on: bool, name: &str| if on { format!(" {name}^T") } else { "".into() };
                format!(
                    "{}x{}x{}{}{}",
                    s.m,
                    s.n,
                    s.k,
                    t(s.trans_a, "A"),
                    t(s.trans_b, "B")
                )
            }
            Kernel::DenseForward { n, inputs, outputs } => format!("N{n} {inputs} -> {outputs}"),
            Kernel::DenseBackward {
                n,
                inputs,
                outputs,
                input_grad,
            } => {
                let dx = if *input_grad { ", with dx" } else { "" };
                format!("N{n} {inputs} -> {outputs}{dx}")
            }
            Kernel::Conv2dForward(g)
            | Kernel::Conv2dBackwardInput(g)
            | Kernel::Conv2dBackwardWeight(g) => conv(g, false),
            Kernel::ConvTranspose2dForward(g)
            | Kernel::ConvTranspose2dBackwardInput(g)
            | Kernel::ConvTranspose2dBackwardWeight(g) => conv(g, true),
            Kernel::BiasBackward { n, c, p } => format!("N{n} C{c} P{p}"),
            Kernel::BatchNormForwardTrain(s)
            | Kernel::BatchNormForwardInference(s)
            | Kernel::BatchNormBackward(s) => format!("N{} C{} P{}", s.n, s.c, s.p),
            Kernel::PermuteLastTwo { n, a, b } => format!("N{n} {a}x{b}"),
            Kernel::SigmoidBce { n } => format!("N{n}"),
            Kernel::GatherBatch {
                batch,
                image_len,
                count,
            } => format!("N{batch} of {count} x {image_len} B"),
            Kernel::FmaPeak {
                invocations,
                iterations,
            } => format!("{invocations} x {iterations} iterations"),
            Kernel::LeakyReluForward { len }
            | Kernel::LeakyReluBackward { len }
            | Kernel::TanhForward { len }
            | Kernel::TanhBackward { len }
            | Kernel::DropoutMask { len }
            | Kernel::DropoutApply { len }
            | Kernel::AdamUpdate { len }
            | Kernel::NormalNoise { len }
            | Kernel::Copy { len } => format!("{len}"),
        }
    }

    /// Floating-point operations: 2 per multiply-add of a contraction, 0 for kernels rated
    /// by bytes (see the module comment). Padding taps count, as in `Conv2dGeometry::flops`.
    pub fn flops(&self) -> u64 {
        match self {
            Kernel::Gemm(s) => s.flops(),
            Kernel::DenseForward { n, inputs, outputs } => 2 * (n * inputs * outputs) as u64,
            Kernel::DenseBackward {
                n,
                inputs,
                outputs,
                input_grad,
            } => 2 * (n * inputs * outputs) as u64 * (1 + u64::from(*input_grad)),
            Kernel::Conv2dForward(g)
            | Kernel::Conv2dBackwardInput(g)
            | Kernel::Conv2dBackwardWeight(g)
            | Kernel::ConvTranspose2dForward(g)
            | Kernel::ConvTranspose2dBackwardInput(g)
            | Kernel::ConvTranspose2dBackwardWeight(g) => g.flops(),
            Kernel::FmaPeak {
                invocations,
                iterations,
            } => 2 * FMAS_PER_ITERATION * *iterations as u64 * *invocations as u64,
            _ => 0,
        }
    }

    /// Compulsory memory traffic in bytes: each input read once, each output written once.
    pub fn bytes(&self) -> u64 {
        match *self {
            // A and B in, C out.
            Kernel::Gemm(s) => f32s(s.m * s.k + s.k * s.n + s.m * s.n),
            // x, w, b in, y out.
            Kernel::DenseForward { n, inputs, outputs } => {
                f32s(n * inputs + inputs * outputs + outputs + n * outputs)
            }
            // x, dy (and w for dx) in; dw, db (and dx) out.
            Kernel::DenseBackward {
                n,
                inputs,
                outputs,
                input_grad,
            } => {
                let dx = if input_grad {
                    inputs * outputs + n * inputs
                } else {
                    0
                };
                f32s(n * inputs + n * outputs + inputs * outputs + outputs + dx)
            }
            // Large side, weight and bias in (forward: large in, small out).
            Kernel::Conv2dForward(g) => {
                f32s(g.input_len() + g.weight_len() + g.out_channels + g.output_len())
            }
            Kernel::ConvTranspose2dForward(g) => {
                f32s(g.output_len() + g.weight_len() + g.in_channels + g.input_len())
            }
            // One side and the weight in, the other side out; or both sides in, weight out.
            Kernel::Conv2dBackwardInput(g)
            | Kernel::Conv2dBackwardWeight(g)
            | Kernel::ConvTranspose2dBackwardInput(g)
            | Kernel::ConvTranspose2dBackwardWeight(g) => {
                f32s(g.input_len() + g.output_len() + g.weight_len())
            }
            Kernel::BiasBackward { n, c, p } => f32s(n * c * p + c),
            // x in, y out; gamma, beta, running mean and variance in, those two and the
            // saved statistics out.
            Kernel::BatchNormForwardTrain(s) => f32s(2 * s.len() + 8 * s.c),
            Kernel::BatchNormForwardInference(s) => f32s(2 * s.len() + 4 * s.c),
            // x, dy in, dx out; gamma and the saved statistics in, dgamma and dbeta out.
            Kernel::BatchNormBackward(s) => f32s(3 * s.len() + 5 * s.c),
            Kernel::LeakyReluForward { len } | Kernel::TanhForward { len } => f32s(2 * len),
            Kernel::LeakyReluBackward { len } | Kernel::TanhBackward { len } => f32s(3 * len),
            Kernel::DropoutMask { len } | Kernel::NormalNoise { len } => f32s(len),
            Kernel::DropoutApply { len } => f32s(3 * len),
            Kernel::PermuteLastTwo { n, a, b } => f32s(2 * n * a * b),
            // Logits and targets in; per-sample loss, its gradient and [loss, accuracy] out.
            Kernel::SigmoidBce { n } => f32s(4 * n + 2),
            // Parameter, gradient and both moments in; parameter and moments out.
            Kernel::AdamUpdate { len } => f32s(7 * len),
            // The drawn images' bytes in, their pixels as f32 out.
            Kernel::GatherBatch {
                batch, image_len, ..
            } => (batch * image_len) as u64 + f32s(batch * image_len),
            Kernel::FmaPeak { invocations, .. } => f32s(invocations),
            Kernel::Copy { len } => f32s(2 * len),
        }
    }

    /// Multiply-adds summed into one output element: the rounding a result can carry, for
    /// the contraction tolerances. 1 for kernels without a contraction.
    pub fn terms(&self) -> usize {
        match *self {
            Kernel::Gemm(s) => s.k,
            Kernel::DenseForward { inputs, .. } => inputs,
            Kernel::DenseBackward { n, outputs, .. } => n.max(outputs),
            Kernel::Conv2dForward(g) | Kernel::ConvTranspose2dBackwardInput(g) => {
                g.in_channels * g.kernel_h * g.kernel_w
            }
            Kernel::Conv2dBackwardInput(g) | Kernel::ConvTranspose2dForward(g) => {
                g.out_channels * g.kernel_h * g.kernel_w
            }
            Kernel::Conv2dBackwardWeight(g) | Kernel::ConvTranspose2dBackwardWeight(g) => {
                g.batch * g.out_h * g.out_w
            }
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_costs_are_two_flops_per_multiply_add_and_each_matrix_once() {
        // G's dense layer at batch 32: [32, 100] x [100, 6272].
        let k = Kernel::Gemm(GemmShape {
            m: 32,
            n: 6272,
            k: 100,
            trans_a: false,
            trans_b: false,
        });
        assert_eq!(k.flops(), 2 * 32 * 6272 * 100);
        assert_eq!(k.bytes(), 4 * (32 * 100 + 100 * 6272 + 32 * 6272));
    }

    #[test]
    fn conv_costs_count_every_tap_and_both_sides() {
        // D's first layer at batch 32: 1 x 28 x 28 -> 64 x 14 x 14, 3 x 3 taps.
        let g = Conv2dGeometry::conv_same(32, 1, (28, 28), 64, (3, 3), (2, 2));
        let forward = Kernel::Conv2dForward(g);
        assert_eq!(forward.flops(), 2 * (32 * 64 * 14 * 14) * 9);
        // x, w, b in; y out.
        assert_eq!(
            forward.bytes(),
            4 * (32 * 784 + 64 * 9 + 64 + 32 * 64 * 196)
        );
        assert_eq!(Kernel::Conv2dBackwardWeight(g).flops(), forward.flops());
        assert_eq!(
            Kernel::Conv2dBackwardInput(g).bytes(),
            4 * (32 * 64 * 196 + 64 * 9 + 32 * 784)
        );

        // G's middle transposed conv: 128 x 14 x 14 -> 64 x 28 x 28, bias of 64 channels.
        let g = Conv2dGeometry::transpose_same(32, 128, (14, 14), 64, (3, 3), (2, 2));
        let t = Kernel::ConvTranspose2dForward(g);
        assert_eq!(t.flops(), 2 * (32 * 128 * 196) * 64 * 9);
        assert_eq!(
            t.bytes(),
            4 * (32 * 128 * 196 + 128 * 64 * 9 + 64 + 32 * 64 * 784)
        );
    }

    #[test]
    fn memory_bound_kernels_cost_bytes_only() {
        let bn = BatchNormShape {
            n: 32,
            c: 64,
            p: 784,
            momentum: 0.99,
            epsilon: 1e-3,
        };
        let cases = [
            (
                Kernel::BatchNormForwardTrain(bn),
                4 * (2 * 32 * 64 * 784 + 8 * 64),
            ),
            (
                Kernel::BatchNormBackward(bn),
                4 * (3 * 32 * 64 * 784 + 5 * 64),
            ),
            (Kernel::AdamUpdate { len: 1000 }, 28_000),
            (Kernel::LeakyReluBackward { len: 10 }, 120),
            (Kernel::SigmoidBce { n: 32 }, 4 * (4 * 32 + 2)),
            (
                Kernel::GatherBatch {
                    batch: 2,
                    image_len: 784,
                    count: 60_000,
                },
                2 * 784 * 5,
            ),
            (Kernel::Copy { len: 1024 }, 8192),
        ];
        for (kernel, bytes) in cases {
            assert_eq!(kernel.bytes(), bytes, "{}", kernel.name());
            assert_eq!(kernel.flops(), 0, "{}", kernel.name());
        }
    }

    #[test]
    fn fma_peak_costs_two_flops_per_multiply_add() {
        let k = Kernel::FmaPeak {
            invocations: 1024,
            iterations: 10,
        };
        assert_eq!(k.flops(), 2 * 64 * 10 * 1024);
        assert_eq!(k.bytes(), 4096);
    }
}
