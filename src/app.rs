//! The eframe app. Each frame it drains the engine's events and routes them by job id, polls
//! its background helpers (model discovery, file dialogs, autosave), draws the top bar, the open
//! page and the status bar, then drains the [`Command`]s the panels pushed.
//!
//! Runtime things (the engine, receivers, threads) live here apart from what is saved (the
//! [`Store`]); panels borrow both through [`PanelContext`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use egui::RichText;

use crate::engine::Engine;
use crate::gpu::GpuContext;
use crate::models::llm::discover::DiscoveredModel;
use crate::panels::faces::{FaceExport, FacesPanel};
use crate::panels::model_picker::LoadJob;
use crate::panels::status_bar::{self, StatusInfo};
use crate::panels::style::{StyleExport, StyleImageSlot, StylePanel};
use crate::panels::write::WritePanel;
use crate::panels::{Command, ModelState, Panel, PanelContext};
use crate::store::{ExportFormat, Notice, NoticeLevel, Page, Store, WriteMode};
use crate::theme::{self, icon, space};

/// How the GUI starts.
#[derive(Clone, Debug, Default)]
pub struct GuiOptions {
    /// A GGUF model to open instead of the last one used.
    pub model: Option<PathBuf>,
    /// Where documents and settings live (default: [`crate::paths::data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// `--backend`: where the image models run; saved as the setting (None: keep the saved one).
    pub backend: Option<crate::gpu::Backend>,
    /// Trade-show mode (`--kiosk`): fullscreen, large type, attract loop, scratch data, no
    /// file dialogs, quit only with the configured keys.
    pub kiosk: Option<crate::kiosk::KioskConfig>,
}

/// Opens the main window and runs until it is closed.
pub fn run_gui(opts: GuiOptions) -> anyhow::Result<()> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Atelier")
        .with_app_id("atelier")
        .with_inner_size([1400.0, 900.0])
        .with_min_inner_size([1000.0, 620.0]);
    if let Some(k) = &opts.kiosk {
        tracing::info!(
            "kiosk mode: panels {:?}, attract after {} s, reset after {} s, quit with {}",
            k.panels,
            k.idle_seconds,
            k.reset_seconds,
            k.quit_keys_text
        );
        viewport = viewport.with_fullscreen(k.fullscreen);
    }
    let native = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: wgpu_options(),
        ..Default::default()
    };
    eframe::run_native(
        "Atelier",
        native,
        Box::new(move |cc| {
            theme::install(&cc.egui_ctx);
            let gpu = cc
                .wgpu_render_state
                .as_ref()
                .map(GpuContext::from_render_state);
            if let Some(g) = &gpu {
                tracing::info!("renderer: {}", g.adapter);
            }
            let mut app = AtelierApp::new(opts, gpu);
            if let Some(rs) = &cc.wgpu_render_state {
                app.set_render_state(rs.clone());
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

/// A file dialog the app asked for, and what came back.
#[derive(Clone, Debug)]
enum Dialog {
    OpenModel,
    SaveAs,
    Export(ExportFormat),
    /// Where to write a face or the walk; the suggested name carries the seed.
    FacesExport(FaceExport, Option<u64>),
    /// A picture for the Style panel (its content or its style image).
    StyleOpen(StyleImageSlot),
    /// Where to write the Style result, and the suggested file name.
    StyleExport(StyleExport, String),
}

struct DialogResult {
    dialog: Dialog,
    path: Option<PathBuf>,
    elapsed: Duration,
}

/// A message in the corner.
struct Toast {
    notice: Notice,
    /// When it appeared (egui time, seconds), set on first draw.
    shown_at: Option<f64>,
}

/// CPU time spent building each frame, for the "< 16 ms while generating" budget.
#[derive(Default)]
pub struct FrameStats {
    all: Vec<f32>,
    generating: Vec<f32>,
    /// Whole frames as eframe measures them (UI + tessellation + rendering), while generating.
    full_generating: Vec<f32>,
    last_report: Option<Instant>,
}

/// Percentiles of frame times in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameSummary {
    /// How many frames.
    pub frames: usize,
    /// Median.
    pub p50_ms: f32,
    /// 95th percentile.
    pub p95_ms: f32,
    /// Slowest.
    pub max_ms: f32,
}

impl std::fmt::Display for FrameSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            self.frames, self.p50_ms, self.p95_ms, self.max_ms
        )
    }
}

impl FrameStats {
    const KEEP: usize = 20_000;

    fn record(&mut self, ms: f32, generating: bool) {
        for (v, take) in [(&mut self.all, true), (&mut self.generating, generating)] {
            if take {
                if v.len() == Self::KEEP {
                    v.remove(0);
                }
                v.push(ms);
            }
        }
    }

    fn record_full(&mut self, ms: f32) {
        if self.full_generating.len() == Self::KEEP {
            self.full_generating.remove(0);
        }
        self.full_generating.push(ms);
    }

    fn summarize(samples: &[f32]) -> FrameSummary {
        if samples.is_empty() {
            return FrameSummary::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f32::total_cmp);
        let at = |q: f32| s[((s.len() - 1) as f32 * q).round() as usize];
        FrameSummary {
            frames: s.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: s[s.len() - 1],
        }
    }

