//! The Write page's UI state (the document itself lives in the store) and what the app, the
//! kiosk and the tests read or set.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use egui::text::CCursorRange;
use egui::{Key, KeyboardShortcut, Modifiers};

use super::model::{LoadJob, ModelPick, ModelState};
use super::remote::RemotePanel;
use super::suggestions::{Inspected, Suggestions};
use crate::engine::JobId;
use crate::models::llm::discover::DiscoveredModel;
use crate::panels::PanelContext;
use crate::store::ExportFormat;

/// Ctrl+Enter: generate.
pub const GENERATE_SHORTCUT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);

/// How many alternatives per token the UI asks for (the popup lists them).
pub(super) const POPUP_ALTERNATIVES: usize = 8;

/// The quick actions of Instruct mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InstructAction {
    /// Continue the document in its own style and voice.
    #[default]
    ContinueInStyle,
    /// Rewrite the selected passage.
    RewriteSelection,
    /// Follow a free instruction.
    Free,
}

impl InstructAction {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::ContinueInStyle => "Continue in this style",
            Self::RewriteSelection => "Rewrite the selection",
            Self::Free => "Free instruction",
        }
    }

    pub(super) fn help(self) -> &'static str {
        match self {
            Self::ContinueInStyle => {
                "Writes what comes next at the cursor, in the document's voice."
            }
            Self::RewriteSelection => "Rewrites the selected passage; the instruction says how.",
            Self::Free => "Anything: a title, a summary, ideas. The answer goes in at the cursor.",
        }
    }
}

/// The tags of the panel's file dialogs.
pub(super) const OPEN_MODEL_DIALOG: &str = "open-model";
pub(super) const SAVE_AS_DIALOG: &str = "save-as";
pub(super) const EXPORT_DIALOG: &str = "export";

/// What the user did with documents, applied after the page has drawn.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum DocAction {
    /// Create an empty document and open it (Ctrl+N).
    New,
    /// Open the document with this id.
    Open(String),
    /// Move the document with this id to the trash folder.
    Delete(String),
    /// Ask where to save the open document, then save it there (Ctrl+S saves there again).
    SaveAs,
    /// Save the open document to the file chosen with Save As (or ask, if none).
    SaveToFile,
    /// Ask where to export a copy of the open document in this format.
    Export(ExportFormat),
}

/// The Write panel's UI state (the document itself lives in the store).
pub struct WritePanel {
    pub(super) editor_id: egui::Id,
    /// The editor's last known cursor/selection (kept while focus is elsewhere).
    pub(super) cursor: Option<CCursorRange>,
    pub(super) suggestions: Option<Suggestions>,
    pub(super) inspected: Option<Inspected>,
    /// The frame the popup was opened in (its opening click is not a click outside).
    pub(super) inspected_since: u64,
    pub(super) action: InstructAction,
    /// A problem with the request itself (nothing was sent), shown under Generate.
    pub(super) request_error: Option<String>,
    /// (document id, text length, words) so counting runs only when the text changes.
    pub(super) words: Option<(String, usize, usize)>,
    pub(super) focus_editor: bool,
    /// Generate on the next frame (the kiosk's attract loop asks, see
    /// [`Self::request_generate`]).
    pub(super) generate_requested: bool,
    /// The remote engine's settings section.
    pub(super) remote: RemotePanel,
    /// The language model: which one is chosen, loaded, loading or failing.
    pub(super) model: ModelState,
    /// The disk search for GGUF models, while it runs.
    pub(super) discovery: Option<Receiver<Vec<DiscoveredModel>>>,
    /// What the user did in the model picker this frame.
    pub(super) picks: Vec<ModelPick>,
    /// What the user did with documents this frame.
    pub(super) doc_actions: Vec<DocAction>,
    /// The export whose save dialog is open.
    pub(super) export_format: Option<ExportFormat>,
    /// Jobs replaced before they ended (a newer generation or load): still this panel's, so
    /// their model events are seen.
    pub(super) retired: Vec<JobId>,
    /// Whether the disk search for models ran (on the first frame).
    pub(super) discovered_once: bool,
    /// The LoRA adapter applied to the model, if any.
    pub(super) adapters: super::adapter::AdapterChoice,
}

impl WritePanel {
    /// The adapters of the model and the one chosen.
    pub fn adapters(&self) -> &super::adapter::AdapterChoice {
        &self.adapters
    }

