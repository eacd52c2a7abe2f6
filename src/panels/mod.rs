//! The pages of the app, one folder per panel (as in egui's demo app): each is a struct
//! holding UI state only, driven through the [`Panel`] trait with a borrowed
//! [`PanelContext`]. Panels never block: they submit work to the engine and react to its
//! events, and they ask the app for anything outside their page (file dialogs, toasts,
//! another page) by pushing a [`Command`], which the app drains at the end of the frame.
//!
//! Adding a panel: a folder here implementing [`Panel`], its [`crate::app::page::Page`]
//! variant, and one line in [`registry`].

pub mod context;
pub mod faces;
pub mod job_book;
pub mod panel;
pub mod style;
pub mod train;
pub mod write;

pub use context::{Command, DialogPurpose, PanelContext, Shared, poll_exports};
pub use panel::{Panel, StatusItem, StatusSide, Tone};

/// Every panel, in the navigation bar's order.
pub fn registry() -> Vec<Box<dyn Panel>> {
    vec![
        Box::new(write::WritePanel::default()),
        Box::new(faces::FacesPanel::default()),
        Box::new(style::StylePanel::default()),
        Box::new(train::TrainPanel::default()),
    ]
}
