//! What a panel may borrow from the app while it draws or handles an event, and what it may
//! ask of the app ([`Command`]s, drained once per frame).

use std::path::PathBuf;

use crate::app::notice::Notice;
use crate::app::page::Page;
use crate::engine::Engine;
use crate::features::faces::FaceImage;
use crate::store::Store;

/// What a panel may borrow from the app.
pub struct PanelContext<'a> {
    /// The inference engine; `None` when its thread could not start (see `engine_error`).
    pub engine: Option<&'a Engine>,
    /// Why the engine is missing, for an inline message.
    pub engine_error: Option<&'a str>,
    /// Documents and settings.
    pub store: &'a mut Store,
    /// Requests for the app, handled after the panels have drawn.
    pub commands: &'a mut Vec<Command>,
    /// The window renderer's wgpu state, for panels whose frames the worker writes straight
    /// into a texture; `None` in the test harness.
    pub render_state: Option<&'a egui_wgpu::RenderState>,
    /// Trade-show mode: no file dialogs, so the buttons that open them are not shown.
    pub kiosk: bool,
    /// The pictures a kiosk visitor may pick instead (the kiosk's gallery; empty elsewhere).
    pub samples: &'a [std::path::PathBuf],
    /// What the panels offer each other.
    pub shared: &'a mut Shared,
}

impl PanelContext<'_> {
    /// Shows a short message to the user.
    pub fn toast(&mut self, notice: Notice) {
        self.commands.push(Command::Toast(notice));
    }
}

/// What one panel offers the others, kept by the app.
#[derive(Default)]
pub struct Shared {
    /// The face selected on the Faces page and its name, for Style's "use the selected face".
    pub selected_face: Option<(FaceImage, String)>,
}

/// What a file dialog does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    /// Choose an existing file.
    Open,
    /// Choose where to write a file.
    Save,
    /// Choose a folder.
    Folder,
}

/// Requests from panels to the app, drained once per frame (in order).
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Switch to another page.
    ShowPage(Page),
    /// Show a short message to the user.
    Toast(Notice),
    /// Show a file dialog (off the UI thread); the chosen path goes back to the panel that
    /// asked, through `Panel::file_chosen` with `tag`.
    FileDialog {
        /// Open, save or folder.
        purpose: DialogPurpose,
        /// The dialog's title.
        title: String,
        /// File-type filters: a name and its extensions (without dots).
        filters: Vec<(String, Vec<String>)>,
        /// The suggested file name (save dialogs).
        file_name: Option<String>,
        /// Which of the panel's dialogs this is.
        tag: &'static str,
    },
    /// Open `path` in `page`'s panel and show that page ("Open in Faces").
    OpenIn {
        /// The page whose panel opens it.
        page: Page,
        /// The file.
        path: PathBuf,
    },
}

/// Turns finished background exports (a file written on a named thread) into toasts; keeps
/// the ones still running.
pub fn poll_exports(
    exports: &mut Vec<std::sync::mpsc::Receiver<Result<PathBuf, String>>>,
    commands: &mut Vec<Command>,
) {
    use crate::app::notice::NoticeLevel;
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
