//! Helpers for tests that open the editor in a real X11 window: a private Xvfb server, an X11
//! parent window to embed the CLAP editor in, screenshots through `GetImage`, synthetic mouse
//! clicks through XTEST, and the editor's probe file (`ECHOIC_EDITOR_PROBE`).
//!
//! Everything talks to the X server with x11rb's pure-Rust connection, so the tests need no X
//! client libraries of their own (the plugin's editor loads libX11, libxcb and Mesa itself).

use crate::host::EchoicHost;
use clack_extensions::gui::{GuiApiType, GuiConfiguration, GuiSize, Window as ClapWindow};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, CreateWindowAux,
    EventMask, ImageFormat, WindowClass,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Why a GUI helper failed.
pub type GuiResult<T> = Result<T, String>;

fn x_err(e: impl std::fmt::Display) -> String {
    format!("X11: {e}")
}

/// An X server for one test: the one in `$DISPLAY` if there is one, else a private Xvfb on a free
/// display number, killed when this is dropped.
pub struct XServer {
    /// The display name, e.g. `:93`.
    display: String,
    /// The Xvfb process this test started, if it started one.
    child: Option<Child>,
    /// A connection held for the server's whole life. The private server runs with
    /// `-terminate`, so it exits by itself once its last client is gone: should the test process
    /// die without running destructors, the server does not outlive it.
    _keeper: Option<RustConnection>,
}

impl XServer {
    /// The screen a private Xvfb gets: large enough for the editor at its default size.
    pub const SCREEN: &'static str = "1280x900x24";

    /// Uses `$DISPLAY` when set, otherwise starts `Xvfb` (with GLX, so Mesa's llvmpipe renders
    /// the editor, and a 240 Hz fake refresh, see below) on the first free display from `:90`.
    ///
    /// Why 240 Hz: baseview paces its redraws with the Present extension and waits two refresh
    /// periods between frames, so Xvfb's default 60 Hz fake refresh would cap the editor at
    /// 30 fps. At 240 Hz the cap is 120 fps, and the frame rate the tests measure is the
    /// editor's own (build, tessellate, rasterise, present).
    pub fn start() -> GuiResult<Self> {
        if let Some(display) = std::env::var_os("DISPLAY").filter(|d| !d.is_empty()) {
            return Ok(Self {
                display: display.to_string_lossy().into_owned(),
                child: None,
                _keeper: None,
            });
        }
        for n in 90..190 {
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    Self::SCREEN,
                    "+extension",
                    "GLX",
                    "-nolisten",
                    "tcp",
                    "-fakescreenfps",
                    "240",
                    "-terminate",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start Xvfb (install the `xvfb` package): {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for this display number: try the next one
                }
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    if let Ok((keeper, _)) = RustConnection::connect(Some(&display)) {
                        return Ok(Self {
                            display,
                            child: Some(child),
                            _keeper: Some(keeper),
                        });
                    }
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("Xvfb on {display} did not come up"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err("no free X display number between :90 and :189".into())
    }

    /// The display name to put in `DISPLAY`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether this test started the server (rather than using `$DISPLAY`).
    pub fn is_private(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        self._keeper = None;
        if let Some(child) = &mut self.child {
            // Let clients that are still closing (baseview tears its window thread down after
            // the editor is destroyed, without waiting for it) finish first: Xlib ends the
            // whole process when its server disappears under it.
            std::thread::sleep(Duration::from_millis(500));
            // SIGTERM first, so that Xvfb removes its lock file and socket.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An RGB picture of part of the screen.
#[derive(Clone, Debug, PartialEq)]
pub struct Screenshot {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
}

/// A rectangle in pixels: left, top, right, bottom (exclusive), as the editor's probe gives it.
pub type PixelRect = [f32; 4];

impl Screenshot {
    /// The pixel at (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The part inside `rect` (clamped to the picture).
    pub fn crop(&self, rect: PixelRect) -> Screenshot {
        let x0 = (rect[0].max(0.0) as usize).min(self.width);
        let y0 = (rect[1].max(0.0) as usize).min(self.height);
        let x1 = (rect[2].max(0.0) as usize).clamp(x0, self.width);
        let y1 = (rect[3].max(0.0) as usize).clamp(y0, self.height);
        let mut rgb = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
        for y in y0..y1 {
            rgb.extend_from_slice(&self.rgb[(y * self.width + x0) * 3..(y * self.width + x1) * 3]);
        }
        Screenshot {
            width: x1 - x0,
            height: y1 - y0,
            rgb,
        }
    }

    /// Standard deviation of the brightness (mean of R, G, B): near 0 for a blank area.
    pub fn brightness_spread(&self) -> f32 {
        let n = (self.width * self.height).max(1) as f64;
        let values = self
            .rgb
            .chunks_exact(3)
            .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0);
        let mean = values.clone().sum::<f64>() / n;
        (values.map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt() as f32
    }

    /// Number of distinct colours (quantised to 5 bits per channel): a blank or flat area has a
    /// handful, a picture of sound has hundreds.
    pub fn distinct_colours(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        for p in self.rgb.chunks_exact(3) {
            seen.insert((p[0] >> 3, p[1] >> 3, p[2] >> 3));
        }
        seen.len()
    }

    /// Mean absolute difference per channel to a picture of the same size, 0..255.
    pub fn mean_abs_diff(&self, other: &Screenshot) -> f32 {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "pictures of different sizes"
        );
        let total: u64 = self
            .rgb
            .iter()
            .zip(&other.rgb)
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        total as f32 / self.rgb.len().max(1) as f32
    }

    /// The mean position of the pixels within `tolerance` of `colour`, if there are any.
    pub fn centroid_near(&self, colour: [u8; 3], tolerance: u8) -> Option<(f32, f32)> {
        let (mut sx, mut sy, mut n) = (0.0f64, 0.0f64, 0usize);
        for (i, p) in self.rgb.chunks_exact(3).enumerate() {
            if p.iter()
                .zip(colour)
                .all(|(a, b)| a.abs_diff(b) <= tolerance)
            {
                sx += (i % self.width) as f64;
                sy += (i / self.width) as f64;
                n += 1;
            }
        }
        (n > 0).then(|| ((sx / n as f64) as f32, (sy / n as f64) as f32))
    }

    /// Pixels within `tolerance` (per channel) of `colour`.
    pub fn count_near(&self, colour: [u8; 3], tolerance: u8) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| {
                p.iter()
                    .zip(colour)
                    .all(|(a, b)| a.abs_diff(b) <= tolerance)
            })
            .count()
    }

    /// Writes the picture as a PNG, creating the folder.
    pub fn save_png(&self, path: &Path) -> GuiResult<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&self.rgb)
            .map_err(|e| e.to_string())
    }
}

