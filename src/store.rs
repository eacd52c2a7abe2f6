//! The user's documents and settings, kept under [`crate::paths::data_dir`]:
//!
//! ```text
//! settings.json              sampling parameters, last model, mode, open document…
//! documents/<id>.json        one file per document (title, text, timestamps)
//! documents/trash/<id>.json  deleted documents, kept so nothing is lost by a mis-click
//! ```
//!
//! Every write is atomic ([`crate::fsutil::atomic_write`]: temp file + rename), so a crash leaves
//! the old or the new version, never a torn one. Typing autosaves after a short pause (debounced)
//! on a named background thread, so a slow disk never stalls a frame; [`Store::save_now`] writes
//! synchronously on exit. A file that does not parse is moved aside as `*.corrupt-<time>` (the
//! user's bytes are never overwritten) and a [`Notice`] says where it went.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::models::llm::GenerateParams;

/// Autosave this long after the last keystroke…
pub const AUTOSAVE_IDLE: Duration = Duration::from_millis(800);
/// …but at least this often while the user keeps typing.
pub const AUTOSAVE_MAX_DELAY: Duration = Duration::from_secs(5);

const SETTINGS_FILE: &str = "settings.json";
/// The folder (inside the data folder) holding one JSON file per document.
pub const DOCUMENTS_DIR: &str = "documents";
const TRASH_DIR: &str = "trash";

/// Errors from explicit file operations (export, Save As, save on exit). Autosave failures
/// become [`Notice`]s instead, since no caller is waiting for them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be written.
    #[error("could not write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A document could not be serialized (should not happen: plain strings).
    #[error("could not encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The document id does not exist (it was deleted meanwhile).
    #[error("that document no longer exists")]
    NoSuchDocument,
}

/// How serious a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeLevel {
    /// Something the user should know (e.g. a backup was made).
    Info,
    /// Something went wrong but work is safe.
    Warning,
    /// Work may not be saved.
    Error,
}

/// A message for the user about their files, shown once as a toast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Severity.
    pub level: NoticeLevel,
    /// What happened and what to do, in a sentence or two.
    pub message: String,
}

/// Which page of the app is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    /// The writer's assistant.
    #[default]
    Write,
    /// GAN face exploration (coming next).
    Faces,
    /// Neural style transfer (coming next).
    Style,
}

/// The Write panel's mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Raw completion at the cursor (any model).
    Continue,
    /// Instructions via the chat template (instruct models).
    #[default]
    Instruct,
}

/// What is serialized to `settings.json`. Unknown or missing fields fall back to defaults, so
/// older and newer versions of the file both load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Sampling parameters and limits of the Write panel.
    pub params: GenerateParams,
    /// How many alternatives to generate side by side (1–4).
    pub candidates: usize,
    /// The language model last chosen (None: the default instruct model).
    pub model: Option<PathBuf>,
    /// Continue or Instruct.
    pub mode: WriteMode,
    /// The free instruction last typed.
    pub instruction: String,
    /// The open document.
    pub current_document: Option<String>,
    /// The open page.
    pub page: Page,
    /// Whether the sampling section is expanded.
    pub show_sampling: bool,
    /// Models opened with "Open GGUF…", most recent first (at most 8).
    pub recent_models: Vec<PathBuf>,
    /// The Style panel's picture, style and finish.
    pub style: StyleSettings,
    /// Where the image models (Faces, Style) run; an unknown value reads as Auto.
    #[serde(deserialize_with = "lenient_backend")]
    pub backend: crate::gpu::Backend,
    /// Start in trade-show mode (as `--kiosk` does); set it by editing settings.json.
    pub kiosk: bool,
    /// Where Write generates: this computer or a server (the API key is not here: it is in
    /// the key store).
    pub remote: RemoteSettings,
}

/// The Write panel's remote engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteSettings {
    /// Generate on the server instead of the local model.
    pub enabled: bool,
    /// The server's base URL.
    pub base_url: String,
    /// The server's model (empty: its first).
    pub model: String,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "http://127.0.0.1:8080".into(),
            model: String::new(),
        }
    }
}

/// A backend name from the file, or Auto (with a warning) for anything else, so one bad value
/// does not reset every other setting.
fn lenient_backend<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<crate::gpu::Backend, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v.clone()).unwrap_or_else(|_| {
        tracing::warn!("settings: backend {v} is not auto, cpu or gpu; using auto");
        crate::gpu::Backend::Auto
    }))
}

