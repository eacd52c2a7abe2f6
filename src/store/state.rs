//! The store itself: documents and settings loaded at start, changes tracked, autosaved on a
//! named thread, and nothing lost when a save fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::document::{Document, ExportFormat, WELCOME_TEXT, WELCOME_TITLE, export_document};
use super::error::StoreError;
use super::json::{Loaded, corrupt_notice, load_json, unix_now};
use super::saver::Saver;
use super::settings::Settings;
use crate::app::notice::{Notice, NoticeLevel};
use crate::fsutil::atomic_write;

/// Autosave this long after the last keystroke…
pub const AUTOSAVE_IDLE: Duration = Duration::from_millis(800);
/// …but at least this often while the user keeps typing.
pub const AUTOSAVE_MAX_DELAY: Duration = Duration::from_secs(5);

const SETTINGS_FILE: &str = "settings.json";
/// The folder (inside the data folder) holding one JSON file per document.
pub const DOCUMENTS_DIR: &str = "documents";
const TRASH_DIR: &str = "trash";

/// Documents and settings, loaded at start and saved as they change.
pub struct Store {
    dir: PathBuf,
    /// What is serialized to `settings.json`; edit freely, changes are detected and saved.
    pub settings: Settings,
    /// The settings as last written, to notice changes without explicit calls.
    saved_settings: Option<Settings>,
    documents: Vec<Document>,
    current: usize,
    /// Documents changed since they were last handed to the saver.
    dirty_docs: BTreeSet<String>,
    /// Writes handed to the saver and not yet confirmed, by file.
    writing: BTreeMap<PathBuf, Target>,
    /// Why the last write failed, while saving does not work (cleared by the next success).
    problem: Option<SaveProblem>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    notices: Vec<Notice>,
    saver: Saver,
}

/// What a file being written holds.
enum Target {
    /// A document, by id.
    Document(String),
    /// The settings as they were when written.
    Settings(Box<Settings>),
}

/// Saving is failing: what the status bar says, and when to try again.
struct SaveProblem {
    /// For the status bar and the toast.
    message: String,
    /// Failed attempts in a row.
    attempts: u32,
    /// The next attempt, no sooner.
    retry_at: Instant,
}

/// Wait before retry `n` after a failed save: 2, 4, 8 … seconds, at most a minute.
fn retry_delay(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(6)).min(60))
}

impl Store {
    /// Opens the store in [`crate::paths::data_dir`].
    pub fn open_default() -> Self {
        Self::open(&crate::paths::data_dir())
    }