/// A connection to the X server, for the test's own windows, screenshots and clicks.
pub struct X11 {
    /// The connection.
    conn: RustConnection,
    /// The root window of the default screen.
    root: u32,
    /// The default screen's root visual, for the test's own windows.
    visual: u32,
}

impl X11 {
    /// Connects to `display`.
    pub fn connect(display: &str) -> GuiResult<Self> {
        let (conn, screen) = RustConnection::connect(Some(display)).map_err(x_err)?;
        let s = &conn.setup().roots[screen];
        let (root, visual) = (s.root, s.root_visual);
        Ok(Self { conn, root, visual })
    }

    /// Creates and maps a top-level window of `width × height` titled `title`, to embed an editor
    /// in.
    pub fn create_window(&self, width: u32, height: u32, title: &str) -> GuiResult<u32> {
        let window = self.conn.generate_id().map_err(x_err)?;
        let aux = CreateWindowAux::new()
            .background_pixel(0x101216)
            .event_mask(EventMask::STRUCTURE_NOTIFY | EventMask::EXPOSURE);
        self.conn
            .create_window(
                x11rb::COPY_DEPTH_FROM_PARENT,
                window,
                self.root,
                0,
                0,
                width.max(1) as u16,
                height.max(1) as u16,
                0,
                WindowClass::INPUT_OUTPUT,
                self.visual,
                &aux,
            )
            .map_err(x_err)?;
        self.conn
            .change_property8(
                x11rb::protocol::xproto::PropMode::REPLACE,
                window,
                AtomEnum::WM_NAME,
                AtomEnum::STRING,
                title.as_bytes(),
            )
            .map_err(x_err)?;
        self.conn.map_window(window).map_err(x_err)?;
        // A round trip, so the server has made the window before its id goes to the plugin,
        // whose own connection would otherwise race ours and may find no such window.
        self.conn.sync().map_err(x_err)?;
        Ok(window)
    }

