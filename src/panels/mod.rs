//! The pages of the app, one file per panel (as in egui's demo app): each is a small struct
//! holding UI state only, drawn through the [`Panel`] trait with a borrowed [`PanelContext`].
//! Panels never block: they submit work to the engine and react to its events, and they ask
//! the app for anything outside their page (file dialogs, model loads, documents) by pushing a
//! [`Command`], which the app drains at the end of the frame.

pub mod faces;
pub mod model_picker;
pub mod remote;
pub mod sampling;
pub mod status_bar;
pub mod style;
pub mod suggestions;
pub mod write;

use std::path::PathBuf;

use crate::engine::Engine;
use crate::store::{ExportFormat, Page, Store};

pub use model_picker::ModelState;

/// One page of the app.
pub trait Panel {
    /// The name shown in the navigation bar.
    fn name(&self) -> &'static str;

    /// Which page this panel is.
    fn page(&self) -> Page;

    /// Whether the panel is a preview of something not built yet (shown with a "Soon" badge).
    fn is_preview(&self) -> bool {
        false
    }

    /// Draws the panel into `ui` (the whole area between the top and status bars).
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>);
}

/// What a panel may borrow from the app while it draws.
pub struct PanelContext<'a> {
    /// The inference engine; `None` when its thread could not start (see `engine_error`).
    pub engine: Option<&'a Engine>,
    /// Why the engine is missing, for an inline message.
    pub engine_error: Option<&'a str>,
    /// Documents and settings.
    pub store: &'a mut Store,
    /// The language model: which one is chosen, loaded, loading or failing.
    pub model: &'a ModelState,
    /// Requests for the app, handled after the panels have drawn.
    pub commands: &'a mut Vec<Command>,
    /// The window renderer's wgpu state, for panels whose frames the worker writes straight
    /// into a texture; `None` in the test harness.
    pub render_state: Option<&'a egui_wgpu::RenderState>,
    /// Trade-show mode: no file dialogs, so the buttons that open them are not shown.
    pub kiosk: bool,
}

/// Requests from panels to the app, drained once per frame (in order).
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Make this GGUF the chosen language model and load it now.
    LoadModel(PathBuf),
    /// Show the "Open GGUF…" file dialog (off the UI thread).
    OpenModelDialog,
    /// Search the disk for GGUF models again (Hugging Face cache, LM Studio, Ollama).
    RefreshModels,
    /// Switch to another page.
    ShowPage(Page),
    /// Create an empty document and open it.
    NewDocument,
    /// Open the document with this id.
    OpenDocument(String),
    /// Move the document with this id to the trash folder.
    DeleteDocument(String),
    /// Ask where to save the open document, then save it there (Ctrl+S saves there again).
    SaveAs,
    /// Save the open document to the file chosen with Save As (or ask, if none).
    SaveToFile,
    /// Ask where to export a copy of the open document in this format.
    Export(ExportFormat),
    /// Show a short message to the user.
    Toast(crate::store::Notice),
    /// Ask where to export a face or the latent walk (off the UI thread), then hand the path
    /// to the Faces panel.
    FacesExportDialog {
        /// What is exported.
        what: faces::FaceExport,
        /// The selected face's seed, for the suggested file name.
        seed: Option<u64>,
    },
    /// Show the "Open image…" dialog (off the UI thread) for the Style panel's content or
    /// style image, then hand the path to the panel.
    StyleOpenDialog(style::StyleImageSlot),
    /// Use the face selected on the Faces page as the Style panel's style image.
    StyleUseFace,
    /// Ask where to export the Style result (off the UI thread), then hand the path to the
    /// Style panel.
    StyleExportDialog {
        /// PNG or JPEG (with its quality).
        format: style::StyleExport,
        /// The suggested file name.
        file_name: String,
    },
}

/// Turns finished background exports (a file written on a named thread) into toasts; keeps
/// the ones still running.
pub(crate) fn poll_exports(
    exports: &mut Vec<std::sync::mpsc::Receiver<Result<PathBuf, String>>>,
    commands: &mut Vec<Command>,
) {
    use crate::store::{Notice, NoticeLevel};
    use std::sync::mpsc::TryRecvError;
    exports.retain(|rx| match rx.try_recv() {
        Ok(result) => {
            let notice = match result {
                Ok(path) => Notice {
                    level: NoticeLevel::Info,
                    message: format!("Exported to {}", path.display()),
                },
                Err(e) => Notice {
                    level: NoticeLevel::Error,
                    message: e,
                },
            };
            commands.push(Command::Toast(notice));
            false
        }
        Err(TryRecvError::Empty) => true,
        Err(TryRecvError::Disconnected) => false,
    });
}
