//! Starred faces, kept across restarts in `<data dir>/faces/favourites.json` (saved atomically
//! after every change), and the in-memory history of the last 50 selections.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{FaceSpec, FacesError};

/// One starred face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Favourite {
    /// Stable id within the store (never reused).
    pub id: u64,
    /// The face: latent, seed, ψ and direction offsets.
    pub face: FaceSpec,
    /// When it was starred (seconds since the Unix epoch).
    pub added_unix: u64,
    /// An optional user label.
    #[serde(default)]
    pub label: String,
}

/// What is serialized.
#[derive(Serialize, Deserialize)]
struct FavouritesFile {
    version: u32,
    next_id: u64,
    favourites: Vec<Favourite>,
}

/// The favourites store. Every mutation saves before returning, so a crash never loses a star
/// the UI showed as saved.
#[derive(Debug)]
pub struct Favourites {
    path: PathBuf,
    items: Vec<Favourite>,
    next_id: u64,
    /// Why the file could not be read when it was opened: it is then never written, so the
    /// favourites in it are not replaced by an empty list (fix the file and restart).
    unreadable: Option<String>,
}

impl Favourites {
    /// The app's file: `<data dir>/faces/favourites.json`.
    pub fn default_path() -> PathBuf {
        crate::paths::data_dir()
            .join("faces")
            .join("favourites.json")
    }

    /// Opens the store at `path`; a missing file is an empty store. A file that does not
    /// parse is moved aside as `favourites.json.corrupt-<unix time>` (the user's bytes are kept)
    /// and an empty store is returned together with the error describing it, so the panel can
    /// say so once.
    pub fn open(path: &Path) -> (Self, Option<FacesError>) {
        if let Some(dir) = path.parent() {
            crate::fsutil::remove_stale_temp_files(dir);
        }
        let empty = Self {
            path: path.to_path_buf(),
            items: Vec::new(),
            next_id: 1,
            unreadable: None,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (empty, None),
            Err(source) => {
                // The file exists but cannot be read (permissions, a folder in its place, a
                // disk error): its favourites may be fine, so it must not be overwritten.
                let locked = Self {
                    unreadable: Some(source.to_string()),
                    ..empty
                };
                return (
                    locked,
                    Some(FacesError::Io {
                        path: path.to_path_buf(),
                        source,
                    }),
                );
            }
        };
        match serde_json::from_slice::<FavouritesFile>(&bytes) {
            Ok(f) => {
                let next_id = f
                    .favourites
                    .iter()
                    .map(|x| x.id + 1)
                    .max()
                    .unwrap_or(1)
                    .max(f.next_id);
                (
                    Self {
                        path: path.to_path_buf(),
                        items: f.favourites,
                        next_id,
                        unreadable: None,
                    },
                    None,
                )
            }
            Err(e) => {
                let stamp = unix_now();
                let backup = path.with_file_name(format!(
                    "{}.corrupt-{stamp}",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "favourites.json".into())
                ));
                let moved = std::fs::rename(path, &backup).is_ok();
                (
                    empty,
                    Some(FacesError::CorruptFavourites {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                        backup: moved.then_some(backup),
                    }),
                )
            }
        }
    }

    /// The file this store saves to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All favourites, oldest first.
    pub fn items(&self) -> &[Favourite] {
        &self.items
    }

    /// The id of a favourite holding exactly this face, if starred.
    pub fn find(&self, face: &FaceSpec) -> Option<u64> {
        self.items.iter().find(|f| f.face == *face).map(|f| f.id)
    }

    /// Stars a face (no duplicate if it is already starred) and saves; returns its id.
    pub fn add(&mut self, face: FaceSpec) -> Result<u64, FacesError> {
        if let Some(id) = self.find(&face) {
            return Ok(id);
        }
        face.validate()?;
        let id = self.next_id;
        self.next_id += 1;
        self.items.push(Favourite {
            id,
            face,
            added_unix: unix_now(),
            label: String::new(),
        });
        if let Err(e) = self.save() {
            // Keep memory and disk in step: the star did not persist, so it is not shown.
            self.items.pop();
            return Err(e);
        }
        Ok(id)
    }

    /// Removes a favourite and saves; `false` if there was none with that id.
    pub fn remove(&mut self, id: u64) -> Result<bool, FacesError> {
        let Some(i) = self.items.iter().position(|f| f.id == id) else {
            return Ok(false);
        };
        let removed = self.items.remove(i);
        if let Err(e) = self.save() {
            self.items.insert(i, removed);
            return Err(e);
        }
        Ok(true)
    }

    /// Sets a favourite's label and saves.
    pub fn set_label(&mut self, id: u64, label: &str) -> Result<(), FacesError> {
        if let Some(f) = self.items.iter_mut().find(|f| f.id == id) {
            f.label = label.to_owned();
        }
        self.save()
    }

    /// Writes the file atomically (temporary file + rename); refused when the file could not
    /// be read at start, so a star never replaces favourites that are still in it.
    pub fn save(&self) -> Result<(), FacesError> {
        if let Some(reason) = &self.unreadable {
            return Err(FacesError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(format!(
                    "the file could not be read when the studio started ({reason}), so it is \
                     not overwritten; fix it and restart to star faces again"
                )),
            });
        }
        let file = FavouritesFile {
            version: 1,
            next_id: self.next_id,
            favourites: self.items.clone(),
        };
        let io = |source| FacesError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        crate::fsutil::atomic_write(&self.path, &bytes).map_err(io)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The last [`History::CAPACITY`] selected faces, newest last. Selecting the face that is