    /// Resizes a window.
    pub fn resize(&self, window: u32, width: u32, height: u32) -> GuiResult<()> {
        self.conn
            .configure_window(
                window,
                &ConfigureWindowAux::new().width(width).height(height),
            )
            .map_err(x_err)?;
        self.conn.sync().map_err(x_err)
    }

    /// Destroys a window the test created.
    pub fn destroy(&self, window: u32) -> GuiResult<()> {
        self.conn.destroy_window(window).map_err(x_err)?;
        self.conn.flush().map_err(x_err)
    }

    /// Handles (discards) waiting events: the test's windows need no drawing of their own.
    pub fn pump(&self) -> usize {
        let mut n = 0;
        while let Ok(Some(_)) = self.conn.poll_for_event() {
            n += 1;
        }
        n
    }

    /// Whether a window has child windows (an embedded editor).
    pub fn has_children(&self, window: u32) -> bool {
        self.conn
            .query_tree(window)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some_and(|r| !r.children.is_empty())
    }

    /// A window's name (`WM_NAME`), if it has one.
    fn name(&self, window: u32) -> Option<String> {
        let reply = self
            .conn
            .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
            .ok()?
            .reply()
            .ok()?;
        (!reply.value.is_empty()).then(|| String::from_utf8_lossy(&reply.value).into_owned())
    }

    /// The first window (depth-first from the root) whose name is `name`.
    pub fn find_window(&self, name: &str) -> Option<u32> {
        let mut stack = vec![self.root];
        while let Some(window) = stack.pop() {
            if window != self.root && self.name(window).as_deref() == Some(name) {
                return Some(window);
            }
            if let Ok(reply) = self
                .conn
                .query_tree(window)
                .map_err(x_err)
                .and_then(|c| c.reply().map_err(x_err))
            {
                stack.extend(reply.children.iter().rev());
            }
        }
        None
    }

    /// Waits up to `timeout` for a window named `name`.
    pub fn wait_for_window(&self, name: &str, timeout: Duration) -> GuiResult<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(w) = self.find_window(name) {
                return Ok(w);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no window named {name:?} appeared within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where a window's top-left corner is on the screen, and its size.
    pub fn geometry(&self, window: u32) -> GuiResult<(i32, i32, u32, u32)> {
        let geometry = self
            .conn
            .get_geometry(window)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let at = self
            .conn
            .translate_coordinates(window, self.root, 0, 0)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        Ok((
            at.dst_x as i32,
            at.dst_y as i32,
            geometry.width as u32,
            geometry.height as u32,
        ))
    }

    /// A screenshot of `window` as it appears on the screen (read from the root window, so child
    /// windows of any visual, such as an OpenGL editor, are included).
    pub fn screenshot(&self, window: u32) -> GuiResult<Screenshot> {
        let (x, y, w, h) = self.geometry(window)?;
        let image = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                x as i16,
                y as i16,
                w as u16,
                h as u16,
                !0,
            )
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let (w, h) = (w as usize, h as usize);
        if image.depth != 24 && image.depth != 32 || image.data.len() < w * h * 4 {
            return Err(format!(
                "unexpected image: depth {}, {} bytes for {w}×{h}",
                image.depth,
                image.data.len()
            ));
        }
        // 24-bit TrueColor in 32-bit pixels, little-endian: B, G, R, X.
        let rgb = image
            .data
            .chunks_exact(4)
            .take(w * h)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        Ok(Screenshot {
            width: w,
            height: h,
            rgb,
        })
    }

