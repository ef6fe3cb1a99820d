//! The outputs panel (a meter per automation slot, with its CC number and what it follows) and
//! the learned-sounds panel (learn and clear buttons for the four learn targets).

use super::history::History;
use super::plot;
use super::theme;
use crate::params::EchoicParams;
use echoic_core::display::EditorLink;
use echoic_core::outputs::source::{Source, MAX_LEARNED};
use echoic_core::outputs::N_SLOTS;
use egui::UiBuilder;
use egui::{
    pos2, Align2, Button, Color32, CornerRadius, Rect, RichText, Sense, Stroke, StrokeKind, Ui,
};
use nice_plug::prelude::ParamSetter;
use std::time::{Duration, Instant};

/// How long the editor holds a learn trigger on at most: the worker reads the trigger once per
/// hop, and the host applies a parameter change at the end of a processing block, so a press
/// shorter than a block plus a hop could be missed. The trigger is released as soon as the
/// capture is seen to start, or after this long.
const LEARN_HOLD: Duration = Duration::from_millis(400);

/// The meters; clicking a row selects that slot for the controls panel. Returns the plot rect.
pub fn meters(
    ui: &Ui,
    rect: Rect,
    params: &EchoicParams,
    history: &History,
    selected: &mut usize,
) -> Rect {
    let content = plot::panel(
        ui,
        rect,
        "Outputs",
        "click a slot to edit it · MIDI CC value",
    );
    let row_h = (content.height() / N_SLOTS as f32).min(24.0);
    let painter = ui.painter();
    for slot in 0..N_SLOTS {
        let p = &params.slots[slot];
        let row = Rect::from_min_size(
            pos2(content.left(), content.top() + slot as f32 * row_h),
            egui::vec2(content.width(), row_h - 3.0),
        );
        let response = ui.interact(
            row,
            egui::Id::unique(("echoic-slot-row", slot)),
            Sense::click(),
        );
        if response.clicked() {
            *selected = slot;
        }
        let on = p.enabled.value();
        if *selected == slot {
            painter.rect_filled(
                row.expand(1.0),
                CornerRadius::same(4),
                Color32::from_white_alpha(10),
            );
            painter.rect_stroke(
                row.expand(1.0),
                CornerRadius::same(4),
                Stroke::new(1.0, theme::ACCENT.gamma_multiply(0.5)),
                StrokeKind::Inside,
            );
        } else if response.hovered() {
            painter.rect_filled(
                row.expand(1.0),
                CornerRadius::same(4),
                Color32::from_white_alpha(6),
            );
        }
        let text = if on { theme::TEXT } else { theme::TEXT_DIM };
        let y = row.center().y;
        painter.text(
            pos2(row.left() + 4.0, y),
            Align2::LEFT_CENTER,
            format!("{}", slot + 1),
            theme::mono(),
            theme::TEXT_DIM,
        );
        let channel = p.channel.value();
        let cc = if channel == 1 {
            format!("CC {:>3}", p.cc.value())
        } else {
            format!("CC {:>3}·{channel}", p.cc.value())
        };
        painter.text(
            pos2(row.left() + 18.0, y),
            Align2::LEFT_CENTER,
            cc,
            theme::mono(),
            text,
        );
        let source = p.source();
        painter.text(
            pos2(row.left() + 84.0, y),
            Align2::LEFT_CENTER,
            source.name(),
            theme::small(),
            text,
        );
        let bar = Rect::from_min_max(
            pos2(row.left() + 170.0, row.top() + 4.0),
            pos2(row.right() - 36.0, row.bottom() - 4.0),
        );
        painter.rect_filled(bar, CornerRadius::same(3), theme::PLOT);
        let value = history.latest.values[slot].clamp(0.0, 1.0);
        let colour = match source {
            Source::Similarity(j) => theme::LEARNED[j as usize % MAX_LEARNED],
            _ => theme::ACCENT,
        };
        let colour = if on {
            colour
        } else {
            colour.gamma_multiply(0.35)
        };
        if bar.width() > 0.0 {
            let fill = Rect::from_min_max(
                bar.min,
                pos2(bar.left() + value * bar.width(), bar.bottom()),
            );
            painter.rect_filled(fill, CornerRadius::same(3), colour);
        }
        let shown = if on {
            format!("{:>3}", (value * 127.0).round() as u32)
        } else {
            "off".to_owned()
        };
        painter.text(
            pos2(row.right() - 2.0, y),
            Align2::RIGHT_CENTER,
            shown,
            theme::mono(),
            text,
        );
    }
    content
}

/// What the learn panel remembers between frames.
pub struct LearnButtons {
    /// Per target: when the editor turned the learn trigger on, until it turns it off again.
    held_since: [Option<Instant>; MAX_LEARNED],
    /// Where the buttons were drawn (learn, clear) per target, for the test probe.
    pub rects: [(Rect, Rect); MAX_LEARNED],
}

impl Default for LearnButtons {
    fn default() -> Self {
        Self {
            held_since: [None; MAX_LEARNED],
            rects: [(Rect::NOTHING, Rect::NOTHING); MAX_LEARNED],
        }
    }
}

