//! Entry point: parse the command line, set up logging, then open the studio window or run a
//! headless command on the same engine.

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::prelude::*;

use atelier::cli::{self, Cli, Command};

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
    // `--version` and `--help` list the bundled models (and whether they are installed).
    let command = Cli::command()
        .long_version(&*Box::leak(cli::long_version().into_boxed_str()))
        .after_help(cli::bundled_models_help());
    let args = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    let long_running = matches!(
        args.command,
        None | Some(Command::Soak(_) | Command::Serve(_))
    );
    init_logging(&args, long_running);
    let result = match args.command {
        Some(cmd) => cli::run(cmd, args.backend),
        None => gui(args.model, args.backend, args.kiosk, args.kiosk_config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = one_line(&e);
            // Into the log file only: stderr gets the one line below.
            tracing::error!(target: "atelier::exit", "{line}");
            eprintln!("error: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, so scripts can show it as is. A cause whose text its
/// error already says (errors that print their source, and transparent wrappers) is not
/// repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|prev| prev.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Opens the studio, in kiosk mode when asked on the command line or in the settings.
fn gui(
    model: Option<std::path::PathBuf>,
    backend: Option<atelier::gpu::Backend>,
    kiosk: bool,
    kiosk_config: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let data = atelier::paths::data_dir();
    let kiosk = kiosk || kiosk_config.is_some() || atelier::store::Store::kiosk_setting(&data);
    let kiosk = if kiosk {
        Some(atelier::kiosk::KioskConfig::find(
            kiosk_config.as_deref(),
            &data,
        )?)
    } else {
        None
    };
    atelier::app::run_gui(atelier::app::GuiOptions {
        model,
        backend,
        kiosk,
        ..Default::default()
    })
}

/// Logs go to stderr (filtered by `--log`/RUST_LOG, default warnings) and, for the studio and
/// the soak, also to the rotated log file in the data folder (info and up from Atelier).
fn init_logging(args: &Cli, to_file: bool) {
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    let stderr_filter = filter(args.default_log_filter());
    let stderr_filter = match "atelier::exit=off".parse() {
        Ok(d) => stderr_filter.add_directive(d),
        Err(_) => stderr_filter,
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(stderr_filter);
    let file = if to_file {
        match atelier::logs::RotatingLog::open(&atelier::logs::log_dir(), atelier::logs::MAX_BYTES)
        {
            Ok(log) => Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(log)
                    .with_filter(tracing_subscriber::EnvFilter::new(
                        args.log.as_deref().unwrap_or("warn,atelier=info"),
                    )),
            ),
            Err(e) => {
                eprintln!(
                    "atelier: cannot open the log file in {}: {e}",
                    atelier::logs::log_dir().display()
                );
                None
            }
        }
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    if to_file {
        tracing::info!("atelier {} starting", env!("CARGO_PKG_VERSION"));
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

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.txt: {source}")]
    struct Read {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_its_error_already_says_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::from(Read { source: io }).context("loading the texts");
        assert_eq!(
            one_line(&e),
            "loading the texts: cannot read x.txt: no such file"
        );
        let plain = anyhow::anyhow!("the disk is full").context("cannot save");
        assert_eq!(one_line(&plain), "cannot save: the disk is full");
    }
}