    /// All frames so far.
    pub fn overall(&self) -> FrameSummary {
        Self::summarize(&self.all)
    }

    /// Frames drawn while a generation was queued or running (the UI code's CPU time).
    pub fn while_generating(&self) -> FrameSummary {
        Self::summarize(&self.generating)
    }

    /// Whole frames (UI, tessellation and rendering, as eframe reports them) while generating;
    /// empty in the test harness, which has no eframe.
    pub fn full_while_generating(&self) -> FrameSummary {
        Self::summarize(&self.full_generating)
    }
}

/// The application: stores, engine, panels and the plumbing between them.
pub struct AtelierApp {
    store: Store,
    engine: Option<Engine>,
    engine_error: Option<String>,
    /// The renderer's GPU context, handed to the engine when it starts on the first frame.
    gpu: Option<GpuContext>,
    /// eframe's wgpu render state (a cheap clone), so panels can register native textures
    /// the worker writes into; `None` in the test harness.
    render_state: Option<egui_wgpu::RenderState>,
    started: bool,
    model: ModelState,
    write: WritePanel,
    faces: FacesPanel,
    style: StylePanel,
    commands: Vec<Command>,
    toasts: Vec<Toast>,
    discovery: Option<Receiver<Vec<DiscoveredModel>>>,
    dialog: Option<Receiver<DialogResult>>,
    frame_stats: FrameStats,
    report_frames: bool,
    /// Where the last image job ran ("CPU" or "GPU · adapter"), for the status bar.
    image_device: Option<String>,
    /// Trade-show mode's state; `None` in the normal studio.
    kiosk: Option<crate::kiosk::Kiosk>,
    /// Times the inference worker recovered from a crash (tests read it).
    worker_recoveries: u64,
}

impl AtelierApp {
    /// Creates the app; the engine starts on the first frame (it needs the egui context to wake
    /// the UI). `gpu` is the renderer's device when a window exists.
    pub fn new(opts: GuiOptions, gpu: Option<GpuContext>) -> Self {
        let base = opts.data_dir.clone().unwrap_or_else(crate::paths::data_dir);
        let mut store = match &opts.kiosk {
            // A kiosk works in a scratch folder, cleared at start and on every reset.
            Some(_) => open_kiosk_session(&base),
            None => Store::open(&base),
        };
        if let Some(k) = &opts.kiosk
            && !k.panels.contains(&store.settings.page)
        {
            store.settings.page = k.panels[0];
        }
        if let Some(b) = opts.backend {
            store.settings.backend = b;
        }
        let selected = opts
            .model
            .clone()
            .or_else(|| store.settings.model.clone())
            .unwrap_or_else(|| crate::paths::default_model(crate::paths::SMOLLM2_FILE));
        let model = ModelState {
            selected,
            ..Default::default()
        };
        Self {
            store,
            engine: None,
            engine_error: None,
            gpu,
            render_state: None,
            started: false,
            model,
            write: WritePanel::default(),
            faces: FacesPanel::default(),
            style: StylePanel::default(),
            commands: Vec::new(),
            toasts: Vec::new(),
            discovery: None,
            dialog: None,
            frame_stats: FrameStats::default(),
            report_frames: std::env::var_os("ATELIER_FRAME_STATS").is_some_and(|v| v != "0"),
            image_device: None,
            kiosk: opts.kiosk.map(crate::kiosk::Kiosk::new),
            worker_recoveries: 0,
        }
    }

    /// Installs fonts and style; call before the first frame (eframe's creation context, or a
    /// test harness's context setup).
    pub fn setup_context(ctx: &egui::Context) {
        theme::install(ctx);
    }

    /// Gives the app eframe's wgpu render state (the window's renderer), so the Faces walk can
    /// draw into a texture on its device.
    pub fn set_render_state(&mut self, render_state: egui_wgpu::RenderState) {
        self.render_state = Some(render_state);
    }

    /// The Faces panel.
    pub fn faces_panel(&self) -> &FacesPanel {
        &self.faces
    }

    /// The Faces panel, for tests that arrange a state.
    pub fn faces_panel_mut(&mut self) -> &mut FacesPanel {
        &mut self.faces
    }

    /// The Faces panel with the engine, as the app hands an export path to the panel once the
    /// save dialog returns (tests skip the dialog).
    pub fn faces_and_engine(&mut self) -> (&mut FacesPanel, Option<&Engine>) {
        (&mut self.faces, self.engine.as_ref())
    }

    /// The Style panel.
    pub fn style_panel(&self) -> &StylePanel {
        &self.style
    }

    /// The Style panel, for tests that arrange a state (open a file, export to a path).
    pub fn style_panel_mut(&mut self) -> &mut StylePanel {
        &mut self.style
    }

    /// The engine, once started (tests use it to queue competing jobs).
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Documents and settings.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Documents and settings, for tests that arrange a state.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The Write panel.
    pub fn write_panel(&self) -> &WritePanel {
        &self.write
    }

    /// The Write panel, for tests that place the cursor.
    pub fn write_panel_mut(&mut self) -> &mut WritePanel {
        &mut self.write
    }

