//! The kernels of one training step, in the order `train::gpu::GpuTrainer` records them
//! (see `train` for the step itself). The benchmark times each distinct one and adds up
//! their costs; a test builds them all through the launchers and compares the dispatches
//! with the trainer's, so this list cannot drift from the step unnoticed.

use super::cost::Kernel;
use crate::model::{
    D_FEATURES, FakeBnMode, G_BASE, IMAGE_LEN, Layout, ModelConfig, discriminator_specs,
    generator_specs,
};
use crate::shapes::GemmShape;

/// Every launcher call of one training step at `batch`, with repeats, in step order.
/// `dataset_images` is the size of the uploaded training set (no gather without one).
pub fn step_kernels(cfg: &ModelConfig, batch: usize, dataset_images: usize) -> Vec<Kernel> {
    let l = cfg.layout(batch);
    let mut k = Vec::new();

    // Draw the real batch and D's noise.
    if dataset_images > 0 {
        k.push(Kernel::GatherBatch {
            batch,
            image_len: IMAGE_LEN,
            count: dataset_images,
        });
    }
    k.push(Kernel::NormalNoise {
        len: batch * l.latent,
    });

    // G's fakes, then D's updates on the real batch and on the fakes.
    g_forward(&mut k, &l, cfg.fake_bn == FakeBnMode::Training);
    for _ in 0..2 {
        d_forward(&mut k, &l);
        k.push(Kernel::SigmoidBce { n: batch });
        d_backward(&mut k, &l, true, false);
        k.push(Kernel::AdamUpdate {
            len: arena_words(discriminator_specs().iter().map(|s| s.len()).sum()),
        });
    }

    // G's noise, then G's update through the frozen D.
    k.push(Kernel::NormalNoise {
        len: batch * l.latent,
    });
    g_forward(&mut k, &l, true);
    d_forward(&mut k, &l);
    k.push(Kernel::SigmoidBce { n: batch });
    d_backward(&mut k, &l, false, true);
    g_backward(&mut k, &l);
    k.push(Kernel::AdamUpdate {
        len: arena_words(generator_specs(l.latent).iter().map(|s| s.len()).sum()),
    });
    k
}

/// The length of one Adam update over a model of `params` values: the parameter arena is
/// padded to whole 16-byte words (`gpu::tensor::arena`), so the update runs four wide. (The
/// arena's alignment gaps between tensors, a few hundred values, are left out.)
fn arena_words(params: usize) -> usize {
    params.next_multiple_of(4)
}

/// Each kernel once, in order of first use, with how many times a step runs it.
pub fn distinct(kernels: &[Kernel]) -> Vec<(Kernel, usize)> {
    let mut out: Vec<(Kernel, usize)> = Vec::new();
    for kernel in kernels {
        match out.iter_mut().find(|(k, _)| k == kernel) {
            Some((_, count)) => *count += 1,
            None => out.push((*kernel, 1)),
        }
    }
    out
}

/// The step's floating-point work: the sum of [`Kernel::flops`] over its kernels.
pub fn step_flops(cfg: &ModelConfig, batch: usize, dataset_images: usize) -> u64 {
    step_kernels(cfg, batch, dataset_images)
        .iter()
        .map(Kernel::flops)
        .sum()
}

fn g_forward(k: &mut Vec<Kernel>, l: &Layout, bn_training: bool) {
    let n = l.batch;
    let (c0, h0, w0) = G_BASE;

    // Dense, LeakyReLU, NHWC -> NCHW.
    k.push(Kernel::DenseForward {
        n,
        inputs: l.latent,
        outputs: l.g_dense_out,
    });
    k.push(Kernel::LeakyReluForward {
        len: n * l.g_dense_out,
    });
    k.push(Kernel::PermuteLastTwo {
        n,
        a: h0 * w0,
        b: c0,
    });

    // BatchNorm, transposed conv, LeakyReLU (tanh last).
    for layer in 0..3 {
        k.push(if bn_training {
            Kernel::BatchNormForwardTrain(l.g_bn[layer])
        } else {
            Kernel::BatchNormForwardInference(l.g_bn[layer])
        });
        let g = l.g_convt[layer];
        k.push(Kernel::ConvTranspose2dForward(g));
        let len = g.input_len();
        k.push(if layer < 2 {
            Kernel::LeakyReluForward { len }
        } else {
            Kernel::TanhForward { len }
        });
    }
}

fn d_forward(k: &mut Vec<Kernel>, l: &Layout) {
    let n = l.batch;

    // Conv + bias, LeakyReLU, dropout, twice.
    for g in l.d_conv {
        let len = g.output_len();
        k.push(Kernel::Conv2dForward(g));
        k.push(Kernel::LeakyReluForward { len });
        k.push(Kernel::DropoutMask { len });
        k.push(Kernel::DropoutApply { len });
    }

    // NHWC flatten, Dense(1).
    let g = l.d_conv[1];
    k.push(Kernel::PermuteLastTwo {
        n,
        a: g.out_channels,
        b: g.out_h * g.out_w,
    });
    k.push(Kernel::DenseForward {
        n,
        inputs: D_FEATURES,
        outputs: 1,
    });
}

