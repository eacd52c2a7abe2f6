//! The Write panel as the app drives it ([`Panel`]): the page's layout, its events (its own
//! jobs and the model loads they cause), its status-bar items and its part in the kiosk's
//! demo.

use std::path::PathBuf;

use super::model::ModelPick;
use super::model_picker::display_name;
use super::state::WritePanel;
use super::state::{DocAction, EXPORT_DIALOG, OPEN_MODEL_DIALOG, SAVE_AS_DIALOG};
use super::suggestions::Phase;
use super::tray::phase_pill;
use crate::app::notice::{Notice, NoticeLevel};
use crate::app::page::Page;
use crate::engine::{Event, JobId};
use crate::kiosk::demo::Demo;
use crate::panels::{Command, DialogPurpose, Panel, PanelContext, StatusItem, Tone};
use crate::store::{Store, WriteMode, export_document};
use crate::theme::{self, space};

impl Panel for WritePanel {
    fn name(&self) -> &'static str {
        "Write"
    }

    fn page(&self) -> Page {
        Page::Write
    }

    fn start(&mut self, cx: &mut PanelContext<'_>) {
        self.model.selected = cx
            .store
            .settings
            .model
            .clone()
            .unwrap_or_else(|| crate::paths::default_model(crate::paths::SMOLLM2_FILE));
        if self.model.selected.is_file() {
            self.load_model(self.model.selected.clone(), cx);
        } else {
            tracing::warn!(
                "model {} is missing; fetch the defaults with {}",
                self.model.selected.display(),
                crate::paths::FETCH_COMMAND
            );
        }
    }

    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if !self.discovered_once {
            self.discovered_once = true;
            self.discover(ui.ctx());
        }
        self.poll_discovery();
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::S)) {
            self.doc_actions.push(DocAction::SaveToFile);
        }
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::N)) {
            self.doc_actions.push(DocAction::New);
        }
        if std::mem::take(&mut self.generate_requested) && !self.is_generating() {
            self.generate(ui.ctx(), cx);
        }
        self.keyboard(ui, cx);
        egui::Panel::left("write-documents")
            .resizable(false)
            .exact_size(232.0)
            .frame(
                egui::Frame::new()
                    .fill(theme::PANEL)
                    .inner_margin(egui::Margin::same(space::M as i8)),
            )
            .show(ui, |ui| self.documents(ui, cx));
        egui::Panel::right("write-assistant")
            .resizable(false)
            .exact_size(348.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("assistant-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.assistant(ui, cx));
            });
        if self.suggestions.is_some() {
            egui::Panel::bottom("write-tray")
                .resizable(true)
                .default_size(380.0)
                .min_size(160.0)
                .max_size((ui.available_height() * 0.7).max(200.0))
                .frame(
                    egui::Frame::new()
                        .fill(theme::BG)
                        .inner_margin(egui::Margin::symmetric(space::XL as i8, space::M as i8)),
                )
                .show(ui, |ui| self.tray(ui, cx));
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(theme::BG))
            .show(ui, |ui| self.editor(ui, cx));
        self.token_popup(ui, cx);
        for pick in std::mem::take(&mut self.picks) {
            match pick {
                ModelPick::Load(path) => self.load_model(path, cx),
                ModelPick::OpenDialog => cx.commands.push(Command::FileDialog {
                    purpose: DialogPurpose::Open,
                    title: "Open a GGUF language model".into(),
                    filters: vec![("GGUF model".into(), vec!["gguf".into()])],
                    file_name: None,
                    tag: OPEN_MODEL_DIALOG,
                }),
                ModelPick::Refresh => self.discover(ui.ctx()),
            }
        }
        self.apply_doc_actions(cx);
    }

    fn owns(&self, job: JobId) -> bool {
        self.suggestions.as_ref().is_some_and(|s| s.job_id() == job)
            || self.model.owns(job)
            || self.model.reading.as_ref().is_some_and(|(j, _)| *j == job)
            || self.remote.owns(job)
            || self.retired.contains(&job)
    }

    fn on_event(&mut self, event: Event, cx: &mut PanelContext<'_>) {
        let job = event.job();
        if self.remote.owns(job) {
            self.remote.on_event(event);
            return;
        }
        // Model loads happen inside generation jobs too.
        self.model.observe(&event);
        if let Event::ModelLoaded { info, .. } = &event
            && !info.has_chat_template
            && info.path == self.model.selected
            && cx.store.settings.mode == WriteMode::Instruct
        {
            cx.store.settings.mode = WriteMode::Continue;
            cx.toast(Notice {
                level: NoticeLevel::Info,
                message: format!(
                    "{} has no chat template (it is a base model), so Write switched to \
                     Continue.",
                    info.name
                ),
            });
        }
        if event.is_terminal() {
            self.retired.retain(|j| *j != job);
        }
        if let Some(s) = &mut self.suggestions
            && s.job_id() == job
        {
            s.on_event(event);
        }
    }

    fn status(&self, store: &Store) -> Vec<StatusItem> {
        let mut items = Vec::new();
        let remote = remote_label(&store.settings.remote);
        let remote = remote.as_deref();
        let model = &self.model;
        let queued = model
            .load
            .as_ref()
            .is_some_and(|l| l.ahead > 0 && !l.started);
        let (tone, text) = if let Some(server) = remote {
            (Tone::Good, format!("Server: {server}"))
        } else if queued {
            (
                Tone::Warn,
                format!("{} (queued)", display_name(&model.selected, None)),
            )
        } else if model.is_loading() {
            (
                Tone::Warn,
                format!("Loading {}", display_name(&model.selected, None)),
            )
        } else if let Some(info) = &model.loaded {
            let name = display_name(&info.path, Some(info));
            match &info.adapter {
                Some(a) => (Tone::Good, format!("{name} + {}", a.label())),
                None => (Tone::Good, name),
            }
        } else if model.error.is_some() {
            (Tone::Bad, "Model failed to load".into())
        } else {
            (Tone::Faint, "No model loaded".into())
        };
        items.push(StatusItem::left(text).tone(tone).with_dot());
        items.push(if remote.is_some() {
            StatusItem::left("LLM on the server")
                .hover("Write sends its prompts to the OpenAI-compatible server.")
        } else {
            StatusItem::left("LLM on CPU").hover("Language models run on this computer's CPU.")
        });
        if let Some(s) = &self.suggestions {
            if let Some(tps) = s.tokens_per_s() {
                items.push(StatusItem::right(format!("{tps:.1} tok/s")));
            }
            let ttft = s
                .candidates
                .iter()
                .filter_map(|c| c.stats.as_ref())
                .find(|st| st.generated_tokens > 0)
                .map(|st| st.time_to_first_token_ms);
            if let Some(ms) = ttft {
                items.push(StatusItem::right(format!("first token {ms:.0} ms")));
            }
            let (text, tone) = phase_pill(&s.phase);
            let text = match &s.phase {
                Phase::Streaming => format!("{text} · {} tokens", s.token_count()),
                _ => text,
            };
            items.push(StatusItem::right(text).tone(tone));
        }
        items
    }

    fn is_working(&self) -> bool {
        self.is_generating()
    }

    fn stop(&mut self) {
        WritePanel::stop(self);
    }

    fn reset(&mut self, _cx: &mut PanelContext<'_>) {
        // The model stays loaded: only the page's state starts afresh.
        WritePanel::stop(self);
        let model = std::mem::take(&mut self.model);
        *self = Self::default();
        self.model = model;
    }

    fn file_chosen(&mut self, tag: &'static str, path: PathBuf, cx: &mut PanelContext<'_>) {
        match tag {
            OPEN_MODEL_DIALOG => {
                let recent = &mut cx.store.settings.recent_models;
                recent.retain(|p| *p != path);
                recent.insert(0, path.clone());
                recent.truncate(8);
                self.load_model(path, cx);
            }
            SAVE_AS_DIALOG => {
                let result = cx.store.save_as(&path);
                report_save(cx, result, &path, "Saved to");
            }
            EXPORT_DIALOG => {
                if let Some(format) = self.export_format.take() {
                    let result = export_document(cx.store.current(), &path, format);
                    report_save(cx, result, &path, "Exported to");
                }
            }
            _ => {}
        }
    }

    fn open(&mut self, path: PathBuf, cx: &mut PanelContext<'_>) -> bool {
        self.load_model(path, cx);
        true
    }

    fn worker_recovered(&mut self, cx: &mut PanelContext<'_>) {
        // The worker dropped every model: load the language model again at once, so the next
        // generation does not wait for it.
        self.model.loaded = None;
        if self.model.selected.is_file() {
            self.load_model(self.model.selected.clone(), cx);
        }
    }

    fn demo(&mut self, demo: Demo<'_>, cx: &mut PanelContext<'_>) {
        let Demo::Write {
            prompt,
            max_tokens,
            seed,
            document,
        } = demo
        else {
            return;
        };
        let existing = document
            .clone()
            .filter(|id| cx.store.documents().iter().any(|d| d.id == *id));
        let id = match existing {
            Some(id) => {
                cx.store.select(&id);
                id
            }
            None => cx.store.new_document(),
        };
        *document = Some(id);
        cx.store.current_mut().text = prompt.to_string();
        cx.store.mark_changed();
        let settings = &mut cx.store.settings;
        settings.mode = WriteMode::Continue;
        settings.params.max_new_tokens = max_tokens;
        settings.params.sampling.seed = seed;
        self.document_switched();
        self.request_generate();
    }
}

/// The server Write uses instead of the local model ("host · model"), if it does.
fn remote_label(remote: &crate::store::RemoteSettings) -> Option<String> {
    if !remote.enabled {
        return None;
    }
    let host = crate::remote::normalize_base_url(&remote.base_url)
        .ok()
        .and_then(|u| reqwest::Url::parse(&u).ok())
        .map_or_else(
            || remote.base_url.clone(),
            |u| {
                let host = u.host_str().unwrap_or_default().to_string();
                u.port().map_or(host.clone(), |p| format!("{host}:{p}"))
            },
        );
    Some(if remote.model.is_empty() {
        host
    } else {
        format!("{host} · {}", remote.model)
    })
}

/// A toast for a file written (or not).
fn report_save(
    cx: &mut PanelContext<'_>,
    result: Result<(), crate::store::StoreError>,
    path: &std::path::Path,
    done: &str,
) {
    cx.toast(match result {
        Ok(()) => Notice {
            level: NoticeLevel::Info,
            message: format!("{done} {}", path.display()),
        },
        Err(e) => Notice {
            level: NoticeLevel::Error,
            message: e.to_string(),
        },
    });
}
