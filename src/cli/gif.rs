use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct GifArgs {
    /// Folder of grayscale PNG frames, ordered by the number in their names
    /// (mnist_5000.png before mnist_10000.png).
    #[arg(long)]
    pub input: PathBuf,
    /// The GIF to write (replaced atomically).
    #[arg(long)]
    pub output: PathBuf,
    /// How long each frame shows, in seconds (stored in hundredths).
    #[arg(long, default_value_t = 0.5)]
    pub duration: f64,
}

pub fn run(args: GifArgs) -> anyhow::Result<()> {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 655.35) {
        anyhow::bail!(
            "--duration must be between 0.01 and 655.35 seconds, got {}",
            args.duration
        );
    }
    let frames = gan_gpu::images::frames_in_dir(&args.input)
        .with_context(|| format!("reading frames from {}", args.input.display()))?;
    gan_gpu::images::assemble_gif(&frames, &args.output, args.duration)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("wrote {} ({} frames)", args.output.display(), frames.len());
    Ok(())
}
