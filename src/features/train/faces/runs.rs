//! The runs folder: one folder per training run (`<data>/train/runs/<id>/` by default) with
//! `run.json` (settings, picture folder, loss curves, step, state, last samples, SWD), the
//! last samples as `samples.png`, and the checkpoints ([`super::checkpoint`]). `run.json` is
//! rewritten atomically at every checkpoint and at the end, so after a crash it describes
//! the last checkpoint (or a step or two past it: [`RunRecord::truncate`] trims the curves
//! back on resume). Runs are listed from disk, so they survive restarts.

use std::path::{Path, PathBuf};

use super::{SwdPoint, TrainSettings};

/// The record's file in a run folder.
pub const RECORD_FILE: &str = "run.json";
/// The last sample grid in a run folder.
pub const SAMPLES_FILE: &str = "samples.png";
/// Bumped when [`RunRecord`] changes incompatibly.
const VERSION: u32 = 1;

/// Why a run folder could not be used. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The folder could not be created or written.
    #[error(
        "cannot write the run folder {}: {source}; choose a folder you can write to",
        path.display()
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A new run was asked for in a folder that already holds one.
    #[error(
        "{} already holds a training run; resume it, or choose another folder",
        path.display()
    )]
    Exists {
        /// The folder.
        path: PathBuf,
    },
    /// The record could not be read.
    #[error("cannot read the run {}: {reason}", path.display())]
    Read {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where a run is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunState {
    /// Training (or the process ended without saying: a crash or kill — resumable).
    Running,
    /// Stopped by the user before its target; resumable.
    Stopped,
    /// Reached its target step.
    Finished,
    /// Ended with an error.
    Failed(String),
}

/// The loss curves, one point per step.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Curves {
    /// Step numbers.
    pub step: Vec<u64>,
    /// The discriminator's loss (`errD_real + errD_fake`).
    pub d: Vec<f32>,
    /// The generator's loss.
    pub g: Vec<f32>,
}

impl Curves {
    /// Appends one step.
    pub fn push(&mut self, step: u64, d: f32, g: f32) {
        self.step.push(step);
        self.d.push(d);
        self.g.push(g);
    }
}

/// `run.json`: what the runs list shows and what resume needs besides the checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// Layout version.
    pub version: u32,
    /// The folder's name.
    pub id: String,
    /// Seconds since 1970 when the run was created.
    pub created: u64,
    /// When the record was last written.
    pub updated: u64,
    /// The settings.
    pub settings: TrainSettings,
    /// The step the run trains to.
    pub target: u64,
    /// The last checkpoint's step.
    pub step: u64,
    /// The last checkpoint's file name, if any.
    pub checkpoint: Option<String>,
    /// Where the run is.
    pub state: RunState,
    /// Usable pictures.
    pub pictures: usize,
    /// Files skipped.
    pub skipped: usize,
    /// Loss curves up to (at least) `step`.
    pub curves: Curves,
    /// The step of the last sample grid (`samples.png`), if any.
    pub samples_step: Option<u64>,
    /// SWD measurements, if any.
    pub swd: Vec<SwdPoint>,
    /// Training time so far, in seconds (steps only).
    pub train_seconds: f64,
    /// Where the generator was last exported.
    pub exported: Option<PathBuf>,
}

/// Seconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RunRecord {
    /// A new record for a run in `dir`.
    pub fn new(dir: &Path, settings: TrainSettings, target: u64) -> Self {
        let t = now();
        Self {
            version: VERSION,
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            created: t,
            updated: t,
            settings,
            target,
            step: 0,
            checkpoint: None,
            state: RunState::Running,
            pictures: 0,
            skipped: 0,
            curves: Curves::default(),
            samples_step: None,
            swd: Vec::new(),
            train_seconds: 0.0,
            exported: None,
        }
    }

    /// Reads `dir/run.json`.
    pub fn load(dir: &Path) -> Result<Self, RunError> {
        let path = dir.join(RECORD_FILE);
        let read = |reason: String| RunError::Read {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|e| read(e.to_string()))?;
        let r: Self = serde_json::from_slice(&bytes).map_err(|e| read(e.to_string()))?;
        if r.version != VERSION {
            return Err(read(format!(
                "it was written by another version (record version {})",
                r.version
            )));
        }
        Ok(r)
    }

    /// Writes `dir/run.json` atomically.
    pub fn save(&mut self, dir: &Path) -> Result<(), RunError> {
        self.updated = now();
        let path = dir.join(RECORD_FILE);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| RunError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::atomic_write(&path, &bytes)
            .map_err(|source| RunError::Write { path, source })
    }

    /// Drops curve points and SWD measurements after `step` (a resumed run redoes them).
    pub fn truncate(&mut self, step: u64) {
        let keep = self.curves.step.iter().take_while(|s| **s <= step).count();
        self.curves.step.truncate(keep);
        self.curves.d.truncate(keep);
        self.curves.g.truncate(keep);
        self.swd.retain(|p| p.step <= step);
    }
}