    /// Clicks the left button at (x, y) inside `window`, through XTEST (as a user's click).
    pub fn click(&self, window: u32, x: f32, y: f32) -> GuiResult<()> {
        let (wx, wy, _, _) = self.geometry(window)?;
        let (sx, sy) = (
            (wx as f32 + x).round() as i16,
            (wy as f32 + y).round() as i16,
        );
        let motion = x11rb::protocol::xproto::MOTION_NOTIFY_EVENT;
        self.conn
            .xtest_fake_input(motion, 0, 0, self.root, sx, sy, 0)
            .map_err(x_err)?;
        self.conn.flush().map_err(x_err)?;
        std::thread::sleep(Duration::from_millis(80));
        let press = x11rb::protocol::xproto::BUTTON_PRESS_EVENT;
        let release = x11rb::protocol::xproto::BUTTON_RELEASE_EVENT;
        self.conn
            .xtest_fake_input(press, 1, 0, self.root, sx, sy, 0)
            .map_err(x_err)?;
        self.conn.flush().map_err(x_err)?;
        std::thread::sleep(Duration::from_millis(80));
        self.conn
            .xtest_fake_input(release, 1, 0, self.root, sx, sy, 0)
            .map_err(x_err)?;
        self.conn.sync().map_err(x_err)?;
        Ok(())
    }

    /// Asks a top-level window to close, as a window manager's close button does
    /// (`WM_DELETE_WINDOW`).
    pub fn request_close(&self, window: u32) -> GuiResult<()> {
        let protocols = self
            .conn
            .intern_atom(false, b"WM_PROTOCOLS")
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?
            .atom;
        let delete = self
            .conn
            .intern_atom(false, b"WM_DELETE_WINDOW")
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?
            .atom;
        let event = ClientMessageEvent::new(
            32,
            window,
            protocols,
            [delete, x11rb::CURRENT_TIME, 0, 0, 0],
        );
        self.conn
            .send_event(false, window, EventMask::NO_EVENT, event)
            .map_err(x_err)?;
        self.conn.flush().map_err(x_err)
    }
}

/// The CLAP editor embedded in an X11 window of the test host, as a DAW embeds it.
pub struct EmbeddedEditor {
    /// The test's connection to the X server.
    pub x11: X11,
    /// The host window the editor is a child of.
    pub parent: u32,
    /// The editor's size as the plugin reported it.
    pub size: GuiSize,
}

impl EmbeddedEditor {
    /// Creates the plugin's GUI for embedding (`clap.gui` with the X11 API, not floating), makes
    /// a host window of the size the plugin asks for, parents the editor into it and shows it.
    /// `DISPLAY` must name `display` when this is called (the plugin's window system reads it).
    pub fn open(host: &mut EchoicHost, display: &str) -> GuiResult<Self> {
        let gui = host.gui().ok_or("the plugin has no clap.gui")?;
        let x11 = X11::connect(display)?;
        let config = GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: false,
        };
        let size = {
            let handle = host.instance_mut().plugin_handle();
            if !gui.is_api_supported(&handle, config) {
                return Err("the plugin does not support embedded X11 editors".into());
            }
            gui.create(&handle, config)
                .map_err(|e| format!("gui.create: {e:?}"))?;
            let _ = gui.set_scale(&handle, 1.0);
            gui.get_size(&handle).ok_or("gui.get_size failed")?
        };
        host.pump_main_thread();
        let parent = x11.create_window(size.width, size.height, "Echoic test host")?;
        {
            let handle = host.instance_mut().plugin_handle();
            // SAFETY: `parent` stays alive until `close` destroys the GUI first.
            unsafe {
                gui.set_parent(
                    &handle,
                    ClapWindow::from_x11_handle(parent as std::ffi::c_ulong),
                )
            }
            .map_err(|e| format!("gui.set_parent: {e:?}"))?;
            gui.show(&handle).map_err(|e| format!("gui.show: {e:?}"))?;
        }
        host.pump_main_thread();
        Ok(Self { x11, parent, size })
    }

    /// Services the plugin: main-thread callbacks, X events of the host window, and resize
    /// requests (the host window follows the editor's requested size).
    pub fn pump(&mut self, host: &mut EchoicHost) {
        host.pump_main_thread();
        self.x11.pump();
        if let Some(size) = host.with_shared(|s| s.gui.take_requested_size()) {
            if self
                .x11
                .resize(self.parent, size.width, size.height)
                .is_ok()
            {
                self.size = size;
                if let Some(gui) = host.gui() {
                    let handle = host.instance_mut().plugin_handle();
                    let _ = gui.set_size(&handle, size);
                }
            }
        }
    }

    /// Resizes the editor as a host does when the user drags its window's corner.
    pub fn set_size(&mut self, host: &mut EchoicHost, width: u32, height: u32) -> GuiResult<()> {
        let gui = host.gui().ok_or("the plugin has no clap.gui")?;
        self.x11.resize(self.parent, width, height)?;
        let size = GuiSize { width, height };
        {
            let handle = host.instance_mut().plugin_handle();
            gui.set_size(&handle, size)
                .map_err(|e| format!("gui.set_size: {e:?}"))?;
        }
        self.size = size;
        host.pump_main_thread();
        Ok(())
    }

    /// A screenshot of the host window with the editor in it.
    pub fn screenshot(&self) -> GuiResult<Screenshot> {
        self.x11.screenshot(self.parent)
    }

    /// Destroys the plugin's GUI, waits (up to 5 s) for its window to leave the host window,
    /// then destroys the host window.
    ///
    /// Why wait: baseview closes its window on a thread of its own and does not wait for it; the
    /// host window must outlive the plugin's child window, and the X server the plugin's
    /// connection.
    pub fn close(self, host: &mut EchoicHost) {
        if let Some(gui) = host.gui() {
            let handle = host.instance_mut().plugin_handle();
            gui.destroy(&handle);
        }
        host.pump_main_thread();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.x11.has_children(self.parent) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.x11.destroy(self.parent);
    }
}

