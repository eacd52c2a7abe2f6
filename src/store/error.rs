//! What can go wrong with an explicit file operation of the store.

use std::path::PathBuf;

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
