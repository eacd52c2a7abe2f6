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
//! synchronously on exit. A change stays unsaved until its write succeeded: a failed save (a
//! full disk, a read-only folder) is retried and the status bar says so. A file that does not
//! parse is moved aside as `*.corrupt-<time>` (the user's bytes are never overwritten) and a
//! notice says where it went.
//!
//! - [`state`]: the [`Store`]: loading, change tracking, autosave, Save As;
//! - [`settings`]: what `settings.json` holds;
//! - [`document`]: one document, exports, word count;
//! - [`saver`]: the autosave thread; [`json`]: reading files without losing bytes.

pub mod document;
pub mod error;
pub(crate) mod json;
pub(crate) mod saver;
pub mod settings;
pub mod state;

pub use document::{
    Document, ExportFormat, WELCOME_TEXT, WELCOME_TITLE, export_document, word_count,
};
pub use error::StoreError;
pub use settings::{RemoteSettings, Settings, StyleSettings, WriteMode};
pub use state::{AUTOSAVE_IDLE, AUTOSAVE_MAX_DELAY, DOCUMENTS_DIR, Store};
