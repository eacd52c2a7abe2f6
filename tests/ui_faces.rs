//! Drives the real app (`AtelierApp::frame`, as eframe calls it) on the Faces page with
//! egui_kittest and the real DCGAN weights (`models/dcgan-weights.tar`): the grid fills in, a
//! click selects, ψ re-renders, a favourite survives a restart, the walk plays into one texture
//! and reports its pacing, an export writes a PNG, and a missing model says how to fetch it.
//!
//! Bounded: every wait polls with a deadline and fails with what it was waiting for.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use atelier::app::AtelierApp;
use atelier::app::page::Page;
use atelier::features::faces::FaceSpec;
use atelier::panels::faces::{FaceExport, FacesPanel};
use common::Pages;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The UI tests share two CPU cores with the model: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

type H = Harness<'static, AtelierApp>;

fn generator() -> PathBuf {
    atelier::features::faces::default_model()
}

/// The app on `data`, opened on the Faces page. The language model is pointed at a file that
/// does not exist so it does not load and compete for the two cores.
fn app_on(data: &Path) -> H {
    assert!(
        generator().is_file(),
        "the face generator is missing at {}; fetch it with models/fetch.sh faces",
        generator().display()
    );
    common::studio_on(data, Page::Faces)
}

/// Steps frames until `done` holds, or fails after `timeout` saying what it waited for.
fn wait_for(h: &mut H, what: &str, timeout: Duration, done: impl Fn(&AtelierApp) -> bool) {
    common::wait_for(h, what, timeout, done, |app| {
        let f = app.faces_panel();
        format!(
            "grid {}/{}, status {:?}, error {:?}",
            f.grid_filled(),
            f.grid_size() * f.grid_size(),
            f.status_text(),
            f.error()
        )
    });
}

fn wait_grid(h: &mut H) {
    wait_for(h, "every grid cell", Duration::from_secs(60), |app| {
        let f = app.faces_panel();
        f.grid_filled() == f.grid_size() * f.grid_size()
    });
}

fn shows(h: &H, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

#[test]
fn grid_fills_a_click_selects_and_psi_re_renders() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    wait_grid(&mut h);
    let f = h.state().faces_panel();
    assert_eq!(f.grid_size(), 4);
    assert_eq!(f.grid_filled(), 16, "all 16 cells show their face");
    for seed in 0..16 {
        assert!(shows(&h, &format!("Seed {seed}")), "cell of seed {seed}");
    }
    assert!(shows(&h, "The model draws 64×64 pixels"));
    assert!(shows(&h, "Catmull–Rom"));

    // A click selects that seed and the large preview renders it.
    h.get_by_label("Seed 5").click();
    h.step();
    let sel = h
        .state()
        .faces_panel()
        .selected()
        .cloned()
        .expect("a selection");
    assert_eq!(sel.seed, Some(5));
    assert_eq!(sel, FaceSpec::from_seed(5, h.state().faces_panel().psi()));
    wait_for(
        &mut h,
        "the preview of seed 5",
        Duration::from_secs(120),
        |app| app.faces_panel().preview_ready(),
    );
    assert!(
        shows(&h, "seed 5 · ψ 0.80"),
        "the caption names the selection"
    );
    assert_eq!(
        h.state()
            .faces_panel()
            .history()
            .newest_first()
            .next()
            .and_then(|f| f.seed),
        Some(5)
    );

    // ψ re-renders the grid and the selection.
    let before = h.state().faces_panel().samples_received();
    h.state_mut().faces_panel_mut().set_psi(0.3);
    h.step();
    assert!(
        h.state().faces_panel().grid_filled() < 16,
        "old cells are stale"
    );
    wait_grid(&mut h);
    wait_for(
        &mut h,
        "the preview at ψ 0.3",
        Duration::from_secs(60),
        |app| app.faces_panel().preview_ready(),
    );
    let f = h.state().faces_panel();
    assert!(
        f.samples_received() >= before + 17,
        "16 cells and the preview re-rendered"
    );
    assert_eq!(f.selected().map(|s| s.psi), Some(0.3));
    assert!(shows(&h, "ψ 0.30"));

    // Back to the default ψ and wait for the directions (and their strips) for the snapshot.
    h.state_mut().faces_panel_mut().set_psi(0.8);
    wait_grid(&mut h);
    wait_for(&mut h, "the directions", Duration::from_secs(300), |app| {
        app.faces_panel().directions().is_some()
    });
    wait_for(
        &mut h,
        "everything rendered",
        Duration::from_secs(120),
        |app| {
            let f = app.faces_panel();
            // The autosave settles too, so the status bar reads "Saved" in the snapshot.
            f.status_text().is_none() && f.preview_ready() && !app.store().has_unsaved_changes()
        },
    );
    for _ in 0..3 {
        h.step();
    }
    assert!(shows(&h, "Direction 1"));
    h.snapshot("faces_grid");
}

