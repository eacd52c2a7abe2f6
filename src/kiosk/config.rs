//! The kiosk configuration file (`kiosk.toml` in the data folder, or `--kiosk-config PATH`):
//! which panels a visitor sees, what the attract loop shows, its timings, the UI scale and the
//! key combination that quits. Every field has a default, so an empty file is a valid one;
//! unknown keys and out-of-range values are refused with a message naming the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::app::page::Page;

/// File name of the kiosk configuration inside the data folder.
pub const CONFIG_FILE: &str = "kiosk.toml";

/// Why a kiosk configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum KioskConfigError {
    /// The file could not be read.
    #[error("cannot read the kiosk configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or of the wrong type.
    #[error("the kiosk configuration {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and the key).
        message: String,
    },
    /// A value is out of range.
    #[error("the kiosk configuration {path}: {field} {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `timing.idle_seconds`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// A key combination, parsed from text such as `"Ctrl+Shift+Q"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyCombo(pub egui::KeyboardShortcut);

impl KeyCombo {
    /// Parses `Ctrl+Shift+Q`, `Alt+F4`, `Cmd+Q`… (case-insensitive; Ctrl, Alt or Cmd must be
    /// part of it: a visitor types letters and Shift+letters in every text field).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut modifiers = egui::Modifiers::NONE;
        let mut key = None;
        for part in text.split('+').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => modifiers |= egui::Modifiers::CTRL,
                "shift" => modifiers |= egui::Modifiers::SHIFT,
                "alt" | "option" => modifiers |= egui::Modifiers::ALT,
                "cmd" | "command" => modifiers |= egui::Modifiers::COMMAND,
                "" => return Err(format!("\"{text}\" has an empty part")),
                _ if key.is_some() => {
                    return Err(format!("\"{text}\" names more than one key"));
                }
                _ => {
                    let k = egui::Key::from_name(part)
                        .or_else(|| egui::Key::from_name(&part.to_ascii_uppercase()))
                        .ok_or_else(|| format!("\"{part}\" is not a key egui knows"))?;
                    key = Some(k);
                }
            }
        }
        let key = key.ok_or_else(|| format!("\"{text}\" names no key"))?;
        if !(modifiers.ctrl || modifiers.alt || modifiers.command || modifiers.mac_cmd) {
            return Err(format!(
                "\"{text}\" needs Ctrl, Alt or Cmd (a modifier a visitor does not type in a \
                 text field), or any visitor could quit"
            ));
        }
        Ok(Self(egui::KeyboardShortcut::new(modifiers, key)))
    }
}

/// The kiosk settings, as read from the file (see the README for an example).
#[derive(Clone, Debug, PartialEq)]
pub struct KioskConfig {
    /// The pages a visitor can open, in the attract loop's order.
    pub panels: Vec<Page>,
    /// Fill the screen (off for a window while trying a configuration).
    pub fullscreen: bool,
    /// UI scale (egui zoom factor); 1.5 is large type.
    pub zoom: f32,
    /// The only way to quit.
    pub quit_keys: KeyCombo,
    /// The text form of [`Self::quit_keys`], for messages.
    pub quit_keys_text: String,
    /// Seconds without input before the attract loop starts.
    pub idle_seconds: f64,
    /// Seconds each panel's demo lasts before the next panel's.
    pub demo_seconds: f64,
    /// Seconds without input after which everything is reset to a clean state.
    pub reset_seconds: f64,
    /// Write demo prompts, one per turn (cycled).
    pub prompts: Vec<String>,
    /// Tokens the Write demo generates.
    pub max_tokens: usize,
    /// Faces demo: the seeds the latent walk passes through (2–8).
    pub seeds: Vec<u64>,
    /// Faces demo: truncation ψ of the walk's faces.
    pub psi: f32,
    /// Style demo: built-in styles (0–25) it rotates through.
    pub styles: Vec<usize>,
    /// Style demo: pictures it restyles (cycled); empty means the built-in cat plus the sample
    /// photos in `models/images/` when they are there.
    pub images: Vec<PathBuf>,
    /// Style demo: seconds each style stays on screen.
    pub style_seconds: f64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self::from_file(FileConfig::default(), Path::new("(defaults)"))
            .expect("the built-in kiosk defaults are valid")
    }
}

