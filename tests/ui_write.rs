//! Drives the real app (the same `AtelierApp::frame` eframe calls) with egui_kittest and the real
//! default model (SmolLM2-135M-Instruct): type, generate, watch tokens stream in, stop, generate
//! alternatives, accept, undo, swap a word, and see a queued request say so. The document must
//! change only on Accept.
//!
//! Deterministic: greedy decoding or a fixed seed. Bounded: every wait polls with a deadline and
//! fails with what it was waiting for.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use atelier::app::{AtelierApp, GuiOptions};
use atelier::engine::WriteRequest;
use atelier::models::llm::context::WriteTask;
use atelier::models::llm::{GenerateParams, SamplingParams};
use atelier::panels::write::Phase;
use atelier::store::WriteMode;
use common::Pages;
use egui::text::{CCursor, CCursorRange};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// The UI tests share two CPU cores with the model: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PROMPT: &str = "The old lighthouse keeper climbed the stairs one last time. At the top,";

fn model_path() -> PathBuf {
    atelier::paths::default_model(atelier::paths::SMOLLM2_FILE)
}

struct Fixture {
    harness: Harness<'static, AtelierApp>,
    _dir: tempfile::TempDir,
}

/// The app on a fresh data folder, with settings arranged by `setup`, model loaded.
fn app_with(setup: impl FnOnce(&mut atelier::store::Settings)) -> Fixture {
    assert!(
        model_path().is_file(),
        "the default model is missing at {}; fetch it with {}",
        model_path().display(),
        atelier::paths::FETCH_COMMAND
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = AtelierApp::new(
        GuiOptions {
            backend: None,
            model: Some(model_path()),
            data_dir: Some(dir.path().to_path_buf()),
            kiosk: None,
        },
        None,
    );
    setup(&mut app.store_mut().settings);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app);
    wait_for(
        &mut harness,
        "the model to load",
        Duration::from_secs(60),
        |app| app.model_state().selected_info().is_some(),
    );
    // Idle now: let the UI settle; this also checks every input widget has an accessible name.
    harness.run();
    Fixture { harness, _dir: dir }
}

/// Steps frames until `done` holds, or fails after `timeout` saying what it waited for.
fn wait_for(
    h: &mut Harness<'static, AtelierApp>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&AtelierApp) -> bool,
) {
    common::wait_for(h, what, timeout, done, |app| {
        format!(
            "phase {:?}, candidates {:?}, model error {:?}",
            app.write_panel().suggestions().map(|s| s.phase.clone()),
            app.write_panel().candidate_texts(),
            app.model_state().error,
        )
    });
}

fn doc_text(h: &Harness<'static, AtelierApp>) -> String {
    h.state().store().current().text.clone()
}

/// Replaces the document and puts the cursor at its end.
fn set_document(h: &mut Harness<'static, AtelierApp>, text: &str) {
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    app.store_mut().current_mut().text = text.to_string();
    app.store_mut().mark_changed();
    let end = CCursorRange::one(CCursor::end_of_str(text));
    app.write_panel_mut().set_cursor(&ctx, end);
    h.run_ok();
}

