//! The map: where the present sound lies on the model's first two principal axes, with a trail
//! that fades over the last seconds and a marker for each learned sound, projected the same way.

use super::history::History;
use super::plot::{self, map_point};
use super::theme;
use echoic_core::outputs::MAX_LEARNED;
use egui::{pos2, Align2, Color32, Rect, Stroke, Ui};

/// Age groups of the trail: each is drawn as one polyline of one brightness.
const TRAIL_BUCKETS: usize = 12;
/// Points per age group, at most (the trail's length over the groups, rounded up).
const TRAIL_BUCKET: usize = super::history::TRAIL / TRAIL_BUCKETS + 1;

/// The panel; returns the plot rect.
pub fn show(ui: &Ui, rect: Rect, history: &History, learn_names: &[String; MAX_LEARNED]) -> Rect {
    let content = plot::panel(ui, rect, "Map", "principal axes 1 and 2, z-score");
    let side = content.width().min(content.height() - 14.0).max(10.0);
    let plot_rect = Rect::from_center_size(
        pos2(content.center().x + 6.0, content.top() + side * 0.5),
        egui::vec2(side - 12.0, side),
    );
    let painter = ui.painter();
    let state = &history.state;
    if !state.has_pca {
        painter.text(
            plot_rect.center(),
            Align2::CENTER_CENTER,
            "this model has no principal axes",
            theme::small(),
            theme::TEXT_DIM,
        );
        return plot_rect;
    }
    // The view covers ±4 standard deviations, more if a learned sound lies further out.
    let mut range = 4.0f32;
    for marker in &state.learned {
        if let Some(p) = marker.map {
            range = range.max(p[0].abs().max(p[1].abs()) * 1.1).min(12.0);
        }
    }
    let clip = painter.with_clip_rect(plot_rect);
    let step = if range > 6.0 { 2 } else { 1 };
    let whole = range.floor() as i32;
    for k in (-whole..=whole).filter(|k| k % step == 0) {
        let colour = if k == 0 {
            Color32::from_white_alpha(40)
        } else {
            Color32::from_white_alpha(12)
        };
        let a = map_point(plot_rect, range, [k as f32, -range]);
        let b = map_point(plot_rect, range, [k as f32, range]);
        clip.line_segment([a, b], Stroke::new(1.0, colour));
        let a = map_point(plot_rect, range, [-range, k as f32]);
        let b = map_point(plot_rect, range, [range, k as f32]);
        clip.line_segment([a, b], Stroke::new(1.0, colour));
        if k != 0 && k % 2 == 0 {
            let x = map_point(plot_rect, range, [k as f32, 0.0]).x;
            painter.text(
                pos2(x, plot_rect.bottom() + 2.0),
                Align2::CENTER_TOP,
                format!("{k}"),
                theme::small(),
                theme::TEXT_DIM,
            );
            let y = map_point(plot_rect, range, [0.0, k as f32]).y;
            painter.text(
                pos2(plot_rect.left() - 3.0, y),
                Align2::RIGHT_CENTER,
                format!("{k}"),
                theme::small(),
                theme::TEXT_DIM,
            );
        }
    }
    painter.text(
        pos2(plot_rect.right() - 3.0, plot_rect.bottom() - 2.0),
        Align2::RIGHT_BOTTOM,
        "axis 1",
        theme::small(),
        theme::TEXT_DIM,
    );
    painter.text(
        pos2(plot_rect.left() + 3.0, plot_rect.top() + 2.0),
        Align2::LEFT_TOP,
        "axis 2",
        theme::small(),
        theme::TEXT_DIM,
    );

    // Trail: older is fainter and thinner. Drawn as a few polylines of equal age rather than one
    // segment per hop, which would cost hundreds of separately tessellated shapes a frame.
    let n = history.trail.len();
    let mut run: Vec<egui::Pos2> = Vec::with_capacity(TRAIL_BUCKET + 1);
    let bucket_of = |i: usize| i * TRAIL_BUCKETS / n.max(1);
    let flush = |run: &mut Vec<egui::Pos2>, bucket: usize, keep_last: bool| {
        if run.len() >= 2 {
            let fresh = (bucket + 1) as f32 / TRAIL_BUCKETS as f32;
            let stroke = Stroke::new(
                0.6 + 1.6 * fresh,
                theme::ACCENT.gamma_multiply(fresh.powf(1.6) * 0.86),
            );
            clip.add(egui::Shape::line(run.clone(), stroke));
        }
        let last = run.last().copied();
        run.clear();
        if let (true, Some(last)) = (keep_last, last) {
            run.push(last);
        }
    };
    let mut current_bucket = 0;
    for (i, p) in history.trail.iter().enumerate() {
        let bucket = bucket_of(i);
        if bucket != current_bucket {
            flush(&mut run, current_bucket, true);
            current_bucket = bucket;
        }
        match p {
            Some(p) => run.push(map_point(plot_rect, range, *p)),
            None => flush(&mut run, current_bucket, false),
        }
    }
    flush(&mut run, current_bucket, false);

    // The present: a halo under the learned markers, a hollow ring over them, so a learned sound
    // at the present position stays visible through it.
    let present_at = history
        .trail
        .back()
        .copied()
        .flatten()
        .map(|p| map_point(plot_rect, range, p));
    if let Some(at) = present_at {
        clip.circle_filled(at, 11.0, theme::ACCENT.gamma_multiply(0.16));
    }
    // Learned sounds.
    for (j, marker) in state.learned.iter().enumerate() {
        let Some(p) = marker.map else { continue };
        let at = map_point(plot_rect, range, p);
        let colour = theme::LEARNED[j];
        let similarity = history.latest.similarity[j];
        clip.circle_stroke(
            at,
            9.0 + 10.0 * similarity,
            Stroke::new(1.5, colour.gamma_multiply(0.25 + 0.6 * similarity)),
        );
        clip.circle_filled(at, 9.0, colour);
        clip.circle_stroke(at, 9.0, Stroke::new(1.5, theme::PLOT));
        clip.text(
            at,
            Align2::CENTER_CENTER,
            format!("{}", j + 1),
            theme::title(),
            theme::PLOT,
        );
        // The name goes on the side with more room, so that a marker near an edge keeps it.
        let (label_at, align) = if at.x > plot_rect.center().x {
            (pos2(at.x - 14.0, at.y - 8.0), Align2::RIGHT_BOTTOM)
        } else {
            (pos2(at.x + 14.0, at.y - 8.0), Align2::LEFT_BOTTOM)
        };
        clip.text(label_at, align, &learn_names[j], theme::small(), colour);
    }

    if let Some(at) = present_at {
        let ring = match history.latest.learning {
            Some((target, _)) => theme::LEARNED[target as usize % MAX_LEARNED],
            None => theme::ACCENT,
        };
        clip.circle_stroke(at, 5.5, Stroke::new(3.0, ring));
        clip.circle_stroke(at, 7.5, Stroke::new(1.0, Color32::WHITE));
    }
    if let Some((target, progress)) = history.latest.learning {
        let colour = theme::LEARNED[target as usize % MAX_LEARNED];
        painter.text(
            pos2(plot_rect.right() - 4.0, plot_rect.top() + 3.0),
            Align2::RIGHT_TOP,
            format!("learning sound {} · {:.0} %", target + 1, progress * 100.0),
            theme::small(),
            colour,
        );
    }
    plot_rect
}
