//! The headless command line: the same engine as the GUI, driven from a terminal or a script.
//! One module per command family; what they share with `serve`, the soak and the benchmarks
//! is in [`crate::headless`].

pub mod faces;
pub mod models;
pub mod style;
pub mod train_faces;
mod train_job;
pub mod train_write;
pub mod write;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::paths;

/// Atelier: a creative studio that runs generative models locally.
#[derive(Debug, Parser)]
#[command(name = "atelier", version, about, long_about = None)]
pub struct Cli {
    /// With no command, the studio window opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model the Write panel starts with (GUI only).
    #[arg(long, global = false)]
    pub model: Option<PathBuf>,
    /// Log filter (e.g. "info", "atelier=debug"); also read from RUST_LOG. Default: warnings.
    #[arg(long)]
    pub log: Option<String>,
    /// Where the image models (faces, style) run: auto takes the GPU when the adapter is a
    /// real GPU and the CPU otherwise (a software rasterizer is slower than the CPU kernels);
    /// gpu forces it (any adapter, software included). The language model stays on the CPU.
    /// Default: auto, or the studio's saved setting.
    #[arg(long, global = true, value_enum)]
    pub backend: Option<crate::gpu::Backend>,
    /// Trade-show mode: fullscreen, large type, an attract loop when idle, a reset to a clean
    /// state after a longer idle time, no file dialogs, quit only with the configured keys
    /// (default Ctrl+Shift+Q). Also on when the settings say `"kiosk": true`.
    #[arg(long)]
    pub kiosk: bool,
    /// The kiosk configuration (TOML; see the README). Default: kiosk.toml in the data folder,
    /// else built-in defaults. Implies --kiosk.
    #[arg(long, value_name = "PATH")]
    pub kiosk_config: Option<PathBuf>,
}

impl Cli {
    /// The log filter to use when neither `--log` nor RUST_LOG says. Headless commands print a
    /// failed job's error themselves as their one `error:` line, so the worker's own record of
    /// it is left out there (it is handled once, by whoever shows it).
    pub fn default_log_filter(&self) -> &str {
        match (&self.log, &self.command) {
            (Some(f), _) => f,
            // A server reports its address and each request.
            (None, Some(Command::Serve(_))) => "warn,atelier=info,atelier::engine::worker=off",
            (None, Some(_)) => "warn,atelier::engine::worker=off,atelier::engine::remote_lane=off",
            (None, None) => "warn",
        }
    }
}

/// Headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text with a local LLM; streams text to stdout and speed to stderr.
    Write(write::WriteArgs),
    /// Score a given continuation teacher-forced (log-probabilities per token).
    Score(write::ScoreArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(write::TokenizeArgs),
    /// Generate faces with the DCGAN: one face, a grid of seeds, or a looping walk as a GIF.
    Faces(faces::FacesArgs),
    /// Restyle a photo with one of 26 built-in styles, a blend of them, or any painting.
    Style(style::StyleArgs),
    /// List the models Atelier knows about (bundled and discovered), or fetch the defaults.
    Models(models::ModelsArgs),
    /// Serve the local engine over the OpenAI-compatible HTTP API (and PNG image endpoints)
    /// for other studios and OpenAI clients; see the README.
    Serve(crate::serve::ServeArgs),
    /// Drive all three models in a loop for a while, printing memory (RSS) and job latency
    /// over time, to check that nothing grows; see BENCHMARKS.md.
    Soak(crate::soak::SoakArgs),
    /// Benchmarks (same code path as the studio); see BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train or fine-tune a model on your own material; see the README.
    #[command(subcommand)]
    Train(TrainCommand),
}

/// `atelier train …`
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Teach the face generator a folder of pictures (fine-tuning, or from scratch).
    Faces(train_faces::TrainFacesArgs),
    /// Teach a language model the voice of your writing: a LoRA adapter (llama.cpp's GGUF
    /// format) trained on your texts.
    Write(train_write::TrainWriteArgs),
}

/// `atelier bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Model load, prompt processing and decode speed, peak RSS of the Write models.
    Write(crate::bench::write::WriteBenchArgs),
    /// DCGAN single-sample latency, batch throughput and live-walk frame pacing.
    Faces(crate::bench::faces::FacesBenchArgs),
    /// Style network latency (multistyle26, arbitrary-style transform and predictor).
    Style(crate::bench::style::StyleBenchArgs),
    /// Sliced Wasserstein distance of generators' samples to a picture folder (scores
    /// `atelier train faces` against its PyTorch peer).
    Swd(train_faces::SwdArgs),
}

/// The bundled models, each with whether it is installed (for `--help` and `--version`).
pub fn bundled_models_help() -> String {
    use crate::models::stylenet::{MULTISTYLE_FILE, PREDICT_FILE, TRANSFORM_FILE};
    let mut text = format!(
        "Bundled models (fetched into {} by {}):",
        paths::models_dir().display(),
        paths::FETCH_COMMAND
    );
    for (panel, file, what) in [
        (
            "Write",
            paths::SMOLLM2_FILE,
            "SmolLM2-135M-Instruct Q4_1, default, instruct",
        ),
        (
            "Write",
            paths::GEMMA3_FILE,
            "Gemma 3 270M base Q4_K_M, completion",
        ),
        (
            "Faces",
            crate::features::faces::DEFAULT_MODEL_FILE,
            "DCGAN 64x64 face generator",
        ),
        ("Style", MULTISTYLE_FILE, "multistyle26, 26 built-in styles"),
        ("Style", PREDICT_FILE, "arbitrary-style predictor"),
        ("Style", TRANSFORM_FILE, "arbitrary-style transform"),
    ] {
        let state = if paths::default_model(file).is_file() {
            "installed"
        } else {
            "missing"
        };
        text.push_str(&format!("\n  {panel}: {file} ({what}) [{state}]"));
    }
    text.push_str(&format!(
        "\nLogs: {} (rotated at {} MB)",
        crate::logs::log_dir()
            .join(crate::logs::FILE_NAME)
            .display(),
        crate::logs::MAX_BYTES / (1024 * 1024)
    ));
    text
}

/// What `--version` prints: the version and the bundled models.
pub fn long_version() -> String {
    format!("{}\n{}", env!("CARGO_PKG_VERSION"), bundled_models_help())
}

/// Runs a headless command.
pub fn run(cmd: Command, backend: Option<crate::gpu::Backend>) -> anyhow::Result<()> {
    crate::headless::set_backend(backend.unwrap_or_default());
    match cmd {
        Command::Write(a) => write::write(a),
        Command::Score(a) => write::score(a),
        Command::Tokenize(a) => write::tokenize(a),
        Command::Faces(a) => faces::run(a),
        Command::Style(a) => style::run(a),
        Command::Bench(BenchCommand::Style(a)) => crate::bench::style::run(&a),
        Command::Bench(BenchCommand::Swd(a)) => train_faces::swd_cli(&a),
        Command::Train(TrainCommand::Faces(a)) => train_faces::run_cli(a),
        Command::Train(TrainCommand::Write(a)) => train_write::run(a),
        Command::Models(a) => models::run(a),
        Command::Soak(a) => crate::soak::run(&a),
        Command::Serve(a) => crate::serve::run(&a),
        Command::Bench(BenchCommand::Write(a)) => {
            let report = crate::bench::write::run_write_bench(&a)?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", crate::bench::write::summary_text(&report));
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Faces(a)) => {
            let report = crate::bench::faces::run_faces_bench(&a)?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", crate::bench::faces::summary_text(&report));
            }
            Ok(())
        }
    }
}
