//! Atelier's visual design: one dark theme with a single warm accent, the bundled Inter font,
//! a small spacing scale, and the few shared widgets (cards, pills, the dice) every panel uses.
//!
//! Icons are Unicode glyphs the bundled fonts really contain (Inter for arrows, ✓, ⚠, ■, ▶;
//! egui's Hack for geometric shapes). egui's emoji font is not compiled in (eframe's
//! `monochrome_emoji_fonts` feature is off), so an emoji would render as a box; the one icon no
//! font has — a die — is painted.

use egui::epaint::{CornerRadius, Shadow, Stroke};
use egui::{Color32, FontData, FontDefinitions, FontFamily, FontId, Margin, TextStyle, Vec2};
use std::sync::Arc;

/// Window and central background.
pub const BG: Color32 = Color32::from_rgb(0x16, 0x17, 0x1b);
/// Side panels and bars: a step above the background.
pub const PANEL: Color32 = Color32::from_rgb(0x1c, 0x1d, 0x22);
/// Cards and inputs.
pub const SURFACE: Color32 = Color32::from_rgb(0x23, 0x25, 0x2b);
/// Hovered surfaces.
pub const SURFACE_HI: Color32 = Color32::from_rgb(0x2c, 0x2e, 0x36);
/// Selected items and selected text.
pub const SELECTED: Color32 = Color32::from_rgb(0x3a, 0x34, 0x36);
/// Hairlines between areas.
pub const BORDER: Color32 = Color32::from_rgb(0x31, 0x33, 0x3c);
/// Body text.
pub const TEXT: Color32 = Color32::from_rgb(0xe7, 0xe7, 0xeb);
/// Secondary text (labels, captions).
pub const TEXT_WEAK: Color32 = Color32::from_rgb(0x9c, 0x9e, 0xa8);
/// Tertiary text (hints, disabled).
pub const TEXT_FAINT: Color32 = Color32::from_rgb(0x6b, 0x6d, 0x78);
/// The one accent: a warm coral used for the primary action, selection and focus.
pub const ACCENT: Color32 = Color32::from_rgb(0xf0, 0x8a, 0x5d);
/// The accent, pressed.
pub const ACCENT_DIM: Color32 = Color32::from_rgb(0xc9, 0x6c, 0x44);
/// Text on an accent fill.
pub const ON_ACCENT: Color32 = Color32::from_rgb(0x1a, 0x12, 0x0e);
/// Good news (finished, loaded).
pub const OK: Color32 = Color32::from_rgb(0x7b, 0xc9, 0x8f);
/// Warnings (trimmed prompt, queued).
pub const WARN: Color32 = Color32::from_rgb(0xe8, 0xc0, 0x6a);
/// Errors.
pub const ERROR: Color32 = Color32::from_rgb(0xf0, 0x71, 0x78);

/// Spacing scale in points: everything lines up on multiples of 4.
pub mod space {
    /// Tight gaps inside a control group.
    pub const XS: f32 = 4.0;
    /// Between related controls.
    pub const S: f32 = 8.0;
    /// Between groups.
    pub const M: f32 = 12.0;
    /// Around cards and sections.
    pub const L: f32 = 16.0;
    /// Page margins.
    pub const XL: f32 = 24.0;
}

/// Corner radius of cards and inputs.
pub const RADIUS: u8 = 8;

/// Glyphs used as icons (all present in the bundled fonts; kittest's missing-glyph check
/// enforces it).
pub mod icon {
    /// Start a generation.
    pub const PLAY: &str = "▶";
    /// Stop a generation.
    pub const STOP: &str = "■";
    /// Regenerate.
    pub const REGENERATE: &str = "↻";
    /// Reset / undo.
    pub const RESET: &str = "↺";
    /// Accept.
    pub const CHECK: &str = "✓";
    /// Dismiss.
    pub const CROSS: &str = "✗";
    /// Warning.
    pub const WARNING: &str = "⚠";
    /// A new item.
    pub const PLUS: &str = "+";
    /// Bullet / status dot.
    pub const DOT: &str = "●";
    /// A choice that opens something.
    pub const CARET: &str = "▾";
    /// Something coming later.
    pub const STAR: &str = "★";
    /// Export / leave.
    pub const EXPORT: &str = "↗";
}

