//! Trade-show mode (`atelier --kiosk`): the configuration ([`config`]), the attract loop's
//! clock ([`attract`]), the demos it asks the pages for ([`demo`]), the per-frame driver
//! ([`driver`]) and the kiosk's runtime state. The demos are played with the same panel calls a
//! visitor's clicks make: no second code path.
//!
//! In kiosk mode the studio fills the screen at a large UI scale, shows no file dialogs, works
//! in a scratch data folder that is wiped on reset, and quits only with the configured key
//! combination.

pub mod attract;
pub mod config;
pub mod demo;
pub mod driver;

use std::path::PathBuf;
use std::time::Instant;

pub use attract::{Attract, AttractAction, Demo};
pub use config::{CONFIG_FILE, KeyCombo, KioskConfig, KioskConfigError};

/// Name of the scratch folder (inside the data folder) the kiosk's session lives in.
pub const SESSION_DIR: &str = "kiosk-session";

/// The kiosk's runtime state, owned by the app.
pub struct Kiosk {
    /// The configuration.
    pub config: KioskConfig,
    /// The attract loop (created on the first frame).
    pub attract: Option<Attract>,
    /// The pictures the Style demo cycles through.
    pub images: Vec<PathBuf>,
    /// Set when the quit combination was pressed: the next close request is let through.
    pub quit_allowed: bool,
    /// The Write demo's document in the session, once made.
    pub demo_document: Option<String>,
    /// Resets done so far (tests and the log).
    pub resets: u64,
    /// Whether the zoom factor was applied.
    pub zoomed: bool,
    /// The Style demo's picture on screen (index into [`Self::images`]).
    pub shown_image: Option<usize>,
    /// When memory was last written to the log.
    pub last_memory_log: Option<Instant>,
}

impl Kiosk {
    /// Kiosk state for `config`.
    pub fn new(config: KioskConfig) -> Self {
        let images = config.style_images();
        Self {
            config,
            attract: None,
            images,
            quit_allowed: false,
            demo_document: None,
            resets: 0,
            zoomed: false,
            shown_image: None,
            last_memory_log: None,
        }
    }

    /// The attract loop, started at `now` on first use.
    pub fn attract(&mut self, now: Instant) -> &mut Attract {
        let images = self.images.len();
        let config = &self.config;
        self.attract
            .get_or_insert_with(|| Attract::new(config, images, now))
    }

    /// Whether a demo is running.
    pub fn is_attracting(&self) -> bool {
        self.attract.as_ref().is_some_and(Attract::is_running)
    }

    /// The Write demo's prompt for a turn.
    pub fn prompt(&self, turn: usize) -> &str {
        &self.config.prompts[turn % self.config.prompts.len()]
    }
}

/// Whether this frame brought input from a visitor: a key, a click, a touch, a scroll, or the
/// pointer moving (any `PointerMoved` event: a single jump of the mouse leaves no velocity).
/// Window focus and similar events are not a visitor.
pub fn visitor_input(ctx: &egui::Context) -> bool {
    ctx.input(|i| {
        i.pointer.is_moving()
            || i.events.iter().any(|e| {
                matches!(
                    e,
                    egui::Event::Key { .. }
                        | egui::Event::PointerMoved(_)
                        | egui::Event::Text(_)
                        | egui::Event::PointerButton { .. }
                        | egui::Event::Touch { .. }
                        | egui::Event::MouseWheel { .. }
                        | egui::Event::Paste(_)
                )
            })
    })
}
