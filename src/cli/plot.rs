//! `gan-gpu plot`: a run's losses and D's accuracy as a PNG.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use gan_gpu::plot::{Metrics, PlotOptions, plot_metrics};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run's metrics.csv (or the run's folder).
    #[arg(long)]
    pub metrics: PathBuf,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Log rows the moving average spans [default: a fiftieth of the rows, at least 1].
    #[arg(long)]
    pub window: Option<usize>,
    /// Width of the picture in pixels.
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Height of the picture in pixels.
    #[arg(long, default_value_t = 800)]
    pub height: u32,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let csv = if args.metrics.is_dir() {
        args.metrics.join("metrics.csv")
    } else {
        args.metrics.clone()
    };
    let metrics = Metrics::read(&csv).with_context(|| format!("reading {}", csv.display()))?;
    let opts = PlotOptions {
        width: args.width,
        height: args.height,
        window: args.window,
    };
    let window = plot_metrics(&metrics, &args.out, opts)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {} log rows from step {} to {}, moving average over {window}",
        args.out.display(),
        metrics.len(),
        metrics.step[0],
        metrics.step[metrics.len() - 1]
    );
    Ok(())
}