/// The family of the semibold Inter face (headings, buttons that matter).
pub fn strong_family() -> FontFamily {
    FontFamily::Name(Arc::from("Inter-SemiBold"))
}

/// A font id in the semibold face.
pub fn strong(size: f32) -> FontId {
    FontId::new(size, strong_family())
}

/// Font definitions: Inter for text, Hack for numbers that must line up, each falling back to
/// the other fonts so geometric icons resolve.
pub fn fonts() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    fonts.font_data.insert(
        "Inter-Regular".into(),
        Arc::new(FontData::from_static(include_bytes!(
            "../assets/fonts/Inter-Regular.otf"
        ))),
    );
    fonts.font_data.insert(
        "Inter-SemiBold".into(),
        Arc::new(FontData::from_static(include_bytes!(
            "../assets/fonts/Inter-SemiBold.otf"
        ))),
    );
    let fallbacks: Vec<String> = fonts
        .families
        .get(&FontFamily::Proportional)
        .cloned()
        .unwrap_or_default();
    let with = |first: &str| -> Vec<String> {
        let mut v = vec![first.to_string()];
        // Hack covers the geometric shapes (◐, ▣) that Inter lacks.
        v.push("Hack".into());
        v.extend(fallbacks.iter().filter(|f| *f != "Hack").cloned());
        v
    };
    fonts
        .families
        .insert(FontFamily::Proportional, with("Inter-Regular"));
    fonts
        .families
        .insert(strong_family(), with("Inter-SemiBold"));
    if let Some(mono) = fonts.families.get_mut(&FontFamily::Monospace) {
        mono.push("Inter-Regular".into());
    }
    fonts
}

/// Installs fonts and the dark style on `ctx`. Call once at startup (and in test harnesses).
pub fn install(ctx: &egui::Context) {
    ctx.set_fonts(fonts());
    ctx.set_theme(egui::Theme::Dark);
    ctx.all_styles_mut(apply_style);
}

