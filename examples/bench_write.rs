//! The Write benchmark as a standalone binary, with the same flags as `atelier bench write`:
//! `cargo run --release --example bench_write -- --model models/X.gguf --json`.
//!
//! `benches/write.sh` uses the `atelier bench write` subcommand when the binary has it and
//! falls back to this example otherwise.

use clap::Parser;

use atelier::bench::write::{WriteBenchArgs, run_write_bench, summary_text};

/// Measures model load, prompt processing, decode speed and peak RSS of the Write path.
#[derive(Debug, Parser)]
#[command(name = "bench_write")]
struct Cli {
    #[command(flatten)]
    args: WriteBenchArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let result = run_write_bench(&cli.args)?;
    if cli.args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", summary_text(&result));
    }
    Ok(())
}
