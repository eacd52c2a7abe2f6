//! Finding GGUF models the user already has: the Hugging Face cache, LM Studio's model folders
//! and Ollama's store (whose blobs are GGUF files named by digest; the manifests give the names).
//! Bounded walks only: a huge home folder never stalls the picker.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a discovered model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ModelSource {
    /// Atelier's own `models/` folder.
    Bundled,
    /// The Hugging Face hub cache.
    HuggingFace,
    /// LM Studio's models folder.
    LmStudio,
    /// Ollama's blob store.
    Ollama,
}

impl ModelSource {
    /// A short label for the picker.
    pub fn label(self) -> &'static str {
        match self {
            Self::Bundled => "Atelier",
            Self::HuggingFace => "Hugging Face",
            Self::LmStudio => "LM Studio",
            Self::Ollama => "Ollama",
        }
    }
}

/// A GGUF file found on disk.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DiscoveredModel {
    /// The file to open.
    pub path: PathBuf,
    /// A readable name (repo/file, or Ollama's `name:tag`).
    pub name: String,
    /// Where it was found.
    pub source: ModelSource,
    /// File size in bytes.
    pub size: u64,
}

/// The folders searched, overridable for tests.
#[derive(Clone, Debug, Default)]
pub struct SearchRoots {
    /// Atelier's models folder.
    pub bundled: Option<PathBuf>,
    /// Hugging Face hub cache folders.
    pub huggingface: Vec<PathBuf>,
    /// LM Studio model folders.
    pub lmstudio: Vec<PathBuf>,
    /// Ollama model stores (folders holding `manifests/` and `blobs/`).
    pub ollama: Vec<PathBuf>,
}

impl SearchRoots {
    /// The platform's usual locations, honouring `HF_HUB_CACHE`, `HF_HOME` and `OLLAMA_MODELS`.
    pub fn from_env() -> Self {
        let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
        let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
        let mut hf = Vec::new();
        if let Some(p) = env("HF_HUB_CACHE") {
            hf.push(p);
        } else if let Some(p) = env("HF_HOME") {
            hf.push(p.join("hub"));
        } else if let Some(h) = &home {
            hf.push(h.join(".cache/huggingface/hub"));
        }
        let mut lms = Vec::new();
        let mut ollama = Vec::new();
        if let Some(h) = &home {
            lms.push(h.join(".lmstudio/models"));
            lms.push(h.join(".cache/lm-studio/models"));
            ollama.push(h.join(".ollama/models"));
        }
        if let Some(p) = env("OLLAMA_MODELS") {
            ollama.insert(0, p);
        }
        ollama.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
        Self {
            bundled: Some(crate::paths::models_dir()),
            huggingface: hf,
            lmstudio: lms,
            ollama,
        }
    }
}

const MAX_DEPTH: usize = 6;
const MAX_ENTRIES: usize = 20_000;

/// Finds GGUF models under the usual locations.
pub fn find_models() -> Vec<DiscoveredModel> {
    find_models_in(&SearchRoots::from_env())
}

/// Finds GGUF models under `roots`, sorted by source then name, without duplicates.
pub fn find_models_in(roots: &SearchRoots) -> Vec<DiscoveredModel> {
    let mut out = Vec::new();
    if let Some(dir) = &roots.bundled {
        walk(dir, 1, &mut |p| {
            push(&mut out, p, ModelSource::Bundled, file_name(p))
        });
    }
    for dir in &roots.huggingface {
        walk(dir, MAX_DEPTH, &mut |p| {
            push(&mut out, p, ModelSource::HuggingFace, hf_name(dir, p))
        });
    }
    for dir in &roots.lmstudio {
        walk(dir, MAX_DEPTH, &mut |p| {
            let name = p
                .strip_prefix(dir)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| file_name(p));
            push(&mut out, p, ModelSource::LmStudio, name)
        });
    }
    for dir in &roots.ollama {
        ollama_models(dir, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| seen.insert(std::fs::canonicalize(&m.path).unwrap_or(m.path.clone())));
    out
}