/// Applies Atelier's style to one egui style (both themes get it: the app is dark-only).
pub fn apply_style(style: &mut egui::Style) {
    use TextStyle::*;
    style.text_styles = [
        (Small, FontId::proportional(11.5)),
        (Body, FontId::proportional(14.0)),
        (Button, FontId::proportional(13.5)),
        (Monospace, FontId::monospace(12.5)),
        (Heading, strong(20.0)),
    ]
    .into();
    style
        .text_styles
        .insert(TextStyle::Name("editor".into()), FontId::proportional(16.0));

    let sp = &mut style.spacing;
    sp.item_spacing = Vec2::new(space::S, space::S);
    sp.button_padding = Vec2::new(12.0, 5.0);
    sp.interact_size = Vec2::new(40.0, 28.0);
    sp.window_margin = Margin::same(space::L as i8);
    sp.menu_margin = Margin::same(6);
    sp.slider_width = 150.0;
    sp.combo_width = 200.0;
    sp.indent = space::M;

    let v = &mut style.visuals;
    *v = egui::Visuals::dark();
    v.dark_mode = true;
    v.override_text_color = None;
    v.panel_fill = PANEL;
    v.window_fill = SURFACE;
    v.window_stroke = Stroke::new(1.0, BORDER);
    v.window_corner_radius = CornerRadius::same(10);
    v.menu_corner_radius = CornerRadius::same(RADIUS);
    v.window_shadow = Shadow {
        offset: [0, 8],
        blur: 24,
        spread: 0,
        color: Color32::from_black_alpha(110),
    };
    v.popup_shadow = Shadow {
        offset: [0, 6],
        blur: 18,
        spread: 0,
        color: Color32::from_black_alpha(100),
    };
    v.extreme_bg_color = Color32::from_rgb(0x12, 0x13, 0x16);
    v.text_edit_bg_color = Some(Color32::from_rgb(0x19, 0x1a, 0x1e));
    v.faint_bg_color = SURFACE;
    v.code_bg_color = SURFACE;
    v.hyperlink_color = ACCENT;
    v.warn_fg_color = WARN;
    v.error_fg_color = ERROR;
    // Selected buttons and selected text share this fill: a neutral step up, with the accent
    // reserved for the text/stroke so selection reads without turning the panel brown.
    v.selection.bg_fill = SELECTED;
    v.selection.stroke = Stroke::new(1.0, ACCENT);
    v.text_cursor.stroke = Stroke::new(2.0, ACCENT);
    v.slider_trailing_fill = true;
    v.striped = false;
    v.indent_has_left_vline = false;

    let radius = CornerRadius::same(RADIUS - 2);
    let w = &mut v.widgets;
    w.noninteractive.bg_fill = PANEL;
    w.noninteractive.weak_bg_fill = PANEL;
    w.noninteractive.bg_stroke = Stroke::new(1.0, BORDER);
    // Plain labels: a touch softer than body text; captions use TEXT_WEAK explicitly.
    w.noninteractive.fg_stroke = Stroke::new(1.0, Color32::from_rgb(0xd6, 0xd7, 0xdc));
    w.noninteractive.corner_radius = radius;

    w.inactive.bg_fill = SURFACE;
    w.inactive.weak_bg_fill = SURFACE;
    w.inactive.bg_stroke = Stroke::new(1.0, BORDER);
    w.inactive.fg_stroke = Stroke::new(1.0, TEXT);
    w.inactive.corner_radius = radius;

    w.hovered.bg_fill = SURFACE_HI;
    w.hovered.weak_bg_fill = SURFACE_HI;
    w.hovered.bg_stroke = Stroke::new(1.0, Color32::from_rgb(0x45, 0x47, 0x52));
    w.hovered.fg_stroke = Stroke::new(1.5, TEXT);
    w.hovered.corner_radius = radius;
    w.hovered.expansion = 0.0;

    w.active.bg_fill = Color32::from_rgb(0x36, 0x38, 0x42);
    w.active.weak_bg_fill = Color32::from_rgb(0x36, 0x38, 0x42);
    w.active.bg_stroke = Stroke::new(1.0, ACCENT);
    w.active.fg_stroke = Stroke::new(1.5, TEXT);
    w.active.corner_radius = radius;
    w.active.expansion = 0.0;

    w.open.bg_fill = SURFACE_HI;
    w.open.weak_bg_fill = SURFACE_HI;
    w.open.bg_stroke = Stroke::new(1.0, BORDER);
    w.open.fg_stroke = Stroke::new(1.0, TEXT);
    w.open.corner_radius = radius;
}

/// A side panel of a page (controls, details): panel fill, roomy margin.
pub fn side_panel() -> egui::Frame {
    egui::Frame::new()
        .fill(PANEL)
        .inner_margin(Margin::same(space::L as i8))
}

/// A raised card: surface fill, hairline border, rounded.
pub fn card() -> egui::Frame {
    egui::Frame::new()
        .fill(SURFACE)
        .stroke(Stroke::new(1.0, BORDER))
        .corner_radius(CornerRadius::same(RADIUS))
        .inner_margin(Margin::same(space::M as i8))
}

/// A quiet inset area (e.g. the suggestion tray background).
pub fn inset() -> egui::Frame {
    egui::Frame::new()
        .fill(Color32::from_rgb(0x19, 0x1a, 0x1e))
        .stroke(Stroke::new(1.0, BORDER))
        .corner_radius(CornerRadius::same(RADIUS))
        .inner_margin(Margin::same(space::M as i8))
}

/// A notice strip tinted by `color` (warnings, errors, information).
pub fn notice_frame(color: Color32) -> egui::Frame {
    egui::Frame::new()
        .fill(color.gamma_multiply(0.12))
        .stroke(Stroke::new(1.0, color.gamma_multiply(0.5)))
        .corner_radius(CornerRadius::same(RADIUS - 2))
        .inner_margin(Margin::symmetric(10, 6))
}

