//! The store keeps the user's work: autosave round-trips, restore on start, damaged files are
//! moved aside (never overwritten) with a notice, and saves are atomic (no temp files left).

use std::path::Path;
use std::time::{Duration, Instant};

use atelier::app::notice::NoticeLevel;
use atelier::app::page::Page;
use atelier::store::{
    AUTOSAVE_IDLE, AUTOSAVE_MAX_DELAY, ExportFormat, Store, WriteMode, export_document,
};

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file under `dir`, recursively, relative names.
fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn first_start_creates_a_welcome_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path());
    assert_eq!(store.documents().len(), 1);
    assert!(!store.current().text.is_empty());
    assert!(store.take_notices().is_empty());
}

#[test]
fn autosave_waits_for_a_pause_then_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path());
    store.save_now().unwrap();
    let path = store.document_path(&store.current().id.clone());

    store.current_mut().text = "Typed words".into();
    store.mark_changed();
    let t0 = Instant::now();
    // Still typing: nothing is due yet, and the tick says how long to wait.
    let wait = store.tick(t0).expect("a save should be pending");
    assert!(wait <= AUTOSAVE_IDLE);
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("Typed words")
    );

    // After the pause the save goes to the autosave thread; save_now waits for it.
    assert!(
        store
            .tick(t0 + AUTOSAVE_IDLE + Duration::from_millis(5))
            .is_none()
    );
    store.save_now().unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("Typed words")
    );
    assert!(AUTOSAVE_MAX_DELAY > AUTOSAVE_IDLE);
}

#[test]
fn documents_and_settings_are_restored_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let (id, second) = {
        let mut store = Store::open(dir.path());
        store.current_mut().text = "First document".into();
        store.mark_changed();
        let second = store.new_document();
        store.current_mut().title = "Second".into();
        store.current_mut().text = "Second document, open at exit".into();
        store.mark_changed();
        store.settings.params.sampling.temperature = 0.0;
        store.settings.params.max_new_tokens = 77;
        store.settings.candidates = 3;
        store.settings.mode = WriteMode::Continue;
        store.settings.page = Page::Style;
        store.settings.instruction = "Make it rhyme".into();
        let first = store.documents()[1].id.clone();
        // Dropping the store (as on exit) saves what is pending.
        (first, second)
    };
    let mut store = Store::open(dir.path());
    assert!(store.take_notices().is_empty());
    assert_eq!(
        store.documents().len(),
        2,
        "the welcome document (edited) and a second one"
    );
    assert_eq!(store.current().id, second, "the open document is restored");
    assert_eq!(store.current().text, "Second document, open at exit");
    assert_eq!(store.current().title, "Second");
    assert!(store.documents().iter().any(|d| d.id == id));
    assert_eq!(store.settings.params.sampling.temperature, 0.0);
    assert_eq!(store.settings.params.max_new_tokens, 77);
    assert_eq!(store.settings.candidates, 3);
    assert_eq!(store.settings.mode, WriteMode::Continue);
    assert_eq!(store.settings.page, Page::Style);
    assert_eq!(store.settings.instruction, "Make it rhyme");
}

#[test]
fn corrupt_settings_are_kept_aside_and_the_app_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"{ \"candidates\": 3, this is not json";
    std::fs::write(dir.path().join("settings.json"), garbage).unwrap();

    let mut store = Store::open(dir.path());
    let notices = store.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].level, NoticeLevel::Warning);
    assert!(
        notices[0].message.contains("settings"),
        "{}",
        notices[0].message
    );
    assert_eq!(store.settings.candidates, 1, "defaults are in use");

    // The user's bytes are kept, byte for byte, under a name the notice gives.
    let backups: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("settings.json.corrupt-"))
        .collect();
    assert_eq!(backups.len(), 1, "{:?}", files_in(dir.path()));
    assert!(notices[0].message.contains(&backups[0]));
    assert_eq!(
        std::fs::read(dir.path().join(&backups[0])).unwrap(),
        garbage
    );

    // Saving writes a fresh file and leaves the backup alone.
    store.settings.candidates = 2;
    store.save_now().unwrap();
    drop(store);
    assert_eq!(
        std::fs::read(dir.path().join(&backups[0])).unwrap(),
        garbage
    );
    let store = Store::open(dir.path());
    assert_eq!(store.settings.candidates, 2);
}

#[test]
fn a_corrupt_document_is_moved_aside_and_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path());
        store.current_mut().text = "Good document".into();
        store.mark_changed();
    }
    let docs = dir.path().join("documents");
    std::fs::write(docs.join("doc-broken.json"), b"\x00\x01 not json").unwrap();
    let mut store = Store::open(dir.path());
    let notices = store.take_notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].message.contains("doc-broken.json"));
    assert_eq!(store.documents().len(), 1);
    assert_eq!(store.current().text, "Good document");
    let names = files_in(&docs);
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("doc-broken.json.corrupt-")),
        "{names:?}"
    );
    assert!(!names.contains(&"doc-broken.json".to_string()));
}

