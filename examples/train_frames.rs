//! The UI's frame time while a training run goes (issue: "the window never stutters"): the real
//! app (`AtelierApp::frame`, driven by egui_kittest at 60 frames a second) starts a pictures
//! run on the Train page — the 169 "Smileys & Emotion" emoji, fine-tuning the face model,
//! batch 32, every core — and reports the UI thread's time per frame while it runs (the
//! app's own `FrameStats`, as `ATELIER_FRAME_STATS=1` logs it in the window), with the run's
//! training speed. Rendering is not included (no window here; see BENCHMARKS.md).
//!
//! `cargo run --release --example train_frames -- [SECONDS]` (default 60); needs
//! `models/fetch.sh faces` and `models/fetch.sh train`.

use std::time::{Duration, Instant};

use atelier::app::page::Page;
use atelier::app::{AtelierApp, GuiOptions};
use atelier::panels::Panel;
use atelier::panels::train::TrainPanel;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(60);
    let data = tempfile::tempdir()?;
    let emoji = atelier::paths::models_dir().join("emoji");
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(emoji.join("emoji.json"))?)?;
    let pictures = data.path().join("smileys");
    std::fs::create_dir_all(&pictures)?;
    for e in list.iter().filter(|e| e["category"] == "Smileys & Emotion") {
        if let Some(name) = e["image"].as_str() {
            std::os::unix::fs::symlink(emoji.join(name), pictures.join(name))?;
        }
    }
    let mut app = AtelierApp::new(
        GuiOptions {
            backend: None,
            model: Some(data.path().join("no-language-model.gguf")),
            data_dir: Some(data.path().to_path_buf()),
            kiosk: None,
        },
        None,
    );
    app.store_mut().settings.page = Page::Train;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app);
    h.step();
    h.state_mut()
        .with_panel(|p: &mut TrainPanel, cx| p.file_chosen("train-pictures", pictures.clone(), cx));
    let train = |app: &AtelierApp| app.panel::<TrainPanel>().cloned_live();
    let deadline = Instant::now() + Duration::from_secs(60);
    while h
        .state()
        .panel::<TrainPanel>()
        .and_then(TrainPanel::picture_count)
        .is_none()
    {
        anyhow::ensure!(Instant::now() < deadline, "the pictures did not load");
        h.step();
        std::thread::sleep(Duration::from_millis(16));
    }
    h.state_mut().with_panel(|p: &mut TrainPanel, _| {
        let f = p.pictures_form_mut();
        f.steps = 100_000;
        f.batch = 32;
    });
    h.get_by_label("▶ Train").click();
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        h.step();
        next += Duration::from_micros(16_667);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let (step, speed) = train(h.state());
    h.state_mut().with_panel(|p: &mut TrainPanel, _| p.stop());
    println!(
        "UI thread per frame while training: {}",
        h.state().frame_stats().while_working()
    );
    println!("training: {step} steps in {seconds} s, {speed:.1} pictures/s at the end");
    Ok(())
}

/// The live run's step and speed.
trait LiveFigures {
    fn cloned_live(self) -> (u64, f64);
}

impl LiveFigures for Option<&TrainPanel> {
    fn cloned_live(self) -> (u64, f64) {
        self.and_then(TrainPanel::live)
            .map_or((0, 0.0), |r| (r.step, r.speed))
    }
}