/// Whether any node's label contains `text` (several may: a pill and the status bar).
fn shows(h: &Harness<'static, AtelierApp>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// Clicks at a screen position (for picking one word inside the suggestion text).
fn click_at(h: &mut Harness<'static, AtelierApp>, pos: egui::Pos2) {
    h.event(egui::Event::PointerMoved(pos));
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    h.run_ok();
}

fn phase(h: &Harness<'static, AtelierApp>) -> Option<Phase> {
    h.state()
        .write_panel()
        .suggestions()
        .map(|s| s.phase.clone())
}

fn greedy(settings: &mut atelier::store::Settings, max_new_tokens: usize) {
    settings.mode = WriteMode::Continue;
    settings.candidates = 1;
    settings.params = GenerateParams {
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_new_tokens,
        ..GenerateParams::default()
    };
}

#[test]
fn typing_generating_streaming_stop_accept_and_undo() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| greedy(s, 400));
    let h = &mut f.harness;
    set_document(h, PROMPT);

    // Type into the document (the editor has focus from the start).
    h.get_by_label("Document").type_text(" she");
    h.run_ok();
    let typed = format!("{PROMPT} she");
    assert_eq!(doc_text(h), typed, "typing goes into the document");

    h.get_by_label("Generate").click();
    // Tokens stream in and are shown in the tray while the document stays untouched.
    wait_for(h, "streamed tokens", Duration::from_secs(60), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.candidates[0].tokens.len() >= 3)
    });
    assert!(h.state().write_panel().is_generating());
    let partial = h.state().write_panel().candidate_texts()[0].clone();
    assert!(!partial.trim().is_empty());
    h.step();
    assert!(
        shows(h, partial.trim()),
        "the streamed text {partial:?} is on screen"
    );
    assert_eq!(
        doc_text(h),
        typed,
        "the document is untouched while generating"
    );

    // Stop takes effect within a token or so.
    h.get_by_label("Stop").click();
    h.step();
    let at_stop = h
        .state()
        .write_panel()
        .suggestions()
        .map_or(0, |s| s.token_count());
    wait_for(h, "the job to stop", Duration::from_secs(10), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.phase == Phase::Stopped)
    });
    let stopped = h
        .state()
        .write_panel()
        .suggestions()
        .map_or(0, |s| s.token_count());
    assert!(
        stopped <= at_stop + 2,
        "stop took effect within a token or two ({at_stop} → {stopped})"
    );
    assert!(stopped < 400, "generation stopped before max tokens");
    for _ in 0..10 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        h.state()
            .write_panel()
            .suggestions()
            .map_or(0, |s| s.token_count()),
        stopped,
        "no tokens arrive after Stop"
    );
    assert!(shows(h, "Stopped"));
    assert_eq!(doc_text(h), typed, "stopping does not touch the document");

    // Accept the partial text: now, and only now, the document changes.
    let suggestion = h.state().write_panel().candidate_texts()[0].clone();
    h.get_by_label("Accept").click();
    h.run_ok();
    assert_eq!(doc_text(h), format!("{typed}{suggestion}"));
    assert!(h.state().write_panel().suggestions().is_none());

    // Ctrl+Z restores the text from before the accepted generation.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_ok();
    assert_eq!(doc_text(h), typed, "undo removes the accepted generation");

    let frames = h.state().frame_stats().while_working();
    eprintln!("UI frame time while generating (CPU, kittest): {frames}");
    assert!(frames.frames > 0);
    assert!(
        frames.p50_ms < 16.0,
        "frames must stay under 16 ms while generating: {frames}"
    );
}

#[test]
fn two_alternatives_side_by_side_and_accept_the_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| {
        greedy(s, 24);
        // Sampled with a fixed seed: candidate i uses seed + i, so the two differ but repeat.
        s.params.sampling.temperature = 0.9;
        s.params.sampling.seed = 7;
    });
    let h = &mut f.harness;
    set_document(h, PROMPT);
    h.get_by_label("2 alternatives").click();
    h.run_ok();
    assert_eq!(h.state().store().settings.candidates, 2);

    // Ctrl+Enter generates (and does not insert a newline).
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    wait_for(h, "both alternatives", Duration::from_secs(90), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.phase == Phase::Done)
    });
    h.run_ok();
    let texts = h.state().write_panel().candidate_texts();
    assert_eq!(texts.len(), 2);
    assert!(texts.iter().all(|t| !t.trim().is_empty()), "{texts:?}");
    assert_ne!(
        texts[0], texts[1],
        "different seeds give different alternatives"
    );
    assert_eq!(
        doc_text(h),
        PROMPT,
        "nothing is inserted before Accept (and Ctrl+Enter added no newline)"
    );
    // Every generation shows its timings.
    assert!(shows(h, "first token"));
    assert!(shows(h, "tok/s"));

    h.get_by_label("Accept alternative 2").click();
    h.run_ok();
    assert_eq!(doc_text(h), format!("{PROMPT}{}", texts[1]));
}

#[test]
fn a_request_behind_another_job_says_it_is_queued() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| greedy(s, 300));
    let h = &mut f.harness;
    set_document(h, PROMPT);
    // Someone else's long job occupies the worker (e.g. a CLI-style request).
    let other = h
        .state()
        .engine()
        .expect("engine running")
        .write(WriteRequest {
            model: model_path(),
            adapter: None,
            task: WriteTask::Continue {
                text: PROMPT.into(),
            },
            params: GenerateParams {
                sampling: SamplingParams::greedy(),
                max_new_tokens: 2000,
                logprobs: 0,
            },
            candidates: 1,
            forced: Vec::new(),
            remote: None,
        });
    h.get_by_label("Generate").click();
    wait_for(h, "the queued state", Duration::from_secs(10), |app| {
        matches!(
            app.write_panel().suggestions().map(|s| s.phase.clone()),
            Some(Phase::Queued { ahead: 1 })
        )
    });
    h.step();
    assert!(shows(h, "Queued behind 1 job"));
    // When the other job ends, ours runs; Esc stops it.
    other.cancel();
    wait_for(h, "our job to stream", Duration::from_secs(60), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.phase == Phase::Streaming)
    });
    h.key_press(egui::Key::Escape);
    wait_for(h, "Esc to stop our job", Duration::from_secs(10), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.phase == Phase::Stopped)
    });
    assert_eq!(doc_text(h), PROMPT);
}