    /// What is known about the language model.
    pub fn model_state(&self) -> &ModelState {
        &self.model
    }

    /// Frame-time statistics.
    pub fn frame_stats(&self) -> &FrameStats {
        &self.frame_stats
    }

    /// Messages currently shown in the corner (for tests).
    pub fn toasts(&self) -> Vec<Notice> {
        self.toasts.iter().map(|t| t.notice.clone()).collect()
    }

    /// The kiosk's state, in kiosk mode.
    pub fn kiosk(&self) -> Option<&crate::kiosk::Kiosk> {
        self.kiosk.as_ref()
    }

    /// How many times the inference worker recovered from a crash in this session.
    pub fn worker_recoveries(&self) -> u64 {
        self.worker_recoveries
    }

    /// Saves everything now (on exit).
    pub fn save(&mut self) {
        if let Err(e) = self.store.save_now() {
            tracing::error!("saving on exit failed: {e}");
        }
    }

    fn start(&mut self, ctx: &egui::Context) {
        self.started = true;
        let waker_ctx = ctx.clone();
        // On a software rasterizer (llvmpipe) every frame costs CPU the model needs: coalesce
        // the engine's wake-ups to four frames a second (measured: llvmpipe took half the CPU at
        // ten). A real GPU repaints per token.
        let software = self.gpu.as_ref().is_some_and(|g| g.is_software);
        let waker: crate::engine::Waker = if software {
            Arc::new(move || waker_ctx.request_repaint_after(Duration::from_millis(250)))
        } else {
            Arc::new(move || waker_ctx.request_repaint())
        };
        match Engine::spawn(self.gpu.take(), Some(waker)) {
            Ok(engine) => {
                engine.set_backend(self.store.settings.backend);
                self.engine = Some(engine);
            }
            Err(e) => {
                tracing::error!("{e}");
                self.engine_error = Some(format!("The inference engine could not start: {e}"));
            }
        }
        if self.model.selected.is_file() {
            self.load_model(self.model.selected.clone());
        } else {
            tracing::warn!(
                "model {} is missing; fetch the defaults with {}",
                self.model.selected.display(),
                crate::paths::FETCH_COMMAND
            );
        }
        self.discover(ctx);
        for n in self.store.take_notices() {
            self.toast(n);
        }
    }

    fn load_model(&mut self, path: PathBuf) {
        self.model.selected = path.clone();
        self.model.error = None;
        self.store.settings.model = Some(path.clone());
        let Some(engine) = &self.engine else {
            return;
        };
        if self.model.loaded.as_ref().is_some_and(|i| i.path == path) {
            return;
        }
        // A newer choice replaces a load still waiting in the queue.
        if let Some(old) = self.model.load.take() {
            tracing::debug!(job = %old.job, "superseded model load");
        }
        let job = engine.load_llm(path.clone());
        self.model.load = Some(LoadJob {
            job: job.id(),
            path,
            ahead: 0,
            started: false,
        });
    }

    fn discover(&mut self, ctx: &egui::Context) {
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-discover".into())
            .spawn(move || {
                let found = crate::models::llm::discover::find_models();
                let _ = tx.send(found);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.discovery = Some(rx);
                self.model.discovering = true;
            }
            Err(e) => tracing::warn!("cannot search for models: {e}"),
        }
    }

