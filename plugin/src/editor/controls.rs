//! The controls panel: the listening parameters, the selected output slot's parameters, what
//! Echoic keeps of what it heard (learn length, history) and the model chooser. Everything works
//! with the mouse alone: sliders are dragged (double-click resets), switches and the model list
//! are clicked.

use super::models::{ModelChooser, ModelEntry};
use super::plot;
use super::theme;
use crate::params::EchoicParams;
use echoic_core::display::{ModelInfo, ModelSource};
use egui::{pos2, Rect, RichText, ScrollArea, Ui, UiBuilder};
use nice_plug::prelude::{BoolParam, Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;

/// Width of a parameter slider.
const SLIDER: f32 = 64.0;

/// Height of the row of learn length and history under the slot's columns.
const MEMORY_ROW: f32 = 24.0;

/// A parameter's name, then its slider (two cells of a grid row, or two widgets of a line).
fn param_cell<P: Param>(ui: &mut Ui, param: &P, setter: &ParamSetter) {
    ui.label(
        RichText::new(param.name())
            .color(theme::TEXT_DIM)
            .size(11.5),
    );
    ui.add(ParamSlider::for_param(param, setter).with_width(SLIDER));
}

/// A parameter row: its name, then a slider.
fn slider_row<P: Param>(ui: &mut Ui, param: &P, setter: &ParamSetter) {
    param_cell(ui, param, setter);
    ui.end_row();
}

/// A boolean parameter row with a switch.
fn switch_row(ui: &mut Ui, param: &BoolParam, setter: &ParamSetter) {
    ui.label(
        RichText::new(param.name())
            .color(theme::TEXT_DIM)
            .size(11.5),
    );
    let mut value = param.value();
    let label = if value { "on" } else { "off" };
    if ui.checkbox(&mut value, label).changed() {
        setter.begin_set_parameter(param);
        setter.set_parameter(param, value);
        setter.end_set_parameter(param);
    }
    ui.end_row();
}

/// What the user did in the controls panel that the editor must act on.
#[derive(Default)]
pub struct ControlsOutcome {
    /// A model was chosen: `Some(None)` is the built-in one.
    pub chosen: Option<Option<std::path::PathBuf>>,
    /// Where each entry of the model list was drawn ("Built-in" first), for the test probe.
    pub model_rects: Vec<(String, Rect)>,
}

/// The panel.
#[allow(clippy::too_many_arguments)]
pub fn show(
    ui: &mut Ui,
    rect: Rect,
    params: &EchoicParams,
    setter: Option<&ParamSetter>,
    selected_slot: usize,
    chooser: &mut ModelChooser,
    model: &ModelInfo,
) -> ControlsOutcome {
    let mut outcome = ControlsOutcome::default();
    let content = plot::panel(ui, rect, "Controls", "drag a slider · double-click resets");
    let gap = 12.0;
    let listen_w = 222.0f32.min(content.width() * 0.3);
    let slot_w = 196.0f32.min(content.width() * 0.25);
    let listen_rect = Rect::from_min_size(content.min, egui::vec2(listen_w, content.height()));
    let slot_a = Rect::from_min_size(
        pos2(listen_rect.right() + gap, content.top()),
        egui::vec2(slot_w, content.height()),
    );
    let slot_b = Rect::from_min_size(
        pos2(slot_a.right() + 4.0, content.top()),
        egui::vec2(slot_w, content.height()),
    );
    let model_rect = Rect::from_min_max(pos2(slot_b.right() + gap, content.top()), content.max);
    // What is kept of what was heard, on one row under the slot's columns (the listening column
    // has no room for more rows at the default size).
    let memory_rect = Rect::from_min_max(
        pos2(slot_a.left(), content.bottom() - MEMORY_ROW),
        pos2(slot_b.right(), content.bottom()),
    );

    if let Some(setter) = setter {
        ui.scope_builder(UiBuilder::new().max_rect(listen_rect), |ui| {
            ui.label(RichText::new("Listening").color(theme::ACCENT));
            egui::Grid::new("listening-grid")
                .num_columns(2)
                .spacing([8.0, 3.0])
                .show(ui, |ui| {
                    slider_row(ui, &params.bands, setter);
                    slider_row(ui, &params.low_hz, setter);
                    slider_row(ui, &params.high_hz, setter);
                    slider_row(ui, &params.hop_ms, setter);
                    slider_row(ui, &params.steps, setter);
                    slider_row(ui, &params.dilation, setter);
                    slider_row(ui, &params.dilation_kind, setter);
                    slider_row(ui, &params.pooling, setter);
                });
        });
        let slot = &params.slots[selected_slot];
        ui.scope_builder(UiBuilder::new().max_rect(slot_a), |ui| {
            ui.label(
                RichText::new(format!("Output slot {}", selected_slot + 1)).color(theme::ACCENT),
            );
            egui::Grid::new("slot-grid-a")
                .num_columns(2)
                .spacing([6.0, 3.0])
                .show(ui, |ui| {
                    switch_row(ui, &slot.enabled, setter);
                    slider_row(ui, &slot.source, setter);
                    slider_row(ui, &slot.cc, setter);
                    slider_row(ui, &slot.channel, setter);
                    switch_row(ui, &slot.fourteen_bit, setter);
                    switch_row(ui, &slot.invert, setter);
                });
        });
        ui.scope_builder(UiBuilder::new().max_rect(slot_b), |ui| {
            ui.label(RichText::new("shaping").color(theme::TEXT_DIM));
            egui::Grid::new("slot-grid-b")
                .num_columns(2)
                .spacing([6.0, 3.0])
                .show(ui, |ui| {
                    slider_row(ui, &slot.in_low, setter);
                    slider_row(ui, &slot.in_high, setter);
                    slider_row(ui, &slot.out_low, setter);
                    slider_row(ui, &slot.out_high, setter);
                    slider_row(ui, &slot.rise_ms, setter);
                    slider_row(ui, &slot.fall_ms, setter);
                });
        });
        ui.scope_builder(UiBuilder::new().max_rect(memory_rect), |ui| {
            ui.horizontal(|ui| {
                param_cell(ui, &params.learn_seconds, setter);
                ui.add_space(10.0);
                param_cell(ui, &params.history_minutes, setter);
            });
        });
    }

    ui.scope_builder(UiBuilder::new().max_rect(model_rect), |ui| {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Model").color(theme::ACCENT));
            let folders: Vec<String> = chooser
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let hover = format!(
                "look again for .safetensors files in\n{}",
                folders.join("\n")
            );
            if ui.small_button("rescan").on_hover_text(hover).clicked() {
                chooser.rescan();
            }
        });
        let loading = chooser.loading().map(|p| p.map(|p| p.to_path_buf()));
        let current = match &model.source {
            ModelSource::BuiltIn => None,
            ModelSource::File(path) => Some(std::path::PathBuf::from(path)),
        };
        let list_height = (model_rect.height() - 62.0).max(30.0);
        ScrollArea::vertical()
            .max_height(list_height)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                let mut row = |ui: &mut Ui, path: Option<&ModelEntry>, label: String| {
                    let p = path.map(|e| e.path.clone());
                    let is_current = p == current;
                    let is_loading = loading.as_ref() == Some(&p);
                    let text = if is_loading {
                        format!("{label}  (loading…)")
                    } else {
                        label
                    };
                    let response = ui.selectable_label(is_current, text);
                    outcome.model_rects.push((
                        p.as_ref()
                            .map_or_else(|| "built-in".to_owned(), |p| p.display().to_string()),
                        response.rect,
                    ));
                    let response = match path {
                        Some(e) => response.on_hover_text(e.path.display().to_string()),
                        None => response.on_hover_text("the model compiled into the plugin"),
                    };
                    if response.clicked() && !is_current && loading.is_none() {
                        outcome.chosen = Some(p);
                    }
                };
                row(ui, None, "Built-in".to_owned());
                let entries = chooser.entries.clone();
                for entry in &entries {
                    row(ui, Some(entry), entry.label.clone());
                }
                if entries.is_empty() {
                    ui.label(
                        RichText::new("no .safetensors files found")
                            .color(theme::TEXT_DIM)
                            .size(11.0),
                    );
                }
            });
        if chooser.error.is_some() {
            ui.label(
                RichText::new("could not load: see above")
                    .color(theme::ERROR)
                    .size(11.0),
            );
        } else {
            ui.label(
                RichText::new(
                    ".safetensors files from ~/.local/share/echoic/models and next to the plugin",
                )
                .color(theme::TEXT_DIM)
                .size(10.5),
            );
        }
    });
    outcome
}
