//! The Write panel: a writer's assistant around a plain document editor.
//!
//! Left: the document list. Centre: the editor, and under it the suggestion tray. Right: the
//! assistant — model, mode (Continue / Instruct with quick actions), alternatives,
//! Generate/Stop, sampling.
//!
//! The document is only changed by the writer: typing, or accepting a suggestion. Accepting
//! pushes the previous text onto the editor's own undo history, so Ctrl+Z undoes an accepted
//! generation like any edit (egui's undoer never sees programmatic edits by itself).
//!
//! Files: [`state`] (the struct and what the app reads), [`panel`] (layout, events, status),
//! [`documents`], [`editor`], [`assistant`] (the three regions), [`request`] (what Generate
//! sends), [`accept`] (the tray's actions), [`suggestions`] (one generation's candidates),
//! [`tray`] and [`token_popup`] (drawing them), [`model`] and [`model_picker`] (the language
//! model), [`remote`] (a server instead), [`sampling`].

mod accept;
pub mod adapter;
mod assistant;
mod documents;
mod editor;
pub mod model;
mod model_picker;
mod panel;
pub mod remote;
mod request;
mod sampling;
mod state;
pub mod suggestions;
mod token_popup;
mod tray;

pub use model::{LoadJob, ModelState};
pub use state::{GENERATE_SHORTCUT, InstructAction, WritePanel};
pub use suggestions::Phase;
