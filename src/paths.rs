//! Where Atelier finds its models and keeps the user's data.

use std::path::PathBuf;

/// File name of the default instruct model (SmolLM2-135M-Instruct, Q4_1).
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// File name of the default completion model (Gemma 3 270M base, Q4_K_M).
pub const GEMMA3_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// The command that fetches the default models, shown wherever one is missing.
pub const FETCH_COMMAND: &str = "models/fetch.sh";

/// The folder holding the default models: `$ATELIER_MODELS`, else `models/` next to the
/// project (found from the executable or the working directory).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATELIER_MODELS") {
        return PathBuf::from(dir);
    }
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join("models"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/atelier -> project root
        for anc in exe.ancestors().skip(1).take(4) {
            candidates.push(anc.join("models"));
        }
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    candidates
        .iter()
        .find(|d| d.join("SHA256SUMS").is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("models"))
}

/// Path of a default model file inside [`models_dir`].
pub fn default_model(file: &str) -> PathBuf {
    models_dir().join(file)
}

/// Where documents, favourites and settings live: `$ATELIER_DATA`, else the platform's data
/// directory (e.g. `~/.local/share/atelier`).
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATELIER_DATA") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("dev", "Atelier", "atelier")
        .map(|p| p.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".atelier"))
}
