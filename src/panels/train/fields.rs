//! One labelled setting in a form grid: the label, the widget named by it (screen readers and
//! the UI tests find it by that name), the end of the row.

/// Adds `label` and `widget` as one row of a grid.
pub fn row(ui: &mut egui::Ui, label: &str, widget: impl egui::Widget) -> egui::Response {
    let l = ui.label(label);
    let r = ui.add(widget).labelled_by(l.id);
    ui.end_row();
    r
}
