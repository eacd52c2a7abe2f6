//! The Style panel: neural style transfer with multistyle26's 26 blendable styles, or any image
//! as the style (the arbitrary-style pair).
//!
//! Left: the content (open, drop or paste an image) and the style (gallery or style image).
//! Centre: the result with a before/after divider. Right: strength, preserve-colour, output
//! size and export.
//!
//! The panel holds UI state only. A change to the content, style or size is debounced
//! ([`DEBOUNCE`]); then a low-resolution preview job is submitted (cancelling the job it
//! replaces) and, when it arrives, the full-resolution job. Strength, preserve-colour and the
//! divider never touch the worker: the shader in `finish` applies them as the view draws.
//!
//! Files: [`state`] (the struct and what the app reads), [`panel`] (layout), [`jobs`] (events
//! and status), [`schedule`] (what to ask the worker), [`results`] (results arriving),
//! [`input`] (drop and paste), [`samples`] (a kiosk's pictures), and one file per region: [`controls`], [`output`],
//! [`result_view`]; [`finish`] is the GPU finish, [`gallery`] the preset thumbnails.

mod controls;
mod export;
mod finish;
mod gallery;
mod input;
mod jobs;
mod output;
mod panel;
mod result_view;
mod results;
mod samples;
mod schedule;
mod state;

pub use export::StyleExport;
pub use finish::SHADER;
pub use state::{DEBOUNCE, FETCH_STYLE, OUTPUT_SIZES, StyleImageSlot, StylePanel};
