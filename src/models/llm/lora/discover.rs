//! Finding the adapters a model can take: GGUF LoRA files in Atelier's adapters folder
//! (`<data>/adapters/`, where training saves them) and next to the model. Only headers are
//! read, and only of files whose first bytes say they are adapters, so a folder of large
//! models lists quickly.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::BaseShapes;
use super::gguf::read_header;

/// Files looked at per folder, at most (a huge folder never stalls the list).
const MAX_FILES: usize = 1000;
/// Bytes read to tell an adapter from a model before parsing its header.
const SNIFF_BYTES: usize = 64 * 1024;

/// An adapter that fits a given base model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AdapterEntry {
    /// The file.
    pub path: PathBuf,
    /// Its display name (file stem).
    pub name: String,
    /// The highest rank among its pairs.
    pub rank: usize,
    /// The projections it adapts (short names).
    pub targets: Vec<String>,
    /// File size in bytes.
    pub size: u64,
}

/// Atelier's adapters folder: `<data>/adapters/`.
pub fn adapters_dir() -> PathBuf {
    crate::paths::data_dir().join("adapters")
}

/// The folders searched for `model`'s adapters: the adapters folder, the model's own folder
/// and an `adapters/` folder beside the model.
pub fn search_dirs(model: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![adapters_dir()];
    if let Some(parent) = model.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        dirs.push(parent.to_path_buf());
        dirs.push(parent.join("adapters"));
    }
    dirs.dedup();
    dirs
}

/// The adapters in `dirs` (not recursive) that fit `base`, sorted by name. Files that are not
/// adapters, or are adapters for other models, are left out (logged at debug level).
pub fn compatible(dirs: &[PathBuf], base: &BaseShapes) -> Vec<AdapterEntry> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten().take(MAX_FILES) {
            let path = entry.path();
            let is_gguf = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
            if !is_gguf || !looks_like_adapter(&path) {
                continue;
            }
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !seen.insert(key) {
                continue;
            }
            match read_header(&path, Some(base)) {
                Ok(h) => {
                    let mut targets: Vec<super::LoraTarget> =
                        h.pairs.iter().map(|p| p.target).collect();
                    targets.sort();
                    targets.dedup();
                    found.push(AdapterEntry {
                        name: path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        rank: h.pairs.iter().map(|p| p.rank).max().unwrap_or(0),
                        targets: targets.iter().map(|t| t.short_name().into()).collect(),
                        size: entry.metadata().map(|m| m.len()).unwrap_or(0),
                        path,
                    });
                }
                Err(e) => tracing::debug!("not listed as an adapter: {e}"),
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    found
}

/// The adapters that fit the model at `model` (its header is read for its shapes), from
/// [`search_dirs`].
pub fn for_model(model: &Path) -> Result<Vec<AdapterEntry>, crate::models::llm::LlmError> {
    let (content, _, _) = crate::models::llm::gguf::open(model)?;
    let base = BaseShapes::from_content(&content);
    Ok(compatible(&search_dirs(model), &base))
}

/// Whether the file's first bytes are a GGUF header that mentions `adapter.type` (models do
/// not; their headers are large, adapters' small).
pub fn looks_like_adapter(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if file
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .is_err()
    {
        return false;
    }
    head.starts_with(b"GGUF") && head.windows(12).any(|w| w == b"adapter.type")
}
