use crate::shapes::{AdamConfig, BatchNormShape, Conv2dGeometry};

use super::{D_CONV_CHANNELS, G_BASE, G_CONVT_CHANNELS, IMAGE_SIDE, KERNEL};

/// How the generator's BatchNorm layers run when G makes the fakes that D is trained on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FakeBnMode {
    /// Moving averages, as the reference program's `generator.predict` does.
    Inference,
    /// Batch statistics, updating the running statistics (PyTorch's usual DCGAN loop).
    Training,
}

impl FakeBnMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FakeBnMode::Inference => "inference",
            FakeBnMode::Training => "training",
        }
    }
}

/// Everything that fixes the arithmetic of a training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    pub latent_dim: usize,
    pub batch: usize,
    pub leaky_alpha: f32,
    pub dropout_rate: f64,
    pub bn_momentum: f32,
    pub bn_epsilon: f32,
    pub adam: AdamConfig,
    pub fake_bn: FakeBnMode,
}

impl Default for ModelConfig {
    /// The reference program's values (Keras defaults where it sets none).
    fn default() -> Self {
        ModelConfig {
            latent_dim: 100,
            batch: 32,
            leaky_alpha: 0.2,
            dropout_rate: 0.3,
            bn_momentum: 0.99,
            bn_epsilon: 1e-3,
            adam: AdamConfig {
                lr: 2e-4,
                beta1: 0.5,
                beta2: 0.999,
                epsilon: 1e-7,
            },
            fake_bn: FakeBnMode::Training,
        }
    }
}

/// The shapes of every layer at one batch size.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub batch: usize,
    pub latent: usize,
    /// Dense output features of G: 7 * 7 * 128 (NHWC order as Keras reshapes it).
    pub g_dense_out: usize,
    pub g_bn: [BatchNormShape; 3],
    pub g_convt: [Conv2dGeometry; 3],
    pub d_conv: [Conv2dGeometry; 2],
}

impl ModelConfig {
    pub fn layout(&self, batch: usize) -> Layout {
        let (c0, h0, w0) = G_BASE;
        let [c1, c2, c3] = G_CONVT_CHANNELS;
        let [d1, d2] = D_CONV_CHANNELS;
        let k = (KERNEL, KERNEL);
        let bn = |c: usize, side: usize| BatchNormShape {
            n: batch,
            c,
            p: side * side,
            momentum: self.bn_momentum,
            epsilon: self.bn_epsilon,
        };
        Layout {
            batch,
            latent: self.latent_dim,
            g_dense_out: c0 * h0 * w0,
            g_bn: [bn(c0, h0), bn(c1, h0 * 2), bn(c2, h0 * 4)],
            g_convt: [
                Conv2dGeometry::transpose_same(batch, c0, (h0, w0), c1, k, (2, 2)),
                Conv2dGeometry::transpose_same(batch, c1, (h0 * 2, w0 * 2), c2, k, (2, 2)),
                Conv2dGeometry::transpose_same(batch, c2, (h0 * 4, w0 * 4), c3, k, (1, 1)),
            ],
            d_conv: [
                Conv2dGeometry::conv_same(batch, 1, (IMAGE_SIDE, IMAGE_SIDE), d1, k, (2, 2)),
                Conv2dGeometry::conv_same(batch, d1, (14, 14), d2, k, (2, 2)),
            ],
        }
    }
}