    /// The adapter chosen for the model (tests arrange one; the picker sets it).
    pub fn adapters_mut(&mut self) -> &mut super::adapter::AdapterChoice {
        &mut self.adapters
    }
}

impl Default for WritePanel {
    fn default() -> Self {
        Self {
            editor_id: egui::Id::unique("write-document"),
            cursor: None,
            suggestions: None,
            inspected: None,
            inspected_since: 0,
            action: InstructAction::default(),
            request_error: None,
            words: None,
            focus_editor: true,
            generate_requested: false,
            remote: RemotePanel::default(),
            model: ModelState::default(),
            discovery: None,
            picks: Vec::new(),
            doc_actions: Vec::new(),
            export_format: None,
            retired: Vec::new(),
            discovered_once: false,
            adapters: Default::default(),
        }
    }
}

impl WritePanel {
    /// The suggestions on screen, if any (for the status bar and tests).
    pub fn suggestions(&self) -> Option<&Suggestions> {
        self.suggestions.as_ref()
    }

    /// Whether a generation is queued or running.
    pub fn is_generating(&self) -> bool {
        self.suggestions
            .as_ref()
            .is_some_and(Suggestions::is_running)
    }

    /// The texts of the candidates on screen (for tests and the status bar).
    pub fn candidate_texts(&self) -> Vec<String> {
        self.suggestions
            .as_ref()
            .map(|s| s.candidates.iter().map(|c| c.text.clone()).collect())
            .unwrap_or_default()
    }

    /// The cursor the next request will use (None: the end of the document).
    pub fn set_cursor(&mut self, ctx: &egui::Context, range: CCursorRange) {
        self.cursor = Some(range);
        let mut state = egui::TextEdit::load_state(ctx, self.editor_id).unwrap_or_default();
        state.cursor.set_char_range(Some(range));
        egui::TextEdit::store_state(ctx, self.editor_id, state);
    }

    /// Generates at the cursor on the next frame, as the Generate button does.
    pub fn request_generate(&mut self) {
        self.generate_requested = true;
    }

    /// Stops the running job, if any (Esc, the Stop button).
    pub fn stop(&mut self) {
        if let Some(s) = &mut self.suggestions {
            s.stop();
        }
    }

    /// Called by the app when another document is opened: suggestions belong to the old one.
    pub fn document_switched(&mut self) {
        self.retire_suggestions();
        self.inspected = None;
        self.cursor = None;
        self.words = None;
        self.request_error = None;
        self.focus_editor = true;
    }

    /// What is known about the language model.
    pub fn model_state(&self) -> &ModelState {
        &self.model
    }

    /// Makes `path` the chosen model and loads it (a newer choice replaces a load still
    /// waiting in the queue).
    pub(super) fn load_model(&mut self, path: PathBuf, cx: &mut PanelContext<'_>) {
        self.model.selected = path.clone();
        self.model.error = None;
        cx.store.settings.model = Some(path.clone());
        let Some(engine) = cx.engine else {
            return;
        };
        if self.model.loaded.as_ref().is_some_and(|i| i.path == path) {
            return;
        }
        if let Some(old) = self.model.load.take() {
            tracing::debug!(job = %old.job.id(), "superseded model load");
            old.job.cancel();
            self.retired.push(old.job.id());
        }
        let job = engine.load_llm(path.clone());
        self.model.load = Some(LoadJob {
            job,
            path,
            ahead: 0,
            started: false,
        });
    }

    /// Searches the disk for GGUF models on a thread ("atelier-discover").
    pub(super) fn discover(&mut self, ctx: &egui::Context) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-discover".into())
            .spawn(move || {
                let found = crate::models::llm::discover::find_models();
                let _ = tx.send(found);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.discovery = Some(rx);
                self.model.discovering = true;
            }
            Err(e) => tracing::warn!("cannot search for models: {e}"),
        }
    }

    /// Takes in the disk search's result when it is there.
    pub(super) fn poll_discovery(&mut self) {
        if let Some(rx) = &self.discovery
            && let Ok(found) = rx.try_recv()
        {
            self.model.discovered = found;
            self.model.discovering = false;
            self.discovery = None;
        }
    }

    /// Stops and drops the suggestions on screen; a job still running stays this panel's
    /// until it ends (its model events matter).
    pub(super) fn retire_suggestions(&mut self) {
        if let Some(mut s) = self.suggestions.take() {
            s.stop();
            if s.is_running() {
                self.retired.push(s.job_id());
            }
        }
    }
}
