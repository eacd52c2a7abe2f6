//! The left side: the document list, and what can be done with documents (new, open, move
//! to the trash, Save As, export).

use egui::FontId;

use super::state::WritePanel;
use super::state::{DocAction, EXPORT_DIALOG, SAVE_AS_DIALOG};
use crate::app::notice::{Notice, NoticeLevel};
use crate::panels::{Command, DialogPurpose, PanelContext};
use crate::store::ExportFormat;
use crate::theme::{self, icon, space};

impl WritePanel {
    pub(super) fn documents(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.horizontal(|ui| {
            theme::section_label(ui, "Documents");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .add(egui::Button::new(format!("{} New", icon::PLUS)).small())
                    .on_hover_text("New document (Ctrl+N)")
                    .clicked()
                {
                    self.doc_actions.push(DocAction::New);
                }
            });
        });
        ui.add_space(space::XS);
        let current = cx.store.current().id.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        egui::ScrollArea::vertical()
            .id_salt("documents-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.spacing_mut().item_spacing.y = 2.0;
                for doc in cx.store.documents() {
                    let selected = doc.id == current;
                    let mut title = doc.display_title();
                    if title.chars().count() > 26 {
                        title =
                            format!("{}…", title.chars().take(25).collect::<String>().trim_end());
                    }
                    let mut job = egui::text::LayoutJob::default();
                    job.append(
                        &title,
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
                        &format!("\n{}", relative_time(now, doc.modified)),
                        0.0,
                        egui::TextFormat::simple(FontId::proportional(11.5), theme::TEXT_FAINT),
                    );
                    let r = ui
                        .add(
                            egui::Button::selectable(selected, job)
                                .min_size(egui::vec2(ui.available_width(), 40.0)),
                        )
                        .accessible_name(format!("Open document {}", doc.display_title()));
                    if r.clicked() && !selected {
                        self.doc_actions.push(DocAction::Open(doc.id.clone()));
                    }
                    let id = doc.id.clone();
                    r.context_menu(|ui| {
                        if ui.button("Move to trash").clicked() {
                            self.doc_actions.push(DocAction::Delete(id.clone()));
                            ui.close();
                        }
                    });
                }
            });
    }
}

pub(super) fn relative_time(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        86_400..=172_799 => "yesterday".into(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

impl WritePanel {
    pub(super) fn apply_doc_actions(&mut self, cx: &mut PanelContext<'_>) {
        for action in std::mem::take(&mut self.doc_actions) {
            match action {
                DocAction::New => {
                    cx.store.new_document();
                    self.document_switched();
                }
                DocAction::Open(id) => {
                    cx.store.select(&id);
                    self.document_switched();
                }
                DocAction::Delete(id) => {
                    let title = cx
                        .store
                        .documents()
                        .iter()
                        .find(|d| d.id == id)
                        .map(|d| d.display_title())
                        .unwrap_or_default();
                    let notice = match cx.store.delete_document(&id) {
                        Ok(()) => Notice {
                            level: NoticeLevel::Info,
                            message: format!("“{title}” moved to documents/trash."),
                        },
                        Err(e) => Notice {
                            level: NoticeLevel::Error,
                            message: e.to_string(),
                        },
                    };
                    cx.toast(notice);
                    self.document_switched();
                }
                DocAction::SaveAs => self.ask_save_as(cx),
                DocAction::SaveToFile => match cx.store.save_to_file() {
                    Ok(Some(path)) => cx.toast(Notice {
                        level: NoticeLevel::Info,
                        message: format!("Saved to {}", path.display()),
                    }),
                    Ok(None) => self.ask_save_as(cx),
                    Err(e) => cx.toast(Notice {
                        level: NoticeLevel::Error,
                        message: e.to_string(),
                    }),
                },
                DocAction::Export(format) => {
                    self.export_format = Some(format);
                    cx.commands.push(Command::FileDialog {
                        purpose: DialogPurpose::Save,
                        title: "Export a copy".into(),
                        filters: vec![(
                            match format {
                                ExportFormat::Markdown => "Markdown",
                                ExportFormat::PlainText => "Plain text",
                            }
                            .into(),
                            vec![format.extension().into()],
                        )],
                        file_name: Some(format!(
                            "{}.{}",
                            file_stem(cx.store.current()),
                            format.extension()
                        )),
                        tag: EXPORT_DIALOG,
                    });
                }
            }
        }
    }

    fn ask_save_as(&mut self, cx: &mut PanelContext<'_>) {
        cx.commands.push(Command::FileDialog {
            purpose: DialogPurpose::Save,
            title: "Save document as".into(),
            filters: vec![
                ("Markdown".into(), vec!["md".into()]),
                ("Plain text".into(), vec!["txt".into()]),
            ],
            file_name: Some(format!("{}.md", file_stem(cx.store.current()))),
            tag: SAVE_AS_DIALOG,
        });
    }
}

/// The document's title as a file name: letters, digits, spaces and dashes kept.
fn file_stem(doc: &crate::store::Document) -> String {
    let stem: String = doc
        .display_title()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    stem.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(100, 90), "just now");
        assert_eq!(relative_time(1000, 100), "15 min ago");
        assert_eq!(relative_time(200_000, 0), "2 days ago");
    }
}