/// Creates `dir` for a new run: refused when it already holds a run.
pub fn create(dir: &Path) -> Result<(), RunError> {
    if dir.join(RECORD_FILE).exists() || !super::checkpoint::list(dir).is_empty() {
        return Err(RunError::Exists {
            path: dir.to_path_buf(),
        });
    }
    // Creating a folder can succeed where writing in it will not (a read-only mount, an
    // existing folder without write permission): find out now, not after minutes of training.
    crate::fsutil::probe_writable(dir).map_err(|source| RunError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// The default runs folder: `<data>/train/runs`.
pub fn default_root() -> PathBuf {
    crate::paths::data_dir().join("train").join("runs")
}

/// A fresh run folder name under `root`: the time and a counter (`20261207-131500`,
/// `…-2`, …).
pub fn new_run_dir(root: &Path) -> PathBuf {
    let secs = now();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let base = format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let mut dir = root.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A run as the runs list shows it.
#[derive(Clone, Debug)]
pub struct RunEntry {
    /// Its folder.
    pub dir: PathBuf,
    /// Its record.
    pub record: RunRecord,
    /// `samples.png`, if written.
    pub samples: Option<PathBuf>,
}

/// Every pictures run under `root` that has a readable record, newest first. Other folders
/// (writing runs, damaged records) are skipped.
pub fn list(root: &Path) -> Vec<RunEntry> {
    let mut out: Vec<RunEntry> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join(RECORD_FILE).is_file())
        .filter_map(|e| match RunRecord::load(&e.path()) {
            Ok(record) => {
                let samples = Some(e.path().join(SAMPLES_FILE)).filter(|p| p.is_file());
                Some(RunEntry {
                    dir: e.path(),
                    record,
                    samples,
                })
            }
            // Writing runs share the runs folder: their records are not pictures runs'.
            Err(err) => {
                tracing::debug!("{err}");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.record
            .created
            .cmp(&a.record.created)
            .then(b.record.id.cmp(&a.record.id))
    });
    out
}

/// Exports the generator of the run in `dir` (its newest usable checkpoint) to `out` as a
/// Faces model, and records where: "Open in Faces" for a run trained earlier. Returns the
/// checkpoint's step.
pub fn export_run(dir: &Path, out: &Path) -> Result<u64, super::TrainFacesError> {
    let mut record = RunRecord::load(dir)?;
    let loaded = super::checkpoint::latest(dir, record.settings.adam())?;
    super::model_file::export(&loaded.trainer.g, out).map_err(super::TrainFacesError::Export)?;
    record.exported = Some(out.to_path_buf());
    record.save(dir)?;
    Ok(loaded.step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::train::faces::PictureSource;

    #[test]
    fn records_round_trip_truncate_and_list() {
        let root = tempfile::tempdir().unwrap();
        let dir = new_run_dir(root.path());
        create(&dir).unwrap();
        let settings = TrainSettings::new(PictureSource::Folder("/pics".into()), "/m".into());
        let mut r = RunRecord::new(&dir, settings, 100);
        for s in 1..=5 {
            r.curves.push(s, 1.0, 2.0);
        }
        r.swd.push(SwdPoint { step: 5, swd: 0.3 });
        r.save(&dir).unwrap();
        let mut back = RunRecord::load(&dir).unwrap();
        assert_eq!(back, r);
        back.truncate(3);
        assert_eq!(back.curves.step, vec![1, 2, 3]);
        assert!(back.swd.is_empty());
        assert!(matches!(create(&dir), Err(RunError::Exists { .. })));
        let runs = list(root.path());
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].record.target, 100);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_429), (2025, 12, 7));
    }
}