/// The editor's probe file (see `ECHOIC_EDITOR_PROBE` in the plugin's editor module).
#[derive(Clone, Debug)]
pub struct Probe(
    /// The parsed JSON, for fields without an accessor.
    pub serde_json::Value,
);

impl Probe {
    /// Reads the probe at `path`, if it exists and parses.
    pub fn read(path: &Path) -> Option<Probe> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok().map(Probe)
    }

    /// Waits until the probe at `path` satisfies `ready`.
    pub fn wait(
        path: &Path,
        timeout: Duration,
        ready: impl Fn(&Probe) -> bool,
    ) -> GuiResult<Probe> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(p) = Probe::read(path) {
                if ready(&p) {
                    return Ok(p);
                }
                last = Some(p);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the editor probe {} did not get ready within {timeout:?}; last: {last:?}",
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Hops the editor has received.
    pub fn hops(&self) -> u64 {
        self.0["hops"].as_u64().unwrap_or(0)
    }

    /// A named panel's rectangle, in window pixels.
    pub fn rect(&self, name: &str) -> Option<PixelRect> {
        rect_of(&self.0["rects"][name])
    }

    /// Learn button `j`'s rectangle.
    pub fn learn_button(&self, j: usize) -> Option<PixelRect> {
        rect_of(&self.0["rects"]["learn"][j])
    }

    /// Clear button `j`'s rectangle.
    pub fn clear_button(&self, j: usize) -> Option<PixelRect> {
        rect_of(&self.0["rects"]["clear"][j])
    }

    /// Where the model chooser drew the entry of the file named `<stem>.safetensors`.
    pub fn model_entry(&self, stem: &str) -> Option<PixelRect> {
        let file = format!("/{stem}.safetensors");
        let entries = self.0["model_list"].as_array()?;
        let entry = entries
            .iter()
            .find(|e| e[0].as_str().is_some_and(|path| path.ends_with(&file)))?;
        rect_of(&entry[1])
    }

    /// Whether learn target `j` holds a learned sound.
    pub fn learned(&self, j: usize) -> bool {
        self.0["learned"][j].as_bool().unwrap_or(false)
    }

    /// A frame-timing figure (`fps`, `ui_ms_mean`, `ui_ms_p95`, `ui_ms_max`, `interval_ms_mean`,
    /// `interval_ms_p95`, `frames`).
    pub fn stat(&self, name: &str) -> f64 {
        self.0["stats"][name].as_f64().unwrap_or(f64::NAN)
    }
}

fn rect_of(value: &serde_json::Value) -> Option<PixelRect> {
    let a = value.as_array()?;
    (a.len() == 4).then(|| std::array::from_fn(|i| a[i].as_f64().unwrap_or(0.0) as f32))
}

/// The centre of a rectangle.
pub fn centre(rect: PixelRect) -> (f32, f32) {
    ((rect[0] + rect[2]) * 0.5, (rect[1] + rect[3]) * 0.5)
}

/// Where the window tests keep their pictures for a person to look at:
/// `<workspace>/target/editor-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    crate::bundle::workspace_root()
        .join("target")
        .join("editor-screenshots")
}
