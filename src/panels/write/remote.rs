//! The Write panel's engine choice: this computer, or an OpenAI-compatible server (its
//! address, an API key kept in the key store, a model from its `/v1/models`). UI state only:
//! the engine does the network work and the key store keeps the key.

use egui::RichText;

use crate::engine::{Engine, Event, JobId};
use crate::remote::keystore::KeyStore;
use crate::remote::{ApiKey, RemoteEndpoint, normalize_base_url};
use crate::store::RemoteSettings;
use crate::theme::{self, icon, space};

/// What the remote section shows.
#[derive(Default)]
pub struct RemotePanel {
    /// The key being typed (cleared once saved; never persisted from here).
    pub(super) key_input: String,
    /// Whether a key is saved for [`Self::checked_url`] (None: not looked up yet).
    pub(super) key_saved: Option<bool>,
    /// The address the key state belongs to.
    pub(super) checked_url: String,
    /// The outcome of the last save or delete.
    pub(super) key_message: Option<(bool, String)>,
    /// Models from the last listing.
    pub(super) models: Vec<String>,
    /// The listing job in flight.
    pub(super) listing: Option<JobId>,
    /// Why the last listing failed.
    pub(super) list_error: Option<String>,
}

impl RemotePanel {
    /// Whether `job` is this section's model listing.
    pub fn owns(&self, job: JobId) -> bool {
        self.listing == Some(job)
    }

    /// Applies an event of the listing job.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::RemoteModels { models, .. } => {
                self.models = models;
                self.list_error = None;
            }
            Event::Failed { error, .. } => {
                self.list_error = Some(error.to_string());
                self.listing = None;
            }
            e if e.is_terminal() => self.listing = None,
            _ => {}
        }
    }

    /// The endpoint generations go to (the key is looked up by the engine).
    pub fn endpoint(settings: &RemoteSettings) -> RemoteEndpoint {
        RemoteEndpoint::new(settings.base_url.trim(), settings.model.trim())
    }

    /// "This computer | Server" switch.
    pub fn engine_choice(ui: &mut egui::Ui, settings: &mut RemoteSettings) {
        theme::section_label(ui, "Engine");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let w = (ui.available_width() - space::XS) / 2.0;
            for (remote, label, hint) in [
                (
                    false,
                    "This computer",
                    "Run the model here, on this computer's CPU.",
                ),
                (
                    true,
                    "Server",
                    "Send requests to an OpenAI-compatible server (llama.cpp, vLLM, Ollama, \
                     LM Studio, another Atelier).",
                ),
            ] {
                let r = ui
                    .add(
                        egui::Button::selectable(settings.enabled == remote, label)
                            .min_size(egui::vec2(w, 28.0)),
                    )
                    .on_hover_text(hint);
                if r.clicked() {
                    settings.enabled = remote;
                }
            }
        });
    }

    /// The server settings.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut RemoteSettings,
        engine: Option<&Engine>,
    ) {
        let label = ui.label(RichText::new("Server address").color(theme::TEXT_WEAK));
        let r = ui
            .add(
                egui::TextEdit::singleline(&mut settings.base_url)
                    .hint_text("http://127.0.0.1:8080")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        let address = normalize_base_url(&settings.base_url);
        if let Err(e) = &address {
            error_text(ui, &e.to_string());
        }
        let url_ok = address.as_ref().ok().cloned();
        if let Some(url) = &url_ok
            && (*url != self.checked_url || self.key_saved.is_none())
            && !r.has_focus()
        {
            // Looked up once per address, not every frame: the keyring is a D-Bus call.
            self.checked_url = url.clone();
            self.key_saved = Some(matches!(KeyStore::open().load(url), Ok(Some(_))));
            self.key_message = None;
            self.models.clear();
        }

        ui.add_space(space::XS);
        let key_label = ui.label(RichText::new("API key").color(theme::TEXT_WEAK));
        let hint = if self.key_saved == Some(true) {
            "saved ● type to replace"
        } else {
            "none (optional)"
        };
        ui.add(
            egui::TextEdit::singleline(&mut self.key_input)
                .password(true)
                .hint_text(hint)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(key_label.id);
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let can_save = url_ok.is_some() && !self.key_input.trim().is_empty();
            if ui
                .add_enabled(can_save, egui::Button::new("Save key"))
                .on_hover_text("Keep the key in the system keyring for this address")
                .clicked()
                && let (Some(url), Some(key)) = (&url_ok, ApiKey::new(&self.key_input))
            {
                self.key_message = Some(match KeyStore::open().save(url, &key) {
                    Ok(backing) => {
                        self.key_saved = Some(true);
                        (true, format!("Key saved in {}.", backing.describe()))
                    }
                    Err(e) => (false, e.to_string()),
                });
                self.key_input.clear();
            }
            let can_forget = url_ok.is_some() && self.key_saved == Some(true);
            if ui
                .add_enabled(can_forget, egui::Button::new("Forget key"))
                .on_hover_text("Delete the saved key for this address")
                .clicked()
                && let Some(url) = &url_ok
            {
                self.key_message = Some(match KeyStore::open().delete(url) {
                    Ok(()) => {
                        self.key_saved = Some(false);
                        (true, "Key deleted.".into())
                    }
                    Err(e) => (false, e.to_string()),
                });
            }
        });
        if let Some((ok, message)) = &self.key_message {
            let color = if *ok { theme::TEXT_WEAK } else { theme::ERROR };
            ui.label(RichText::new(message).color(color).size(12.0));
        }

        ui.add_space(space::XS);
        let model_label = ui.label(RichText::new("Server model").color(theme::TEXT_WEAK));
        ui.horizontal(|ui| {
            let shown = if settings.model.is_empty() {
                "the server's first model".to_string()
            } else {
                settings.model.clone()
            };
            let combo = egui::ComboBox::from_id_salt("remote-model")
                .selected_text(shown)
                .width(ui.available_width() - 44.0)
                .show_ui(ui, |ui| {
                    if ui
                        .selectable_label(settings.model.is_empty(), "the server's first model")
                        .clicked()
                    {
                        settings.model.clear();
                    }
                    for m in &self.models {
                        if ui.selectable_label(settings.model == *m, m).clicked() {
                            settings.model = m.clone();
                        }
                    }
                    if self.models.is_empty() {
                        ui.label(
                            RichText::new("Press ↻ to list the server's models.")
                                .color(theme::TEXT_FAINT)
                                .size(12.0),
                        );
                    }
                });
            combo.response.labelled_by(model_label.id);
            let listing = self.listing.is_some();
            let r = ui
                .add_enabled(
                    url_ok.is_some() && !listing && engine.is_some(),
                    egui::Button::new(icon::REGENERATE),
                )
                .on_hover_text("List the server's models (GET /v1/models)")
                .accessible_name("List the server's models");
            if r.clicked()
                && let Some(engine) = engine
            {
                self.list_error = None;
                let job = engine.remote_models(Self::endpoint(settings));
                self.listing = Some(job.id());
            }
            if listing {
                ui.spinner();
            }
        });
        if let Some(e) = &self.list_error {
            error_text(ui, e);
        }
        ui.label(
            RichText::new(
                "Your document stays here; only the prompt is sent. The key is kept in the \
                 system keyring (or a private file), never in the settings file.",
            )
            .color(theme::TEXT_FAINT)
            .size(12.0),
        );
    }
}

fn error_text(ui: &mut egui::Ui, text: &str) {
    ui.add(
        egui::Label::new(
            RichText::new(format!("{} {text}", icon::WARNING))
                .color(theme::ERROR)
                .size(12.0),
        )
        .wrap(),
    );
}
