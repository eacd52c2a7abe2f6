//! The chosen pictures as the page previews them: loaded on a named thread at a lower
//! priority (a large folder never holds a frame), counted, with their contact sheet and the
//! files that were skipped.

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::features::train::faces::pictures::{PictureSet, Skipped};
use crate::features::train::faces::{PictureSource, contact_sheet};
use crate::long_job::LongJobControl;

/// What the loader found.
pub struct Loaded {
    /// Usable pictures.
    pub count: usize,
    /// Files left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// The contact sheet, until uploaded.
    pub(super) sheet: Option<egui::ColorImage>,
    /// The uploaded contact sheet.
    pub(super) texture: Option<egui::TextureHandle>,
}

/// The chosen pictures, as far as they are loaded.
#[derive(Default)]
pub enum Preview {
    /// Nothing chosen yet.
    #[default]
    Empty,
    /// Loading on a thread.
    Loading(Receiver<Result<Loaded, String>>),
    /// Ready.
    Loaded(Box<Loaded>),
    /// Unusable: why (too few pictures, unreadable folder).
    Failed(String),
}

impl Preview {
    /// The loaded pictures, if ready.
    pub fn loaded(&self) -> Option<&Loaded> {
        match self {
            Preview::Loaded(l) => Some(l),
            _ => None,
        }
    }

    /// Starts loading `source` on a thread.
    pub fn load(source: PictureSource, background: [u8; 3]) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("atelier-train-pictures".into())
            .spawn(move || {
                let _ = tx.send(load(source, background));
            });
        match spawned {
            Ok(_) => Preview::Loading(rx),
            Err(e) => Preview::Failed(format!("cannot start a thread to read the pictures: {e}")),
        }
    }

    /// Takes the loader's answer when it is there.
    pub fn poll(&mut self) {
        if let Preview::Loading(rx) = self {
            *self = match rx.try_recv() {
                Ok(Ok(loaded)) => Preview::Loaded(Box::new(loaded)),
                Ok(Err(message)) => Preview::Failed(message),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    Preview::Failed("reading the pictures stopped unexpectedly".into())
                }
            };
        }
    }
}

fn load(source: PictureSource, background: [u8; 3]) -> Result<Loaded, String> {
    // The machine's cores at a lower priority than the window.
    let pool = LongJobControl::standalone(super::forms::cores())
        .thread_pool("atelier-train-pictures")
        .map_err(|e| e.to_string())?;
    let set = pool
        .install(|| PictureSet::load(&source, background))
        .map_err(|e| e.to_string())?;
    let sheet = contact_sheet(&set);
    let size = [sheet.width() as usize, sheet.height() as usize];
    Ok(Loaded {
        count: set.len(),
        skipped: set.skipped.clone(),
        sheet: Some(egui::ColorImage::from_rgba_unmultiplied(
            size,
            sheet.as_raw(),
        )),
        texture: None,
    })
}
