//! The log file: `logs/atelier.log` in the data folder, rotated by size so a kiosk running
//! all day (or all week) never fills the disk. When the file passes [`MAX_BYTES`] it becomes
//! `atelier.log.1` (the older ones shift up to `atelier.log.{KEEP}`, the oldest is deleted) and
//! a new file starts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Size at which the log file is rotated.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;

/// Rotated files kept besides the current one.
pub const KEEP: usize = 4;

/// File name of the current log.
pub const FILE_NAME: &str = "atelier.log";

/// The folder the logs go to: `logs/` in [`crate::paths::data_dir`].
pub fn log_dir() -> PathBuf {
    crate::paths::data_dir().join("logs")
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    size: u64,
}

/// A size-rotated log file, shareable between threads (tracing's writer).
#[derive(Clone)]
pub struct RotatingLog {
    inner: Arc<Mutex<Inner>>,
}

impl RotatingLog {
    /// Opens (appending) `dir/atelier.log`, rotating at `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            max_bytes,
            file: None,
            size: 0,
        };
        inner.reopen()?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The current log file's path.
    pub fn path(&self) -> PathBuf {
        match self.inner.lock() {
            Ok(i) => i.dir.join(FILE_NAME),
            Err(p) => p.into_inner().dir.join(FILE_NAME),
        }
    }
}

impl Inner {
    fn reopen(&mut self) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(FILE_NAME))?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let name = |i: usize| self.dir.join(format!("{FILE_NAME}.{i}"));
        let _ = std::fs::remove_file(name(KEEP));
        for i in (1..KEEP).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(self.dir.join(FILE_NAME), name(1))?;
        self.reopen()
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("log lock poisoned"))?;
        if inner.size > 0 && inner.size + buf.len() as u64 > inner.max_bytes {
            // A failed rotation keeps writing to the old file rather than losing lines.
            if let Err(e) = inner.rotate() {
                eprintln!("atelier: cannot rotate the log: {e}");
                if inner.file.is_none() {
                    inner.reopen()?;
                }
            }
        }
        let n = match &mut inner.file {
            Some(f) => f.write(buf)?,
            None => return Err(std::io::Error::other("log file not open")),
        };
        inner.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.lock() {
            Ok(mut i) => i.file.as_mut().map_or(Ok(()), File::flush),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingLog {
    type Writer = RotatingLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), 100).unwrap();
        for i in 0..100 {
            writeln!(log, "line {i:04} of the log, forty bytes long").unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "atelier.log",
                "atelier.log.1",
                "atelier.log.2",
                "atelier.log.3",
                "atelier.log.4"
            ]
        );
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 100, "{n} is {len} bytes");
        }
        let current = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(current.ends_with("line 0099 of the log, forty bytes long\n"));
        // Reopening appends to the current file.
        let mut again = RotatingLog::open(dir.path(), 1000).unwrap();
        writeln!(again, "after restart").unwrap();
        let current = std::fs::read_to_string(again.path()).unwrap();
        assert!(current.contains("line 0099") && current.ends_with("after restart\n"));
    }
}
