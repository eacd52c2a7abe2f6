//! Crash-safe file writes: the user's work is replaced atomically or not at all.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder is written,
/// flushed to disk and renamed over the target, so a crash leaves either the old or the new
/// version, never a torn one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, None)
}

/// [`atomic_write`] for secrets: the file is readable and writable by its owner alone (0600),
/// whatever the old file's permissions were.
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, Some(0o600))
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    // A link stays a link: the file it points to gets the new content.
    let path = &follow_links(path)?;
    // Renaming over a read-only file would replace it anyway (only the folder's permissions
    // count for a rename): refuse, as the user marked it not to be written.
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().readonly()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is read-only", path.display()),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".atelier-").suffix(".tmp");
    // Temporary files are private (0600) by default; the file that replaces the target keeps
    // the target's permissions, and a new one gets the usual 0666 less the umask, like any
    // file an application saves.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(match (mode, std::fs::metadata(path)) {
            (Some(mode), _) => std::fs::Permissions::from_mode(mode),
            (None, Ok(m)) => m.permissions(),
            (None, Err(_)) => std::fs::Permissions::from_mode(0o666),
        });
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable where the platform allows it.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file a chain of symbolic links ends at (`path` itself when it is not a link); a
/// dangling link gives the path it names. More than 40 links is a loop.
fn follow_links(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Creates `dir` if needed and checks that a file can be created in it (then removes it):
/// a read-only or full folder is found before minutes of work, not after. The error is the
/// OS's own (permission denied, read-only file system, no space left).
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let probe = dir.join(format!(".atelier-probe-{}-{nanos}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let written = f.write_all(b"probe");
    drop(f);
    let _ = std::fs::remove_file(&probe);
    written
}

/// Deletes the temporary files [`atomic_write`] leaves in `dir` when the process is killed
/// mid-save (the target itself is intact: the rename never happened). Call when opening a
/// store, before anything writes there. Returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".atelier-") && name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            "removed {removed} unfinished save(s) from {} (the saved files are intact)",
            dir.display()
        );
    }
    removed
}

/// What tells one version of a file from another: its path, size and modification time. A
/// model retrained into the same path gets a new stamp, so whatever is keyed by it (a loaded
/// model, a cache) is made again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// When it was last written (`None` where the platform does not say).
    pub modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// The stamp of `path` as it is now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_read_only_file_is_not_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keep.md");
        std::fs::write(&p, b"mine").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        let e = atomic_write(&p, b"theirs").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("read-only"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"mine");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_stays_a_link_and_its_target_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real/notes.md");
        std::fs::write(&target, b"one").unwrap();
        let link = dir.path().join("notes.md");
        std::os::unix::fs::symlink("real/notes.md", &link).unwrap();
        atomic_write(&link, b"two").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        // A loop is an error, not a hang.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(atomic_write(&a, b"x").is_err());
    }

    #[test]
    fn a_rewritten_file_has_a_new_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.bin");
        std::fs::write(&p, b"one").unwrap();
        let first = FileStamp::of(&p).unwrap();
        assert_eq!(first, FileStamp::of(&p).unwrap());
        std::fs::write(&p, b"longer").unwrap();
        assert_ne!(first, FileStamp::of(&p).unwrap());
        assert!(FileStamp::of(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/doc.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn saved_files_are_not_private_and_keep_existing_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.png");
        atomic_write(&p, b"one").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // A file created the ordinary way shows what the umask allows.
        let probe = dir.path().join("probe");
        std::fs::File::create(&probe).unwrap();
        assert_eq!(mode(&p), mode(&probe));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(mode(&p), 0o600);
    }
}