fn push(out: &mut Vec<DiscoveredModel>, path: &Path, source: ModelSource, name: String) {
    // LoRA adapters are GGUF files too; they are listed for their model, not as models.
    if !is_gguf(path) || super::lora::discover::looks_like_adapter(path) {
        return;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    out.push(DiscoveredModel {
        path: path.to_path_buf(),
        name,
        source,
        size,
    });
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `models--org--repo/snapshots/<rev>/file.gguf` → `org/repo/file.gguf`.
fn hf_name(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let repo = parts
        .next()
        .map(|r| r.trim_start_matches("models--").replace("--", "/"))
        .unwrap_or_default();
    format!("{repo}/{}", file_name(p))
}

/// Calls `found` for every `*.gguf` file under `dir`, at most `depth` levels down.
fn walk(dir: &Path, depth: usize, found: &mut dyn FnMut(&Path)) {
    let mut budget = MAX_ENTRIES;
    walk_inner(dir, depth, found, &mut budget);
}

fn walk_inner(dir: &Path, depth: usize, found: &mut dyn FnMut(&Path), budget: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        // file_type() does not follow links; HF snapshots are symlinks to blobs, so stat.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth > 1 && !entry.file_name().to_string_lossy().starts_with('.') {
                walk_inner(&path, depth - 1, found, budget);
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            found(&path);
        }
    }
}

/// Reads Ollama manifests (`manifests/<registry>/<ns>/<model>/<tag>`) and resolves each
/// model layer's digest to `blobs/sha256-<hex>`.
fn ollama_models(root: &Path, out: &mut Vec<DiscoveredModel>) {
    let manifests = root.join("manifests");
    let mut files = Vec::new();
    collect_files(&manifests, 5, &mut files);
    for manifest in files {
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(layers) = json.get("layers").and_then(|l| l.as_array()) else {
            continue;
        };
        for layer in layers {
            let media = layer.get("mediaType").and_then(|m| m.as_str());
            let digest = layer.get("digest").and_then(|d| d.as_str());
            if let (Some("application/vnd.ollama.image.model"), Some(digest)) = (media, digest) {
                let blob = root.join("blobs").join(digest.replace(':', "-"));
                let rel = manifest.strip_prefix(&manifests).unwrap_or(&manifest);
                let comps: Vec<_> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                // registry/namespace/model/tag; the library namespace is implied.
                let name = match comps.as_slice() {
                    [.., ns, model, tag] if ns == "library" => format!("{model}:{tag}"),
                    [.., ns, model, tag] => format!("{ns}/{model}:{tag}"),
                    _ => rel.to_string_lossy().into_owned(),
                };
                push(out, &blob, ModelSource::Ollama, name);
            }
        }
    }
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth == 0 || out.len() > 1000 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, depth - 1, out);
        } else {
            out.push(p);
        }
    }
}

/// Whether the file starts with the GGUF magic bytes.
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gguf(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"GGUF\x03\0\0\0rest").unwrap();
    }

    #[test]
    fn finds_models_in_all_three_stores() {
        let t = tempfile::tempdir().unwrap();
        let hf = t.path().join("hf");
        let blob = hf.join("models--org--tiny/blobs/abc");
        gguf(&blob);
        let snap = hf.join("models--org--tiny/snapshots/rev1/tiny.Q4.gguf");
        std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&blob, &snap).unwrap();

        let lms = t.path().join("lms");
        gguf(&lms.join("pub/repo/model-q8.gguf"));
        // Not a GGUF despite the name: ignored.
        std::fs::write(lms.join("pub/repo/fake.gguf"), b"nope").unwrap();

        let ol = t.path().join("ollama");
        gguf(&ol.join("blobs/sha256-1234"));
        let man = ol.join("manifests/registry.ollama.ai/library/smol/latest");
        std::fs::create_dir_all(man.parent().unwrap()).unwrap();
        std::fs::write(
            &man,
            r#"{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:1234"},{"mediaType":"application/vnd.ollama.image.license","digest":"sha256:99"}]}"#,
        )
        .unwrap();

        let found = find_models_in(&SearchRoots {
            bundled: None,
            huggingface: vec![hf],
            lmstudio: vec![lms],
            ollama: vec![ol],
        });
        let names: Vec<_> = found.iter().map(|m| (m.source, m.name.as_str())).collect();
        assert!(
            names.contains(&(ModelSource::HuggingFace, "org/tiny/tiny.Q4.gguf")),
            "{names:?}"
        );
        assert!(
            names.contains(&(ModelSource::LmStudio, "pub/repo/model-q8.gguf")),
            "{names:?}"
        );
        assert!(
            names.contains(&(ModelSource::Ollama, "smol:latest")),
            "{names:?}"
        );
        assert_eq!(found.len(), 3, "{names:?}");
    }

    #[test]
    fn missing_folders_are_fine() {
        let roots = SearchRoots {
            bundled: Some("/nonexistent/a".into()),
            huggingface: vec!["/nonexistent/b".into()],
            lmstudio: vec![],
            ollama: vec!["/nonexistent/c".into()],
        };
        assert!(find_models_in(&roots).is_empty());
    }
}
