//! Subcommands and their flags.

mod bench;
mod device;
mod devices;
mod gif;
mod interpolate;
mod plot;
mod sample;
mod signals;
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
    /// Train the DCGAN, writing sample grids, metrics.csv, checkpoints and training.gif;
    /// --resume continues from a checkpoint.
    Train(Box<train::TrainArgs>),
    /// Make images with a checkpoint's generator: a grid PNG, one PNG each, or an IDX file.
    Sample(Box<sample::SampleArgs>),
    /// A looping GIF of a walk through latent space with a checkpoint's generator.
    Interpolate(Box<interpolate::InterpolateArgs>),
    /// Plot a run's metrics.csv: D and G losses and D accuracy against the step.
    Plot(plot::PlotArgs),
    /// List the GPU adapters wgpu can see, with the index --adapter accepts.
    Devices,
    /// Assemble a folder of grayscale PNG frames into a looping GIF.
    Gif(gif::GifArgs),
    /// Check every kernel against the CPU reference and time it at the model's shapes, with
    /// the adapter's ceilings and the whole training step.
    Bench(Box<bench::BenchArgs>),
}

/// Runs the command; the exit status on success (130 or 143 when training was stopped by a
/// signal after saving its checkpoint).
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Train(args) => train::run(*args, cli.verbose),
        Command::Sample(args) => sample::run(*args).map(|_| 0),
        Command::Interpolate(args) => interpolate::run(*args).map(|_| 0),
        Command::Plot(args) => plot::run(args).map(|_| 0),
        Command::Devices => devices::run().map(|_| 0),
        Command::Gif(args) => gif::run(args).map(|_| 0),
        Command::Bench(args) => bench::run(*args).map(|_| 0),
    }
}