impl LearnButtons {
    /// Releases learn triggers whose capture started (or that were held long enough).
    pub fn release(&mut self, params: &EchoicParams, setter: &ParamSetter, history: &History) {
        for (target, held) in self.held_since.iter_mut().enumerate() {
            let Some(since) = *held else { continue };
            let started = history
                .latest
                .learning
                .is_some_and(|(t, _)| t as usize == target);
            if started || since.elapsed() >= LEARN_HOLD {
                let param = &params.learn[target].learn;
                setter.begin_set_parameter(param);
                setter.set_parameter(param, false);
                setter.end_set_parameter(param);
                *held = None;
            }
        }
    }

    /// The learned-sounds panel. `names` are the learned sounds' names.
    #[allow(clippy::too_many_arguments)]
    pub fn show(
        &mut self,
        ui: &mut Ui,
        rect: Rect,
        params: &EchoicParams,
        setter: Option<&ParamSetter>,
        link: &EditorLink,
        history: &History,
        names: &[String; MAX_LEARNED],
    ) {
        let note = format!("capture length {:.1} s", params.learn_seconds.value());
        let content = plot::panel(ui, rect, "Learned sounds", &note);
        let row_h = (content.height() / MAX_LEARNED as f32).min(30.0);
        for (target, name) in names.iter().enumerate() {
            let row = Rect::from_min_size(
                pos2(content.left(), content.top() + target as f32 * row_h),
                egui::vec2(content.width(), row_h - 4.0),
            );
            let colour = theme::LEARNED[target];
            let marker = history.state.learned[target];
            let learning = history
                .latest
                .learning
                .filter(|(t, _)| *t as usize == target);
            let y = row.center().y;
            let painter = ui.painter().clone();
            if marker.learned {
                painter.circle_filled(pos2(row.left() + 9.0, y), 7.0, colour);
            } else {
                painter.circle_stroke(pos2(row.left() + 9.0, y), 6.5, Stroke::new(1.5, colour));
            }
            painter.text(
                pos2(row.left() + 9.0, y),
                Align2::CENTER_CENTER,
                format!("{}", target + 1),
                theme::small(),
                if marker.learned { theme::PLOT } else { colour },
            );
            painter.text(
                pos2(row.left() + 22.0, y),
                Align2::LEFT_CENTER,
                name,
                theme::small(),
                theme::TEXT,
            );
            let (status, status_colour) = match learning {
                Some((_, progress)) => (format!("learning {:>3.0} %", progress * 100.0), colour),
                None if link.clear_pending(target) => ("clearing".to_owned(), theme::TEXT_DIM),
                None if marker.learned && marker.map.is_none() && history.state.has_pca => {
                    ("other model".to_owned(), theme::WARN)
                }
                None if marker.learned => ("learned".to_owned(), theme::GOOD),
                None => ("empty".to_owned(), theme::TEXT_DIM),
            };
            painter.text(
                pos2(row.left() + 86.0, y),
                Align2::LEFT_CENTER,
                status,
                theme::small(),
                status_colour,
            );
            // Similarity meter, or the capture's progress while learning.
            let bar = Rect::from_min_max(
                pos2(row.left() + 160.0, y - 4.0),
                pos2(row.right() - 124.0, y + 4.0),
            );
            if bar.width() > 8.0 {
                painter.rect_filled(bar, CornerRadius::same(3), theme::PLOT);
                let value = match learning {
                    Some((_, progress)) => progress,
                    None if marker.learned => history.latest.similarity[target],
                    None => 0.0,
                };
                let fill = Rect::from_min_max(
                    bar.min,
                    pos2(
                        bar.left() + value.clamp(0.0, 1.0) * bar.width(),
                        bar.bottom(),
                    ),
                );
                painter.rect_filled(
                    fill,
                    CornerRadius::same(3),
                    colour.gamma_multiply(if learning.is_some() { 0.6 } else { 1.0 }),
                );
            }
            let held = self.held_since[target].is_some() || params.learn[target].learn.value();
            let learn_rect = Rect::from_min_max(
                pos2(row.right() - 118.0, row.top() + 1.0),
                pos2(row.right() - 60.0, row.bottom() - 1.0),
            );
            let clear_rect = Rect::from_min_max(
                pos2(row.right() - 54.0, row.top() + 1.0),
                pos2(row.right(), row.bottom() - 1.0),
            );
            self.rects[target] = (learn_rect, clear_rect);
            let learn = Button::new(RichText::new("Learn").color(if held || learning.is_some() {
                theme::PLOT
            } else {
                theme::TEXT
            }))
            .fill(if held || learning.is_some() {
                colour
            } else {
                Color32::from_rgb(0x23, 0x28, 0x32)
            });
            let clicked = ui
                .put(learn_rect, learn)
                .on_hover_text("capture the mean embedding of what plays next")
                .clicked();
            if clicked {
                if let Some(setter) = setter {
                    let param = &params.learn[target].learn;
                    setter.begin_set_parameter(param);
                    setter.set_parameter(param, true);
                    setter.end_set_parameter(param);
                    self.held_since[target] = Some(Instant::now());
                }
            }
            let mut clear_ui = ui.new_child(UiBuilder::new().max_rect(clear_rect));
            if !(marker.learned || learning.is_some()) {
                clear_ui.disable();
            }
            let clear = clear_ui.add_sized(clear_rect.size(), Button::new("Clear"));
            if clear.on_hover_text("forget this sound").clicked() {
                link.request_clear(target);
            }
        }
    }
}
