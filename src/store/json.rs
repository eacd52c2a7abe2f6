//! Reading the store's JSON files without ever losing the user's bytes: a file that does not
//! parse is moved aside and reported, never overwritten.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::app::notice::{Notice, NoticeLevel};
use crate::fsutil::atomic_write;

/// What loading a JSON file gave.
pub(crate) enum Loaded<T> {
    Missing,
    Ok(T),
    /// The file did not parse; it was moved to `backup` (None: moving failed, left in place).
    Corrupt {
        error: String,
        backup: Option<PathBuf>,
    },
}

pub(crate) fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Loaded<T> {
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

pub(crate) fn corrupt_notice(
    what: &str,
    path: &Path,
    error: &str,
    backup: &Option<PathBuf>,
) -> Notice {
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

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