fn d_backward(k: &mut Vec<Kernel>, l: &Layout, param_grads: bool, input_grad: bool) {
    let n = l.batch;

    // Dense head (only its input gradient when D is frozen), then the flatten.
    k.push(if param_grads {
        Kernel::DenseBackward {
            n,
            inputs: D_FEATURES,
            outputs: 1,
            input_grad: true,
        }
    } else {
        Kernel::Gemm(GemmShape {
            m: n,
            n: D_FEATURES,
            k: 1,
            trans_a: false,
            trans_b: true,
        })
    });
    let g = l.d_conv[1];
    k.push(Kernel::PermuteLastTwo {
        n,
        a: g.out_h * g.out_w,
        b: g.out_channels,
    });

    // Dropout, LeakyReLU, the conv's gradients; D's own input gradient only for G's update.
    for layer in (0..2).rev() {
        let g = l.d_conv[layer];
        let len = g.output_len();
        k.push(Kernel::DropoutApply { len });
        k.push(Kernel::LeakyReluBackward { len });
        if param_grads {
            k.push(Kernel::BiasBackward {
                n,
                c: g.out_channels,
                p: g.out_h * g.out_w,
            });
            k.push(Kernel::Conv2dBackwardWeight(g));
        }
        if layer > 0 || input_grad {
            k.push(Kernel::Conv2dBackwardInput(g));
        }
    }
}

fn g_backward(k: &mut Vec<Kernel>, l: &Layout) {
    let n = l.batch;
    k.push(Kernel::TanhBackward {
        len: l.g_convt[2].input_len(),
    });

    // Per layer, top down: the transposed conv's bias, weight and input gradients, the
    // BatchNorm, and the LeakyReLU below it.
    for layer in (0..3).rev() {
        let g = l.g_convt[layer];
        k.push(Kernel::BiasBackward {
            n,
            c: g.in_channels,
            p: g.in_h * g.in_w,
        });
        k.push(Kernel::ConvTranspose2dBackwardWeight(g));
        k.push(Kernel::ConvTranspose2dBackwardInput(g));
        k.push(Kernel::BatchNormBackward(l.g_bn[layer]));
        if layer > 0 {
            k.push(Kernel::LeakyReluBackward {
                len: l.g_convt[layer - 1].input_len(),
            });
        }
    }

    // The reshape, LeakyReLU and Dense (no input gradient: the noise is not trained).
    let (c0, h0, w0) = G_BASE;
    k.push(Kernel::PermuteLastTwo {
        n,
        a: c0,
        b: h0 * w0,
    });
    k.push(Kernel::LeakyReluBackward {
        len: n * l.g_dense_out,
    });
    k.push(Kernel::DenseBackward {
        n,
        inputs: l.latent,
        outputs: l.g_dense_out,
        input_grad: false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step's GFLOP by hand, layer by layer (2 per multiply-add, every 3 x 3 tap).
    fn hand_counted(n: u64) -> u64 {
        let conv = |pixels: u64, c_out: u64, c_in: u64| 2 * n * pixels * c_out * c_in * 9;
        // G: Dense 100 -> 6272, then transposed convs 128 -> 128 (7x7 -> 14x14), 128 -> 64
        // (-> 28x28) and 64 -> 1 (28x28), counted on their small sides.
        let g_dense = 2 * n * 100 * 6272;
        let g_convt = conv(49, 128, 128) + conv(196, 128, 64) + conv(784, 64, 1);
        let g_forward = g_dense + g_convt;
        // D: conv 1 -> 64 (28x28 -> 14x14), 64 -> 128 (-> 7x7), Dense 6272 -> 1.
        let (d0, d1, d_dense) = (conv(196, 64, 1), conv(49, 128, 64), 2 * n * 6272);
        let d_forward = d0 + d1 + d_dense;
        // D's update: dense dx and dw, both gradients of conv 2, the weight one of conv 1.
        let d_backward_params = 2 * d_dense + 2 * d1 + d0;
        // G's update: D's input gradient only, then G's weight and input gradients (its
        // Dense needs no input gradient).
        let d_backward_input = d_dense + d1 + d0;
        let g_backward = 2 * g_convt + g_dense;

        let fakes = g_forward;
        let d_updates = 2 * (d_forward + d_backward_params);
        let g_update = g_forward + d_forward + d_backward_input + g_backward;
        fakes + d_updates + g_update
    }

    #[test]
    fn step_flops_are_the_hand_count_and_about_7_68_gflop_at_batch_32() {
        let cfg = ModelConfig::default();
        let flops = step_flops(&cfg, 32, 60_000);
        assert_eq!(flops, hand_counted(32));
        assert_eq!(flops, 7_681_343_488);
        assert!((flops as f64 / 7.68e9 - 1.0).abs() < 1e-3, "{flops}");
    }

    #[test]
    fn step_flops_scale_with_the_batch() {
        let cfg = ModelConfig::default();
        for batch in [1, 64, 256] {
            assert_eq!(step_flops(&cfg, batch, 10), hand_counted(batch as u64));
        }
        assert_eq!(step_flops(&cfg, 256, 10), 8 * step_flops(&cfg, 32, 10));
    }

    #[test]
    fn distinct_counts_repeats() {
        let cfg = ModelConfig::default();
        let all = step_kernels(&cfg, 32, 100);
        let unique = distinct(&all);
        assert_eq!(unique.iter().map(|(_, c)| c).sum::<usize>(), all.len());
        let noise = Kernel::NormalNoise { len: 32 * 100 };
        assert_eq!(
            unique.iter().find(|(k, _)| *k == noise).map(|u| u.1),
            Some(2)
        );
        // D's first conv runs forward in each of D's two updates and in G's.
        let d0 = Kernel::Conv2dForward(cfg.layout(32).d_conv[0]);
        assert_eq!(unique.iter().find(|(k, _)| *k == d0).map(|u| u.1), Some(3));
    }
}
