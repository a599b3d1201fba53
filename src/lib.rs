//! gan-gpu: a DCGAN trained on the GPU with hand-written WGSL kernels, and a plain CPU
//! reference implementation of every kernel to check them against.

pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod images;
pub mod model;
pub mod plot;
pub mod rng;
pub mod sample;
pub mod shapes;
pub mod train;

pub use error::{Error, Result};
