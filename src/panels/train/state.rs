//! The Train panel's state: which form shows, the forms' settings, the live run and the runs
//! list. UI state only: the work happens on the engine's long-job lane and on small named
//! loader threads.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use super::estimate::Estimate;
use super::forms::{PicturesForm, WritingForm};
use super::history::RunList;
use super::live::LiveRun;
use super::preview::Preview;

/// The dialogs this panel asks for (the tag comes back with the chosen path).
pub(super) const PICTURES_DIALOG: &str = "train-pictures";
pub(super) const TEXT_DIALOG: &str = "train-text";
pub(super) const MODEL_DIALOG: &str = "train-model";
pub(super) const EXPORT_DIALOG: &str = "train-export";

/// Which kind of training the page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tab {
    /// Pictures → the face generator.
    #[default]
    Pictures,
    /// Writing → a LoRA adapter.
    Writing,
}

/// The Train page.
#[derive(Default)]
pub struct TrainPanel {
    /// The form that shows.
    pub tab: Tab,
    pub(super) pictures: PicturesForm,
    pub(super) writing: WritingForm,
    /// The chosen pictures, loaded for the contact sheet (on a named thread).
    pub(super) preview: Preview,
    /// The estimate of the next writing run.
    pub(super) estimate: Estimate,
    /// The run in progress (or the last one, ended, until another starts).
    pub(super) live: Option<LiveRun>,
    /// The live run's sample grid, uploaded.
    pub(super) samples_texture: Option<egui::TextureHandle>,
    /// Earlier runs, read from disk.
    pub(super) runs: RunList,
    /// A pictures run whose generator is being exported: where to, and then whether to open it
    /// in Faces.
    pub(super) exports: Vec<Receiver<Result<(PathBuf, bool), String>>>,
    /// The run folder the next export dialog's file is for.
    pub(super) pending_export: Option<PathBuf>,
    /// The message of the last thing that could not start, shown inline.
    pub(super) problem: Option<String>,
}

impl TrainPanel {
    /// The live or last run, for tests and the status bar.
    pub fn live(&self) -> Option<&LiveRun> {
        self.live.as_ref()
    }

    /// How many usable pictures the chosen folder has (`None` before one is chosen or while
    /// it loads).
    pub fn picture_count(&self) -> Option<usize> {
        self.preview.loaded().map(|p| p.count)
    }

    /// Why the last action could not start, if it could not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The pictures form, for tests that arrange a short run.
    pub fn pictures_form_mut(&mut self) -> &mut PicturesForm {
        &mut self.pictures
    }

    /// The writing form, for tests that arrange a short run.
    pub fn writing_form_mut(&mut self) -> &mut WritingForm {
        &mut self.writing
    }

    /// Earlier runs as last read.
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }
}
