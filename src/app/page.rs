//! The pages of the studio, one per panel; saved in the settings (by name) and named in the
//! kiosk configuration.

use serde::{Deserialize, Serialize};

/// Which page of the app is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    /// The writer's assistant.
    #[default]
    Write,
    /// GAN face exploration.
    Faces,
    /// Neural style transfer.
    Style,
    /// Training on the user's own pictures and writing.
    Train,
}
