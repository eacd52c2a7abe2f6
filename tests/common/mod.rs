//! What the integration tests share: running the real binary, reading its one-line errors,
//! driving the studio in a test harness, and small model files made on the spot. Each test
//! file includes it with `mod common;` and uses the parts it needs.
#![allow(dead_code)]

mod net;

#[allow(unused_imports)]
pub use net::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use atelier::app::AtelierApp;
use atelier::panels::faces::FacesPanel;
use atelier::panels::style::StylePanel;
use atelier::panels::write::{ModelState, WritePanel};

/// Runs the real `atelier` binary with `args`, its data in `data` (a scratch folder shared by
/// the tests when `None`).
pub fn atelier(args: &[&str], data: Option<&Path>) -> Output {
    let scratch = std::env::temp_dir().join("atelier-cli-test");
    atelier_env(args, &[("ATELIER_DATA", data.unwrap_or(&scratch))])
}

/// Runs the real `atelier` binary with `args` and these environment variables.
pub fn atelier_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atelier"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run atelier")
}

/// Asserts that the command succeeded (showing its stderr when it did not); returns stderr.
pub fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "atelier failed: {err}");
    err
}

/// The one JSON object the command printed on stdout.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    ok(out);
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Asserts that the command failed with exactly one `error: …` line on stderr, and returns it.
pub fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

/// The studio's pages, by type, for tests that read or arrange them.
pub trait Pages {
    /// The Faces panel.
    fn faces_panel(&self) -> &FacesPanel;
    /// The Faces panel, to arrange a state.
    fn faces_panel_mut(&mut self) -> &mut FacesPanel;
    /// The Style panel.
    fn style_panel(&self) -> &StylePanel;
    /// The Style panel, to arrange a state.
    fn style_panel_mut(&mut self) -> &mut StylePanel;
    /// The Write panel.
    fn write_panel(&self) -> &WritePanel;
    /// The Write panel, to arrange a state.
    fn write_panel_mut(&mut self) -> &mut WritePanel;
    /// What the Write panel knows about its language model.
    fn model_state(&self) -> &ModelState;
}

impl Pages for AtelierApp {
    fn faces_panel(&self) -> &FacesPanel {
        self.panel().expect("the Faces panel")
    }
    fn faces_panel_mut(&mut self) -> &mut FacesPanel {
        self.panel_mut().expect("the Faces panel")
    }
    fn style_panel(&self) -> &StylePanel {
        self.panel().expect("the Style panel")
    }
    fn style_panel_mut(&mut self) -> &mut StylePanel {
        self.panel_mut().expect("the Style panel")
    }
    fn write_panel(&self) -> &WritePanel {
        self.panel().expect("the Write panel")
    }
    fn write_panel_mut(&mut self) -> &mut WritePanel {
        self.panel_mut().expect("the Write panel")
    }
    fn model_state(&self) -> &ModelState {
        self.write_panel().model_state()
    }
}

/// The studio on the data folder `data`, opened on `page`, without a render state (the CPU
/// paths draw). The language model points at a file that does not exist, so it does not load
/// and compete for the two cores.
pub fn studio_on(
    data: &Path,
    page: atelier::app::page::Page,
) -> egui_kittest::Harness<'static, AtelierApp> {
    let mut app = AtelierApp::new(
        atelier::app::GuiOptions {
            backend: None,
            model: Some(data.join("no-language-model.gguf")),
            data_dir: Some(data.to_path_buf()),
            kiosk: None,
        },
        None,
    );
    app.store_mut().settings.page = page;
    egui_kittest::Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context)
        .build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app)
}

/// Steps the harness until `done` holds, at most `timeout`; on a timeout the test fails with
/// `what` and what `describe` says about the app then.
pub fn wait_for(
    h: &mut egui_kittest::Harness<'static, AtelierApp>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&AtelierApp) -> bool,
    describe: impl Fn(&AtelierApp) -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        h.step();
        if done(h.state()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; {}",
            describe(h.state())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A file dropped on the window, as egui-winit hands it over.
#[derive(Debug)]
pub struct Dropped(pub std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Writes a tiny GGUF file with `arch` as its architecture and nothing a model needs (for
/// tests of what is refused, and of what is listed).
pub fn write_gguf_with_arch(path: &Path, arch: &str) {
    use candle_core::quantized::{QTensor, gguf_file};
    let t = QTensor::quantize(
        &candle_core::Tensor::zeros((4, 4), candle_core::DType::F32, &candle_core::Device::Cpu)
            .expect("tensor"),
        candle_core::quantized::GgmlDType::F32,
    )
    .expect("quantize");
    let arch_v = gguf_file::Value::String(arch.into());
    let mut file = std::fs::File::create(path).expect("create gguf");
    gguf_file::write(
        &mut file,
        &[("general.architecture", &arch_v)],
        &[("token_embd.weight", &t)],
    )
    .expect("write gguf");
}

/// A job's events up to and including its terminal one (the engine waited on for at most five
/// minutes between two events).
pub fn events_of(
    engine: &atelier::engine::Engine,
    job: atelier::engine::JobId,
) -> Vec<atelier::engine::Event> {
    use atelier::engine::{Event, Outcome, WaitError};
    let mut out = Vec::new();
    let end = engine.wait(job, Duration::from_secs(300), |e| {
        out.push(e);
        Ok::<(), WaitError>(())
    });
    out.push(match end {
        Ok(Outcome::Done) => Event::Finished { job },
        Ok(Outcome::Cancelled) => Event::Cancelled { job },
        Err(WaitError::Failed(error)) => Event::Failed { job, error },
        Err(e) => panic!("job {job}: {e}; events so far: {out:?}"),
    });
    out
}

/// The Python of the llama.cpp peer's venv (`ATELIER_PEER_PYTHON`, else the default venv of
/// scripts/peer-venv.sh); fails the test with what to run when it is missing.
pub fn peer_python() -> PathBuf {
    let p = std::env::var_os("ATELIER_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/atelier-bench/venv/bin/python")
        });
    assert!(
        p.is_file(),
        "llama.cpp's peer (llama-cpp-python) is not installed at {}: run scripts/peer-venv.sh (scripts/test.sh does)",
        p.display()
    );
    p
}
