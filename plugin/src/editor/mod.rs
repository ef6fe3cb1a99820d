//! The egui editor: what Echoic hears (cochleagram, echoic memory, embedding, map), what it
//! sends (output meters, learned sounds) and how it is set up (parameters, model).
//!
//! # Data path
//! The worker's listening sink publishes display data through the instance's
//! [`EditorLink`](echoic_core::display::EditorLink) only while a window is open: per-hop records
//! through an SPSC ring and the latest dilated buffer through a triple buffer (see
//! `echoic_core::display`). The editor drains both at the start of every frame and keeps its own
//! history ([`history`]). The audio thread is not involved: it never sees the editor, and the
//! editor never takes a lock the audio thread could wait on.
//!
//! # Window and size
//! [`EchoicEditorShell`] is the plugin's `Editor`. It creates a fresh egui editor (and its
//! `EguiEditorState`) each time a window opens, sized from the `editor-size` field saved in the
//! plugin state, because `EguiEditorState` cannot be serialised or resized from outside; the
//! editor writes the size back whenever the window is resized.
//!
//! # Adapt
//! The [`adapt`] panel presses the `adapt` parameter (its rising edge starts fine-tuning on the
//! worker's listening history, off the worker) and sends *Cancel* and *Revert* as requests; it
//! shows what the worker reports in `ListenerStatus::adaptation`.
//!
//! # Model choice
//! The chooser lists `.safetensors` files (see [`models`]); a chosen model is loaded on a helper
//! thread, handed to the worker, which installs it between two hops, and its path is saved in the
//! state. A file that fails to load leaves the model in use and says why. While the plugin is
//! inactive the saved path is simply used at the next activation.
//!
//! # Test probe
//! With `ECHOIC_EDITOR_PROBE=<file>` in the environment the editor describes itself in that file
//! for the window tests; see [`probe`].

mod adapt;
mod controls;
mod history;
mod map;
mod memory;
mod models;
mod outputs;
mod plot;
mod probe;
mod scroll;
mod stats;
mod status;
mod theme;

use crate::params::EchoicParams;
use crate::EchoicShared;
use echoic_core::display::{EditorOpen, ModelInfo};
use echoic_core::outputs::MAX_LEARNED;
use egui::{pos2, Rect, Ui};
use nice_plug::editor::dpi::{LogicalSize, NativeSize};
use nice_plug::editor::{
    Editor, EditorHandle, HostMethods, Modifiers, ParentWindowHandle, ResizeHint, SpawnedEditor,
    VirtualKeyCode,
};
use nice_plug::prelude::{ParamSetter, Plugin};
use nice_plug_egui::resizable_window::ResizableWindow;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings,
    NiceEguiApp,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Default editor size in logical pixels: every panel legible at once.
pub const DEFAULT_SIZE: [u32; 2] = [1200, 800];

/// The smallest size the window can be dragged to: below this the labels collide.
pub const MIN_SIZE: [u32; 2] = [960, 680];

/// The resize behaviour the host is told about.
fn resize_hint() -> ResizeHint {
    ResizeHint::resizable()
        .with_min_logical_size(LogicalSize::new(MIN_SIZE[0] as f32, MIN_SIZE[1] as f32))
}

/// The persisted size, clamped to the allowed range.
fn saved_size(params: &EchoicParams) -> [u32; 2] {
    let [w, h] = *params.editor_size.lock().unwrap_or_else(|e| e.into_inner());
    [w.clamp(MIN_SIZE[0], 8192), h.clamp(MIN_SIZE[1], 8192)]
}

/// The plugin's editor: creates an egui editor at the saved size whenever a window opens.
pub struct EchoicEditorShell {
    /// The parameters, including the saved window size and model path.
    params: Arc<EchoicParams>,
    /// What the worker publishes.
    shared: Arc<EchoicShared>,
    /// The egui editor of the current window, or of the size the next window will have. Replaced
    /// when a window opens or, while none is open, when the saved size changes (a state load).
    current: Mutex<(EguiEditor<EchoicEditor>, [u32; 2])>,
}

