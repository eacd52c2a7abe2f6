//! Entry point: parse the command line, set up logging, then open the studio window or run a
//! headless command on the same engine.

use clap::Parser;
use clap::error::ErrorKind;

use atelier::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    // mesa's Vulkan device-select layer connects to Wayland to find the default GPU and, in a
    // session without XDG_RUNTIME_DIR (ssh, CI, containers), prints "error: XDG_RUNTIME_DIR is
    // invalid" to stderr, which reads like Atelier's own errors. Atelier ranks adapters itself.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // SAFETY: the first statement of main: no other thread exists to read the environment.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match args.command {
        Some(cmd) => cli::run(cmd, args.backend),
        None => atelier::app::run_gui(atelier::app::GuiOptions {
            model: args.model,
            backend: args.backend,
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

/// Help and version go out as clap prints them; a usage mistake is one line, like every other
/// error, so scripts can show it as is.
fn usage_error(e: clap::Error) -> std::process::ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see --help)");
            std::process::ExitCode::from(2)
        }
    }
}
