//! No lost work: a process that saves documents, settings and favourites in a loop is killed
//! with SIGKILL at random moments; after each kill the files must load intact, each holding
//! either the last version the process reported saved or the one after it — never a torn or
//! empty file — and no temporary files may pile up.
//!
//! The saving process is this test binary itself, re-run with `ATELIER_SAVE_LOOP_DIR` set so
//! that only the ignored `save_loop_child` test runs (it does nothing otherwise).

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atelier::features::faces::FaceSpec;
use atelier::features::faces::favourites::Favourites;
use atelier::store::Store;
use rand::{Rng, SeedableRng};

/// A document body large enough that a write takes a while (more chances to be torn).
fn body(version: u64) -> String {
    let filler = format!("{version:08} ").repeat(40_000);
    format!("version {version}\n{filler}\nend {version}")
}

/// Which version a document body holds; panics if it is not a whole one.
fn version_of(text: &str) -> u64 {
    let first = text.lines().next().expect("a first line");
    let v: u64 = first
        .strip_prefix("version ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("torn document: starts {first:?}"));
    assert_eq!(text, body(v), "document of version {v} is not whole");
    v
}

#[test]
#[ignore = "run by sigkill_during_saves_never_tears_a_file as its child process"]
fn save_loop_child() {
    let Some(dir) = std::env::var_os("ATELIER_SAVE_LOOP_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let mut store = Store::open(dir);
    let (mut favs, err) = Favourites::open(&dir.join("faces/favourites.json"));
    assert!(err.is_none(), "{err:?}");
    let start = store
        .documents()
        .first()
        .map(|d| d.text.lines().next().unwrap_or("").to_string())
        .and_then(|l| l.strip_prefix("version ").and_then(|v| v.parse().ok()))
        .map_or(0, |v: u64| v + 1);
    let mut out = std::io::stdout();
    for v in start.. {
        store.current_mut().text = body(v);
        store.mark_changed();
        store.settings.instruction = format!("settings {v}");
        store.save_now().expect("save");
        favs.add(FaceSpec::from_seed(v, 0.8)).expect("favourite");
        writeln!(out, "saved {v}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_during_saves_never_tears_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let mut kills = 0;
    let mut favourites_before = 0;
    let started = Instant::now();
    for round in 0..25 {
        let mut child = Command::new(&exe)
            .args(["--exact", "save_loop_child", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("ATELIER_SAVE_LOOP_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read "saved N" lines on a thread; kill at a random moment after the first.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(v) = line
                    .strip_prefix("saved ")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    let _ = tx.send(v);
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the child never saved"));
        std::thread::sleep(Duration::from_micros(rng.random_range(0..150_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let last_reported = rx.try_iter().last().unwrap_or(first);

        // Everything loads, whole, at the last reported version or the one being written.
        let mut store = Store::open(dir.path());
        let notices = store.take_notices();
        assert!(notices.is_empty(), "round {round}: {notices:?}");
        let doc_version = version_of(&store.current().text);
        assert!(
            doc_version == last_reported || doc_version == last_reported + 1,
            "round {round}: document v{doc_version}, last reported v{last_reported}"
        );
        let settings_version: u64 = store
            .settings
            .instruction
            .strip_prefix("settings ")
            .and_then(|v| v.parse().ok())
            .expect("settings intact");
        assert!(
            settings_version == last_reported || settings_version == last_reported + 1,
            "round {round}: settings v{settings_version}, last reported v{last_reported}"
        );
        let (favs, err) = Favourites::open(&dir.path().join("faces/favourites.json"));
        assert!(err.is_none(), "round {round}: favourites {err:?}");
        // One star per saved version: never fewer than before the kill.
        let n = favs.items().len();
        assert!(
            n >= favourites_before && n as u64 <= last_reported + 2,
            "round {round}: {n} favourites, {favourites_before} before, last reported v{last_reported}"
        );
        favourites_before = n;
        drop(store);
        // Temporary files of interrupted saves are cleaned up when the store opens.
        for sub in ["", "documents", "faces"] {
            let stale: Vec<_> = std::fs::read_dir(dir.path().join(sub))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .collect();
            assert!(
                stale.is_empty(),
                "round {round}: temporary files left in {sub:?}: {stale:?}"
            );
        }
    }
    eprintln!(
        "{kills} SIGKILLs in {:.1} s, every file intact",
        started.elapsed().as_secs_f64()
    );
}
