//! The Train page: teach the face generator a folder of pictures, or a language model the voice
//! of the writer's texts (a LoRA adapter), while the rest of the studio stays usable. Runs go
//! to the engine's long-job lane ([`crate::engine::Engine::train`]); this panel holds the
//! forms, the live run's view and the list of earlier runs.

mod estimate;
mod fields;
mod forms;
mod history;
mod live;
mod panel;
mod pictures;
mod plot;
mod preview;
mod run_view;
mod state;
mod writing;

pub use live::{LiveRun, RunEnd, RunKind};
pub use state::{Tab, TrainPanel};