impl EchoicEditorShell {
    /// The editor of one plugin instance. Allocates; called by the host on the main thread.
    pub fn new(params: Arc<EchoicParams>, shared: Arc<EchoicShared>) -> Self {
        let size = saved_size(&params);
        let editor = Self::build(&params, &shared, size);
        Self {
            params,
            shared,
            current: Mutex::new((editor, size)),
        }
    }

    /// An egui editor with a fresh state of `size`.
    fn build(
        params: &Arc<EchoicParams>,
        shared: &Arc<EchoicShared>,
        size: [u32; 2],
    ) -> EguiEditor<EchoicEditor> {
        let state =
            EguiEditorState::from_size(LogicalSize::new(size[0] as f64, size[1] as f64), 1.0);
        // No dithering: it costs every fragment a noise computation, which a software renderer
        // feels, and the views have no smooth gradients that would band without it.
        let graphics = nice_plug_egui::GraphicsConfig {
            dithering: false,
            ..Default::default()
        };
        let settings = EguiNiceSettings::new()
            .with_tile(crate::Echoic::NAME)
            .with_resize_hint(resize_hint())
            .with_graphics_config(graphics);
        let app = EchoicEditor::new(params.clone(), shared.clone());
        create_egui_editor(state, nice_plug_egui::RepaintNotifier::new(), settings, app)
            .expect("create_egui_editor always returns an editor")
    }

    /// The current egui editor, rebuilt first if no window is open and the saved size changed.
    fn current(&self) -> std::sync::MutexGuard<'_, (EguiEditor<EchoicEditor>, [u32; 2])> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let size = saved_size(&self.params);
        if !self.shared.link.is_open() && current.1 != size {
            *current = (Self::build(&self.params, &self.shared, size), size);
        }
        current
    }
}

impl Editor for EchoicEditorShell {
    type Handle = EchoicEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: nice_plug::context::gui::GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn std::error::Error>> {
        let size = saved_size(&self.params);
        let editor = Self::build(&self.params, &self.shared, size);
        let spawned = editor.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = (editor, size);
        Ok(SpawnedEditor {
            handle: EchoicEditorHandle {
                inner: spawned.handle,
                _open: self.shared.link.editor_opened(),
            },
            window: spawned.window,
        })
    }

    fn size(&self) -> NativeSize<u32> {
        self.current().0.size()
    }

    fn resize_hint(&self) -> ResizeHint {
        resize_hint()
    }

    fn track_info_updated(&self, info: nice_plug::prelude::TrackInfo) {
        self.current().0.track_info_updated(info);
    }

    unsafe fn assume_standalone_in_process(&self) {
        // SAFETY: the same contract as this function's, passed on.
        unsafe { self.current().0.assume_standalone_in_process() }
    }
}

/// An open editor window. Closing it (dropping the handle) tells the worker to stop publishing
/// display data.
pub struct EchoicEditorHandle {
    /// The egui editor's handle, which does the work.
    inner: EguiEditorHandle,
    /// Counts this window as open for the worker until the handle is dropped.
    _open: EditorOpen,
}

impl EditorHandle for EchoicEditorHandle {
    type Window = <EguiEditorHandle as EditorHandle>::Window;
    type Error = <EguiEditorHandle as EditorHandle>::Error;

    fn run_until_closed(window: Self::Window) -> Result<(), Self::Error> {
        <EguiEditorHandle as EditorHandle>::run_until_closed(window)
    }

    fn set_parent(
        &self,
        parent: ParentWindowHandle,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_parent(parent, window)
    }

    fn show(&self, window: &Self::Window) -> Result<(), Self::Error> {
        self.inner.show(window)
    }

    fn hide(&self, window: &Self::Window) -> Result<(), Self::Error> {
        self.inner.hide(window)
    }

    fn set_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_size(new_size, window)
    }

    fn host_main_thread_callback(&self, window: &Self::Window) {
        self.inner.host_main_thread_callback(window)
    }

    fn adjust_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Option<NativeSize<u32>> {
        self.inner.adjust_size(new_size, window)
    }

    fn set_fallback_scale_factor(
        &self,
        scale_factor: f64,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_fallback_scale_factor(scale_factor, window)
    }

    fn on_virtual_key_from_host(
        &self,
        key_code: VirtualKeyCode,
        is_down: bool,
        modifiers: Modifiers,
    ) -> bool {
        self.inner
            .on_virtual_key_from_host(key_code, is_down, modifiers)
    }

    fn state_changed(&self) {
        self.inner.state_changed()
    }

    fn param_value_changed(&self, id: &str, normalized_value: f32) {
        self.inner.param_value_changed(id, normalized_value)
    }

    fn param_modulation_changed(&self, id: &str, modulation_offset: f32) {
        self.inner.param_modulation_changed(id, modulation_offset)
    }
}

