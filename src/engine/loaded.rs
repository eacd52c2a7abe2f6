//! Loaded models kept between jobs: a small least-recently-used set keyed by each file's
//! [`FileStamp`] (path, size, modification time), bounded by a memory budget. Switching back
//! and forth between two models (the picker, `atelier serve` with several) then costs no
//! reload, and a model rewritten in place (retrained) is loaded again.

use crate::fsutil::FileStamp;

/// Loaded models, most recently used last.
pub(crate) struct LoadedSet<T> {
    entries: Vec<Entry<T>>,
    /// Most bytes the kept models may cost together (see [`Self::insert`]).
    budget: u64,
    /// Most models kept at once.
    max: usize,
}

struct Entry<T> {
    stamp: FileStamp,
    cost: u64,
    value: T,
}

impl<T> LoadedSet<T> {
    /// An empty set keeping at most `max` models costing at most `budget` bytes together (one
    /// model over the budget is still kept, alone).
    pub(crate) fn new(budget: u64, max: usize) -> Self {
        Self {
            entries: Vec::new(),
            budget,
            max: max.max(1),
        }
    }

    /// The model loaded from this version of the file, now the most recently used.
    pub(crate) fn get_mut(&mut self, stamp: &FileStamp) -> Option<&mut T> {
        let i = self.entries.iter().position(|e| e.stamp == *stamp)?;
        let entry = self.entries.remove(i);
        self.entries.push(entry);
        self.entries.last_mut().map(|e| &mut e.value)
    }

    /// The model loaded from this version of the file, without touching the order.
    pub(crate) fn peek(&self, stamp: &FileStamp) -> Option<&T> {
        self.entries
            .iter()
            .find(|e| e.stamp == *stamp)
            .map(|e| &e.value)
    }

    /// Drops what must go before a model of `cost` bytes from `stamp`'s file is loaded: older
    /// versions of the same file, then the least recently used models until it fits. Called
    /// before loading, so the old weights are freed first.
    pub(crate) fn make_room(&mut self, stamp: &FileStamp, cost: u64) {
        self.entries.retain(|e| e.stamp.path != stamp.path);
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max || self.total().saturating_add(cost) > self.budget)
        {
            self.entries.remove(0);
        }
    }

    /// Keeps a freshly loaded model (after [`Self::make_room`]); returns it.
    pub(crate) fn insert(&mut self, stamp: FileStamp, cost: u64, value: T) -> &mut T {
        self.make_room(&stamp, cost);
        self.entries.push(Entry { stamp, cost, value });
        let last = self.entries.len() - 1;
        &mut self.entries[last].value
    }

    /// Drops every model.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many models are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn total(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn stamp(name: &str, len: u64) -> FileStamp {
        FileStamp {
            path: PathBuf::from(name),
            len,
            modified: None,
        }
    }

    #[test]
    fn keeps_the_recently_used_within_budget() {
        let mut set = LoadedSet::new(100, 3);
        set.insert(stamp("a", 1), 40, 'a');
        set.insert(stamp("b", 1), 40, 'b');
        assert_eq!(set.get_mut(&stamp("a", 1)), Some(&mut 'a'));
        // c does not fit beside both: b (least recently used) goes.
        set.insert(stamp("c", 1), 40, 'c');
        assert_eq!(set.len(), 2);
        assert!(set.get_mut(&stamp("b", 1)).is_none());
        assert!(set.get_mut(&stamp("a", 1)).is_some());
        // One model over the budget is kept alone.
        set.insert(stamp("d", 1), 500, 'd');
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_new_version_of_a_file_replaces_the_old_one() {
        let mut set = LoadedSet::new(1000, 3);
        set.insert(stamp("a", 1), 10, 1);
        assert!(set.get_mut(&stamp("a", 2)).is_none());
        set.insert(stamp("a", 2), 10, 2);
        assert_eq!(set.len(), 1);
        assert_eq!(set.get_mut(&stamp("a", 2)), Some(&mut 2));
    }

    #[test]
    fn the_count_is_bounded_too() {
        let mut set = LoadedSet::new(u64::MAX, 2);
        for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
            set.insert(stamp(n, 1), 1, i);
        }
        assert_eq!(set.len(), 2);
        assert!(set.get_mut(&stamp("a", 1)).is_none());
    }
}