#[test]
fn clicking_a_word_shows_alternatives_and_swapping_regenerates_from_there() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| greedy(s, 16));
    let h = &mut f.harness;
    set_document(h, PROMPT);
    h.get_by_label("Generate").click();
    wait_for(h, "the generation", Duration::from_secs(60), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| s.phase == Phase::Done)
    });
    h.run_ok();
    let before = h.state().write_panel().suggestions().unwrap().candidates[0].clone();
    assert!(before.tokens.len() >= 4, "{:?}", before.text);

    // Click the last generated word: the popup lists what the model weighed there.
    let text = before.text.clone();
    let rect = h.get_by_label(&text).rect();
    click_at(h, rect.right_bottom() - egui::vec2(2.0, 6.0));
    let options = h.get_all_by_label_contains("Use “").count();
    assert!(options >= 2, "the popup offers alternatives");
    let label = h
        .get_all_by_label_contains("Use “")
        .next()
        .and_then(|n| n.accesskit_node().label())
        .unwrap();
    let alt_text = label["Use “".len()..label.rfind("” (").unwrap()].to_string();
    h.get_by_label(&label).click();
    h.step();
    wait_for(
        h,
        "the regeneration after the swap",
        Duration::from_secs(60),
        |app| {
            app.write_panel()
                .suggestions()
                .is_some_and(|s| s.phase == Phase::Done)
        },
    );
    let after = h.state().write_panel().suggestions().unwrap().candidates[0].clone();
    let k = after.forced;
    assert!(k >= 1, "the swapped word is forced");
    // Everything before the swapped word is kept, the word is replaced, and more follows.
    assert_eq!(
        after.tokens[..k - 1]
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        before.tokens[..k - 1]
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>()
    );
    assert_eq!(after.tokens[k - 1].text, alt_text);
    assert_ne!(after.tokens[k - 1].id, before.tokens[k - 1].id);
    assert!(
        after.tokens.len() > k,
        "generation continued after the swapped word"
    );
    assert_eq!(doc_text(h), PROMPT, "swapping does not touch the document");
}

#[test]
fn rewrite_the_selection_replaces_only_the_selection() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| {
        greedy(s, 24);
        s.mode = WriteMode::Instruct;
        s.instruction = "Make it shorter.".into();
    });
    let h = &mut f.harness;
    let before = "Title line.\n";
    let passage = "The sea was very, very dark and extremely quiet that night.";
    let after = "\nLast line.";
    set_document(h, &format!("{before}{passage}{after}"));
    let start = before.chars().count();
    let end = start + passage.chars().count();
    let ctx = h.ctx.clone();
    h.state_mut().write_panel_mut().set_cursor(
        &ctx,
        CCursorRange::two(CCursor::new(start), CCursor::new(end)),
    );
    h.get_by_label("Rewrite the selection").click();
    h.run_ok();
    assert!(shows(h, "characters selected"));
    h.get_by_label("Generate").click();
    wait_for(h, "the rewrite", Duration::from_secs(90), |app| {
        app.write_panel()
            .suggestions()
            .is_some_and(|s| !s.is_running())
    });
    h.run_ok();
    assert_eq!(phase(h), Some(Phase::Done));
    assert!(shows(h, "Replaces:"));
    let rewrite = h.state().write_panel().candidate_texts()[0]
        .trim()
        .to_string();
    assert!(!rewrite.is_empty());
    h.get_by_label("Accept").click();
    h.run_ok();
    assert_eq!(doc_text(h), format!("{before}{rewrite}{after}"));
}

/// The app with a model path that cannot be used, no waiting for a load.
fn app_without_model(model: PathBuf) -> (Harness<'static, AtelierApp>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = AtelierApp::new(
        GuiOptions {
            backend: None,
            model: Some(model),
            data_dir: Some(dir.path().to_path_buf()),
            kiosk: None,
        },
        None,
    );
    let harness = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .wgpu()
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app);
    (harness, dir)
}

