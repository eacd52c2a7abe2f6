//! The eframe app: one window with a page per panel.
//!
//! - [`studio`]: [`AtelierApp`] — frame, event routing to the panels, commands;
//! - [`launch`]: opening the window ([`run_gui`]);
//! - [`page`], [`notice`]: the pages and the messages for the user;
//! - [`chrome`], [`status_bar`]: the navigation bar, toasts and the status bar;
//! - [`dialogs`]: file dialogs off the UI thread; [`frame_stats`]: frame times.
//!
//! The kiosk's per-frame driver lives with the kiosk (`crate::kiosk::driver`).

pub(crate) mod chrome;
pub(crate) mod dialogs;
pub mod frame_stats;
pub mod launch;
pub mod notice;
pub mod page;
pub mod status_bar;
pub mod studio;

pub use frame_stats::{FrameStats, FrameSummary};
pub use launch::run_gui;
pub use studio::{AtelierApp, GuiOptions};