/// The editor's own state, kept between frames of one window.
pub struct EchoicEditor {
    /// Parameters, for the controls and the learn triggers.
    params: Arc<EchoicParams>,
    /// What the audio side and the worker publish.
    shared: Arc<EchoicShared>,
    /// Sets parameters through the host; set when the window is built.
    gui: Option<nice_plug::context::gui::GuiContext>,
    /// What the worker published, kept for the scrolling views.
    history: history::History,
    /// The frequency axis of the band displays, recomputed when the band layout changes.
    axis: plot::FreqAxis,
    /// The model in use, re-read when the worker installs another.
    model: ModelInfo,
    /// The model generation `model` was read at.
    model_generation: u64,
    /// The learned sounds' names, refreshed every frame when the saved state is not locked.
    learn_names: [String; MAX_LEARNED],
    /// The learn and clear buttons.
    learn: outputs::LearnButtons,
    /// The Adapt panel's state: its held trigger and where its buttons are.
    adapt: adapt::AdaptPanel,
    /// The output slot whose parameters the controls show.
    selected_slot: usize,
    /// The model chooser.
    chooser: models::ModelChooser,
    /// Frame timings.
    stats: stats::FrameStats,
    /// The test probe, if the environment asks for one.
    probe: Option<probe::Probe>,
    /// Where the panels (and the Adapt panel's buttons and progress bar) were drawn this frame,
    /// in logical points, for the probe.
    rects: Vec<(&'static str, Rect)>,
    /// Where the model list's entries were drawn this frame, for the probe.
    model_rects: Vec<(String, Rect)>,
    /// The banner's texts this frame, for the probe (kept only while probing).
    banner_texts: Vec<String>,
    /// When the worker last published a hop: while hops flow the editor redraws every frame,
    /// otherwise (host stopped, plugin inactive) a few times a second, to spare the CPU.
    last_hop: Option<Instant>,
}

impl EchoicEditor {
    /// The editor's state for a new window. Cheap: textures are made on the first frame.
    fn new(params: Arc<EchoicParams>, shared: Arc<EchoicShared>) -> Self {
        let settings = params.listen_settings();
        Self {
            axis: plot::FreqAxis::new(settings.n_bands, settings.low_hz, settings.high_hz),
            params,
            shared,
            gui: None,
            history: history::History::default(),
            model: ModelInfo::default(),
            model_generation: u64::MAX,
            learn_names: std::array::from_fn(|j| format!("Sound {}", j + 1)),
            learn: outputs::LearnButtons::default(),
            adapt: adapt::AdaptPanel::default(),
            selected_slot: 0,
            chooser: models::ModelChooser::default(),
            stats: stats::FrameStats::default(),
            probe: probe::Probe::from_env(),
            rects: Vec::new(),
            model_rects: Vec::new(),
            banner_texts: Vec::new(),
            last_hop: None,
        }
    }

    /// Takes what the worker published and what the other threads changed.
    fn refresh(&mut self) -> bool {
        let link = self.shared.link.clone();
        self.history.hops_this_frame = 0;
        let history = &mut self.history;
        let changed = link.with_receiver(|r| history.drain(r)).unwrap_or(false);
        let generation = link.model_generation();
        if generation != self.model_generation {
            self.model = link.model();
            self.model_generation = generation;
        }
        if let Ok(learned) = self.params.learned.try_lock() {
            for (name, sound) in self.learn_names.iter_mut().zip(&learned.sounds) {
                if let Some(sound) = sound {
                    if *name != sound.name {
                        name.clone_from(&sound.name);
                    }
                }
            }
        }
        // The band layout: the worker's when it has published one, else the parameters'.
        let settings = if self.history.hops > 0 {
            self.history.state.settings
        } else {
            self.params.listen_settings()
        };
        if !self
            .axis
            .matches(settings.n_bands, settings.low_hz, settings.high_hz)
        {
            self.axis = plot::FreqAxis::new(settings.n_bands, settings.low_hz, settings.high_hz);
        }
        changed
    }

