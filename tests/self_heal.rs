//! Self-healing: a crash inside the worker (a panic, provoked through the test hook
//! `ATELIER_DEBUG_PANIC`) fails only the job that crashed, with a message; the worker carries
//! on, reloads its model on the next job, and the app shows a warning and reloads the language
//! model. A crash that ends the worker thread itself is healed by starting a new one.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use atelier::app::{AtelierApp, GuiOptions};
use atelier::engine::{Engine, EngineError, Event, JobId, WriteRequest};
use atelier::models::llm::context::WriteTask;
use atelier::models::llm::{GenerateParams, SamplingParams};
use common::Pages;

const MARKER: &str = "__atelier_test_boom__";
static SERIAL: Mutex<()> = Mutex::new(());
static HOOK: Once = Once::new();

fn arm_hook() {
    // Set once, before any engine thread of this test binary reads it.
    // SAFETY: every test calls this first, under `Once`, and the value never changes.
    HOOK.call_once(|| unsafe { std::env::set_var("ATELIER_DEBUG_PANIC", MARKER) });
}

fn smollm2() -> PathBuf {
    let p = atelier::paths::default_model(atelier::paths::SMOLLM2_FILE);
    assert!(p.is_file(), "{} missing: run models/fetch.sh", p.display());
    p
}

fn request(text: &str) -> WriteRequest {
    WriteRequest {
        model: smollm2(),
        adapter: None,
        task: WriteTask::Continue { text: text.into() },
        params: GenerateParams {
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            max_new_tokens: 4,
            logprobs: 0,
        },
        candidates: 1,
        forced: Vec::new(),
        remote: None,
    }
}

/// A job's events up to and including its terminal one, plus a WorkerRecovered that follows.
fn events_of(engine: &Engine, job: JobId) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        engine.heal();
        let Some(ev) = engine.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if ev.job() != job {
            continue;
        }
        let terminal = ev.is_terminal();
        let failed = matches!(ev, Event::Failed { .. });
        out.push(ev);
        if terminal {
            if failed && let Some(ev) = engine.recv_timeout(Duration::from_secs(5)) {
                out.push(ev);
            }
            return out;
        }
    }
    panic!("job {job} did not finish: {out:?}");
}

fn loaded(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::ModelLoaded { .. }))
}

fn finished(events: &[Event]) -> bool {
    matches!(events.last(), Some(Event::Finished { .. }))
}

#[test]
fn a_panicking_job_fails_alone_and_the_model_reloads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    arm_hook();
    let engine = Engine::spawn(None, None).unwrap();
    let ok = events_of(&engine, engine.write(request("Once upon a time")).id());
    assert!(loaded(&ok) && finished(&ok), "{ok:?}");

    let boom = events_of(
        &engine,
        engine.write(request(&format!("{MARKER} now"))).id(),
    );
    assert!(
        boom.iter().any(|e| matches!(
            e,
            Event::Failed { error: EngineError::Panicked(m), .. } if m.contains("debug panic")
        )),
        "the crashed job fails with the panic's message: {boom:?}"
    );
    assert!(
        matches!(boom.last(), Some(Event::WorkerRecovered { .. })),
        "{boom:?}"
    );

    // The same engine runs the next job, loading the model again (it was dropped).
    let again = events_of(&engine, engine.write(request("Once upon a time")).id());
    assert!(loaded(&again), "the model is reloaded: {again:?}");
    assert!(finished(&again), "{again:?}");
    assert_eq!(engine.restarts(), 0, "the thread itself survived");
}

#[test]
fn a_dead_worker_thread_is_replaced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    arm_hook();
    let engine = Engine::spawn(None, None).unwrap();
    let dead = events_of(
        &engine,
        engine.write(request(&format!("{MARKER}-thread"))).id(),
    );
    assert!(
        dead.iter().any(|e| matches!(
            e,
            Event::Failed {
                error: EngineError::WorkerRestarted(_),
                ..
            }
        )),
        "{dead:?}"
    );
    assert_eq!(engine.restarts(), 1);
    let after = events_of(&engine, engine.write(request("Once upon a time")).id());
    assert!(loaded(&after) && finished(&after), "{after:?}");
    assert_eq!(engine.pending(), 0);
}

#[test]
fn the_app_reports_the_crash_and_reloads_the_language_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    arm_hook();
    let data = tempfile::tempdir().unwrap();
    let app = AtelierApp::new(
        GuiOptions {
            backend: None,
            model: Some(smollm2()),
            data_dir: Some(data.path().to_path_buf()),
            kiosk: None,
        },
        None,
    );
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app);
    let wait = |h: &mut egui_kittest::Harness<'static, AtelierApp>,
                what: &str,
                done: &dyn Fn(&AtelierApp) -> bool| {
        common::wait_for(h, what, Duration::from_secs(120), done, |app| {
            format!("model {:?}", app.model_state().error)
        });
    };
    wait(&mut h, "the model to load", &|app| {
        app.model_state().selected_info().is_some()
    });
    // A job that crashes the worker, as any panel's job could.
    let _job = h
        .state()
        .engine()
        .unwrap()
        .write(request(&format!("{MARKER} in the app")));
    wait(&mut h, "the recovery", &|app| app.worker_recoveries() == 1);
    assert!(
        h.state()
            .toasts()
            .iter()
            .any(|n| n.message.contains("internal error") && n.message.contains("reloading")),
        "{:?}",
        h.state().toasts()
    );
    wait(&mut h, "the model to load again", &|app| {
        app.model_state().selected_info().is_some()
    });
}
