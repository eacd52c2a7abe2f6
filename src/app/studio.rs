//! The application: the store, the engine, the panels and the plumbing between them. Each
//! frame it drains the engine's events and routes them to the panel that owns the job, polls
//! its helpers (file dialogs, autosave), draws the chrome and the open page, then drains the
//! [`Command`]s the panels pushed. It names no concrete panel: everything goes through
//! [`Panel`] and the registry ([`crate::panels::registry`]).
//!
//! Runtime things (the engine, receivers, threads) live here apart from what is saved (the
//! [`Store`]); panels borrow both through [`PanelContext`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::chrome::{self, Toast};
use super::dialogs::{self, DialogRequest, DialogResult};
use super::frame_stats::FrameStats;
use super::notice::{Notice, NoticeLevel};
use super::page::Page;
use super::status_bar::{self, StatusInfo};
use crate::engine::{Engine, Event};
use crate::gpu::GpuContext;
use crate::kiosk::Kiosk;
use crate::panels::{Command, Panel, PanelContext, Shared};
use crate::store::Store;
use crate::theme::{self, space};

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

/// The application.
pub struct AtelierApp {
    pub(crate) store: Store,
    engine: Option<Engine>,
    engine_error: Option<String>,
    /// The renderer's GPU context, handed to the engine when it starts on the first frame.
    gpu: Option<GpuContext>,
    /// eframe's wgpu render state (a cheap clone), so panels can register native textures
    /// the worker writes into; `None` in the test harness.
    render_state: Option<egui_wgpu::RenderState>,
    started: bool,
    /// Every page's panel, in the navigation bar's order.
    pub(crate) panels: Vec<Box<dyn Panel>>,
    /// What the panels offer each other.
    pub(crate) shared: Shared,
    pub(crate) commands: Vec<Command>,
    toasts: Vec<Toast>,
    dialog: Option<Receiver<DialogResult>>,
    frame_stats: FrameStats,
    report_frames: bool,
    /// Where the last image job ran ("CPU" or "GPU · adapter"), for the status bar.
    image_device: Option<String>,
    /// Trade-show mode's state; `None` in the normal studio.
    pub(crate) kiosk: Option<Kiosk>,
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
            Some(_) => crate::kiosk::driver::open_session(&base),
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
        if let Some(model) = opts.model {
            store.settings.model = Some(model);
        }
        Self {
            store,
            engine: None,
            engine_error: None,
            gpu,
            render_state: None,
            started: false,
            panels: crate::panels::registry(),
            shared: Shared::default(),
            commands: Vec::new(),
            toasts: Vec::new(),
            dialog: None,
            frame_stats: FrameStats::default(),
            report_frames: std::env::var_os("ATELIER_FRAME_STATS").is_some_and(|v| v != "0"),
            image_device: None,
            kiosk: opts.kiosk.map(Kiosk::new),
            worker_recoveries: 0,
        }
    }

    /// Installs fonts and style; call before the first frame (eframe's creation context, or a
    /// test harness's context setup).
    pub fn setup_context(ctx: &egui::Context) {
        theme::install(ctx);
    }

    /// Gives the app eframe's wgpu render state (the window's renderer), so panels can draw
    /// what the worker writes into textures on its device.
    pub fn set_render_state(&mut self, render_state: egui_wgpu::RenderState) {
        self.render_state = Some(render_state);
    }

    /// The panel of type `T` (tests and the kiosk reach a page this way).
    pub fn panel<T: Panel>(&self) -> Option<&T> {
        self.panels
            .iter()
            .find_map(|p| (p.as_ref() as &dyn std::any::Any).downcast_ref::<T>())
    }

    /// The panel of type `T`, to change it.
    pub fn panel_mut<T: Panel>(&mut self) -> Option<&mut T> {
        self.panels
            .iter_mut()
            .find_map(|p| (p.as_mut() as &mut dyn std::any::Any).downcast_mut::<T>())
    }

    /// Runs `f` on the panel of type `T` with the context the app gives panels (as when it
    /// hands a panel a chosen file); `None` if there is no such panel.
    pub fn with_panel<T: Panel, R>(
        &mut self,
        f: impl FnOnce(&mut T, &mut PanelContext<'_>) -> R,
    ) -> Option<R> {
        let i = self
            .panels
            .iter()
            .position(|p| (p.as_ref() as &dyn std::any::Any).is::<T>())?;
        let mut panels = std::mem::take(&mut self.panels);
        let result = {
            let mut cx = self.context();
            let panel = (panels[i].as_mut() as &mut dyn std::any::Any).downcast_mut::<T>()?;
            Some(f(panel, &mut cx))
        };
        self.panels = panels;
        result
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

    /// Frame-time statistics.
    pub fn frame_stats(&self) -> &FrameStats {
        &self.frame_stats
    }

    /// Messages currently shown in the corner (for tests).
    pub fn toasts(&self) -> Vec<Notice> {
        self.toasts.iter().map(|t| t.notice.clone()).collect()
    }

    /// The kiosk's state, in kiosk mode.
    pub fn kiosk(&self) -> Option<&Kiosk> {
        self.kiosk.as_ref()
    }

    /// How many times the inference worker recovered from a crash in this session.
    pub fn worker_recoveries(&self) -> u64 {
        self.worker_recoveries
    }

    /// Stops every panel's work and saves everything now (on exit).
    pub fn close(&mut self) {
        self.each_panel(|p, cx| {
            p.stop();
            p.save(cx);
        });
        if let Err(e) = self.store.save_now() {
            tracing::error!("saving on exit failed: {e}");
        }
        if self.report_frames {
            tracing::info!(
                "frame time summary (UI thread, CPU): all {}; while working {}; whole frames \
                 with rendering while working {}",
                self.frame_stats.overall(),
                self.frame_stats.while_working(),
                self.frame_stats.full_while_working()
            );
        }
    }

    /// What panels borrow (the panels themselves are taken out while they run).
    pub(crate) fn context(&mut self) -> PanelContext<'_> {
        PanelContext {
            engine: self.engine.as_ref(),
            engine_error: self.engine_error.as_deref(),
            store: &mut self.store,
            commands: &mut self.commands,
            render_state: self.render_state.as_ref(),
            kiosk: self.kiosk.is_some(),
            samples: self.kiosk.as_ref().map_or(&[][..], |k| k.images.as_slice()),
            shared: &mut self.shared,
        }
    }

    /// Runs `f` on every panel with the context.
    pub(crate) fn each_panel(&mut self, mut f: impl FnMut(&mut dyn Panel, &mut PanelContext<'_>)) {
        let mut panels = std::mem::take(&mut self.panels);
        {
            let mut cx = self.context();
            for p in &mut panels {
                f(p.as_mut(), &mut cx);
            }
        }
        self.panels = panels;
    }

    /// Runs `f` on the panel of `page`, if there is one.
    pub(crate) fn on_page<R>(
        &mut self,
        page: Page,
        f: impl FnOnce(&mut dyn Panel, &mut PanelContext<'_>) -> R,
    ) -> Option<R> {
        let i = self.panels.iter().position(|p| p.page() == page)?;
        let mut panels = std::mem::take(&mut self.panels);
        let result = {
            let mut cx = self.context();
            f(panels[i].as_mut(), &mut cx)
        };
        self.panels = panels;
        Some(result)
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
        self.each_panel(|p, cx| p.start(cx));
        for n in self.store.take_notices() {
            self.toast(n);
        }
    }

    /// Removes every toast (the kiosk's reset).
    pub(crate) fn clear_toasts(&mut self) {
        self.toasts.clear();
    }

    pub(crate) fn toast(&mut self, notice: Notice) {
        chrome::push_toast(&mut self.toasts, notice);
    }

    /// Routes the engine's events to the panels that own their jobs.
    fn drain_events(&mut self) {
        let Some(engine) = &self.engine else {
            return;
        };
        // A worker thread that died is replaced; the jobs it held fail with a message.
        engine.heal();
        let mut events = Vec::new();
        while let Some(event) = engine.try_recv() {
            events.push(event);
        }
        let mut recovered = None;
        for event in &events {
            match event {
                Event::Backend { device, .. } => self.image_device = Some(device.clone()),
                Event::WorkerRecovered { message, .. } => recovered = Some(message.clone()),
                // The one place a job's failure is logged; the panel shows it.
                Event::Failed { job, error } => tracing::warn!(job = %job, "{error}"),
                _ => {}
            }
        }
        let mut panels = std::mem::take(&mut self.panels);
        {
            let mut cx = self.context();
            for event in events {
                // Stale events of jobs no panel waits for any more are dropped.
                if let Some(p) = panels.iter_mut().find(|p| p.owns(event.job())) {
                    p.on_event(event, &mut cx);
                }
            }
        }
        self.panels = panels;
        if let Some(message) = recovered {
            self.worker_recovered(&message);
        }
    }

    /// The worker caught a crash and dropped its models: tell the user and let the panels
    /// reload what must be ready.
    fn worker_recovered(&mut self, message: &str) {
        self.worker_recoveries += 1;
        self.toast(Notice {
            level: NoticeLevel::Warning,
            message: format!(
                "The inference engine hit an internal error ({message}). It recovered and is \
                 reloading its models; the job that failed can be run again."
            ),
        });
        self.each_panel(|p, cx| p.worker_recovered(cx));
    }

    fn poll_dialog(&mut self) {
        let Some(rx) = &self.dialog else {
            return;
        };
        let Ok(result) = rx.try_recv() else {
            return;
        };
        self.dialog = None;
        if result.never_shown() {
            self.toast(Notice {
                level: NoticeLevel::Warning,
                message: "No file dialog could be shown (is xdg-desktop-portal running?).".into(),
            });
            return;
        }
        let Some(path) = result.path else {
            return;
        };
        let tag = result.request.tag;
        self.on_page(result.request.page, |p, cx| p.file_chosen(tag, path, cx));
    }

    fn open_dialog(&mut self, ctx: &egui::Context, request: DialogRequest) {
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
        let ctx = ctx.clone();
        match dialogs::show(request, move || ctx.request_repaint()) {
            Ok(rx) => self.dialog = Some(rx),
            Err(e) => self.toast(Notice {
                level: NoticeLevel::Error,
                message: format!("Could not open a file dialog: {e}"),
            }),
        }
    }

    /// Shows `page` (unless the kiosk leaves it out); the page left behind stops what only
    /// runs while it shows.
    pub(crate) fn show_page(&mut self, page: Page) {
        if self
            .kiosk
            .as_ref()
            .is_some_and(|k| !k.config.panels.contains(&page))
        {
            return;
        }
        let old = self.store.settings.page;
        if old != page {
            self.on_page(old, |p, _| p.hidden());
        }
        self.store.settings.page = page;
    }

    /// Handles the panels' commands; `asker` is the page that was drawn (dialogs answer to it).
    fn run_commands(&mut self, ctx: &egui::Context, asker: Page) {
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::ShowPage(page) => self.show_page(page),
                Command::Toast(n) => self.toast(n),
                Command::FileDialog {
                    purpose,
                    title,
                    filters,
                    file_name,
                    tag,
                } => self.open_dialog(
                    ctx,
                    DialogRequest {
                        page: asker,
                        purpose,
                        title,
                        filters,
                        file_name,
                        tag,
                    },
                ),
                Command::OpenIn { page, path } => {
                    let opened = self.on_page(page, |p, cx| p.open(path.clone(), cx));
                    if opened == Some(true) {
                        self.show_page(page);
                    } else {
                        self.toast(Notice {
                            level: NoticeLevel::Error,
                            message: format!("{} cannot be opened there.", path.display()),
                        });
                    }
                }
            }
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
        self.poll_dialog();
        if self.kiosk.is_some() {
            crate::kiosk::driver::frame(self, &ctx);
        }
        if let Some(wait) = self.store.tick(Instant::now()) {
            ctx.request_repaint_after(wait);
        }
        for n in self.store.take_notices() {
            self.toast(n);
        }

        let page = self.store.settings.page;
        let tabs: Vec<(Page, &'static str)> = match &self.kiosk {
            // The configured pages, in the configured order.
            Some(k) => k
                .config
                .panels
                .iter()
                .filter_map(|pg| {
                    self.panels
                        .iter()
                        .find(|p| p.page() == *pg)
                        .map(|p| (*pg, p.name()))
                })
                .collect(),
            None => self.panels.iter().map(|p| (p.page(), p.name())).collect(),
        };
        if let Some(clicked) = chrome::top_bar(ui, &tabs, page) {
            self.commands.push(Command::ShowPage(clicked));
        }
        self.status_bar(ui);
        if let Some(engine) = &self.engine
            && engine.backend() != self.store.settings.backend
        {
            engine.set_backend(self.store.settings.backend);
        }
        self.on_page(page, |p, cx| p.show(ui, cx));
        self.run_commands(&ctx, page);
        chrome::draw_toasts(&mut self.toasts, &ctx);
        if self.kiosk.as_ref().is_some_and(Kiosk::is_attracting) {
            chrome::attract_banner(&ctx);
        }

        let ms = t0.elapsed().as_secs_f32() * 1000.0;
        let working = self.is_working();
        self.frame_stats.record(ms, working);
        if self.report_frames {
            let now = Instant::now();
            let due = self
                .frame_stats
                .last_report
                .is_none_or(|t| now - t >= Duration::from_secs(5));
            if due {
                self.frame_stats.last_report = Some(now);
                tracing::info!(
                    "frame time (UI thread, CPU): all {}; while working {}; whole frames \
                     with rendering while working {}",
                    self.frame_stats.overall(),
                    self.frame_stats.while_working(),
                    self.frame_stats.full_while_working()
                );
            }
        }
    }

    /// Whether any panel has a job queued or running.
    pub fn is_working(&self) -> bool {
        self.panels.iter().any(|p| p.is_working())
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let items: Vec<_> = self
            .panels
            .iter()
            .flat_map(|p| p.status(&self.store))
            .collect();
        let pending = self.engine.as_ref().map_or(0, Engine::pending);
        let saved = !self.store.has_unsaved_changes();
        let save_problem = self.store.save_problem().map(str::to_string);
        let gpu_adapter = self
            .engine
            .as_ref()
            .and_then(Engine::gpu)
            .map(|g| g.adapter.clone());
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
                    &mut StatusInfo {
                        items: &items,
                        saved,
                        save_problem: save_problem.as_deref(),
                        pending_jobs: pending,
                        gpu_adapter: gpu_adapter.as_deref(),
                        image_device: self.image_device.as_deref(),
                        backend: &mut self.store.settings.backend,
                    },
                );
            });
    }

    /// Records eframe's figure for the previous whole frame (UI, tessellation, rendering).
    pub(crate) fn record_full_frame(&mut self, ms: f32) {
        if self.is_working() {
            self.frame_stats.record_full(ms);
        }
    }
}
