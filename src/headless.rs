//! What every headless front end shares (the CLI, `serve`, the soak, the benchmarks): an
//! engine without a window on the process's `--backend`, the names that stand for the bundled
//! models, and waiting for a job's results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::engine::{Engine, Event, JobHandle, JobId, Outcome};
use crate::features::faces::{FaceImage, FacesEvent};
use crate::features::style::{StyleEvent, StyleOutput};
use crate::paths;

/// The `--backend` of this process's headless command (set once, at start).
static BACKEND: std::sync::OnceLock<crate::gpu::Backend> = std::sync::OnceLock::new();

/// How long a headless job may go without any event before the engine counts as stuck: far
/// longer than any step (a tile of a 4096² picture, a model load) takes.
pub const IDLE: Duration = Duration::from_secs(600);

/// Sets the process's `--backend` (first call wins).
pub fn set_backend(backend: crate::gpu::Backend) {
    let _ = BACKEND.set(backend);
}

/// The backend headless commands run the image models on (`--backend`, default auto).
pub fn backend() -> crate::gpu::Backend {
    BACKEND.get().copied().unwrap_or_default()
}

/// A headless engine (no window: the GPU, when chosen, is a device of its own) on
/// [`backend`].
pub fn engine() -> anyhow::Result<Engine> {
    let engine = Engine::spawn(None, None)?;
    engine.set_backend(backend());
    Ok(engine)
}

/// Resolves `smollm2` / `gemma3` to the bundled language models, anything else to a path; a
/// missing bundled model names the command that fetches it.
pub fn resolve_llm(name: &str) -> anyhow::Result<PathBuf> {
    let path = match name {
        "smollm2" | "default" => paths::default_model(paths::SMOLLM2_FILE),
        "gemma3" => paths::default_model(paths::GEMMA3_FILE),
        other => PathBuf::from(other),
    };
    if !path.exists() {
        if matches!(name, "smollm2" | "default" | "gemma3") {
            bail!(
                "the default model {} is missing: run {} to fetch it",
                path.display(),
                paths::FETCH_COMMAND
            );
        }
        bail!("model file {} does not exist", path.display());
    }
    Ok(path)
}

/// The bundled face generator unless `model` names another; a missing file says how to get
/// it.
pub fn resolve_generator(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    match model {
        Some(p) if p.exists() => Ok(p.to_path_buf()),
        Some(p) => bail!("model file {} does not exist", p.display()),
        None => {
            let p = crate::features::faces::default_model();
            if !p.exists() {
                bail!(
                    "the face model {} is missing: run {} faces to fetch it",
                    p.display(),
                    paths::FETCH_COMMAND
                );
            }
            Ok(p)
        }
    }
}

/// Waits for a Faces render or walk job and returns its `n` images in index order.
pub fn collect_faces(engine: &Engine, job: &JobHandle, n: usize) -> anyhow::Result<Vec<FaceImage>> {
    let mut images: Vec<Option<FaceImage>> = vec![None; n];
    let outcome = engine.wait(job.id(), IDLE, |event| {
        if let Event::Faces {
            event: FacesEvent::Sample { index, image },
            ..
        } = event
            && let Some(slot) = images.get_mut(index)
        {
            *slot = Some(image);
        }
        anyhow::Ok(())
    })?;
    if outcome == Outcome::Cancelled {
        bail!("the job was cancelled");
    }
    images
        .into_iter()
        .enumerate()
        .map(|(i, img)| img.with_context(|| format!("image {i} never arrived")))
        .collect()
}

/// Waits for the Style job `job` and returns its output; `on_progress` sees each
/// [`StyleEvent::Loading`] and [`StyleEvent::Progress`] as it comes.
pub fn wait_style(
    engine: &Engine,
    job: JobId,
    mut on_progress: impl FnMut(&StyleEvent),
) -> anyhow::Result<StyleOutput> {
    let mut output = None;
    let outcome = engine.wait(job, IDLE, |event| {
        if let Event::Style { event, .. } = event {
            match event {
                StyleEvent::Output(out) => output = Some(out),
                // Only previews on a window's device end as a texture; headless jobs run full
                // passes.
                StyleEvent::Texture(_) => bail!("the style job left its result on a window's GPU"),
                progress => on_progress(&progress),
            }
        }
        Ok(())
    })?;
    if outcome == Outcome::Cancelled {
        bail!("the job was cancelled");
    }
    match output {
        Some(out) => Ok(*out),
        None => bail!("the style job finished without an image"),
    }
}