/// The file's layout. Kept apart from [`KioskConfig`] so the file can use friendly units
/// (minutes, key text) and stay stable while the app's struct changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    panels: Option<Vec<Page>>,
    fullscreen: Option<bool>,
    zoom: Option<f32>,
    quit_keys: Option<String>,
    timing: FileTiming,
    write: FileWrite,
    faces: FileFaces,
    style: FileStyle,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileTiming {
    idle_seconds: Option<f64>,
    demo_seconds: Option<f64>,
    reset_minutes: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWrite {
    prompts: Option<Vec<String>>,
    max_tokens: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileFaces {
    seeds: Option<Vec<u64>>,
    psi: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileStyle {
    styles: Option<Vec<usize>>,
    images: Option<Vec<PathBuf>>,
    seconds: Option<f64>,
}

impl KioskConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, KioskConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KioskConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The configuration for the studio: `explicit` (`--kiosk-config`) if given, else
    /// `kiosk.toml` in `data_dir` if it exists, else the defaults.
    pub fn find(explicit: Option<&Path>, data_dir: &Path) -> Result<Self, KioskConfigError> {
        match explicit {
            Some(p) => Self::load(p),
            None => {
                let p = data_dir.join(CONFIG_FILE);
                if p.is_file() {
                    Self::load(&p)
                } else {
                    Ok(Self::default())
                }
            }
        }
    }

    /// Parses and validates configuration text; `path` is for messages (and relative image
    /// paths are taken from its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, KioskConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| KioskConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut config = Self::from_file(file, path)?;
        if let Some(dir) = path.parent() {
            for img in &mut config.images {
                if img.is_relative() {
                    *img = dir.join(&*img);
                }
            }
        }
        Ok(config)
    }

    fn from_file(f: FileConfig, path: &Path) -> Result<Self, KioskConfigError> {
        let invalid = |field: &'static str, problem: String| KioskConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            problem,
        };
        let panels = f
            .panels
            .unwrap_or_else(|| vec![Page::Faces, Page::Style, Page::Write]);
        if panels.is_empty() {
            return Err(invalid("panels", "is empty: name at least one page".into()));
        }
        for (i, p) in panels.iter().enumerate() {
            // An unattended stand has nothing to train on and should not hold cores for it.
            if *p == Page::Train {
                return Err(invalid(
                    "panels",
                    "names train: the Train page is not offered in trade-show mode".into(),
                ));
            }
            if panels[..i].contains(p) {
                return Err(invalid("panels", format!("lists {p:?} twice")));
            }
        }
        let zoom = f.zoom.unwrap_or(1.5);
        if !(0.5..=4.0).contains(&zoom) {
            return Err(invalid("zoom", format!("is {zoom}; use 0.5 to 4")));
        }
        let quit_keys_text = f.quit_keys.unwrap_or_else(|| "Ctrl+Shift+Q".into());
        let quit_keys = KeyCombo::parse(&quit_keys_text).map_err(|e| invalid("quit_keys", e))?;
        let positive = |field: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(invalid(field, format!("is {v}; it must be more than 0")))
            }
        };
        let idle_seconds = positive("timing.idle_seconds", f.timing.idle_seconds.unwrap_or(60.0))?;
        let demo_seconds = positive("timing.demo_seconds", f.timing.demo_seconds.unwrap_or(30.0))?;
        let reset_seconds = 60.0
            * positive(
                "timing.reset_minutes",
                f.timing.reset_minutes.unwrap_or(5.0),
            )?;
        if reset_seconds < idle_seconds {
            return Err(invalid(
                "timing.reset_minutes",
                format!(
                    "is shorter than timing.idle_seconds ({idle_seconds} s): the reset would come \
                     before the attract loop"
                ),
            ));
        }
        let prompts = f.write.prompts.unwrap_or_else(|| {
            vec![
                "The old lighthouse keeper climbed the stairs one last time. At the top,".into(),
                "In the city of glass, every window told a story.".into(),
            ]
        });
        if prompts.is_empty() || prompts.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "write.prompts",
                "needs at least one prompt, and no empty ones".into(),
            ));
        }
        let max_tokens = f.write.max_tokens.unwrap_or(80);
        if !(1..=1024).contains(&max_tokens) {
            return Err(invalid(
                "write.max_tokens",
                format!("is {max_tokens}; use 1 to 1024"),
            ));
        }
        let seeds = f.faces.seeds.unwrap_or_else(|| vec![3, 14, 15, 92, 65]);
        if !(2..=crate::panels::faces::MAX_KEYS).contains(&seeds.len()) {
            return Err(invalid(
                "faces.seeds",
                format!(
                    "has {} seeds; a walk needs 2 to {}",
                    seeds.len(),
                    crate::panels::faces::MAX_KEYS
                ),
            ));
        }
        let psi = f.faces.psi.unwrap_or(0.8);
        let psi_range = crate::features::faces::PSI_RANGE;
        if !psi_range.contains(&psi) {
            return Err(invalid(
                "faces.psi",
                format!("is {psi}; use {} to {}", psi_range.start(), psi_range.end()),
            ));
        }
        let count = crate::models::stylenet::STYLE_COUNT;
        let styles = f.style.styles.unwrap_or_else(|| vec![0, 5, 11, 19, 23]);
        if styles.is_empty() {
            return Err(invalid("style.styles", "is empty".into()));
        }
        if let Some(bad) = styles.iter().find(|&&s| s >= count) {
            return Err(invalid(
                "style.styles",
                format!(
                    "has style {bad}; the built-in styles are 0 to {}",
                    count - 1
                ),
            ));
        }
        let style_seconds = positive("style.seconds", f.style.seconds.unwrap_or(6.0))?;
        Ok(Self {
            panels,
            fullscreen: f.fullscreen.unwrap_or(true),
            zoom,
            quit_keys,
            quit_keys_text,
            idle_seconds,
            demo_seconds,
            reset_seconds,
            prompts,
            max_tokens,
            seeds,
            psi,
            styles,
            images: f.style.images.unwrap_or_default(),
            style_seconds,
        })
    }

    /// The pictures the Style demo restyles: the configured ones, or the built-in cat and the
    /// sample photos when there are any.
    pub fn style_images(&self) -> Vec<PathBuf> {
        if !self.images.is_empty() {
            return self.images.clone();
        }
        let mut images =
            vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/style/chelsea_256.png")];
        let samples = crate::paths::models_dir().join("images");
        for name in ["astronaut.png", "coffee.png", "rocket.jpg"] {
            let p = samples.join(name);
            if p.is_file() {
                images.push(p);
            }
        }
        images
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KioskConfig, KioskConfigError> {
        KioskConfig::parse(text, Path::new("/tmp/kiosk.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, KioskConfig::default());
        assert_eq!(c.panels, vec![Page::Faces, Page::Style, Page::Write]);
        assert_eq!(c.reset_seconds, 300.0);
    }

    #[test]
    fn full_file_is_read() {
        let c = parse(
            r#"
            panels = ["style", "faces"]
            fullscreen = false
            zoom = 2.0
            quit_keys = "Ctrl+Alt+X"
            [timing]
            idle_seconds = 10
            demo_seconds = 5.5
            reset_minutes = 1
            [write]
            prompts = ["Hello"]
            max_tokens = 20
            [faces]
            seeds = [1, 2, 3]
            psi = 0.5
            [style]
            styles = [25, 0]
            images = ["cat.png", "/abs/dog.png"]
            seconds = 2
            "#,
        )
        .unwrap();
        assert_eq!(c.panels, vec![Page::Style, Page::Faces]);
        assert!(!c.fullscreen);
        assert_eq!(c.zoom, 2.0);
        assert_eq!(
            c.quit_keys.0,
            egui::KeyboardShortcut::new(egui::Modifiers::CTRL | egui::Modifiers::ALT, egui::Key::X)
        );
        assert_eq!(
            (c.idle_seconds, c.demo_seconds, c.reset_seconds),
            (10.0, 5.5, 60.0)
        );
        assert_eq!(c.prompts, vec!["Hello".to_string()]);
        assert_eq!(c.seeds, vec![1, 2, 3]);
        assert_eq!(c.styles, vec![25, 0]);
        assert_eq!(
            c.images,
            vec![PathBuf::from("/tmp/cat.png"), PathBuf::from("/abs/dog.png")]
        );
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            ("panels = []", "panels"),
            ("panels = [\"faces\", \"faces\"]", "twice"),
            ("panels = [\"faces\", \"train\"]", "trade-show mode"),
            ("panels = [\"paint\"]", "paint"),
            ("zoom = 9", "zoom"),
            ("quit_keys = \"Q\"", "Ctrl, Alt or Cmd"),
            ("quit_keys = \"Shift+Q\"", "Ctrl, Alt or Cmd"),
            ("quit_keys = \"Ctrl+Nope\"", "Nope"),
            ("[timing]\nidle_seconds = 0", "timing.idle_seconds"),
            (
                "[timing]\nidle_seconds = 600\nreset_minutes = 1",
                "reset_minutes",
            ),
            ("[write]\nprompts = []", "write.prompts"),
            ("[faces]\nseeds = [1]", "faces.seeds"),
            ("[style]\nstyles = [26]", "style.styles"),
            ("colour = \"red\"", "colour"),
            ("[timing]\nidle = 3", "idle"),
            ("zoom = \"big\"", "zoom"),
        ];
        for (text, needle) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("/tmp/kiosk.toml"), "{err}");
        }
    }

    #[test]
    fn key_combos() {
        assert!(KeyCombo::parse("ctrl+shift+q").is_ok());
        assert!(KeyCombo::parse("Alt+F4").is_ok());
        assert!(KeyCombo::parse("Ctrl+A+B").is_err());
        assert!(KeyCombo::parse("Ctrl+").is_err());
    }
}
