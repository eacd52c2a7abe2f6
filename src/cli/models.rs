//! `atelier models`: what is installed and discovered, or fetch the defaults.

use anyhow::{Context, bail};
use clap::Args;

use crate::paths;

/// `atelier models`
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// `list` (default) or `fetch`.
    #[arg(default_value = "list")]
    pub action: String,
}

/// Runs `atelier models`.
pub fn run(a: ModelsArgs) -> anyhow::Result<()> {
    match a.action.as_str() {
        "list" => {
            for (label, file) in [
                ("Write (default)", paths::SMOLLM2_FILE),
                ("Write (completion)", paths::GEMMA3_FILE),
            ] {
                let p = paths::default_model(file);
                let state = if p.exists() { "ok" } else { "missing" };
                println!("{label:20} {state:8} {}", p.display());
            }
            for m in crate::models::llm::discover::find_models() {
                if m.source == crate::models::llm::discover::ModelSource::Bundled {
                    continue;
                }
                println!(
                    "{:20} {:>6} MB {} ({})",
                    m.source.label(),
                    m.size / 1_000_000,
                    m.name,
                    m.path.display()
                );
            }
            Ok(())
        }
        "fetch" => {
            let script = paths::models_dir().join("fetch.sh");
            let status = std::process::Command::new("bash")
                .arg(&script)
                .status()
                .with_context(|| format!("cannot run {}", script.display()))?;
            if !status.success() {
                bail!("{} failed", script.display());
            }
            Ok(())
        }
        other => {
            bail!("unknown action '{other}': use `atelier models list` or `atelier models fetch`")
        }
    }
}
