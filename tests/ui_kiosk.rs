//! Kiosk mode, driven through the real app (`AtelierApp::frame`) with egui_kittest: the attract
//! loop starts after the (short, configured) idle time and plays the latent walk with the real
//! DCGAN, a key press hands control back and stops it, a longer idle time resets the session
//! to a clean state, file dialogs stay shut, and only the configured keys allow quitting.
//!
//! Bounded: every wait polls with a deadline and fails with what it was waiting for.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atelier::app::page::Page;
use atelier::app::{AtelierApp, GuiOptions};
use atelier::kiosk::{KioskConfig, SESSION_DIR};
use common::Pages;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The UI tests share two CPU cores with the models: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

type H = Harness<'static, AtelierApp>;

fn kiosk_app(data: &Path, config: &str) -> H {
    let config = KioskConfig::parse(config, &data.join("kiosk.toml")).expect("valid config");
    let app = AtelierApp::new(
        GuiOptions {
            backend: None,
            // No language model: it would compete for the two cores.
            model: Some(data.join("no-language-model.gguf")),
            data_dir: Some(data.to_path_buf()),
            kiosk: Some(config),
        },
        None,
    );
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app)
}

fn wait_for(h: &mut H, what: &str, timeout: Duration, done: impl Fn(&AtelierApp) -> bool) {
    common::wait_for(h, what, timeout, done, |app| {
        format!(
            "attracting {:?}, faces {:?}",
            app.kiosk().map(|k| k.is_attracting()),
            app.faces_panel().status_text()
        )
    });
}

fn root_commands(h: &H) -> Vec<egui::ViewportCommand> {
    h.output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .map(|v| v.commands.clone())
        .unwrap_or_default()
}

/// Sends the window a close request (the title bar's ×, Alt+F4) and says whether the app
/// cancelled it.
fn close_refused(h: &mut H) -> bool {
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
    root_commands(h).contains(&egui::ViewportCommand::CancelClose)
}

#[test]
fn attract_loop_starts_when_idle_and_stops_on_input() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = kiosk_app(
        data.path(),
        "panels = [\"style\", \"faces\"]\n[timing]\nidle_seconds = 1.0\ndemo_seconds = 600\n\
         reset_minutes = 60\n[faces]\nseeds = [1, 2, 3]",
    );
    // Only the configured pages, in the configured order; the first one opens.
    h.step();
    assert_eq!(h.state().store().settings.page, Page::Style);
    assert!(
        h.query_by_label("Write").is_none(),
        "Write is not a kiosk page"
    );
    assert!(!h.state().kiosk().unwrap().is_attracting());

    // A click on Faces is a visitor: no demo for the idle time after it.
    h.get_by_label("Faces").click();
    h.step();
    assert_eq!(h.state().store().settings.page, Page::Faces);
    let clicked = Instant::now();
    wait_for(&mut h, "the attract loop", Duration::from_secs(10), |app| {
        app.kiosk().unwrap().is_attracting()
    });
    assert!(
        clicked.elapsed() >= Duration::from_millis(900),
        "the demo started {:?} after the last input",
        clicked.elapsed()
    );
    // The first demo is the first configured page's: Style; with a 600 s turn it stays there.
    assert_eq!(h.state().store().settings.page, Page::Style);

    // Input stops it — a key here, the mouse below; nothing restarts before the idle time has
    // passed again.
    h.key_press(egui::Key::A);
    h.step();
    assert!(!h.state().kiosk().unwrap().is_attracting());
    h.step();
    assert!(!h.state().kiosk().unwrap().is_attracting());
    wait_for(
        &mut h,
        "the attract loop again",
        Duration::from_secs(10),
        |app| app.kiosk().unwrap().is_attracting(),
    );
    // One jump of the mouse (no velocity) is a visitor too.
    h.event(egui::Event::PointerMoved(egui::pos2(700.0, 420.0)));
    h.step();
    assert!(
        !h.state().kiosk().unwrap().is_attracting(),
        "the mouse stops it"
    );
}

#[test]
fn faces_demo_plays_the_walk_and_a_key_stops_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = kiosk_app(
        data.path(),
        "panels = [\"faces\"]\n[timing]\nidle_seconds = 0.5\ndemo_seconds = 600\n\
         reset_minutes = 60\n[faces]\nseeds = [1, 2, 3]",
    );
    wait_for(
        &mut h,
        "the walk's frames",
        Duration::from_secs(60),
        |app| app.faces_panel().walk().is_playing() && app.faces_panel().walk().frames > 3,
    );
    let walk = h.state().faces_panel().walk();
    assert_eq!(walk.keys.len(), 3, "the configured seeds are the keyframes");
    assert_eq!(walk.keys[2].seed, Some(3));
    h.key_press(egui::Key::Space);
    h.step();
    assert!(!h.state().kiosk().unwrap().is_attracting());
    assert!(
        !h.state().faces_panel().walk().is_playing(),
        "input stops the walk"
    );
}