/// The primary action button: accent fill, dark text.
pub fn primary_button(text: &str) -> egui::Button<'static> {
    egui::Button::new(
        egui::RichText::new(text.to_owned())
            .color(ON_ACCENT)
            .font(strong(13.5)),
    )
    .fill(ACCENT)
    .stroke(Stroke::NONE)
    .min_size(Vec2::new(0.0, 30.0))
}

/// A small caption above a group of controls, in capitals like a section label.
pub fn section_label(ui: &mut egui::Ui, text: &str) {
    ui.label(
        egui::RichText::new(text.to_uppercase())
            .font(strong(11.0))
            .color(TEXT_FAINT)
            .extra_letter_spacing(0.6),
    );
}

/// A rounded pill with tinted background, for states ("Generating", "Queued").
pub fn pill(ui: &mut egui::Ui, text: &str, color: Color32) -> egui::Response {
    egui::Frame::new()
        .fill(color.gamma_multiply(0.16))
        .corner_radius(CornerRadius::same(10))
        .inner_margin(Margin::symmetric(8, 2))
        .show(ui, |ui| {
            ui.label(egui::RichText::new(text).color(color).size(12.0));
        })
        .response
}

/// A square icon button with a painted die (random seed). `label` is its accessible name.
pub fn dice_button(ui: &mut egui::Ui, label: &str) -> egui::Response {
    let size = Vec2::splat(ui.spacing().interact_size.y);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, ui.is_enabled(), label));
    if ui.is_rect_visible(rect) {
        let visuals = ui.style().interact(&response);
        let painter = ui.painter();
        painter.rect(
            rect,
            visuals.corner_radius,
            visuals.weak_bg_fill,
            visuals.bg_stroke,
            egui::StrokeKind::Inside,
        );
        let die = egui::Rect::from_center_size(rect.center(), Vec2::splat(size.y * 0.5));
        painter.rect_stroke(
            die,
            CornerRadius::same(3),
            Stroke::new(1.4, visuals.fg_stroke.color),
            egui::StrokeKind::Inside,
        );
        let c = die.center();
        let d = die.width() * 0.24;
        for offset in [Vec2::new(-d, -d), Vec2::ZERO, Vec2::new(d, d)] {
            painter.circle_filled(c + offset, 1.6, visuals.fg_stroke.color);
        }
    }
    response
}

/// Lays out `add` in a column at most `max_width` wide, centred horizontally in `ui`.
/// (Margins cannot do this: egui's `Margin` holds `i8`, too small for wide windows.)
pub fn centered_column<R>(
    ui: &mut egui::Ui,
    max_width: f32,
    add: impl FnOnce(&mut egui::Ui) -> R,
) -> R {
    let avail = ui.available_width();
    let width = avail.min(max_width);
    let pad = ((avail - width) / 2.0).max(0.0);
    let spacing = ui.spacing().item_spacing;
    ui.horizontal_top(|ui| {
        ui.spacing_mut().item_spacing.x = 0.0;
        ui.add_space(pad);
        ui.vertical(|ui| {
            ui.spacing_mut().item_spacing = spacing;
            ui.set_width(width);
            add(ui)
        })
        .inner
    })
    .inner
}

/// Formats a byte count for people ("98 MB").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats an integer with thousands separators ("8,192").
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(8192), "8,192");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(human_bytes(98_362_432), "98.4 MB");
        assert_eq!(human_bytes(253_113_024), "253 MB");
        assert_eq!(human_bytes(512), "512 B");
    }
}

/// What a piece of status means, as a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Ordinary information.
    Normal,
    /// Less important.
    Faint,
    /// All is well.
    Good,
    /// Attention (queued, loading, stopping).
    Warn,
    /// Something failed.
    Bad,
    /// Work in progress.
    Accent,
}

impl Tone {
    /// The colour that says it.
    pub fn color(self) -> Color32 {
        match self {
            Tone::Normal => TEXT_WEAK,
            Tone::Faint => TEXT_FAINT,
            Tone::Good => OK,
            Tone::Warn => WARN,
            Tone::Bad => ERROR,
            Tone::Accent => ACCENT,
        }
    }
}