    fn open_dialog(&mut self, ctx: &egui::Context, dialog: Dialog) {
        if self.kiosk.is_some() {
            // A visitor must not browse the machine's files.
            self.toast(Notice {
                level: NoticeLevel::Info,
                message: "Opening and saving files is switched off on this kiosk.".into(),
            });
            return;
        }
        if self.dialog.is_some() {
            return; // one at a time
        }
        let title = self.store.current().display_title();
        let file_stem: String = title
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == ' ' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        let d = dialog.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-file-dialog".into())
            .spawn(move || {
                let started = Instant::now();
                let path = match &d {
                    Dialog::OpenModel => rfd::FileDialog::new()
                        .set_title("Open a GGUF language model")
                        .add_filter("GGUF model", &["gguf"])
                        .pick_file(),
                    Dialog::SaveAs => rfd::FileDialog::new()
                        .set_title("Save document as")
                        .set_file_name(format!("{}.md", file_stem.trim()))
                        .add_filter("Markdown", &["md"])
                        .add_filter("Plain text", &["txt"])
                        .save_file(),
                    Dialog::FacesExport(what, seed) => {
                        let (name, ext) = what.filter();
                        rfd::FileDialog::new()
                            .set_title(what.title())
                            .set_file_name(what.file_name(*seed))
                            .add_filter(name, &[ext])
                            .save_file()
                    }
                    Dialog::StyleOpen(slot) => rfd::FileDialog::new()
                        .set_title(match slot {
                            StyleImageSlot::Content => "Open a picture to restyle",
                            StyleImageSlot::Style => "Open a picture to use as the style",
                        })
                        .add_filter("Images", &["png", "jpg", "jpeg", "gif", "webp"])
                        .pick_file(),
                    Dialog::StyleExport(format, name) => rfd::FileDialog::new()
                        .set_title("Export the styled picture")
                        .set_file_name(name)
                        .add_filter(format.filter_name(), &[format.extension()])
                        .save_file(),
                    Dialog::Export(format) => rfd::FileDialog::new()
                        .set_title("Export a copy")
                        .set_file_name(format!("{}.{}", file_stem.trim(), format.extension()))
                        .add_filter(
                            match format {
                                ExportFormat::Markdown => "Markdown",
                                ExportFormat::PlainText => "Plain text",
                            },
                            &[format.extension()],
                        )
                        .save_file(),
                };
                let _ = tx.send(DialogResult {
                    dialog: d,
                    path,
                    elapsed: started.elapsed(),
                });
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.dialog = Some(rx),
            Err(e) => self.toast(Notice {
                level: NoticeLevel::Error,
                message: format!("Could not open a file dialog: {e}"),
            }),
        }
    }

    fn toast(&mut self, notice: Notice) {
        if !self.toasts.iter().any(|t| t.notice == notice) {
            self.toasts.push(Toast {
                notice,
                shown_at: None,
            });
        }
    }

    fn drain_events(&mut self) {
        let Some(engine) = &self.engine else {
            return;
        };
        // A worker thread that died is replaced; the jobs it held fail with a message.
        engine.heal();
        let mut switched_to_base = None;
        let mut recovered = None;
        while let Some(event) = engine.try_recv() {
            // Faces jobs load their own generator: their ModelLoading/Failed events are not
            // about the language model, so they skip `observe`.
            if let crate::engine::Event::Backend { device, .. } = &event {
                self.image_device = Some(device.clone());
            }
            if let crate::engine::Event::WorkerRecovered { message, .. } = &event {
                recovered = Some(message.clone());
            }
            if self.faces.owns(event.job()) {
                self.faces.on_event(event);
                continue;
            }
            // Style jobs load their own networks, like Faces.
            if self.style.owns(event.job()) {
                self.style.on_event(event);
                continue;
            }
            self.model.observe(&event);
            if let crate::engine::Event::ModelLoaded { info, .. } = &event
                && !info.has_chat_template
                && info.path == self.model.selected
                && self.store.settings.mode == WriteMode::Instruct
            {
                switched_to_base = Some(info.name.clone());
            }
            if self.write.owns(event.job()) {
                self.write.on_event(event);
            }
            // Other events (the load job's, stale ones of replaced jobs) were observed above.
        }
        if let Some(message) = recovered {
            self.worker_recovered(&message);
        }
        if let Some(name) = switched_to_base {
            self.store.settings.mode = WriteMode::Continue;
            self.toast(Notice {
                level: NoticeLevel::Info,
                message: format!(
                    "{name} has no chat template (it is a base model), so Write switched to \
                     Continue."
                ),
            });
        }
    }

    fn poll_helpers(&mut self) {
        if let Some(rx) = &self.discovery
            && let Ok(found) = rx.try_recv()
        {
            self.model.discovered = found;
            self.model.discovering = false;
            self.discovery = None;
        }
        if let Some(rx) = &self.dialog
            && let Ok(result) = rx.try_recv()
        {
            self.dialog = None;
            self.dialog_done(result);
        }
    }

    fn dialog_done(&mut self, result: DialogResult) {
        let Some(path) = result.path else {
            // A dialog that "returns" instantly never appeared: no portal to show it.
            if result.elapsed < Duration::from_millis(250) {
                self.toast(Notice {
                    level: NoticeLevel::Warning,
                    message: "No file dialog could be shown (is xdg-desktop-portal running?)."
                        .into(),
                });
            }
            return;
        };
        match result.dialog {
            Dialog::OpenModel => {
                let recent = &mut self.store.settings.recent_models;
                recent.retain(|p| *p != path);
                recent.insert(0, path.clone());
                recent.truncate(8);
                self.load_model(path);
            }
            Dialog::SaveAs => match self.store.save_as(&path) {
                Ok(()) => self.toast(Notice {
                    level: NoticeLevel::Info,
                    message: format!("Saved to {}", path.display()),
                }),
                Err(e) => self.toast(Notice {
                    level: NoticeLevel::Error,
                    message: e.to_string(),
                }),
            },
            Dialog::FacesExport(what, _) => {
                self.faces.export_to(self.engine.as_ref(), what, path);
            }
            Dialog::StyleOpen(slot) => self.style.open_path(slot, path),
            Dialog::StyleExport(format, _) => self.style.export_to(format, path),
            Dialog::Export(format) => {
                match crate::store::export_document(self.store.current(), &path, format) {
                    Ok(()) => self.toast(Notice {
                        level: NoticeLevel::Info,
                        message: format!("Exported to {}", path.display()),
                    }),
                    Err(e) => self.toast(Notice {
                        level: NoticeLevel::Error,
                        message: e.to_string(),
                    }),
                }
            }
        }
    }

    fn run_commands(&mut self, ctx: &egui::Context) {
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::LoadModel(path) => self.load_model(path),
                Command::OpenModelDialog => self.open_dialog(ctx, Dialog::OpenModel),
                Command::RefreshModels => self.discover(ctx),
                Command::ShowPage(page)
                    if self
                        .kiosk
                        .as_ref()
                        .is_some_and(|k| !k.config.panels.contains(&page)) => {}
                Command::ShowPage(page) => {
                    if page != Page::Faces {
                        // A live walk occupies the worker: leaving the page frees it for Write.
                        self.faces.stop_walk();
                    }
                    self.store.settings.page = page;
                }
                Command::NewDocument => {
                    self.store.new_document();
                    self.write.document_switched();
                }
                Command::OpenDocument(id) => {
                    self.store.select(&id);
                    self.write.document_switched();
                }
                Command::DeleteDocument(id) => {
                    let title = self
                        .store
                        .documents()
                        .iter()
                        .find(|d| d.id == id)
                        .map(|d| d.display_title())
                        .unwrap_or_default();
                    match self.store.delete_document(&id) {
                        Ok(()) => self.toast(Notice {
                            level: NoticeLevel::Info,
                            message: format!("“{title}” moved to documents/trash."),
                        }),
                        Err(e) => self.toast(Notice {
                            level: NoticeLevel::Error,
                            message: e.to_string(),
                        }),
                    }
                    self.write.document_switched();
                }
                Command::SaveAs => self.open_dialog(ctx, Dialog::SaveAs),
                Command::SaveToFile => match self.store.save_to_file() {
                    Ok(Some(path)) => self.toast(Notice {
                        level: NoticeLevel::Info,
                        message: format!("Saved to {}", path.display()),
                    }),
                    Ok(None) => self.open_dialog(ctx, Dialog::SaveAs),
                    Err(e) => self.toast(Notice {
                        level: NoticeLevel::Error,
                        message: e.to_string(),
                    }),
                },
                Command::Export(format) => self.open_dialog(ctx, Dialog::Export(format)),
                Command::Toast(n) => self.toast(n),
                Command::FacesExportDialog { what, seed } => {
                    self.open_dialog(ctx, Dialog::FacesExport(what, seed))
                }
                Command::StyleOpenDialog(slot) => self.open_dialog(ctx, Dialog::StyleOpen(slot)),
                Command::StyleUseFace => self.style_use_face(),
                Command::StyleExportDialog { format, file_name } => {
                    self.open_dialog(ctx, Dialog::StyleExport(format, file_name))
                }
            }
        }
    }

    /// Hands the selected face's pixels to the Style panel as its style image.
    fn style_use_face(&mut self) {
        let Some((face, seed)) = self.faces.selected_image() else {
            self.toast(Notice {
                level: NoticeLevel::Info,
                message: "Select a face on the Faces page first.".into(),
            });
            return;
        };
        let rgb: Vec<u8> = face
            .rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        let name = seed.map_or_else(|| "Face".to_string(), |s| format!("Face, seed {s}"));
        match image::RgbImage::from_raw(face.width, face.height, rgb) {
            Some(img) => self.style.set_style_pixels(img, &name),
            None => tracing::warn!("the face preview has the wrong number of bytes"),
        }
    }

    /// Draws one frame into `ui` (the whole window). eframe's `App::ui` and the test harness
    /// both call this.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        let ctx = ui.ctx().clone();
        if !self.started {
            self.start(&ctx);
        }
        self.drain_events();
        self.poll_helpers();
        if self.kiosk.is_some() {
            self.kiosk_frame(&ctx);
        }
        if let Some(wait) = self.store.tick(Instant::now()) {
            ctx.request_repaint_after(wait);
        }
        for n in self.store.take_notices() {
            self.toast(n);
        }
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::S)) {
            self.commands.push(Command::SaveToFile);
        }
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::N)) {
            self.commands.push(Command::NewDocument);
        }

        self.top_bar(ui);
        let pending = self.engine.as_ref().map_or(0, Engine::pending);
        let faces_status = self.faces.status().or_else(|| self.style.status());
        let remote = &self.store.settings.remote;
        let remote_label = remote.enabled.then(|| {
            let host = crate::remote::normalize_base_url(&remote.base_url)
                .ok()
                .and_then(|u| reqwest::Url::parse(&u).ok())
                .map_or_else(
                    || remote.base_url.clone(),
                    |u| {
                        let host = u.host_str().unwrap_or_default().to_string();
                        u.port().map_or(host.clone(), |p| format!("{host}:{p}"))
                    },
                );
            if remote.model.is_empty() {
                host
            } else {
                format!("{host} · {}", remote.model)
            }
        });
        egui::Panel::bottom("status-bar")
            .resizable(false)
            .exact_size(28.0)
            .frame(
                egui::Frame::new()
                    .fill(theme::PANEL)
                    .inner_margin(egui::Margin::symmetric(space::L as i8, 0)),
            )
            .show(ui, |ui| {
                status_bar::show(
                    ui,
                    &self.model,
                    &mut StatusInfo {
                        suggestions: self.write.suggestions(),
                        saved: !self.store.has_unsaved_changes(),
                        pending_jobs: pending,
                        gpu_adapter: self
                            .engine
                            .as_ref()
                            .and_then(Engine::gpu)
                            .map(|g| g.adapter.as_str()),
                        faces: faces_status.as_deref(),
                        image_device: self.image_device.as_deref(),
                        backend: &mut self.store.settings.backend,
                        remote: remote_label.as_deref(),
                    },
                );
            });
        if let Some(engine) = &self.engine
            && engine.backend() != self.store.settings.backend
        {
            engine.set_backend(self.store.settings.backend);
        }
        let mut cx = PanelContext {
            engine: self.engine.as_ref(),
            engine_error: self.engine_error.as_deref(),
            store: &mut self.store,
            model: &self.model,
            commands: &mut self.commands,
            render_state: self.render_state.as_ref(),
            kiosk: self.kiosk.is_some(),
        };
        let page = cx.store.settings.page;
        let panel: &mut dyn Panel = match page {
            Page::Write => &mut self.write,
            Page::Faces => &mut self.faces,
            Page::Style => &mut self.style,
        };
        panel.show(ui, &mut cx);
        self.run_commands(&ctx);
        self.draw_toasts(&ctx);
        if self
            .kiosk
            .as_ref()
            .is_some_and(crate::kiosk::Kiosk::is_attracting)
        {
            attract_banner(&ctx);
        }

        let ms = t0.elapsed().as_secs_f32() * 1000.0;
        let generating = self.write.is_generating();
        self.frame_stats.record(ms, generating);
        if self.report_frames {
            let now = Instant::now();
            let due = self
                .frame_stats
                .last_report
                .is_none_or(|t| now - t >= Duration::from_secs(5));
            if due {
                self.frame_stats.last_report = Some(now);
                tracing::info!(
                    "frame time (UI thread, CPU): all {}; while generating {}; whole frames \
                     with rendering while generating {}",
                    self.frame_stats.overall(),
                    self.frame_stats.while_generating(),
                    self.frame_stats.full_while_generating()
                );
            }
        }
    }

    /// Kiosk mode, each frame: the quit combination, refused close requests, and the attract
    /// loop's clock (visitor input stops a demo; idle time starts one, or resets everything).
    fn kiosk_frame(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        let Some(kiosk) = &mut self.kiosk else {
            return;
        };
        if !kiosk.zoomed {
            kiosk.zoomed = true;
            // Large type, but never so large that the pages' fixed side panels overlap: keep
            // at least 1200×720 points on screen.
            let screen = ctx.content_rect().size();
            let fits = (screen.x / 1200.0).min(screen.y / 720.0).max(1.0);
            let zoom = kiosk.config.zoom.min(fits);
            if zoom < kiosk.config.zoom {
                tracing::info!(
                    "kiosk: zoom {zoom:.2} instead of {} so the pages fit {:.0}×{:.0}",
                    kiosk.config.zoom,
                    screen.x,
                    screen.y
                );
            }
            ctx.set_zoom_factor(zoom);
        }
        // The GUI soak: memory in the log once a minute while the kiosk runs.
        if kiosk
            .last_memory_log
            .is_none_or(|t| now - t >= Duration::from_secs(60))
        {
            kiosk.last_memory_log = Some(now);
            if let Some(mb) = crate::soak::rss_mb() {
                tracing::info!("kiosk: RSS {mb:.1} MB, {} resets so far", kiosk.resets);
            }
        }
        let combo = kiosk.config.quit_keys.0;
        if ctx.input_mut(|i| i.consume_shortcut(&combo)) {
            tracing::info!("kiosk: quit combination pressed");
            kiosk.quit_allowed = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        if ctx.input(|i| i.viewport().close_requested()) && !kiosk.quit_allowed {
            tracing::info!(
                "kiosk: close request refused (quit with {})",
                kiosk.config.quit_keys_text
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        let input = crate::kiosk::visitor_input(ctx);
        let attract = kiosk.attract(now);
        let mut actions = Vec::new();
        if input {
            actions.extend(attract.input(now));
        }
        // Each tick returns at most one action and moves the clock past it.
        while actions.len() < 4
            && let Some(a) = attract.tick(now)
        {
            actions.push(a);
        }
        ctx.request_repaint_after(attract.next_due(now).min(Duration::from_secs(60)));
        for action in actions {
            self.kiosk_apply(action);
        }
    }

    /// Does what the attract loop asked, with the calls a visitor's clicks make.
    fn kiosk_apply(&mut self, action: crate::kiosk::AttractAction) {
        use crate::kiosk::AttractAction;
        let Some(kiosk) = &mut self.kiosk else {
            return;
        };
        match action {
            AttractAction::Start(demo) | AttractAction::Next(demo) => {
                tracing::info!("kiosk: demo of {:?} (turn {})", demo.page, demo.turn);
                self.faces.stop_walk();
                self.write.stop();
                self.commands.push(Command::ShowPage(demo.page));
                match demo.page {
                    Page::Faces => {
                        let psi = kiosk.config.psi;
                        let keys = kiosk
                            .config
                            .seeds
                            .iter()
                            .map(|&s| crate::faces::FaceSpec::from_seed(s, psi))
                            .collect();
                        self.faces.set_walk_keys(keys);
                        self.faces.request_play();
                    }
                    Page::Write => {
                        let prompt = kiosk.prompt(demo.turn).to_string();
                        let existing = kiosk
                            .demo_document
                            .clone()
                            .filter(|id| self.store.documents().iter().any(|d| d.id == *id));
                        let id = match existing {
                            Some(id) => {
                                self.store.select(&id);
                                id
                            }
                            None => self.store.new_document(),
                        };
                        kiosk.demo_document = Some(id);
                        self.store.current_mut().text = prompt;
                        self.store.mark_changed();
                        let settings = &mut self.store.settings;
                        settings.mode = WriteMode::Continue;
                        settings.params.max_new_tokens = kiosk.config.max_tokens;
                        settings.params.sampling.seed = demo.turn as u64;
                        self.write.document_switched();
                        self.write.request_generate();
                    }
                    // The picture/style pairs follow as NextStyle actions.
                    Page::Style => self.style.set_max_side(512),
                }
            }
            AttractAction::NextStyle { image, style } => {
                if kiosk.shown_image != Some(image)
                    && let Some(path) = kiosk.images.get(image)
                {
                    kiosk.shown_image = Some(image);
                    self.style.set_content_path(path.clone());
                }
                if let Some(&s) = kiosk.config.styles.get(style) {
                    self.style.select_style(s);
                }
            }
            AttractAction::Stop => {
                tracing::info!("kiosk: a visitor took over");
                self.faces.stop_walk();
                self.write.stop();
            }
            AttractAction::Reset => self.reset_session(),
        }
    }

    /// Kiosk reset: stops every job, wipes the scratch folder and starts the pages afresh
    /// (the engine and its loaded models stay).
    fn reset_session(&mut self) {
        let Some(kiosk) = &mut self.kiosk else {
            return;
        };
        tracing::info!("kiosk: resetting to a clean state");
        self.write.stop();
        self.style.stop();
        self.faces.reset();
        self.write = WritePanel::default();
        self.style = StylePanel::default();
        // Queued autosaves land before the folder is wiped, not after.
        let _ = self.store.save_now();
        let dir = self.store.dir().to_path_buf();
        let backend = self.store.settings.backend;
        self.store = fresh_store(&dir);
        self.store.settings.backend = backend;
        self.store.settings.model = Some(self.model.selected.clone());
        self.store.settings.page = kiosk.config.panels[0];
        self.toasts.clear();
        kiosk.demo_document = None;
        kiosk.shown_image = None;
        kiosk.resets += 1;
    }

    /// The worker caught a crash and dropped its models: tell the user and load the language
    /// model again, so the next generation does not wait for it.
    fn worker_recovered(&mut self, message: &str) {
        self.worker_recoveries += 1;
        self.toast(Notice {
            level: NoticeLevel::Warning,
            message: format!(
                "The inference engine hit an internal error ({message}). It recovered and is \
                 reloading its models; the job that failed can be run again."
            ),
        });
        self.model.loaded = None;
        if self.model.selected.is_file() {
            self.load_model(self.model.selected.clone());
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        let page = self.store.settings.page;
        let mut previews = vec![
            (Page::Write, self.write.name(), self.write.is_preview()),
            (Page::Faces, self.faces.name(), self.faces.is_preview()),
            (Page::Style, self.style.name(), self.style.is_preview()),
        ];
        if let Some(k) = &self.kiosk {
            // The configured pages, in the configured order.
            previews = k
                .config
                .panels
                .iter()
                .filter_map(|p| previews.iter().find(|(q, ..)| q == p).copied())
                .collect();
        }
        egui::Panel::top("top-bar")
            .resizable(false)
            .exact_size(48.0)
            .frame(
                egui::Frame::new()
                    .fill(theme::PANEL)
                    .inner_margin(egui::Margin::symmetric(space::L as i8, 0)),
            )
            .show(ui, |ui| {
                ui.horizontal_centered(|ui| {
                    let (r, _) =
                        ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                    ui.painter().circle_filled(r.center(), 6.0, theme::ACCENT);
                    ui.label(RichText::new("Atelier").font(theme::strong(17.0)));
                    ui.add_space(space::XL);
                    for (p, name, preview) in previews {
                        let selected = p == page;
                        let text = RichText::new(name).font(if selected {
                            theme::strong(14.0)
                        } else {
                            egui::FontId::proportional(14.0)
                        });
                        let text = if selected {
                            text.color(theme::TEXT)
                        } else {
                            text.color(theme::TEXT_WEAK)
                        };
                        let r = ui.add(
                            egui::Button::new(text)
                                .frame_when_inactive(selected)
                                .selected(false)
                                .fill(if selected {
                                    theme::SURFACE
                                } else {
                                    egui::Color32::TRANSPARENT
                                })
                                .min_size(egui::vec2(64.0, 30.0)),
                        );
                        if selected {
                            let y = r.rect.bottom() + 7.0;
                            ui.painter().line_segment(
                                [
                                    egui::pos2(r.rect.left() + 10.0, y),
                                    egui::pos2(r.rect.right() - 10.0, y),
                                ],
                                egui::Stroke::new(2.0, theme::ACCENT),
                            );
                        }
                        let r = if preview {
                            r.on_hover_text(format!("{name} is coming next: see what it will do"))
                        } else {
                            r
                        };
                        if r.clicked() {
                            self.commands.push(Command::ShowPage(p));
                        }
                    }
                });
            });
    }

    fn draw_toasts(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        self.toasts.retain(|t| {
            let life = match t.notice.level {
                NoticeLevel::Info => 6.0,
                NoticeLevel::Warning => 14.0,
                NoticeLevel::Error => f64::INFINITY,
            };
            t.shown_at.is_none_or(|s| now - s < life)
        });
        if self.toasts.is_empty() {
            return;
        }
        let mut close = None;
        egui::Area::new(egui::Id::unique("toasts"))
            .order(egui::Order::Foreground)
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-space::L, -40.0))
            .show(ctx, |ui| {
                ui.set_max_width(380.0);
                for (i, t) in self.toasts.iter_mut().enumerate() {
                    t.shown_at.get_or_insert(now);
                    let color = match t.notice.level {
                        NoticeLevel::Info => theme::TEXT_WEAK,
                        NoticeLevel::Warning => theme::WARN,
                        NoticeLevel::Error => theme::ERROR,
                    };
                    egui::Frame::popup(ui.style())
                        .inner_margin(egui::Margin::same(12))
                        .show(ui, |ui| {
                            ui.horizontal_top(|ui| {
                                let mark = match t.notice.level {
                                    NoticeLevel::Info => icon::CHECK,
                                    _ => icon::WARNING,
                                };
                                ui.label(RichText::new(mark).color(color));
                                ui.add(
                                    egui::Label::new(
                                        RichText::new(&t.notice.message)
                                            .size(13.0)
                                            .color(theme::TEXT),
                                    )
                                    .wrap(),
                                );
                                if ui
                                    .add(egui::Button::new(icon::CROSS).frame(false).small())
                                    .accessible_name("Dismiss message")
                                    .clicked()
                                {
                                    close = Some(i);
                                }
                            });
                        });
                }
            });
        if let Some(i) = close {
            self.toasts.remove(i);
        }
        ctx.request_repaint_after(Duration::from_millis(500));
    }
}

/// The invitation shown over the attract loop's demos.
fn attract_banner(ctx: &egui::Context) {
    egui::Area::new(egui::Id::unique("kiosk-attract-banner"))
        .order(egui::Order::Foreground)
        .anchor(egui::Align2::CENTER_BOTTOM, egui::vec2(0.0, -56.0))
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style())
                .fill(theme::ACCENT)
                .inner_margin(egui::Margin::symmetric(28, 14))
                .show(ui, |ui| {
                    ui.label(
                        RichText::new("Touch anywhere to try it yourself")
                            .font(theme::strong(22.0))
                            .color(theme::ON_ACCENT),
                    );
                });
        });
}