#[test]
fn long_idle_resets_the_session_and_dialogs_and_quit_are_guarded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    // Something left over from an earlier session is cleared at start.
    let session = data.path().join(SESSION_DIR);
    std::fs::create_dir_all(session.join("documents")).unwrap();
    std::fs::write(session.join("documents/old.json"), b"{}").unwrap();
    let mut h = kiosk_app(
        data.path(),
        "panels = [\"write\"]\nquit_keys = \"Ctrl+Alt+K\"\n[timing]\nidle_seconds = 0.6\n\
         demo_seconds = 600\nreset_minutes = 0.03",
    );
    h.step();
    assert!(!session.join("documents/old.json").exists());
    assert_eq!(h.state().store().dir(), session);

    // A visitor writes a document; it is saved in the session folder.
    h.state_mut().store_mut().new_document();
    h.state_mut().store_mut().current_mut().text = "A visitor's secret".into();
    h.state_mut().store_mut().mark_changed();
    h.state_mut().store_mut().save_now().unwrap();
    assert_eq!(h.state().store().documents().len(), 2);

    // No button opens a file dialog (Save As, Export, Open GGUF) and the engine is not
    // reconfigurable by visitors; the shortcut that would open a dialog
    // (Ctrl+S on a document never saved to a file) is refused with a message.
    for label in ["Save As…", "Export ▾", "Open GGUF…", "This computer"] {
        assert!(
            h.query_all_by_label(label).next().is_none(),
            "{label} is shown in kiosk mode"
        );
    }
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    h.step();
    h.step();
    assert!(
        h.state()
            .toasts()
            .iter()
            .any(|n| n.message.contains("switched off")),
        "{:?}",
        h.state().toasts()
    );

    // Closing the window is refused, and other keys do not quit.
    assert!(close_refused(&mut h), "a close request is cancelled");
    h.key_press_modifiers(egui::Modifiers::CTRL | egui::Modifiers::SHIFT, egui::Key::Q);
    h.step();
    assert!(!h.state().kiosk().unwrap().quit_allowed);
    // The configured keys allow closing (the app asks the window to close then).
    h.key_press_modifiers(egui::Modifiers::CTRL | egui::Modifiers::ALT, egui::Key::K);
    h.step();
    assert!(h.state().kiosk().unwrap().quit_allowed);
    assert!(
        !close_refused(&mut h),
        "after the quit keys, closing is allowed"
    );

    // 1.8 s without input: the session resets to a clean state.
    wait_for(&mut h, "the reset", Duration::from_secs(20), |app| {
        app.kiosk().unwrap().resets == 1
    });
    h.step();
    let docs = h.state().store().documents();
    assert!(
        docs.iter().all(|d| !d.text.contains("visitor's secret")),
        "the visitor's document is gone"
    );
    assert!(h.state().toasts().is_empty(), "messages are cleared");
}

#[test]
fn a_visitor_picks_a_sample_picture_and_cannot_open_files() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let private = data.path().join("private.png");
    image::RgbImage::new(16, 16).save(&private).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/style/chelsea_256.png");
    let mut h = kiosk_app(
        data.path(),
        &format!(
            "panels = [\"style\"]\n[timing]\nidle_seconds = 100\nreset_minutes = 30\n[style]\nimages = [{:?}]",
            sample.display().to_string()
        ),
    );
    h.step();
    // Dropping a file or pasting its path opens nothing: the machine's files are off limits.
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(common::Dropped(private.clone())));
    h.step();
    h.event(egui::Event::Paste(private.display().to_string()));
    h.step();
    assert_eq!(h.state().style_panel().content_name(), None);
    // The kiosk's own pictures are offered instead, and a click restyles one.
    let label = "Restyle the sample picture chelsea_256";
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.query_all_by_label(label).next().is_none() {
        assert!(Instant::now() < deadline, "no sample picture is offered");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Offered twice (the Content card and the empty page): either does.
    h.query_all_by_label(label)
        .next()
        .expect("a sample")
        .click();
    h.step();
    assert_eq!(
        h.state().style_panel().content_name(),
        Some("chelsea_256.png")
    );
}