    /// Opens (or creates) the store in `dir`. Never fails: problems become [`Notice`]s and
    /// the app starts with what could be read.
    pub fn open(dir: &Path) -> Self {
        crate::fsutil::remove_stale_temp_files(dir);
        crate::fsutil::remove_stale_temp_files(&dir.join(DOCUMENTS_DIR));
        let mut notices = Vec::new();
        let settings_path = dir.join(SETTINGS_FILE);
        let (mut settings, saved_settings) = match load_json::<Settings>(&settings_path) {
            Loaded::Missing => (Settings::default(), None),
            Loaded::Ok(s) => (s.clone(), Some(s)),
            Loaded::Corrupt { error, backup } => {
                notices.push(corrupt_notice(
                    "Your settings file",
                    &settings_path,
                    &error,
                    &backup,
                ));
                (Settings::default(), None)
            }
        };
        if let Some(what) = settings.sanitize() {
            notices.push(Notice {
                level: NoticeLevel::Info,
                message: format!("Some settings were out of range and were reset: {what}."),
            });
        }

        let docs_dir = dir.join(DOCUMENTS_DIR);
        let mut documents = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&docs_dir) {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
                .collect();
            paths.sort();
            for path in paths {
                match load_json::<Document>(&path) {
                    Loaded::Ok(mut doc) => {
                        // The file name is the id; trust it over the content.
                        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                            doc.id = stem.to_string();
                        }
                        documents.push(doc);
                    }
                    Loaded::Missing => {}
                    Loaded::Corrupt { error, backup } => {
                        notices.push(corrupt_notice("A document", &path, &error, &backup));
                    }
                }
            }
        }
        documents.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.id.cmp(&b.id)));

        let mut store = Self {
            dir: dir.to_path_buf(),
            settings: Settings::default(),
            saved_settings,
            documents,
            current: 0,
            dirty_docs: BTreeSet::new(),
            writing: BTreeMap::new(),
            problem: None,
            first_change: None,
            last_change: None,
            notices,
            saver: Saver::spawn(),
        };
        if store.documents.is_empty() {
            store.create_document(WELCOME_TITLE, WELCOME_TEXT);
        }
        store.current = settings
            .current_document
            .as_ref()
            .and_then(|id| store.documents.iter().position(|d| &d.id == id))
            .unwrap_or(0);
        settings.current_document = Some(store.documents[store.current].id.clone());
        store.settings = settings;
        store
    }

    /// Whether the settings file in `dir` asks for kiosk mode (read without opening the
    /// store; an unreadable file says no).
    pub fn kiosk_setting(dir: &Path) -> bool {
        matches!(load_json::<Settings>(&dir.join(SETTINGS_FILE)), Loaded::Ok(s) if s.kiosk)
    }

    /// The folder the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a document's file.
    pub fn document_path(&self, id: &str) -> PathBuf {
        self.dir.join(DOCUMENTS_DIR).join(format!("{id}.json"))
    }

    /// Path of the settings file.
    pub fn settings_path(&self) -> PathBuf {
        self.dir.join(SETTINGS_FILE)
    }

    /// All documents, most recently modified first (as of loading; new ones go on top).
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// The open document.
    pub fn current(&self) -> &Document {
        &self.documents[self.current]
    }

    /// The open document, for editing. Call [`Self::mark_changed`] after changing it.
    pub fn current_mut(&mut self) -> &mut Document {
        &mut self.documents[self.current]
    }

    /// Records that the open document changed, so autosave picks it up.
    pub fn mark_changed(&mut self) {
        let now = Instant::now();
        let doc = &mut self.documents[self.current];
        doc.modified = unix_now();
        self.dirty_docs.insert(doc.id.clone());
        self.first_change.get_or_insert(now);
        self.last_change = Some(now);
    }

    /// Whether anything is not on disk yet (changed, being written, or failed to write).
    pub fn has_unsaved_changes(&self) -> bool {
        !self.dirty_docs.is_empty()
            || !self.writing.is_empty()
            || self.saved_settings.as_ref() != Some(&self.settings)
    }

    /// Why saving fails right now (a read-only folder, a full disk), while it does; the store
    /// keeps the changes and retries.
    pub fn save_problem(&self) -> Option<&str> {
        self.problem.as_ref().map(|p| p.message.as_str())
    }

    /// Opens the document with `id` (no-op when it does not exist).
    pub fn select(&mut self, id: &str) {
        if let Some(i) = self.documents.iter().position(|d| d.id == id) {
            self.current = i;
            self.settings.current_document = Some(id.to_string());
        }
    }

    /// Creates a document, makes it the open one, and returns its id.
    pub fn new_document(&mut self) -> String {
        self.create_document("", "")
    }

    fn create_document(&mut self, title: &str, text: &str) -> String {
        let now = unix_now();
        let id = self.fresh_id();
        self.documents.insert(
            0,
            Document {
                id: id.clone(),
                title: title.into(),
                text: text.into(),
                created: now,
                modified: now,
                file: None,
            },
        );
        self.current = 0;
        self.settings.current_document = Some(id.clone());
        self.dirty_docs.insert(id.clone());
        let t = Instant::now();
        self.first_change.get_or_insert(t);
        self.last_change = Some(t);
        id
    }

    fn fresh_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut n = 0u32;
        loop {
            let id = format!(
                "doc-{:x}{}",
                nanos,
                if n == 0 {
                    String::new()
                } else {
                    format!("-{n}")
                }
            );
            if !self.documents.iter().any(|d| d.id == id) && !self.document_path(&id).exists() {
                return id;
            }
            n += 1;
        }
    }

    /// Moves a document to `documents/trash/` (recoverable by hand) and opens another one.
    pub fn delete_document(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(i) = self.documents.iter().position(|d| d.id == id) else {
            return Err(StoreError::NoSuchDocument);
        };
        self.saver.flush();
        let now = Instant::now();
        for r in self.saver.results() {
            self.on_saved(r.path, r.result, now);
        }
        let path = self.document_path(id);
        let trash = self.dir.join(DOCUMENTS_DIR).join(TRASH_DIR);
        let doc = self.documents.remove(i);
        self.dirty_docs.remove(id);
        // Write the latest text into the trash copy, then remove the live file.
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|source| StoreError::Encode {
            what: "the document".into(),
            source,
        })?;
        let target = trash.join(format!("{id}.json"));
        atomic_write(&target, &bytes).map_err(|source| StoreError::Write {
            path: target.clone(),
            source,
        })?;
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        }
        if self.documents.is_empty() {
            self.create_document("", "");
        } else if i < self.current {
            self.current -= 1;
        } else {
            self.current = self.current.min(self.documents.len() - 1);
        }
        self.settings.current_document = Some(self.documents[self.current].id.clone());
        Ok(())
    }

    /// Autosaves what changed if the user paused typing (or kept typing for a while), and
    /// takes in the results of earlier saves (a failed one stays unsaved and is retried).
    /// Call every frame; returns how long until the next save is due, if one is pending, so the
    /// caller can schedule a repaint.
    pub fn tick(&mut self, now: Instant) -> Option<Duration> {
        for r in self.saver.results() {
            self.on_saved(r.path, r.result, now);
        }
        if !self.writing.is_empty() {
            // Results arrive within milliseconds; look again soon.
            return Some(Duration::from_millis(50));
        }
        let settings_changed = self.saved_settings.as_ref() != Some(&self.settings);
        if settings_changed && self.last_change.is_none() {
            self.first_change = Some(now);
            self.last_change = Some(now);
        }
        let (Some(first), Some(last)) = (self.first_change, self.last_change) else {
            return None;
        };
        let mut due = (last + AUTOSAVE_IDLE).min(first + AUTOSAVE_MAX_DELAY);
        if let Some(p) = &self.problem {
            due = due.max(p.retry_at);
        }
        if now >= due {
            self.write_dirty(false, now);
            None
        } else {
            Some(due - now)
        }
    }

    /// Records how a write went: a success makes its content saved, a failure makes it dirty
    /// again and schedules a retry (the user is told once, and the status bar says so).
    fn on_saved(&mut self, path: PathBuf, result: std::io::Result<()>, now: Instant) {
        let target = self.writing.remove(&path);
        match result {
            Ok(()) => {
                if let Some(Target::Settings(s)) = target {
                    self.saved_settings = Some(*s);
                }
                if self.problem.take().is_some() {
                    self.notices.push(Notice {
                        level: NoticeLevel::Info,
                        message: "Saving works again: your changes are on disk.".into(),
                    });
                }
            }
            Err(e) => {
                if let Some(Target::Document(id)) = target {
                    self.dirty_docs.insert(id);
                }
                // Settings stay unsaved by themselves: saved_settings was not updated.
                let attempts = self.problem.as_ref().map_or(0, |p| p.attempts) + 1;
                let message = format!(
                    "Could not save {}: {e}. Your text is still open and Atelier keeps \
                     trying; free some space or fix the folder's permissions.",
                    path.display()
                );
                if attempts == 1 {
                    tracing::error!("saving {} failed: {e}", path.display());
                    self.notices.push(Notice {
                        level: NoticeLevel::Error,
                        message: message.clone(),
                    });
                }
                self.problem = Some(SaveProblem {
                    message,
                    attempts,
                    retry_at: now + retry_delay(attempts),
                });
                self.first_change.get_or_insert(now);
                self.last_change = Some(now);
            }
        }
    }

    /// Writes everything that changed, on this thread, after the queued autosaves. Used on
    /// exit and by tests; what fails stays unsaved and is returned.
    pub fn save_now(&mut self) -> Result<(), StoreError> {
        self.saver.flush();
        let now = Instant::now();
        for r in self.saver.results() {
            self.on_saved(r.path, r.result, now);
        }
        let failures = self.write_dirty(true, now);
        match failures.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Serializes dirty documents and changed settings; `sync` writes here, else on the
    /// autosave thread. Returns the failures of synchronous writes.
    fn write_dirty(&mut self, sync: bool, now: Instant) -> Vec<StoreError> {
        let mut jobs = Vec::new();
        let mut errors = Vec::new();
        for id in std::mem::take(&mut self.dirty_docs) {
            let Some(doc) = self.documents.iter().find(|d| d.id == id) else {
                continue;
            };
            match serde_json::to_vec_pretty(doc) {
                Ok(bytes) => jobs.push((self.document_path(&id), bytes, Target::Document(id))),
                Err(source) => errors.push(StoreError::Encode {
                    what: format!("document {id}"),
                    source,
                }),
            }
        }
        let settings_path = self.settings_path();
        if self.saved_settings.as_ref() != Some(&self.settings)
            && !self.writing.contains_key(&settings_path)
        {
            match serde_json::to_vec_pretty(&self.settings) {
                Ok(bytes) => jobs.push((
                    settings_path,
                    bytes,
                    Target::Settings(Box::new(self.settings.clone())),
                )),
                Err(source) => errors.push(StoreError::Encode {
                    what: "settings".into(),
                    source,
                }),
            }
        }
        self.first_change = None;
        self.last_change = None;
        for (path, bytes, target) in jobs {
            if !sync && self.saver.queue(path.clone(), bytes.clone()) {
                self.writing.insert(path, target);
                continue;
            }
            let result = atomic_write(&path, &bytes);
            if let Err(e) = &result {
                errors.push(StoreError::Write {
                    path: path.clone(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                });
            }
            self.writing.insert(path.clone(), target);
            self.on_saved(path, result, now);
        }
        if !sync {
            // Encoding failures of autosaves have nobody to return to: tell the user.
            for e in &errors {
                tracing::error!("{e}");
                self.notices.push(Notice {
                    level: NoticeLevel::Error,
                    message: format!("Could not save: {e}"),
                });
            }
        }
        errors
    }

    /// Notices for the user since the last call (each is returned once).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Writes the open document to `path` in the format its extension asks for, and remembers
    /// the path so [`Self::save_to_file`] writes there again.
    pub fn save_as(&mut self, path: &Path) -> Result<(), StoreError> {
        let format = ExportFormat::from_path(path);
        export_document(self.current(), path, format)?;
        self.current_mut().file = Some(path.to_path_buf());
        self.mark_changed();
        Ok(())
    }

    /// Writes the open document to the file chosen with Save As, if any; returns that path.
    pub fn save_to_file(&mut self) -> Result<Option<PathBuf>, StoreError> {
        let Some(path) = self.current().file.clone() else {
            return Ok(None);
        };
        export_document(self.current(), &path, ExportFormat::from_path(&path))?;
        Ok(Some(path))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Last chance: anything still dirty goes to disk before the process ends.
        if self.has_unsaved_changes()
            && let Err(e) = self.save_now()
        {
            tracing::error!("saving on exit failed: {e}");
        }
    }
}
