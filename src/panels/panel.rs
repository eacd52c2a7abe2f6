//! The unit of extension of the studio: one page, one [`Panel`]. The app keeps the panels in a
//! registry (see `super::registry`) and does everything through this trait: it routes the
//! engine's events to the panel that submitted the job, draws the open page, asks every panel
//! for its status-bar items, stops and resets them, and hands them the files their dialogs
//! return.

use std::path::PathBuf;

use super::context::PanelContext;
use super::job_book::Jobs;
use crate::app::page::Page;
use crate::engine::{Event, JobId};
use crate::kiosk::demo::Demo;
use crate::store::Store;
pub use crate::theme::Tone;

/// One page of the app. Panels hold UI state only and never block: they submit work to the
/// engine and react to its events.
pub trait Panel: std::any::Any {
    /// The name shown in the navigation bar.
    fn name(&self) -> &'static str;

    /// Which page this panel is.
    fn page(&self) -> Page;

    /// Draws the panel into `ui` (the whole area between the top and status bars).
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>);

    /// Called once, on the first frame, with the engine running (a panel that needs a model
    /// at once asks for it here).
    fn start(&mut self, _cx: &mut PanelContext<'_>) {}

    /// The jobs this panel waits for, if it keeps them in a [`super::job_book::JobBook`]
    /// (then [`Self::owns`] and [`Self::is_working`] need no code of their own).
    fn jobs(&self) -> Option<&dyn Jobs> {
        None
    }

    /// Whether this panel submitted `job` (the app routes engine events by job id).
    fn owns(&self, job: JobId) -> bool {
        self.jobs().is_some_and(|j| j.owns(job))
    }

    /// An event of one of this panel's jobs.
    fn on_event(&mut self, event: Event, cx: &mut PanelContext<'_>);

    /// What the status bar shows for this panel (on every page); `store` holds the settings.
    fn status(&self, _store: &Store) -> Vec<StatusItem> {
        Vec::new()
    }

    /// Whether a job of this panel is queued or running (frame-time statistics are kept for
    /// such frames).
    fn is_working(&self) -> bool {
        self.jobs().is_some_and(|j| !j.is_empty())
    }

    /// Stops what this panel runs (the app is closing, or a kiosk demo takes over).
    fn stop(&mut self) {}

    /// The user left this page: stop what only makes sense while it shows (Faces' live walk
    /// occupies the worker).
    fn hidden(&mut self) {}

    /// Back to a freshly opened state (the kiosk's reset); jobs are stopped first.
    fn reset(&mut self, cx: &mut PanelContext<'_>);

    /// A file the user chose in a dialog this panel asked for; `tag` is the one it gave.
    fn file_chosen(&mut self, _tag: &'static str, _path: PathBuf, _cx: &mut PanelContext<'_>) {}

    /// Opens a file another page hands over ("Open in Faces"); false if this panel does not
    /// open files that way.
    fn open(&mut self, _path: PathBuf, _cx: &mut PanelContext<'_>) -> bool {
        false
    }

    /// The worker recovered from a crash and dropped every model (reload what must be ready).
    fn worker_recovered(&mut self, _cx: &mut PanelContext<'_>) {}

    /// A step of the kiosk's attract loop for this page.
    fn demo(&mut self, _demo: Demo<'_>, _cx: &mut PanelContext<'_>) {}

    /// Called when the app closes, after [`Self::stop`]: keep what should survive.
    fn save(&mut self, _cx: &mut PanelContext<'_>) {}
}

/// Where a status-bar item goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusSide {
    /// After the model and device items on the left.
    Left,
    /// On the right, before the save state.
    Right,
}

/// One item of the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusItem {
    /// The text.
    pub text: String,
    /// Its colour.
    pub tone: Tone,
    /// Shown on hover.
    pub hover: Option<String>,
    /// Where it goes.
    pub side: StatusSide,
    /// Whether a coloured dot (in the tone's colour) comes first.
    pub dot: bool,
}

impl StatusItem {
    /// A plain item on the right.
    pub fn right(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tone: Tone::Normal,
            hover: None,
            side: StatusSide::Right,
            dot: false,
        }
    }

    /// A plain item on the left.
    pub fn left(text: impl Into<String>) -> Self {
        Self {
            side: StatusSide::Left,
            ..Self::right(text)
        }
    }

    /// The same item in `tone`.
    pub fn tone(mut self, tone: Tone) -> Self {
        self.tone = tone;
        self
    }

    /// The same item with a hover text.
    pub fn hover(mut self, text: impl Into<String>) -> Self {
        self.hover = Some(text.into());
        self
    }

    /// The same item led by a dot in its tone.
    pub fn with_dot(mut self) -> Self {
        self.dot = true;
        self
    }
}
