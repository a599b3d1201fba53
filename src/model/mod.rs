//! The reference DCGAN: its configuration, its parameters and their initial values.

mod config;
mod params;

pub use config::{FakeBnMode, Layout, ModelConfig};
pub use params::{
    ParamSpec, TensorSet, Weights, discriminator_specs, generator_specs, generator_state_specs,
};

/// Channels, height and width of the generator's first feature map (Dense -> Reshape).
pub const G_BASE: (usize, usize, usize) = (128, 7, 7);
/// Output channels of the generator's transposed convolutions.
pub const G_CONVT_CHANNELS: [usize; 3] = [128, 64, 1];
/// Output channels of the discriminator's convolutions.
pub const D_CONV_CHANNELS: [usize; 2] = [64, 128];
/// Image side length and channel count.
pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Every convolution in both models is 3x3.
pub const KERNEL: usize = 3;
/// Features entering D's Dense head: 7 * 7 * 128.
pub const D_FEATURES: usize = 7 * 7 * 128;