/// What the Style panel restores on start. Only pictures opened from files are remembered
/// (pasted pixels have no path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StyleSettings {
    /// The content picture's file.
    pub content: Option<PathBuf>,
    /// The style picture's file (the arbitrary-style model).
    pub style_image: Option<PathBuf>,
    /// Whether the style picture is in use (otherwise the built-in styles).
    pub use_style_image: bool,
    /// Built-in styles (0–25) and their weights.
    pub mix: Vec<(usize, f32)>,
    /// Blend with the original, 0–1.
    pub strength: f32,
    /// Keep the original's colours.
    pub preserve_colour: bool,
    /// Whether the before/after divider shows.
    pub split: bool,
    /// Longest side of the output.
    pub max_side: u32,
    /// Export as JPEG (otherwise PNG).
    pub jpeg: bool,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            content: None,
            style_image: None,
            use_style_image: false,
            mix: vec![(0, 1.0)],
            strength: 1.0,
            preserve_colour: false,
            split: false,
            max_side: 1024,
            jpeg: false,
            jpeg_quality: 90,
        }
    }
}

impl StyleSettings {
    /// Brings an edited file's values back into range; true if anything changed.
    fn sanitize(&mut self) -> bool {
        let before = self.clone();
        let styles = crate::models::style::STYLE_COUNT;
        self.mix
            .retain(|&(i, w)| i < styles && w.is_finite() && w >= 0.0);
        self.mix.truncate(styles);
        if self.mix.is_empty() {
            self.mix = Self::default().mix;
        }
        if !self.strength.is_finite() {
            self.strength = 1.0;
        }
        self.strength = self.strength.clamp(0.0, 1.0);
        self.max_side = self.max_side.clamp(64, 8192);
        self.jpeg_quality = self.jpeg_quality.clamp(1, 100);
        *self != before
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            params: GenerateParams::default(),
            candidates: 1,
            model: None,
            mode: WriteMode::default(),
            instruction: String::new(),
            current_document: None,
            page: Page::default(),
            show_sampling: true,
            recent_models: Vec::new(),
            style: StyleSettings::default(),
            backend: crate::gpu::Backend::Auto,
            kiosk: false,
            remote: RemoteSettings::default(),
        }
    }
}

impl Settings {
    /// Brings values from an edited or old file back into range; returns what was changed.
    fn sanitize(&mut self) -> Option<String> {
        let mut fixed = Vec::new();
        if !(1..=4).contains(&self.candidates) {
            self.candidates = self.candidates.clamp(1, 4);
            fixed.push("alternatives");
        }
        if let Err(e) = self.params.sampling.validate() {
            tracing::warn!("settings: {e}; sampling reset to defaults");
            self.params.sampling = Default::default();
            fixed.push("sampling");
        }
        if self.params.max_new_tokens == 0 {
            self.params.max_new_tokens = GenerateParams::default().max_new_tokens;
            fixed.push("max new tokens");
        }
        self.recent_models.truncate(8);
        if self.style.sanitize() {
            fixed.push("style");
        }
        (!fixed.is_empty()).then(|| fixed.join(", "))
    }
}

/// One document: what is serialized to `documents/<id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id (also the file name).
    pub id: String,
    /// Title shown in the list (empty: the first line is shown instead).
    #[serde(default)]
    pub title: String,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub created: u64,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub modified: u64,
    /// Where "Save As…" last wrote it, for Ctrl+S.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Document {
    /// The title, or the first words of the text, or "Untitled".
    pub fn display_title(&self) -> String {
        if !self.title.trim().is_empty() {
            return self.title.trim().to_string();
        }
        let first = self.text.lines().map(str::trim).find(|l| !l.is_empty());
        match first {
            Some(line) if line.chars().count() > 40 => {
                let cut: String = line.chars().take(38).collect();
                format!("{}…", cut.trim_end())
            }
            Some(line) => line.to_string(),
            None => "Untitled".into(),
        }
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Markdown: the title as a heading, then the text.
    Markdown,
    /// Plain text, exactly as written.
    PlainText,
}

impl ExportFormat {
    /// The format a file name asks for (.md / .markdown → Markdown, anything else → text).
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
        {
            Some(e) if e == "md" || e == "markdown" => Self::Markdown,
            _ => Self::PlainText,
        }
    }

    /// The file extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::PlainText => "txt",
        }
    }

    /// The bytes of `doc` in this format.
    pub fn render(self, doc: &Document) -> String {
        match self {
            Self::PlainText => doc.text.clone(),
            Self::Markdown => {
                let title = doc.title.trim();
                if title.is_empty() || doc.text.trim_start().starts_with('#') {
                    doc.text.clone()
                } else {
                    format!("# {title}\n\n{}", doc.text)
                }
            }
        }
    }
}