    /// Acts on a finished model load: saves the path and adopts the model's settings.
    fn model_loaded(&mut self, outcome: models::LoadOutcome, setter: Option<&ParamSetter>) {
        let models::LoadOutcome::Loaded { path, settings } = outcome;
        *self
            .params
            .model_path
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = path;
        if let Some(setter) = setter {
            if self.params.listen_settings() != settings {
                self.params.adopt_settings(setter, &settings);
            }
        }
        self.history = history::History::default();
    }

    /// Lays out and draws every panel.
    fn panels(&mut self, ui: &mut Ui, full: Rect, changed: bool) {
        let gui = self.gui.clone();
        let setter = gui.as_ref().map(|g| g.param_setter());
        let setter = setter.as_ref();
        if let Some(setter) = setter {
            self.learn.release(&self.params, setter, &self.history);
            self.adapt
                .release(&self.params, setter, &self.shared.listener.adaptation);
        }
        if let Some(outcome) = self.chooser.poll(&self.shared.link) {
            self.model_loaded(outcome, setter);
        }
        self.chooser.rescan_every(5.0);

        let gap = 8.0;
        let header = Rect::from_min_size(full.min, egui::vec2(full.width(), 34.0));
        status::header(ui, header, &self.shared, &self.model, &self.stats);
        let state_notes = self
            .params
            .state_notes
            .try_lock()
            .map(|n| n.0.clone())
            .unwrap_or_default();
        let adjustment = self.params.requested_settings().describe_adjustment();
        let notices = status::notices(
            &self.shared,
            &self.model,
            self.chooser.error.as_deref(),
            &state_notes,
            adjustment,
        );
        if self.probe.is_some() {
            self.banner_texts = notices.iter().map(|n| n.text.clone()).collect();
        }
        let banner_h = notices.len().min(3) as f32 * 22.0;
        let banner = Rect::from_min_size(
            pos2(full.left(), header.bottom() + gap),
            egui::vec2(full.width(), banner_h),
        );
        status::banner(ui, banner, &notices[..notices.len().min(3)]);
        let body_top = if banner_h > 0.0 {
            banner.bottom() + gap - 2.0
        } else {
            header.bottom() + gap
        };
        let body = Rect::from_min_max(pos2(full.left(), body_top), full.max);

        let right_w = (body.width() * 0.33).clamp(340.0, 480.0);
        let left = Rect::from_min_max(body.min, pos2(body.right() - right_w - gap, body.bottom()));
        let right = Rect::from_min_max(pos2(left.right() + gap, body.top()), body.max);

        let controls_h = 262.0f32.min(left.height() * 0.42);
        let upper = Rect::from_min_max(
            left.min,
            pos2(left.right(), left.bottom() - controls_h - gap),
        );
        let coch_h = (upper.height() - gap) * 0.58;
        let coch = Rect::from_min_size(upper.min, egui::vec2(upper.width(), coch_h));
        let row2 = Rect::from_min_max(pos2(upper.left(), coch.bottom() + gap), upper.max);
        let mem_w = (row2.width() - gap) * 0.42;
        let mem = Rect::from_min_size(row2.min, egui::vec2(mem_w, row2.height()));
        let emb = Rect::from_min_max(pos2(mem.right() + gap, row2.top()), row2.max);
        let ctrl = Rect::from_min_max(pos2(left.left(), upper.bottom() + gap), left.max);

        let learn_h = 4.0 * 28.0 + plot::TITLE_HEIGHT + 16.0;
        let outputs_h = 8.0 * 22.0 + plot::TITLE_HEIGHT + 16.0;
        let adapt_h = adapt::HEIGHT;
        let map_h = (right.height() - learn_h - outputs_h - adapt_h - 3.0 * gap).max(120.0);
        let map_rect = Rect::from_min_size(right.min, egui::vec2(right.width(), map_h));
        let out_rect = Rect::from_min_size(
            pos2(right.left(), map_rect.bottom() + gap),
            egui::vec2(right.width(), outputs_h),
        );
        let learn_rect = Rect::from_min_size(
            pos2(right.left(), out_rect.bottom() + gap),
            egui::vec2(right.width(), learn_h),
        );
        let adapt_rect =
            Rect::from_min_max(pos2(right.left(), learn_rect.bottom() + gap), right.max);

        // The settings the views show: the worker's once it has published, else the parameters'.
        let settings = if self.history.hops > 0 {
            self.history.state.settings
        } else {
            self.params.listen_settings()
        };
        let hop = settings.hop_seconds as f32;
        self.rects.clear();
        let r = scroll::cochleagram(ui, coch, &mut self.history, &self.axis, hop);
        self.rects.push(("cochleagram", r));
        let r = memory::show(ui, mem, &mut self.history, &self.axis, changed);
        self.rects.push(("memory", r));
        let r = scroll::embedding(ui, emb, &mut self.history, hop);
        self.rects.push(("embedding", r));
        let r = map::show(ui, map_rect, &self.history, &self.learn_names);
        self.rects.push(("map", r));
        let r = outputs::meters(
            ui,
            out_rect,
            &self.params,
            &self.history,
            &mut self.selected_slot,
        );
        self.rects.push(("outputs", r));
        self.learn.show(
            ui,
            learn_rect,
            &self.params,
            setter,
            &self.shared.link,
            &self.history,
            &self.learn_names,
        );
        self.adapt.show(
            ui,
            adapt_rect,
            &self.params,
            setter,
            &self.shared.listener.adaptation,
            &self.shared.link,
            &settings,
        );
        let rects = self.adapt.rects;
        self.rects.push(("adapt", rects.panel));
        self.rects.push(("adapt_button", rects.adapt));
        self.rects.push(("adapt_cancel", rects.cancel));
        self.rects.push(("adapt_revert", rects.revert));
        if let Some(bar) = rects.progress {
            self.rects.push(("adapt_progress", bar));
        }
        let outcome = controls::show(
            ui,
            ctrl,
            &self.params,
            setter,
            self.selected_slot,
            &mut self.chooser,
            &self.model,
        );
        self.rects.push(("controls", ctrl));
        self.model_rects = outcome.model_rects;
        if let Some(chosen) = outcome.chosen {
            self.chooser.choose(chosen);
        }
    }
}

impl NiceEguiApp for EchoicEditor {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        nice_gui_ctx: nice_plug::context::gui::GuiContext,
        frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        theme::apply(&egui_ctx);
        frame.set_clear_color(theme::BACKGROUND.into());
        self.gui = Some(nice_gui_ctx);
        Ok(())
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut nice_plug_egui::Frame) {
        self.stats.begin();
        let changed = self.refresh();
        let min = egui::vec2(MIN_SIZE[0] as f32, MIN_SIZE[1] as f32);
        ResizableWindow::new("echoic-resize")
            .min_size(min)
            .show(ui, |ui| {
                let full = ui.max_rect().shrink(2.0);
                self.panels(ui, full, changed);
            });
        // The views scroll with every hop: keep drawing while hops arrive (the window system
        // paces the frames); when they stop, a few frames a second keep the status current.
        if self.history.hops_this_frame > 0 {
            self.last_hop = Some(Instant::now());
        }
        if self
            .last_hop
            .is_some_and(|t| t.elapsed().as_secs_f32() < 0.5)
        {
            ui.ctx().request_repaint();
        } else {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.stats.end();
        let screen = ui.ctx().content_rect();
        if self.probe.as_mut().is_some_and(probe::Probe::due) {
            let json = probe::json(self, ui.ctx().pixels_per_point(), screen);
            if let Some(probe) = &self.probe {
                probe.write(&json);
            }
        }
    }

    fn resized(&mut self, new_size: nice_plug_egui::baseview::WindowSize) {
        let size = [
            new_size.logical.width.round() as u32,
            new_size.logical.height.round() as u32,
        ];
        if size[0] > 0 && size[1] > 0 {
            *self
                .params
                .editor_size
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = size;
        }
    }
}
