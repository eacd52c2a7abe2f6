//! The Faces panel: live exploration of the DCGAN face generator's latent space.
//!
//! Left: seed, grid size, truncation ψ and the principal directions (sliders with example
//! strips). Centre: a grid of consecutive seeds that fills in as samples arrive. Right: the
//! selected face, large, with favourite/export actions and the latent walk. Bottom: favourites
//! and the history of selections.
//!
//! The panel holds UI state only. Each frame it compares what is on screen with what is
//! rendered (`thumbs::Thumbs`, keyed by face) and asks the worker for what is missing,
//! cancelling the job it replaces — so dragging ψ never queues stale renders. A live walk
//! occupies the worker until cancelled, so any other change stops it first.
//!
//! Files: [`state`] (the struct and what the app reads), [`panel`] (layout and actions),
//! [`jobs`] (events and status), [`schedule`] (what to render), and one file per region:
//! [`controls`], [`grid`], [`selected`], [`walk_view`], [`strips`].

mod controls;
mod export;
mod grid;
mod jobs;
mod panel;
mod schedule;
mod selected;
mod state;
mod strips;
mod thumbs;
mod walk;
mod walk_view;

pub use export::{FaceExport, PNG_SIZES};
pub use state::{FETCH_FACES, FacesPanel, GRID_RANGE, PREVIEW_SIZE};
pub use walk::{FPS_CHOICES, MAX_KEYS, Walk, pacing_line};