/// Work for the autosave thread.
enum SaveJob {
    /// Write these bytes atomically.
    Write { path: PathBuf, bytes: Vec<u8> },
    /// Reply once everything before this was written.
    Flush(Sender<()>),
}

/// The autosave thread: writes files in submission order, reports failures back.
struct Saver {
    jobs: Option<Sender<SaveJob>>,
    failures: Receiver<Notice>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Saver {
    fn spawn() -> Self {
        let (job_tx, job_rx) = channel::<SaveJob>();
        let (fail_tx, fail_rx) = channel();
        let thread = std::thread::Builder::new()
            .name("atelier-autosave".into())
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    match job {
                        SaveJob::Write { path, bytes } => {
                            if let Err(e) = atomic_write(&path, &bytes) {
                                // Logged here once; the UI shows the notice.
                                tracing::error!("autosave of {} failed: {e}", path.display());
                                let _ = fail_tx.send(Notice {
                                    level: NoticeLevel::Error,
                                    message: format!(
                                        "Autosave failed for {}: {e}. Your text is still open; \
                                         use Export to keep a copy elsewhere.",
                                        path.display()
                                    ),
                                });
                            }
                        }
                        SaveJob::Flush(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            });
        match thread {
            Ok(thread) => Self {
                jobs: Some(job_tx),
                failures: fail_rx,
                thread: Some(thread),
            },
            Err(e) => {
                // Without the thread, autosave writes synchronously (see `Store::write`).
                tracing::warn!("cannot start the autosave thread ({e}); saving on the UI thread");
                Self {
                    jobs: None,
                    failures: fail_rx,
                    thread: None,
                }
            }
        }
    }

    /// Waits until every queued write is on disk.
    fn flush(&self) {
        if let Some(jobs) = &self.jobs {
            let (tx, rx) = channel();
            if jobs.send(SaveJob::Flush(tx)).is_ok() {
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.jobs = None; // closes the channel: the thread finishes its queue and exits
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Documents and settings, loaded at start and saved as they change.
pub struct Store {
    dir: PathBuf,
    /// What is serialized to `settings.json`; edit freely, changes are detected and saved.
    pub settings: Settings,
    /// The settings as last written, to notice changes without explicit calls.
    saved_settings: Option<Settings>,
    documents: Vec<Document>,
    current: usize,
    dirty_docs: BTreeSet<String>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    notices: Vec<Notice>,
    saver: Saver,
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

    /// Whether any document has unsaved changes.
    pub fn has_unsaved_changes(&self) -> bool {
        !self.dirty_docs.is_empty() || self.saved_settings.as_ref() != Some(&self.settings)
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

    /// Autosaves what changed if the user paused typing (or kept typing for a while).
    /// Call every frame; returns how long until the next save is due, if one is pending, so the
    /// caller can schedule a repaint.
    pub fn tick(&mut self, now: Instant) -> Option<Duration> {
        while let Ok(notice) = self.saver.failures.try_recv() {
            self.notices.push(notice);
        }
        let settings_changed = self.saved_settings.as_ref() != Some(&self.settings);
        if settings_changed && self.last_change.is_none() {
            self.first_change = Some(now);
            self.last_change = Some(now);
        }
        let (Some(first), Some(last)) = (self.first_change, self.last_change) else {
            return None;
        };
        let due_idle = last + AUTOSAVE_IDLE;
        let due_max = first + AUTOSAVE_MAX_DELAY;
        let due = due_idle.min(due_max);
        if now >= due {
            self.write_dirty(false);
            None
        } else {
            Some(due - now)
        }
    }

    /// Writes everything that changed, on this thread, and waits for queued autosaves.
    /// Used on exit and by tests.
    pub fn save_now(&mut self) -> Result<(), StoreError> {
        self.saver.flush();
        let failures = self.write_dirty(true);
        match failures.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Serializes dirty documents and changed settings; `sync` writes here, else on the
    /// autosave thread. Returns synchronous failures.
    fn write_dirty(&mut self, sync: bool) -> Vec<StoreError> {
        let mut jobs = Vec::new();
        let mut errors = Vec::new();
        for id in std::mem::take(&mut self.dirty_docs) {
            let Some(doc) = self.documents.iter().find(|d| d.id == id) else {
                continue;
            };
            match serde_json::to_vec_pretty(doc) {
                Ok(bytes) => jobs.push((self.document_path(&id), bytes)),
                Err(source) => errors.push(StoreError::Encode {
                    what: format!("document {id}"),
                    source,
                }),
            }
        }
        if self.saved_settings.as_ref() != Some(&self.settings) {
            match serde_json::to_vec_pretty(&self.settings) {
                Ok(bytes) => {
                    jobs.push((self.settings_path(), bytes));
                    self.saved_settings = Some(self.settings.clone());
                }
                Err(source) => errors.push(StoreError::Encode {
                    what: "settings".into(),
                    source,
                }),
            }
        }
        self.first_change = None;
        self.last_change = None;
        for (path, bytes) in jobs {
            let queued = !sync
                && self.saver.jobs.as_ref().is_some_and(|j| {
                    j.send(SaveJob::Write {
                        path: path.clone(),
                        bytes: bytes.clone(),
                    })
                    .is_ok()
                });
            if !queued && let Err(source) = atomic_write(&path, &bytes) {
                errors.push(StoreError::Write { path, source });
            }
        }
        if !sync {
            // Asynchronous callers have nobody to return errors to: tell the user.
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

/// Writes `doc` to `path` atomically in `format` (a copy; the store keeps its own).
pub fn export_document(
    doc: &Document,
    path: &Path,
    format: ExportFormat,
) -> Result<(), StoreError> {
    atomic_write(path, format.render(doc).as_bytes()).map_err(|source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Counts words the way writers do: runs of letters, digits or apostrophes.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// What loading a JSON file gave.
enum Loaded<T> {
    Missing,
    Ok(T),
    /// The file did not parse; it was moved to `backup` (None: moving failed, left in place).
    Corrupt {
        error: String,
        backup: Option<PathBuf>,
    },
}

fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Loaded<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => {
            return Loaded::Corrupt {
                error: e.to_string(),
                backup: None,
            };
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Loaded::Ok(v),
        Err(e) => {
            let backup = backup_path(path);
            // Move, not copy: the original name is then free for a clean file and the user's
            // bytes are never overwritten. Fall back to a copy if the rename is refused.
            let moved = std::fs::rename(path, &backup)
                .or_else(|_| atomic_write(&backup, &bytes))
                .is_ok();
            tracing::warn!(
                "{} is not valid JSON ({e}); moved to {}",
                path.display(),
                backup.display()
            );
            Loaded::Corrupt {
                error: e.to_string(),
                backup: moved.then_some(backup),
            }
        }
    }
}

fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let stamp = unix_now();
    let mut candidate = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.corrupt-{stamp}-{n}"));
        n += 1;
    }
    candidate
}

fn corrupt_notice(what: &str, path: &Path, error: &str, backup: &Option<PathBuf>) -> Notice {
    let message = match backup {
        Some(b) => format!(
            "{what} ({}) could not be read ({error}). It was kept as {} and Atelier started \
             fresh.",
            path.display(),
            b.display()
        ),
        None => format!(
            "{what} ({}) could not be read ({error}) and was left untouched.",
            path.display()
        ),
    };
    Notice {
        level: NoticeLevel::Warning,
        message,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Title of the document created on first start.
pub const WELCOME_TITLE: &str = "The lighthouse";
/// Text of the document created on first start: a paragraph worth continuing.
pub const WELCOME_TEXT: &str = "The lighthouse keeper had not spoken to anyone in eleven days. \
Each evening she climbed the spiral stairs, wound the great clockwork, and watched the beam \
sweep across the black water. On the twelfth evening, a light answered from the sea.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("  one two\nthree — four "), 4);
        assert_eq!(word_count("don't stop"), 2);
    }

    #[test]
    fn display_title_falls_back_to_first_line() {
        let mut d = Document {
            id: "x".into(),
            title: String::new(),
            text: "\n  First line here\nsecond".into(),
            created: 0,
            modified: 0,
            file: None,
        };
        assert_eq!(d.display_title(), "First line here");
        d.text.clear();
        assert_eq!(d.display_title(), "Untitled");
        d.title = "Named".into();
        assert_eq!(d.display_title(), "Named");
    }

    #[test]
    fn markdown_export_adds_title() {
        let d = Document {
            id: "x".into(),
            title: "Story".into(),
            text: "Once.".into(),
            created: 0,
            modified: 0,
            file: None,
        };
        assert_eq!(ExportFormat::Markdown.render(&d), "# Story\n\nOnce.");
        assert_eq!(ExportFormat::PlainText.render(&d), "Once.");
        assert_eq!(
            ExportFormat::from_path(Path::new("a/b.MD")),
            ExportFormat::Markdown
        );
    }
}
