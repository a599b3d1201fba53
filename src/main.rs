//! The `gan-gpu` command line.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let level = if args.verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .format_timestamp(None)
        .init();

    match cli::run(args) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code.into()),
        Err(err) => {
            // The whole chain: what we were doing, then why it failed.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::exit(1);
        }
    }
}
