//! Subcommands and their flags.

mod bench;
mod devices;
mod gif;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "gan-gpu",
    version,
    about = "Train a DCGAN on MNIST-format images with hand-written WGSL kernels on any GPU"
)]
pub struct Cli {
    /// Print debug detail: device limits, bytes moved between CPU and GPU per step.
    #[arg(long, short, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train the DCGAN, writing sample grids, metrics.csv and training.gif.
    Train(Box<train::TrainArgs>),
    /// List the GPU adapters wgpu can see, with the index --adapter accepts.
    Devices,
    /// Assemble a folder of grayscale PNG frames into a looping GIF.
    Gif(gif::GifArgs),
    /// Check every kernel against the CPU reference and time it at the model's shapes, with
    /// the adapter's ceilings and the whole training step.
    Bench(Box<bench::BenchArgs>),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(*args, cli.verbose),
        Command::Devices => devices::run(),
        Command::Gif(args) => gif::run(args),
        Command::Bench(args) => bench::run(*args),
    }
}
