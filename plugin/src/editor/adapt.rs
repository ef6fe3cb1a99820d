//! The Adapt panel: fine-tuning the listener on what it heard (the listening history), in the
//! background, then swapping the tuned listener in.
//!
//! *Adapt* presses the `adapt` parameter, as a host's automation would (its rising edge starts
//! the job on the worker); *Cancel* and *Revert* go to the worker through the
//! [`EditorLink`]. While a job runs the panel shows its progress and the held-out loss, before
//! and best so far; otherwise the last outcome, as the worker worded it. How much history is held
//! (and how much *Adapt* keeps at most: the History parameter, under Controls) is always shown.

use super::plot;
use super::theme;
use crate::params::EchoicParams;
use echoic_core::display::{AdaptAction, EditorLink};
use echoic_core::listener::adapt::{frames_needed, AdaptConfig};
use echoic_core::listening::adaptation::AdaptStatus;
use echoic_core::worker::ListenSettings;
use egui::{
    pos2, vec2, Align2, Button, Color32, CornerRadius, Rect, RichText, Sense, Ui, UiBuilder,
};
use nice_plug::prelude::ParamSetter;
use std::time::{Duration, Instant};

/// How long the editor holds the Adapt trigger on at most. Like a learn trigger (see
/// `outputs::LEARN_HOLD`): the worker reads it once per hop, after the host has applied the
/// change at the end of a block, so a shorter press could be missed. It is released as soon as
/// the job is seen running, or after this long (a job that could not start never runs).
const ADAPT_HOLD: Duration = Duration::from_millis(400);

/// Height of the button row.
const ROW: f32 = 22.0;

/// Lines of the outcome text the panel has room for; a longer text is cut (hover shows it all).
const MESSAGE_LINES: f32 = 3.0;

/// Height of one line of small text.
const LINE: f32 = 13.0;

/// The panel's height: title, the button row, and the progress or outcome lines.
pub const HEIGHT: f32 = plot::TITLE_HEIGHT + 6.0 + ROW + 6.0 + MESSAGE_LINES * LINE + 8.0;

/// Width of a button.
const BUTTON: f32 = 62.0;

/// Where the panel drew its parts this frame, in logical points, for the test probe.
#[derive(Clone, Copy, Debug)]
pub struct AdaptRects {
    /// The panel's content.
    pub panel: Rect,
    /// The Adapt button.
    pub adapt: Rect,
    /// The Cancel button.
    pub cancel: Rect,
    /// The Revert button.
    pub revert: Rect,
    /// The progress bar, while an adaptation runs.
    pub progress: Option<Rect>,
}

impl Default for AdaptRects {
    fn default() -> Self {
        Self {
            panel: Rect::NOTHING,
            adapt: Rect::NOTHING,
            cancel: Rect::NOTHING,
            revert: Rect::NOTHING,
            progress: None,
        }
    }
}

/// What the panel remembers between frames.
#[derive(Default)]
pub struct AdaptPanel {
    /// When the editor turned the Adapt trigger on, until it turns it off again.
    held_since: Option<Instant>,
    /// The history *Adapt* needs at least, in seconds, and the settings it was worked out for.
    needed: Option<(ListenSettings, f32)>,
    /// The last outcome read: kept, because the status gives none while the worker writes a
    /// new one (and the text would flicker for a frame).
    message: Option<String>,
    /// Where the parts were drawn this frame.
    pub rects: AdaptRects,
}