/// The kiosk's scratch store in `base`/[`crate::kiosk::SESSION_DIR`], emptied first.
fn open_kiosk_session(base: &std::path::Path) -> Store {
    fresh_store(&base.join(crate::kiosk::SESSION_DIR))
}

/// A store on an emptied folder.
fn fresh_store(dir: &std::path::Path) -> Store {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("kiosk: cannot clear {}: {e}", dir.display()),
    }
    Store::open(dir)
}

impl eframe::App for AtelierApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        // eframe reports the previous frame's whole CPU time, rendering included.
        if let Some(secs) = frame.info().cpu_usage
            && self.write.is_generating()
        {
            self.frame_stats.record_full(secs * 1000.0);
        }
        self.frame(ui);
    }

    fn on_exit(&mut self) {
        self.write.stop();
        self.faces.stop_walk();
        self.style.stop();
        self.save();
        if self.report_frames {
            tracing::info!(
                "frame time summary (UI thread, CPU): all {}; while generating {}; whole frames \
                 with rendering while generating {}",
                self.frame_stats.overall(),
                self.frame_stats.while_generating(),
                self.frame_stats.full_while_generating()
            );
        }
    }
}

/// eframe's wgpu set-up, with the window's device asking for the adapter's buffer and texture
/// limits rather than WebGPU's portable defaults: the inference kernels share this device,
/// and a large Style result is blended there only when its sums fit one storage binding
/// (128 MiB by default, about 8 megapixels).
fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    let mut options = egui_wgpu::WgpuConfiguration::default();
    if let egui_wgpu::WgpuSetup::CreateNew(setup) = &mut options.wgpu_setup {
        let egui_device = setup.device_descriptor.clone();
        setup.device_descriptor = std::sync::Arc::new(move |adapter| {
            let mut desc = egui_device(adapter);
            let a = adapter.limits();
            let l = &mut desc.required_limits;
            // Never below what egui asks for; never above what the adapter has.
            l.max_storage_buffer_binding_size = l
                .max_storage_buffer_binding_size
                .max(a.max_storage_buffer_binding_size);
            l.max_buffer_size = l.max_buffer_size.max(a.max_buffer_size);
            l.max_texture_dimension_2d = l.max_texture_dimension_2d.max(a.max_texture_dimension_2d);
            desc
        });
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_percentiles() {
        let mut s = FrameStats::default();
        for i in 1..=100 {
            s.record(i as f32, i > 50);
        }
        let all = s.overall();
        assert_eq!(all.frames, 100);
        assert_eq!(all.max_ms, 100.0);
        assert!((all.p50_ms - 50.0).abs() <= 1.0);
        assert!((all.p95_ms - 95.0).abs() <= 1.0);
        assert_eq!(s.while_generating().frames, 50);
    }
}
