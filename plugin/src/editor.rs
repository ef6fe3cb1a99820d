//! The egui editor: a thin view over what the plugin shares with it.

use crate::EchoicShared;
use nice_plug::prelude::*;
use nice_plug_egui::{create_egui_editor, EguiEditorState, EguiNiceSettings, NiceEguiApp};
use std::sync::Arc;

/// Default editor size in logical pixels: room for the cochleagram and the outputs side by side.
pub const DEFAULT_SIZE: (u32, u32) = (900, 600);

/// Creates the editor. Allocates; called by the host on the main thread.
pub fn create(
    state: Arc<EguiEditorState>,
    shared: Arc<EchoicShared>,
) -> Option<nice_plug_egui::EguiEditor<EchoicEditor>> {
    create_egui_editor(
        state,
        nice_plug_egui::RepaintNotifier::new(),
        EguiNiceSettings::new().with_tile(crate::Echoic::NAME),
        EchoicEditor { shared },
    )
}

/// The editor's own state, kept between repaints.
pub struct EchoicEditor {
    /// What the audio thread and the worker publish for display.
    shared: Arc<EchoicShared>,
}

impl NiceEguiApp for EchoicEditor {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        ui.horizontal(|ui| {
            ui.heading(crate::Echoic::NAME);
            ui.label(format!("v{}", crate::Echoic::VERSION));
        });
        ui.separator();
        ui.label(self.shared.status_line());
    }
}