#[test]
fn a_favourite_survives_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    {
        let mut h = app_on(data.path());
        wait_grid(&mut h);
        h.get_by_label("Seed 2").click();
        h.step();
        h.get_by_label(&format!("{} Favourite", atelier::theme::icon::STAR))
            .click();
        h.step();
        h.step();
        let favs = h.state().faces_panel().favourites();
        assert_eq!(favs.len(), 1);
        assert_eq!(favs[0].face.seed, Some(2));
        assert!(shows(&h, "Starred"));
    }
    assert!(data.path().join("faces/favourites.json").is_file());
    let mut h = app_on(data.path());
    h.step();
    let favs = h.state().faces_panel().favourites();
    assert_eq!(favs.len(), 1, "the new app sees the favourite");
    assert_eq!(favs[0].face, FaceSpec::from_seed(2, 0.8));
    assert!(shows(&h, "Favourite seed 2"));
    // Selecting it from the strip shows it starred.
    h.get_by_label("Favourite seed 2").click();
    // The click is applied after the frame draws; the next frame shows its result.
    h.step();
    h.step();
    assert!(shows(&h, "Starred"));
}

#[test]
fn the_walk_plays_into_one_texture_and_reports_pacing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    wait_grid(&mut h);
    let keys = [1, 7, 42].map(|s| FaceSpec::from_seed(s, 0.8)).to_vec();
    h.state_mut().faces_panel_mut().set_walk_keys(keys);
    h.step();
    h.get_by_label(&format!("{} Play walk", atelier::theme::icon::PLAY))
        .click();
    wait_for(&mut h, "walk frames", Duration::from_secs(60), |app| {
        app.faces_panel().walk().frames >= 5
    });
    let tex = h.state().faces_panel().walk().texture_id();
    assert!(tex.is_some());
    wait_for(&mut h, "a pacing report", Duration::from_secs(30), |app| {
        app.faces_panel().walk().pacing.is_some() && app.faces_panel().walk().frames >= 40
    });
    assert_eq!(
        h.state().faces_panel().walk().texture_id(),
        tex,
        "frames reuse one texture"
    );
    let p = h.state().faces_panel().walk().pacing.clone().unwrap();
    eprintln!(
        "walk pacing in the harness: {}",
        atelier::panels::faces::pacing_line(&p)
    );
    assert!(p.frames > 0 && p.mean_interval_ms > 0.0);
    assert!(shows(&h, "fps (target 60)"));
    assert!(
        h.state()
            .faces_panel()
            .status_text()
            .is_some_and(|s| s.contains("walk"))
    );

    // Leaving the page stops the walk so Write can use the worker.
    h.get_by_label("Write").click();
    wait_for(&mut h, "the walk to stop", Duration::from_secs(10), |app| {
        !app.faces_panel().walk().is_playing()
    });
}

#[test]
fn export_writes_a_png_of_the_selected_face() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    wait_grid(&mut h);
    h.get_by_label("Seed 3").click();
    h.step();
    let out = data.path().join("face.png");
    // The app hands the dialog's path to the panel the same way.
    let exported = h.state_mut().with_panel(|panel: &mut FacesPanel, cx| {
        assert!(cx.engine.is_some());
        panel.export_to(cx.engine, FaceExport::Png(256), out.clone());
    });
    assert!(exported.is_some());
    wait_for(&mut h, "the PNG", Duration::from_secs(60), |_| {
        image::open(&out).is_ok()
    });
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (256, 256));
}

#[test]
fn a_missing_generator_says_which_command_fetches_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    h.state_mut()
        .faces_panel_mut()
        .set_model(data.path().join("missing-dcgan.tar"));
    h.step();
    h.step();
    assert!(shows(&h, "models/fetch.sh faces"));
    assert!(shows(&h, "The face generator is not installed"));
}
