//! Loss curves drawn with the painter: each series as a faint raw line and a strong smoothed
//! one (an exponential moving average, as training dashboards show), with the value range and
//! a legend. Long runs are thinned to about one point per pixel column before drawing.

use egui::{Color32, Pos2, Rect, Stroke, Vec2};

use crate::theme;

/// One curve to draw.
pub struct Curve<'a> {
    /// The legend's name.
    pub name: &'a str,
    /// Its colour.
    pub color: Color32,
    /// (step, value) points in step order.
    pub points: &'a [(f64, f64)],
}

/// The moving average's weight of the newest point.
const SMOOTHING: f64 = 0.15;

/// Draws `curves` in a plot `height` points high, the full width of `ui`.
pub fn show(ui: &mut egui::Ui, curves: &[Curve<'_>], height: f32) {
    let (rect, _) = ui.allocate_exact_size(
        Vec2::new(ui.available_width().max(120.0), height),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 6.0, theme::SURFACE);
    let finite = curves
        .iter()
        .flat_map(|c| c.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let Some(bounds) = finite.fold(None, |b: Option<[f64; 4]>, &(x, y)| {
        Some(match b {
            None => [x, x, y, y],
            Some([x0, x1, y0, y1]) => [x0.min(x), x1.max(x), y0.min(y), y1.max(y)],
        })
    }) else {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "The curves appear after the first steps",
            egui::FontId::proportional(12.0),
            theme::TEXT_FAINT,
        );
        return;
    };
    let [x0, x1, y0, y1] = bounds;
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let plot = Rect::from_min_max(
        rect.min + Vec2::new(40.0, 18.0),
        rect.max - Vec2::new(8.0, 8.0),
    );
    let to_screen = |x: f64, y: f64| {
        let fx = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.5 };
        let fy = (y - y0) / (y1 - y0);
        Pos2::new(
            plot.left() + fx as f32 * plot.width(),
            plot.bottom() - fy as f32 * plot.height(),
        )
    };
    let axis = egui::FontId::proportional(10.5);
    for (value, y) in [(y1, plot.top()), (y0, plot.bottom())] {
        painter.text(
            Pos2::new(rect.left() + 4.0, y),
            egui::Align2::LEFT_CENTER,
            format!("{value:.2}"),
            axis.clone(),
            theme::TEXT_FAINT,
        );
    }
    painter.text(
        Pos2::new(plot.right(), rect.bottom() - 2.0),
        egui::Align2::RIGHT_BOTTOM,
        format!("step {x1:.0}"),
        axis.clone(),
        theme::TEXT_FAINT,
    );
    let columns = plot.width().max(1.0) as usize;
    let mut legend_x = plot.left();
    for curve in curves {
        let points = thin(curve.points, columns);
        let raw: Vec<Pos2> = points.iter().map(|&(x, y)| to_screen(x, y)).collect();
        let smooth: Vec<Pos2> = ema(&points)
            .into_iter()
            .map(|(x, y)| to_screen(x, y))
            .collect();
        if raw.len() > 1 {
            painter.add(egui::Shape::line(
                raw,
                Stroke::new(1.0, curve.color.gamma_multiply(0.35)),
            ));
            painter.add(egui::Shape::line(smooth, Stroke::new(2.0, curve.color)));
        } else if let Some(&p) = raw.first() {
            painter.circle_filled(p, 3.0, curve.color);
        }
        let label = match curve.points.last() {
            Some(&(_, y)) => format!("{} {y:.3}", curve.name),
            None => curve.name.to_string(),
        };
        let galley = painter.layout_no_wrap(label, axis.clone(), curve.color);
        let width = galley.size().x;
        painter.galley(Pos2::new(legend_x, rect.top() + 3.0), galley, curve.color);
        legend_x += width + 16.0;
    }
}

/// Two curves in the page's two series colours (D and G, or training and held-out loss).
pub fn pair(ui: &mut egui::Ui, names: [&str; 2], points: [&[(f64, f64)]; 2], height: f32) {
    show(
        ui,
        &[
            Curve {
                name: names[0],
                color: theme::ACCENT,
                points: points[0],
            },
            Curve {
                name: names[1],
                color: theme::OK,
                points: points[1],
            },
        ],
        height,
    );
}

/// At most about `columns` points: the mean of each run of consecutive points.
pub fn thin(points: &[(f64, f64)], columns: usize) -> Vec<(f64, f64)> {
    let per = points.len().div_ceil(columns.max(1)).max(1);
    points
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            let (sx, sy) = c.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
            (sx / n, sy / n)
        })
        .collect()
}

/// The exponential moving average of `points` (NaN and infinite values skipped).
pub fn ema(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut avg: Option<f64> = None;
    for &(x, y) in points {
        if !y.is_finite() {
            continue;
        }
        let a = avg.map_or(y, |a| a + SMOOTHING * (y - a));
        avg = Some(a);
        out.push((x, a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_shape_within_the_columns() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 2) as f64)).collect();
        let thin = thin(&points, 100);
        assert_eq!(thin.len(), 100);
        assert!(thin.iter().all(|&(_, y)| (y - 0.5).abs() < 1e-9));
        assert_eq!(super::thin(&points[..3], 100).len(), 3);
    }

    #[test]
    fn the_average_follows_and_skips_nan() {
        let e = ema(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0)]);
        assert_eq!(e.len(), 2);
        assert!((e[1].1 - 1.15).abs() < 1e-12);
    }
}