/// `seconds` as minutes and seconds, `m:ss`.
fn clock(seconds: f32) -> String {
    let s = seconds.max(0.0).round() as u32;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The colour an outcome is shown in: plain for what was done, dim for a cancel, amber for why
/// nothing was done.
fn message_colour(message: &str) -> Color32 {
    if message.starts_with("Adapted") || message.starts_with("Reverted") {
        theme::TEXT
    } else if message.starts_with("Cancelled")
        || message.starts_with("Adapting")
        || message.starts_with("Reverting")
    {
        theme::TEXT_DIM
    } else {
        theme::WARN
    }
}

impl AdaptPanel {
    /// Releases the Adapt trigger once the job is seen running (or it was held long enough).
    pub fn release(&mut self, params: &EchoicParams, setter: &ParamSetter, status: &AdaptStatus) {
        let Some(since) = self.held_since else { return };
        if status.running() || since.elapsed() >= ADAPT_HOLD {
            let param = &params.adapt;
            setter.begin_set_parameter(param);
            setter.set_parameter(param, false);
            setter.end_set_parameter(param);
            self.held_since = None;
        }
    }

    /// Seconds of history *Adapt* needs at least with `settings` (and the default adaptation
    /// stride the worker uses), worked out once per settings.
    fn needed_seconds(&mut self, settings: &ListenSettings) -> f32 {
        match self.needed {
            Some((for_settings, seconds)) if for_settings == *settings => seconds,
            _ => {
                let frames = frames_needed(&settings.spec, AdaptConfig::default().stride);
                let seconds = (frames as f64 * settings.hop_seconds) as f32;
                self.needed = Some((*settings, seconds));
                seconds
            }
        }
    }

    /// The panel. `settings` are the listening settings in force (for the history needed).
    #[allow(clippy::too_many_arguments)]
    pub fn show(
        &mut self,
        ui: &mut Ui,
        rect: Rect,
        params: &EchoicParams,
        setter: Option<&ParamSetter>,
        status: &AdaptStatus,
        link: &EditorLink,
        settings: &ListenSettings,
    ) {
        let content = plot::panel(ui, rect, "Adapt", "fine-tune the listener on what it heard");
        let running = status.running();
        let reverting = status.reverting();
        let adapted = status.adapted();

        // The buttons, then the history held.
        let button_rect = |i: f32| {
            Rect::from_min_size(
                pos2(content.left() + i * (BUTTON + 6.0), content.top()),
                vec2(BUTTON, ROW),
            )
        };
        let (adapt_rect, cancel_rect, revert_rect) =
            (button_rect(0.0), button_rect(1.0), button_rect(2.0));
        self.rects = AdaptRects {
            panel: content,
            adapt: adapt_rect,
            cancel: cancel_rect,
            revert: revert_rect,
            progress: None,
        };
        let pressed = self.held_since.is_some() || params.adapt.value();
        let adapt = Button::new(RichText::new("Adapt").color(if pressed {
            theme::PLOT
        } else {
            theme::TEXT
        }))
        .fill(if pressed {
            theme::ACCENT
        } else {
            Color32::from_rgb(0x23, 0x28, 0x32)
        });
        let mut adapt_ui = ui.new_child(UiBuilder::new().max_rect(adapt_rect));
        if running || setter.is_none() {
            adapt_ui.disable();
        }
        let clicked = adapt_ui
            .add_sized(adapt_rect.size(), adapt)
            .on_hover_text(format!(
                "fine-tune the listener on the last {} min it heard, in the background; \
                 the learned sounds follow",
                params.history_minutes.value()
            ))
            .clicked();
        if clicked {
            if let Some(setter) = setter {
                let param = &params.adapt;
                setter.begin_set_parameter(param);
                setter.set_parameter(param, true);
                setter.end_set_parameter(param);
                self.held_since = Some(Instant::now());
            }
        }
        let mut cancel_ui = ui.new_child(UiBuilder::new().max_rect(cancel_rect));
        if !running {
            cancel_ui.disable();
        }
        let cancel = cancel_ui.add_sized(cancel_rect.size(), Button::new("Cancel"));
        if cancel
            .on_hover_text("stop; keep the listener in use")
            .clicked()
        {
            link.request_adaptation(AdaptAction::Cancel);
        }
        let mut revert_ui = ui.new_child(UiBuilder::new().max_rect(revert_rect));
        if !adapted || running {
            revert_ui.disable();
        }
        let revert = revert_ui.add_sized(revert_rect.size(), Button::new("Revert"));
        if revert
            .on_hover_text("go back to the model chosen, unadapted")
            .clicked()
        {
            link.request_adaptation(AdaptAction::Revert);
        }

        let held = status.history_seconds();
        let needed = self.needed_seconds(settings);
        let minutes = params.history_minutes.value().max(1);
        let short = held < needed;
        let history = ui.painter().text(
            pos2(content.right(), adapt_rect.center().y),
            Align2::RIGHT_CENTER,
            format!("History {} of {}:00", clock(held), minutes),
            theme::mono(),
            if short { theme::WARN } else { theme::TEXT_DIM },
        );
        let hover = if short {
            format!(
                "Adapt needs at least {needed:.1} s of history; the length kept is set under \
                 Controls"
            )
        } else {
            "the listening history Adapt learns from; the length kept is set under Controls"
                .to_owned()
        };
        ui.interact(
            history,
            egui::Id::unique("echoic-adapt-history"),
            Sense::hover(),
        )
        .on_hover_text(hover);

        // Below: the progress while adapting, else the last outcome.
        let below =
            Rect::from_min_max(pos2(content.left(), adapt_rect.bottom() + 6.0), content.max);
        let painter = ui.painter().with_clip_rect(below.intersect(ui.clip_rect()));
        if let Some(message) = status.message() {
            self.message = Some(message);
        }
        let message = self.message.clone();
        if running && !reverting {
            let progress = status.progress().clamp(0.0, 1.0);
            let bar = Rect::from_min_size(
                pos2(below.left(), below.top() + 2.0),
                vec2((below.width() - 52.0).max(10.0), 10.0),
            );
            painter.rect_filled(bar, CornerRadius::same(3), theme::PLOT);
            painter.rect_filled(
                Rect::from_min_max(
                    bar.min,
                    pos2(bar.left() + progress * bar.width(), bar.bottom()),
                ),
                CornerRadius::same(3),
                theme::ACCENT,
            );
            painter.text(
                pos2(below.right(), bar.center().y),
                Align2::RIGHT_CENTER,
                format!("{:.0} %", progress * 100.0),
                theme::mono(),
                theme::TEXT,
            );
            self.rects.progress = Some(bar);
            let (before, best) = status.losses();
            let line = if before > 0.0 {
                format!(
                    "held-out loss {before:.5} before, {best:.5} best so far ({:+.0} %)",
                    100.0 * (best / before - 1.0)
                )
            } else {
                message.unwrap_or_else(|| "starting…".to_owned())
            };
            painter.text(
                pos2(below.left(), bar.bottom() + 5.0),
                Align2::LEFT_TOP,
                line,
                theme::small(),
                theme::TEXT_DIM,
            );
        } else {
            let (text, colour) = match message {
                Some(m) => {
                    let colour = message_colour(&m);
                    (m, colour)
                }
                None => (
                    format!(
                        "Adapt fine-tunes the listener on the last {minutes} min it heard, then \
                         swaps it in; Revert goes back to the model chosen."
                    ),
                    theme::TEXT_DIM,
                ),
            };
            let galley = painter.layout(text.clone(), theme::small(), colour, below.width());
            let cut = galley.size().y > below.height() + 1.0;
            painter.galley(below.min, galley, colour);
            if cut {
                ui.interact(
                    below,
                    egui::Id::unique("echoic-adapt-message"),
                    Sense::hover(),
                )
                .on_hover_text(text);
            }
        }
    }
}
