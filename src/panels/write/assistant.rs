//! The right side: the engine (this computer or a server), the model, the mode and its quick
//! actions, alternatives, Generate/Stop and sampling.

use egui::{FontId, RichText};

use super::model_picker::{self};
use super::remote::RemotePanel;
use super::sampling;
use super::state::{InstructAction, WritePanel};
use super::suggestions::Phase;
use crate::panels::PanelContext;
use crate::store::WriteMode;
use crate::theme::{self, icon, space};

impl WritePanel {
    pub(super) fn assistant(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        // Visitors at a kiosk do not reconfigure the engine: it is set in the settings file.
        if !cx.kiosk {
            RemotePanel::engine_choice(ui, &mut cx.store.settings.remote);
        }
        let remote = cx.store.settings.remote.enabled;
        if remote && cx.kiosk {
            ui.label(
                RichText::new(format!("Writing on {}", cx.store.settings.remote.base_url))
                    .color(theme::TEXT_WEAK),
            );
        } else if remote {
            self.remote
                .show(ui, &mut cx.store.settings.remote, cx.engine);
        } else {
            model_picker::show(
                ui,
                &self.model,
                &cx.store.settings.recent_models,
                &mut self.picks,
                cx.kiosk,
            );
            let loaded = self.model.selected_info().map(|i| i.path.clone());
            self.adapters.show(ui, loaded.as_deref(), cx.store.dir());
        }
        ui.add_space(space::S);

        // Mode.
        theme::section_label(ui, "Mode");
        let chat_missing = !remote && self.model.lacks_chat_template();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let w = (ui.available_width() - space::XS) / 2.0;
            let settings = &mut cx.store.settings;
            for (mode, label) in [
                (WriteMode::Continue, "Continue"),
                (WriteMode::Instruct, "Instruct"),
            ] {
                let enabled = !(mode == WriteMode::Instruct && chat_missing);
                let r = ui
                    .add_enabled(
                        enabled,
                        egui::Button::selectable(settings.mode == mode, label)
                            .min_size(egui::vec2(w, 30.0)),
                    )
                    .on_disabled_hover_text(
                        "This model has no chat template (it is a base model): it can only \
                         continue text.",
                    );
                if r.clicked() {
                    settings.mode = mode;
                }
            }
        });
        let mode = if chat_missing {
            WriteMode::Continue
        } else {
            cx.store.settings.mode
        };
        match mode {
            WriteMode::Continue => {
                ui.label(
                    RichText::new(
                        "Continues the document from the cursor: the text before it is the \
                         prompt. Works with any model.",
                    )
                    .color(theme::TEXT_WEAK)
                    .size(12.5),
                );
                if chat_missing {
                    let name = model_picker::display_name(
                        &self.model.selected,
                        self.model.loaded.as_ref(),
                    );
                    theme::notice_frame(theme::TEXT_WEAK).show(ui, |ui| {
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!(
                                    "{name} is a base model without a chat template, so \
                                     Instruct is off. Choose SmolLM2 135M Instruct for \
                                     instructions."
                                ))
                                .color(theme::TEXT_WEAK)
                                .size(12.0),
                            )
                            .wrap(),
                        );
                    });
                }
            }
            WriteMode::Instruct => self.instruct_actions(ui, cx),
        }

        ui.add_space(space::S);
        theme::section_label(ui, "Alternatives");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let w = (ui.available_width() - 3.0 * space::XS) / 4.0;
            for n in 1..=4usize {
                let r = ui
                    .add(
                        egui::Button::selectable(cx.store.settings.candidates == n, n.to_string())
                            .min_size(egui::vec2(w, 28.0)),
                    )
                    .accessible_name(format!("{n} alternative{}", if n == 1 { "" } else { "s" }));
                if r.clicked() {
                    cx.store.settings.candidates = n;
                }
            }
        });

        ui.add_space(space::S);
        self.generate_button(ui, cx, mode);

        ui.add_space(space::M);
        let open = cx.store.settings.show_sampling;
        let header =
            egui::CollapsingHeader::new(RichText::new("Sampling").font(theme::strong(13.0)))
                .id_salt("sampling-header")
                .default_open(open)
                .show(ui, |ui| {
                    sampling::show(ui, &mut cx.store.settings.params);
                });
        let now_open = header.body_returned.is_some();
        if now_open != open {
            cx.store.settings.show_sampling = now_open;
        }
    }

    pub(super) fn instruct_actions(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        for action in [
            InstructAction::ContinueInStyle,
            InstructAction::RewriteSelection,
            InstructAction::Free,
        ] {
            let selected = self.action == action;
            let mut job = egui::text::LayoutJob::default();
            job.append(
                action.label(),
                0.0,
                egui::TextFormat::simple(
                    if selected {
                        theme::strong(13.5)
                    } else {
                        FontId::proportional(13.5)
                    },
                    theme::TEXT,
                ),
            );
            job.append(
                &format!("\n{}", action.help()),
                0.0,
                egui::TextFormat::simple(FontId::proportional(11.5), theme::TEXT_FAINT),
            );
            job.wrap.max_width = ui.available_width() - 24.0;
            let r = ui.add(
                egui::Button::selectable(selected, job)
                    .wrap()
                    .min_size(egui::vec2(ui.available_width(), 40.0)),
            );
            let r = r.accessible_name(action.label());
            if r.clicked() {
                self.action = action;
                self.request_error = None;
            }
        }
        if self.action != InstructAction::ContinueInStyle {
            let hint = match self.action {
                InstructAction::RewriteSelection => {
                    "How? e.g. more vivid, shorter, in the past tense"
                }
                _ => "e.g. Suggest a title for this story",
            };
            let label = ui.label(
                RichText::new("Instruction")
                    .color(theme::TEXT_WEAK)
                    .size(12.5),
            );
            let r = ui.add(
                egui::TextEdit::multiline(&mut cx.store.settings.instruction)
                    .id_salt("instruction")
                    .hint_text(hint)
                    .desired_rows(3)
                    .desired_width(f32::INFINITY),
            );
            r.labelled_by(label.id);
        }
        if self.action == InstructAction::RewriteSelection {
            let sel = self.selection(&cx.store.current().text);
            let text = match sel {
                Some(r) => format!("{} characters selected", theme::thousands(r.len())),
                None => "Select a passage in the document first.".into(),
            };
            ui.label(RichText::new(text).color(theme::TEXT_FAINT).size(12.0));
        }
    }

    pub(super) fn generate_button(
        &mut self,
        ui: &mut egui::Ui,
        cx: &mut PanelContext<'_>,
        mode: WriteMode,
    ) {
        let full = egui::vec2(ui.available_width(), 36.0);
        if self.is_generating() {
            let stopping = self
                .suggestions
                .as_ref()
                .is_some_and(|s| s.phase == Phase::Stopping);
            let r = ui
                .add_enabled(
                    !stopping,
                    egui::Button::new(
                        RichText::new(format!("{}  Stop", icon::STOP)).font(theme::strong(14.0)),
                    )
                    .shortcut_text("Esc")
                    .min_size(full),
                )
                .accessible_name("Stop");
            if r.clicked() {
                self.stop();
            }
        } else {
            let label = match mode {
                WriteMode::Continue => "Continue",
                WriteMode::Instruct => "Generate",
            };
            let r = ui
                .add_enabled(
                    cx.engine.is_some(),
                    theme::primary_button(&format!("{}  {label}", icon::PLAY))
                        .shortcut_text(
                            RichText::new("Ctrl+Enter").color(theme::ON_ACCENT.gamma_multiply(0.7)),
                        )
                        .min_size(full),
                )
                .accessible_name("Generate");
            if r.clicked() {
                self.generate(ui.ctx(), cx);
            }
        }
        if let Some(err) = &self.request_error {
            ui.add(
                egui::Label::new(
                    RichText::new(format!("{} {err}", icon::WARNING))
                        .color(theme::WARN)
                        .size(12.5),
                )
                .wrap(),
            );
        }
    }
}