/// already newest does not add a duplicate; an older equal entry moves to the end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    entries: VecDeque<FaceSpec>,
}

impl History {
    /// How many selections are kept.
    pub const CAPACITY: usize = 50;

    /// Records a selection.
    pub fn push(&mut self, face: FaceSpec) {
        if let Some(i) = self.entries.iter().position(|f| *f == face) {
            self.entries.remove(i);
        }
        self.entries.push_back(face);
        while self.entries.len() > Self::CAPACITY {
            self.entries.pop_front();
        }
    }

    /// Entries, newest first (the order a history strip shows them).
    pub fn newest_first(&self) -> impl Iterator<Item = &FaceSpec> {
        self.entries.iter().rev()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was selected yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unreadable_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be cannot be read (for root as for anyone).
        let path = dir.path().join("favourites.json");
        std::fs::create_dir(&path).unwrap();
        let (mut favs, err) = Favourites::open(&path);
        assert!(err.is_some());
        let e = favs.add(FaceSpec::from_seed(1, 0.7)).unwrap_err();
        assert!(e.to_string().contains("not overwritten"), "{e}");
        assert!(favs.items().is_empty());
        assert!(path.is_dir(), "the unreadable file is left alone");
    }

    use super::*;

    #[test]
    fn favourites_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faces/favourites.json");
        let (mut favs, err) = Favourites::open(&path);
        assert!(err.is_none());
        let mut face = FaceSpec::from_seed(42, 0.7);
        face.offsets = vec![1.5, 0.0, -0.5];
        let id = favs.add(face.clone()).unwrap();
        assert_eq!(favs.add(face.clone()).unwrap(), id, "no duplicates");
        let id2 = favs.add(FaceSpec::from_seed(7, 1.0)).unwrap();
        assert!(favs.remove(id2).unwrap());

        let (again, err) = Favourites::open(&path);
        assert!(err.is_none());
        assert_eq!(again.items().len(), 1);
        assert_eq!(again.items()[0].face, face);
        assert_eq!(again.find(&face), Some(id));
        // Ids are never reused, even after a removal and a restart.
        let (mut again, _) = Favourites::open(&path);
        assert!(again.add(FaceSpec::from_seed(8, 1.0)).unwrap() > id2);
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("favourites.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let (favs, err) = Favourites::open(&path);
        assert!(favs.items().is_empty());
        match err {
            Some(FacesError::CorruptFavourites {
                backup: Some(b), ..
            }) => {
                assert_eq!(std::fs::read(b).unwrap(), b"{ not json");
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
    }

    #[test]
    fn history_keeps_the_last_fifty_without_duplicates() {
        let mut h = History::default();
        for s in 0..60 {
            h.push(FaceSpec::from_seed(s, 1.0));
        }
        assert_eq!(h.len(), History::CAPACITY);
        assert_eq!(h.newest_first().next().and_then(|f| f.seed), Some(59));
        h.push(FaceSpec::from_seed(30, 1.0));
        assert_eq!(h.len(), History::CAPACITY);
        assert_eq!(h.newest_first().next().and_then(|f| f.seed), Some(30));
        assert_eq!(h.newest_first().filter(|f| f.seed == Some(30)).count(), 1);
    }
}
