//! What the Write panel knows about its language model: which one is chosen, loaded,
//! loading or failing, and the models found on disk.

use std::path::PathBuf;

use crate::engine::{Event, JobHandle, JobId};
use crate::models::llm::ModelInfo;
use crate::models::llm::discover::DiscoveredModel;

/// What the user did in the model picker.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelPick {
    /// Make this GGUF the chosen model and load it now.
    Load(PathBuf),
    /// Show the "Open GGUF…" file dialog.
    OpenDialog,
    /// Search the disk for GGUF models again.
    Refresh,
}

/// A model load the panel asked for: the handle, so a newer choice cancels it.
#[derive(Clone, Debug)]
pub struct LoadJob {
    /// The engine job.
    pub job: JobHandle,
    /// The file.
    pub path: PathBuf,
    /// Jobs ahead of it when it was queued (0 once it runs).
    pub ahead: usize,
    /// Whether the worker started it.
    pub started: bool,
}

/// Everything the UI shows about the language model.
#[derive(Debug, Default)]
pub struct ModelState {
    /// The model generations go to.
    pub selected: PathBuf,
    /// The model the worker holds now (from the last `ModelLoaded`).
    pub loaded: Option<ModelInfo>,
    /// An explicit load in progress.
    pub load: Option<LoadJob>,
    /// A job (load or generation) that is reading a model file right now.
    pub reading: Option<(JobId, PathBuf)>,
    /// Why the last load failed, shown inline under the picker (with the engine's message).
    pub error: Option<(PathBuf, String)>,
    /// GGUF files found on disk.
    pub discovered: Vec<DiscoveredModel>,
    /// Whether the disk search is running.
    pub discovering: bool,
}

impl ModelState {
    /// Info about the selected model, once the worker has loaded it.
    pub fn selected_info(&self) -> Option<&ModelInfo> {
        self.loaded.as_ref().filter(|i| i.path == self.selected)
    }

    /// Whether the selected model is being read from disk (by a load or a generation).
    pub fn is_loading(&self) -> bool {
        self.reading.is_some() || self.load.is_some()
    }

    /// Whether the selected model is known to have no chat template (a base model).
    pub fn lacks_chat_template(&self) -> bool {
        self.selected_info().is_some_and(|i| !i.has_chat_template)
    }

    /// The load error for the selected model, if its last load failed.
    pub fn selected_error(&self) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(p, _)| *p == self.selected)
            .map(|(_, e)| e.as_str())
    }

    /// Whether this event is about the explicit load job.
    pub fn owns(&self, job: JobId) -> bool {
        self.load.as_ref().is_some_and(|l| l.job.id() == job)
    }

    /// Updates the state from any engine event: model loads happen inside generation jobs too.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::ModelLoading { job, path } => {
                self.reading = Some((*job, path.clone()));
            }
            Event::ModelLoaded { job, info } => {
                if self.reading.as_ref().is_some_and(|(j, _)| j == job) {
                    self.reading = None;
                }
                if self.error.as_ref().is_some_and(|(p, _)| *p == info.path) {
                    self.error = None;
                }
                self.loaded = Some((**info).clone());
            }
            Event::Failed { job, error } => {
                // A failure while the file was being read is a load error, whoever asked.
                if let Some((j, path)) = &self.reading
                    && j == job
                {
                    self.error = Some((path.clone(), error.to_string()));
                    // The worker dropped the old weights before reading the new file.
                    self.loaded = None;
                    self.reading = None;
                }
            }
            Event::Cancelled { job } | Event::Finished { job }
                if self.reading.as_ref().is_some_and(|(j, _)| j == job) =>
            {
                self.reading = None;
            }
            _ => {}
        }
        if let Some(load) = &mut self.load
            && load.job.id() == event.job()
        {
            match event {
                Event::Queued { ahead, .. } => load.ahead = *ahead,
                Event::Started { .. } => {
                    load.started = true;
                    load.ahead = 0;
                }
                Event::Finished { .. } | Event::Cancelled { .. } | Event::Failed { .. } => {
                    self.load = None;
                }
                _ => {}
            }
        }
    }
}
