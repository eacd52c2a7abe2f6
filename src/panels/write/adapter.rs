//! The adapter picker under the model: the LoRA adapters that fit the loaded model (found on a
//! named thread in the adapters folder, where Train saves them, and beside the model), one
//! applied at a strength from 0 to 2. The choice goes with every request; the worker applies
//! it (a strength change is instant on the native decoder).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use egui::RichText;

use crate::models::llm::lora::discover::{AdapterEntry, compatible, search_dirs};
use crate::models::llm::lora::{AdapterSpec, BaseShapes, STRENGTH_RANGE};
use crate::theme;

/// The adapters of the selected model and the one chosen.
pub struct AdapterChoice {
    /// The model the list is for.
    listed_for: Option<PathBuf>,
    /// The adapters that fit it.
    pub(super) list: Vec<AdapterEntry>,
    /// The search, while it runs.
    searching: Option<Receiver<Vec<AdapterEntry>>>,
    /// The chosen adapter's file (`None`: the base model alone).
    pub(super) chosen: Option<PathBuf>,
    /// Its strength.
    pub(super) strength: f32,
    /// The adapters folder's modification time when last listed, and when it was last looked
    /// at: a new adapter saved there (a training run just ended) is listed within a second.
    folder_seen: (Option<std::time::SystemTime>, Option<std::time::Instant>),
}

impl Default for AdapterChoice {
    fn default() -> Self {
        Self {
            listed_for: None,
            list: Vec::new(),
            searching: None,
            chosen: None,
            strength: 1.0,
            folder_seen: (None, None),
        }
    }
}

impl AdapterChoice {
    /// What requests run with.
    pub fn spec(&self) -> Option<AdapterSpec> {
        self.chosen.as_ref().map(|path| AdapterSpec {
            path: path.clone(),
            scale: self.strength,
        })
    }

    /// Chooses an adapter file (tests, and "Use in Write" from elsewhere).
    pub fn choose(&mut self, path: Option<PathBuf>, strength: f32) {
        self.chosen = path;
        self.strength = strength.clamp(*STRENGTH_RANGE.start(), *STRENGTH_RANGE.end());
    }

    /// Lists the adapters of `model` again (on a thread), also looking in `extra`.
    pub fn refresh(&mut self, model: &Path, extra: &Path) {
        self.listed_for = Some(model.to_path_buf());
        let model = model.to_path_buf();
        let extra = extra.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("atelier-adapters".into())
            .spawn(move || {
                let found = match crate::models::llm::gguf::open(&model) {
                    Ok((content, _, _)) => {
                        let mut dirs = search_dirs(&model);
                        if !dirs.contains(&extra) {
                            dirs.push(extra);
                        }
                        compatible(&dirs, &BaseShapes::from_content(&content))
                    }
                    Err(_) => Vec::new(),
                };
                let _ = tx.send(found);
            });
        match spawned {
            Ok(_) => self.searching = Some(rx),
            Err(e) => tracing::warn!("cannot list adapters: {e}"),
        }
    }

    fn poll(&mut self) {
        if let Some(rx) = &self.searching {
            match rx.try_recv() {
                Ok(list) => {
                    self.list = list;
                    self.searching = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.searching = None,
            }
        }
    }

    /// The adapters listed for the model.
    pub fn listed(&self) -> &[AdapterEntry] {
        &self.list
    }

    /// Draws the picker for the loaded `model` (nothing while none is loaded); `data` is the
    /// data folder (its `adapters/` is searched too).
    pub fn show(&mut self, ui: &mut egui::Ui, model: Option<&Path>, data: &Path) {
        let Some(model) = model else {
            return;
        };
        let folder = data.join("adapters");
        let now = std::time::Instant::now();
        let look = self
            .folder_seen
            .1
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1));
        let mut changed = false;
        if look {
            let mtime = std::fs::metadata(&folder).and_then(|m| m.modified()).ok();
            changed = mtime != self.folder_seen.0;
            self.folder_seen = (mtime, Some(now));
        }
        if self.listed_for.as_deref() != Some(model) {
            if self.listed_for.is_some() {
                // Another model: its adapters differ.
                self.chosen = None;
            }
            self.refresh(model, &folder);
        } else if changed && self.searching.is_none() {
            self.refresh(model, &folder);
        }

        self.poll();
        if self.list.is_empty() && self.chosen.is_none() {
            return;
        }
        let label = ui.label(RichText::new("Adapter").color(theme::TEXT_WEAK));
        let name = self
            .chosen
            .as_ref()
            .and_then(|p| p.file_stem())
            .map_or_else(|| "None".to_string(), |s| s.to_string_lossy().into_owned());
        egui::ComboBox::from_id_salt("adapter-picker")
            .selected_text(name)
            .width(ui.available_width())
            .show_ui(ui, |ui| {
                if ui.selectable_label(self.chosen.is_none(), "None").clicked() {
                    self.chosen = None;
                }
                for a in &self.list {
                    let text = format!("{} · rank {} · {}", a.name, a.rank, a.targets.join(","));
                    if ui
                        .selectable_label(self.chosen.as_ref() == Some(&a.path), text)
                        .on_hover_text(a.path.display().to_string())
                        .clicked()
                    {
                        self.chosen = Some(a.path.clone());
                    }
                }
            })
            .response
            .labelled_by(label.id);
        if self.chosen.is_some() {
            ui.add(
                egui::Slider::new(&mut self.strength, STRENGTH_RANGE)
                    .text("strength")
                    .fixed_decimals(2),
            )
            .on_hover_text("1 applies the adapter as trained; 0 is the base model");
        }
    }
}