#[test]
fn a_missing_model_says_which_command_fetches_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let missing = PathBuf::from("/nonexistent/models").join(atelier::paths::SMOLLM2_FILE);
    let (mut h, _dir) = app_without_model(missing);
    h.run();
    assert!(shows(&h, "SmolLM2-135M-Instruct.Q4_1.gguf is missing"));
    assert!(shows(&h, atelier::paths::FETCH_COMMAND));
    // Generating explains instead of failing silently; the document is untouched.
    let text = doc_text(&h);
    h.get_by_label("Generate").click();
    h.run();
    assert!(shows(&h, "Fetch the default models with"));
    assert_eq!(doc_text(&h), text);
    // How the page looks (kittest snapshot, rendered with wgpu on lavapipe). Save first so
    // the status bar reads "Saved" however fast the machine is.
    h.state_mut().store_mut().save_now().unwrap();
    h.run();
    h.snapshot("write_missing_model");
}

#[test]
fn a_broken_model_file_shows_the_engine_error_inline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"definitely not a gguf file").unwrap();
    let (mut h, _data) = app_without_model(broken);
    wait_for(&mut h, "the load to fail", Duration::from_secs(30), |app| {
        app.model_state().error.is_some()
    });
    h.run();
    assert!(
        shows(&h, "Could not load"),
        "the load error is shown inline"
    );
    assert!(
        shows(&h, "is not a GGUF model"),
        "with the engine's message"
    );
}

/// `atelier serve` on a free loopback port: (process, base URL).
fn spawn_server(data: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["serve", "--bind", "127.0.0.1:0", "--model", "smollm2"])
        .env("ATELIER_DATA", data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn atelier serve");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, url)
}

#[test]
fn a_server_streams_into_the_tray_and_a_failed_request_leaves_the_document_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server_data = tempfile::tempdir().expect("temp dir");
    let (mut server, url) = spawn_server(server_data.path());
    let mut f = app_with(|s| {
        greedy(s, 12);
        s.remote.enabled = true;
        s.remote.base_url = url.clone();
    });
    let h = &mut f.harness;
    set_document(h, PROMPT);
    assert!(shows(h, "Server address"), "the server settings are shown");
    h.get_by_label("Generate").click();
    wait_for(
        h,
        "the remote generation",
        Duration::from_secs(120),
        |app| {
            matches!(
                app.write_panel().suggestions().map(|s| &s.phase),
                Some(Phase::Done)
            )
        },
    );
    let text = h.state().write_panel().candidate_texts()[0].clone();
    assert!(!text.trim().is_empty(), "text streamed from the server");
    assert_eq!(
        doc_text(h),
        PROMPT,
        "nothing enters the document before Accept"
    );

    // The server goes away: the request fails with a message, the document is untouched.
    let _ = server.kill();
    let _ = server.wait();
    h.get_by_label("Generate").click();
    wait_for(h, "the failure", Duration::from_secs(60), |app| {
        matches!(
            app.write_panel().suggestions().map(|s| &s.phase),
            Some(Phase::Failed(_))
        )
    });
    let Some(Phase::Failed(message)) = phase(h) else {
        unreachable!()
    };
    assert!(message.contains("cannot connect"), "{message}");
    h.step();
    assert!(shows(h, "cannot connect"), "the error is shown inline");
    assert_eq!(
        doc_text(h),
        PROMPT,
        "a failed request leaves the document alone"
    );
}

#[test]
fn an_adapter_saved_for_the_model_is_listed_applied_and_named_in_the_status_bar() {
    use atelier::models::llm::lora::{BaseShapes, LoraTarget, gguf as lora_gguf, random};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = app_with(|s| greedy(s, 4));
    // An adapter appears in the data folder's adapters/ (as a training run saves one).
    let (content, _, _) = atelier::models::llm::gguf::open(&model_path()).unwrap();
    let adapter = random::random_adapter(
        &BaseShapes::from_content(&content),
        4,
        &LoraTarget::ALL,
        0.01,
        7,
    );
    let dir = f._dir.path().join("adapters");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("voice.gguf");
    lora_gguf::write(&file, &adapter).unwrap();
    let h = &mut f.harness;
    wait_for(h, "the adapter listed", Duration::from_secs(30), |app| {
        app.write_panel().adapters().listed().len() == 1
    });
    h.step();
    assert!(shows(h, "Adapter"), "the picker shows");
    h.state_mut()
        .write_panel_mut()
        .adapters_mut()
        .choose(Some(file.clone()), 0.5);
    set_document(h, PROMPT);
    h.get_by_label("Generate").click();
    wait_for(
        h,
        "the model with the adapter",
        Duration::from_secs(60),
        |app| {
            app.model_state()
                .loaded
                .as_ref()
                .and_then(|i| i.adapter.as_ref())
                .is_some_and(|a| a.path == file && a.scale == 0.5)
        },
    );
    wait_for(h, "the suggestion", Duration::from_secs(60), |app| {
        !app.write_panel().is_generating()
    });
    h.step();
    assert!(shows(h, "adapter voice ×0.50"), "the status bar names it");
}