#[test]
fn out_of_range_settings_are_repaired_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        br#"{"candidates": 9, "params": {"sampling": {"temperature": -1.0}}, "unknown_field": 1,
             "style": {"mix": [[99, 1.0], [3, -2.0]], "strength": 5.0, "jpeg_quality": 0}}"#,
    )
    .unwrap();
    let mut store = Store::open(dir.path());
    assert_eq!(store.settings.candidates, 4);
    assert!(store.settings.params.sampling.temperature >= 0.0);
    let style = &store.settings.style;
    assert_eq!(
        style.mix,
        vec![(0, 1.0)],
        "no valid style left: the default"
    );
    assert_eq!((style.strength, style.jpeg_quality), (1.0, 1));
    let notices = store.take_notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].level, NoticeLevel::Info);
}

#[test]
fn atomic_saves_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path());
    for i in 0..20 {
        store.current_mut().text = format!("revision {i}");
        store.mark_changed();
        store.settings.params.max_new_tokens = 10 + i;
        // Alternate the background and the synchronous path.
        if i % 2 == 0 {
            store.tick(Instant::now() + AUTOSAVE_MAX_DELAY);
        } else {
            store.save_now().unwrap();
        }
    }
    store.save_now().unwrap();
    let files = all_files(dir.path());
    assert!(
        files
            .iter()
            .all(|f| !f.contains(".tmp") && !f.contains(".atelier-")),
        "temporary files left: {files:?}"
    );
    assert_eq!(files.len(), 2, "{files:?}");
    let id = store.current().id.clone();
    let saved = std::fs::read_to_string(store.document_path(&id)).unwrap();
    assert!(saved.contains("revision 19"));
}

#[test]
fn delete_moves_to_trash_and_export_writes_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path());
    let keep = store.current().id.clone();
    let gone = store.new_document();
    store.current_mut().title = "Draft".into();
    store.current_mut().text = "Words to keep safe".into();
    store.mark_changed();
    store.save_now().unwrap();
    store.delete_document(&gone).unwrap();
    assert_eq!(store.current().id, keep);
    let trashed = dir
        .path()
        .join("documents/trash")
        .join(format!("{gone}.json"));
    assert!(
        std::fs::read_to_string(trashed)
            .unwrap()
            .contains("Words to keep safe")
    );
    assert!(!store.document_path(&gone).exists());

    let out = tempfile::tempdir().unwrap();
    let doc = store.current().clone();
    export_document(&doc, &out.path().join("a.md"), ExportFormat::Markdown).unwrap();
    export_document(&doc, &out.path().join("a.txt"), ExportFormat::PlainText).unwrap();
    let md = std::fs::read_to_string(out.path().join("a.md")).unwrap();
    assert!(md.starts_with("# "));
    assert!(md.ends_with(&doc.text));
    assert_eq!(
        std::fs::read_to_string(out.path().join("a.txt")).unwrap(),
        doc.text
    );

    // Save As remembers the file for Ctrl+S.
    let target = out.path().join("story.txt");
    store.save_as(&target).unwrap();
    store.current_mut().text.push_str(" And more.");
    store.mark_changed();
    assert_eq!(store.save_to_file().unwrap(), Some(target.clone()));
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .ends_with("And more.")
    );
}

#[test]
fn a_failed_autosave_stays_unsaved_is_retried_and_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path());
    store.save_now().unwrap();
    // Saving stops working: the documents folder is replaced by a file (this fails for root
    // too, unlike a read-only folder).
    let docs = dir.path().join("documents");
    let away = dir.path().join("documents.away");
    std::fs::rename(&docs, &away).unwrap();
    std::fs::write(&docs, b"not a folder").unwrap();
    store.current_mut().text = "Written while the disk refused it.".into();
    store.mark_changed();
    let mut now = Instant::now() + AUTOSAVE_MAX_DELAY + Duration::from_millis(10);
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.save_problem().is_none() {
        store.tick(now);
        assert!(
            Instant::now() < deadline,
            "the failed save was never noticed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(store.has_unsaved_changes(), "a failed save is not 'Saved'");
    let notices = store.take_notices();
    assert!(
        notices
            .iter()
            .any(|n| n.level == NoticeLevel::Error && n.message.contains("Could not save")),
        "{notices:?}"
    );
    // Saving on exit fails too, says so, and keeps the change.
    assert!(store.save_now().is_err());
    assert!(store.has_unsaved_changes());
    // The folder is back: the next retry writes the text.
    std::fs::remove_file(&docs).unwrap();
    std::fs::rename(&away, &docs).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.has_unsaved_changes() {
        now += Duration::from_secs(5);
        store.tick(now);
        assert!(Instant::now() < deadline, "the retry never saved");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(store.save_problem().is_none());
    let id = store.current().id.clone();
    let on_disk = std::fs::read_to_string(store.document_path(&id)).unwrap();
    assert!(on_disk.contains("the disk refused it"), "{on_disk}");
    assert!(
        store
            .take_notices()
            .iter()
            .any(|n| n.message.contains("works again"))
    );
}
