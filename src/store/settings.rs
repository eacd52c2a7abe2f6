//! `settings.json`: what the studio remembers between sessions. Unknown or missing fields fall
//! back to defaults and out-of-range values are reset, so a hand-edited or older file loads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::app::page::Page;
use crate::models::llm::GenerateParams;

/// The Write panel's mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Raw completion at the cursor (any model).
    Continue,
    /// Instructions via the chat template (instruct models).
    #[default]
    Instruct,
}

/// What is serialized to `settings.json`. Unknown or missing fields fall back to defaults, so
/// older and newer versions of the file both load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Sampling parameters and limits of the Write panel.
    pub params: GenerateParams,
    /// How many alternatives to generate side by side (1–4).
    pub candidates: usize,
    /// The language model last chosen (None: the default instruct model).
    pub model: Option<PathBuf>,
    /// Continue or Instruct.
    pub mode: WriteMode,
    /// The free instruction last typed.
    pub instruction: String,
    /// The open document.
    pub current_document: Option<String>,
    /// The open page.
    pub page: Page,
    /// Whether the sampling section is expanded.
    pub show_sampling: bool,
    /// Models opened with "Open GGUF…", most recent first (at most 8).
    pub recent_models: Vec<PathBuf>,
    /// The Style panel's picture, style and finish.
    pub style: StyleSettings,
    /// Where the image models (Faces, Style) run; an unknown value reads as Auto.
    #[serde(deserialize_with = "lenient_backend")]
    pub backend: crate::gpu::Backend,
    /// Start in trade-show mode (as `--kiosk` does); set it by editing settings.json.
    pub kiosk: bool,
    /// Where Write generates: this computer or a server (the API key is not here: it is in
    /// the key store).
    pub remote: RemoteSettings,
}

/// The Write panel's remote engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteSettings {
    /// Generate on the server instead of the local model.
    pub enabled: bool,
    /// The server's base URL.
    pub base_url: String,
    /// The server's model (empty: its first).
    pub model: String,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "http://127.0.0.1:8080".into(),
            model: String::new(),
        }
    }
}

/// A backend name from the file, or Auto (with a warning) for anything else, so one bad value
/// does not reset every other setting.
fn lenient_backend<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<crate::gpu::Backend, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v.clone()).unwrap_or_else(|_| {
        tracing::warn!("settings: backend {v} is not auto, cpu or gpu; using auto");
        crate::gpu::Backend::Auto
    }))
}

/// What the Style panel restores on start. Only pictures opened from files are remembered
/// (pasted pixels have no path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StyleSettings {
    /// The content picture's file.
    pub content: Option<PathBuf>,
    /// The style picture's file (the arbitrary-style model).
    pub style_image: Option<PathBuf>,
    /// Whether the style picture is in use (otherwise the built-in styles).
    pub use_style_image: bool,
    /// Built-in styles (0–25) and their weights.
    pub mix: Vec<(usize, f32)>,
    /// Blend with the original, 0–1.
    pub strength: f32,
    /// Keep the original's colours.
    pub preserve_colour: bool,
    /// Whether the before/after divider shows.
    pub split: bool,
    /// Longest side of the output.
    pub max_side: u32,
    /// Export as JPEG (otherwise PNG).
    pub jpeg: bool,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            content: None,
            style_image: None,
            use_style_image: false,
            mix: vec![(0, 1.0)],
            strength: 1.0,
            preserve_colour: false,
            split: false,
            max_side: 1024,
            jpeg: false,
            jpeg_quality: 90,
        }
    }
}

impl StyleSettings {
    /// Brings an edited file's values back into range; true if anything changed.
    pub(crate) fn sanitize(&mut self) -> bool {
        let before = self.clone();
        let styles = crate::models::stylenet::STYLE_COUNT;
        self.mix
            .retain(|&(i, w)| i < styles && w.is_finite() && w >= 0.0);
        self.mix.truncate(styles);
        if self.mix.is_empty() {
            self.mix = Self::default().mix;
        }
        if !self.strength.is_finite() {
            self.strength = 1.0;
        }
        self.strength = self.strength.clamp(0.0, 1.0);
        self.max_side = self.max_side.clamp(64, 8192);
        self.jpeg_quality = self.jpeg_quality.clamp(1, 100);
        *self != before
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            params: GenerateParams::default(),
            candidates: 1,
            model: None,
            mode: WriteMode::default(),
            instruction: String::new(),
            current_document: None,
            page: Page::default(),
            show_sampling: true,
            recent_models: Vec::new(),
            style: StyleSettings::default(),
            backend: crate::gpu::Backend::Auto,
            kiosk: false,
            remote: RemoteSettings::default(),
        }
    }
}

impl Settings {
    /// Brings values from an edited or old file back into range; returns what was changed.
    pub(crate) fn sanitize(&mut self) -> Option<String> {
        let mut fixed = Vec::new();
        if !(1..=4).contains(&self.candidates) {
            self.candidates = self.candidates.clamp(1, 4);
            fixed.push("alternatives");
        }
        if let Err(e) = self.params.sampling.validate() {
            tracing::warn!("settings: {e}; sampling reset to defaults");
            self.params.sampling = Default::default();
            fixed.push("sampling");
        }
        if self.params.max_new_tokens == 0 {
            self.params.max_new_tokens = GenerateParams::default().max_new_tokens;
            fixed.push("max new tokens");
        }
        self.recent_models.truncate(8);
        if self.style.sanitize() {
            fixed.push("style");
        }
        (!fixed.is_empty()).then(|| fixed.join(", "))
    }
}
