//! File dialogs, one at a time, on a named thread (the portal may take a while to answer and
//! the window keeps drawing meanwhile). The chosen path goes back to the page that asked.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::app::page::Page;
use crate::panels::DialogPurpose;

/// A dialog a panel asked for.
#[derive(Clone, Debug)]
pub(crate) struct DialogRequest {
    /// The page that asked (the path goes back to its panel).
    pub page: Page,
    /// Open, save or folder.
    pub purpose: DialogPurpose,
    /// The title.
    pub title: String,
    /// File-type filters.
    pub filters: Vec<(String, Vec<String>)>,
    /// The suggested file name.
    pub file_name: Option<String>,
    /// The panel's tag for it.
    pub tag: &'static str,
}

/// What a dialog returned.
pub(crate) struct DialogResult {
    /// The request it answers.
    pub request: DialogRequest,
    /// The chosen path; `None` when cancelled (or when no dialog could be shown).
    pub path: Option<PathBuf>,
    /// How long it was open: a dialog that "returns" at once never appeared.
    pub elapsed: Duration,
}

impl DialogResult {
    /// Whether no dialog appeared at all (no portal to show it), as opposed to the user
    /// cancelling one.
    pub fn never_shown(&self) -> bool {
        self.path.is_none() && self.elapsed < Duration::from_millis(250)
    }
}

/// Shows `request` on a thread ("atelier-file-dialog"); the result arrives on the returned
/// channel and `wake` is called then.
pub(crate) fn show(
    request: DialogRequest,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<Receiver<DialogResult>> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("atelier-file-dialog".into())
        .spawn(move || {
            let started = Instant::now();
            let mut dialog = rfd::FileDialog::new().set_title(&request.title);
            for (name, exts) in &request.filters {
                dialog = dialog.add_filter(name, exts);
            }
            if let Some(name) = &request.file_name {
                dialog = dialog.set_file_name(name);
            }
            let path = match request.purpose {
                DialogPurpose::Open => dialog.pick_file(),
                DialogPurpose::Save => dialog.save_file(),
                DialogPurpose::Folder => dialog.pick_folder(),
            };
            let _ = tx.send(DialogResult {
                request,
                path,
                elapsed: started.elapsed(),
            });
            wake();
        })?;
    Ok(rx)
}
