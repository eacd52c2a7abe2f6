//! Drives the real app (`AtelierApp::frame`) on the Train page with egui_kittest: a folder of
//! pictures is chosen (as the folder dialog hands it over), its contact sheet and count show,
//! a short fine-tuning run of the face model starts from the Train button, the sample grid and
//! the loss curves update while it runs, Pause holds it, Resume goes on, Stop writes a
//! checkpoint and the generator, the run is listed, and "Open in Faces" draws the trained
//! generator's grid on the Faces page.
//!
//! Bounded: every wait has a deadline and says what it waited for; nothing here measures
//! speed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atelier::app::AtelierApp;
use atelier::app::page::Page;
use atelier::panels::Panel;
use atelier::panels::train::{RunEnd, TrainPanel};
use common::Pages;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

type H = Harness<'static, AtelierApp>;

/// The app on `data`, opened on the Train page.
fn app_on(data: &Path) -> H {
    common::studio_on(data, Page::Train)
}

fn train(app: &AtelierApp) -> &TrainPanel {
    app.panel().expect("the Train panel")
}

fn wait_for(h: &mut H, what: &str, timeout: Duration, done: impl Fn(&AtelierApp) -> bool) {
    common::wait_for(h, what, timeout, done, |app| {
        let t = train(app);
        match t.live() {
            Some(r) => format!(
                "step {}/{}, phase {:?}, end {:?}, paused {}, problem {:?}",
                r.step,
                r.target,
                r.phase,
                r.end,
                r.paused,
                t.problem()
            ),
            None => format!(
                "no run; pictures {:?}, problem {:?}",
                t.picture_count(),
                t.problem()
            ),
        }
    });
}

fn shows(h: &H, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// 16 small pictures (discs of different colours on transparency) in a folder, and one text
/// file named .png that must be skipped.
fn pictures(dir: &Path) -> PathBuf {
    let out = dir.join("pictures");
    std::fs::create_dir_all(&out).unwrap();
    for i in 0..16u32 {
        let img = image::RgbaImage::from_fn(48, 48, |x, y| {
            let (dx, dy) = (x as i32 - 24, y as i32 - 24);
            if dx * dx + dy * dy < 18 * 18 {
                image::Rgba([(i * 15) as u8, 200 - (i * 10) as u8, 90, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        img.save(out.join(format!("p{i:02}.png"))).unwrap();
    }
    std::fs::write(out.join("notes.png"), "not a picture").unwrap();
    out
}

#[test]
fn a_short_run_shows_samples_and_curves_pauses_stops_and_opens_in_faces() {
    let face_model = atelier::features::faces::default_model();
    assert!(
        face_model.is_file(),
        "the face model is missing at {}; fetch it with models/fetch.sh faces",
        face_model.display()
    );
    let data = tempfile::tempdir().unwrap();
    let folder = pictures(data.path());
    let mut h = app_on(data.path());
    h.step();
    assert!(shows(&h, "Choose folder"));
    // The folder dialog's answer, as the app hands it to the panel.
    h.state_mut()
        .with_panel(|p: &mut TrainPanel, cx| p.file_chosen("train-pictures", folder.clone(), cx));
    wait_for(
        &mut h,
        "the contact sheet",
        Duration::from_secs(60),
        |app| train(app).picture_count().is_some(),
    );
    h.step();
    assert_eq!(train(h.state()).picture_count(), Some(16));
    assert!(shows(&h, "16 pictures"), "the count shows");
    assert!(
        shows(&h, "1 files skipped"),
        "the text file is listed as skipped"
    );

    h.state_mut().with_panel(|p: &mut TrainPanel, _| {
        let f = p.pictures_form_mut();
        f.steps = 400;
        f.batch = 4;
        f.samples_every = 2;
        f.checkpoint_every = 5;
        f.threads = 2;
    });
    h.get_by_label("▶ Train").click();
    h.step();
    wait_for(
        &mut h,
        "samples and 4 steps",
        Duration::from_secs(240),
        |app| {
            train(app)
                .live()
                .is_some_and(|r| r.step >= 4 && r.grid_step.is_some() && r.curves[0].len() >= 4)
        },
    );
    h.step();
    assert!(shows(&h, "Samples after step"), "the sample grid shows");
    assert!(shows(&h, "Losses"), "the plot shows");
    assert!(
        shows(&h, "Training pictures: step"),
        "the status bar says so"
    );

    // Pause: at most the step in flight finishes, then nothing moves.
    h.get_by_label("Pause").click();
    h.step();
    assert!(train(h.state()).live().unwrap().paused);
    std::thread::sleep(Duration::from_millis(1500));
    h.step();
    let held = train(h.state()).live().unwrap().step;
    std::thread::sleep(Duration::from_millis(1500));
    h.step();
    assert_eq!(
        train(h.state()).live().unwrap().step,
        held,
        "a paused run does not step"
    );
    assert!(shows(&h, "paused at step"));
    h.get_by_label("▶ Resume").click();
    wait_for(
        &mut h,
        "a step after resuming",
        Duration::from_secs(120),
        |app| train(app).live().is_some_and(|r| r.step > held),
    );

    // Stop: a checkpoint and the generator are written, and the run is listed.
    h.get_by_label("■ Stop").click();
    wait_for(&mut h, "the stopped run", Duration::from_secs(120), |app| {
        train(app).live().is_some_and(|r| r.end.is_some())
    });
    let run = train(h.state()).live().unwrap();
    assert_eq!(run.end, Some(RunEnd::Stopped), "{:?}", run.end);
    let generator = run.result.clone().expect("the generator was exported");
    assert!(generator.is_file());
    let run_dir = run.run_dir.clone().expect("the run folder");
    assert!(
        std::fs::read_dir(&run_dir)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint-")),
        "a checkpoint in {}",
        run_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while train(h.state()).run_count() == 0 {
        assert!(Instant::now() < deadline, "the run is listed");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }

    // Open in Faces: the Faces page draws the trained generator's grid.
    // The live run's button and the run list's do the same (the list's exports the newest
    // checkpoint first): either one.
    h.query_all_by_label("Open in Faces")
        .next()
        .expect("an Open in Faces button")
        .click();
    wait_for(&mut h, "the Faces page", Duration::from_secs(60), |app| {
        app.store().settings.page == Page::Faces
    });
    assert_eq!(h.state().faces_panel().model(), generator.as_path());
    wait_for(
        &mut h,
        "the trained generator's grid",
        Duration::from_secs(120),
        |app| {
            let f = app.faces_panel();
            f.grid_filled() == f.grid_size() * f.grid_size()
        },
    );
    assert_eq!(h.state().faces_panel().error(), None);
}

#[test]
fn too_few_pictures_are_refused_with_a_message() {
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().join("few");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..3 {
        image::RgbaImage::from_pixel(40, 40, image::Rgba([i * 60, 0, 0, 255]))
            .save(folder.join(format!("{i}.png")))
            .unwrap();
    }
    let mut h = app_on(data.path());
    h.step();
    h.state_mut()
        .with_panel(|p: &mut TrainPanel, cx| p.file_chosen("train-pictures", folder.clone(), cx));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !shows(&h, "training needs at least 16") {
        assert!(Instant::now() < deadline, "the refusal shows");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(train(h.state()).picture_count(), None);
    assert!(
        h.get_by_label("▶ Train").accesskit_node().is_disabled(),
        "nothing to train on: the button is off"
    );
}
