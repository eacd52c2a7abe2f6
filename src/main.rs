//! Entry point: parse the command line, set up logging, then open the studio window or run a
//! headless command on the same engine.

use clap::Parser;

use atelier::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match args.command {
        Some(cmd) => cli::run(cmd),
        None => atelier::app::run_gui(atelier::app::GuiOptions {
            model: args.model,
            ..Default::default()
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, so scripts can show it as is.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
