//! The vocabulary's pieces, stored once: all their text in one buffer, and a table of ids
//! hashed by the text each id points at. Building it copies the text once and allocates
//! three times, where a `Vec<String>` plus a `HashMap<String, u32>` copied every piece twice
//! (a 262k-token vocabulary is half a million allocations, then as many frees). The table's
//! hasher is seeded per process, so a crafted vocabulary cannot force collisions.

use candle_core::quantized::gguf_file::Value;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::BuildHasher;

/// A vocabulary's pieces by id, with an exact lookup of the id by text.
pub(super) struct Pieces {
    /// Every piece's text, one after another.
    text: String,
    /// Where each piece ends in `text` (it starts where the previous one ends).
    ends: Vec<u32>,
    /// Ids, found by the hash of their piece.
    ids: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Pieces {
    /// The pieces of `tokenizer.ggml.tokens`. Empty pieces are renamed `[EMPTY_{id}]`, as
    /// llama.cpp does so that every piece is findable; a later duplicate of a piece owns its
    /// text in the lookup, as in llama.cpp's `token_to_id`. `Err` says what is wrong.
    pub(super) fn new(tokens: &[Value]) -> Result<Self, String> {
        let mut len = 0usize;
        for (i, v) in tokens.iter().enumerate() {
            let Value::String(s) = v else {
                return Err(format!("tokenizer.ggml.tokens[{i}] is not a string"));
            };
            // An empty piece's replacement, "[EMPTY_{i}]", is under 20 bytes.
            len = len.saturating_add(if s.is_empty() { 20 } else { s.len() });
        }
        if u32::try_from(len).is_err() {
            return Err(format!("the vocabulary's text takes {len} bytes"));
        }
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(tokens.len());
        for (i, v) in tokens.iter().enumerate() {
            match v {
                Value::String(s) if !s.is_empty() => text.push_str(s),
                _ => {
                    use std::fmt::Write;
                    // Writing to a String cannot fail.
                    let _ = write!(text, "[EMPTY_{i}]");
                }
            }
            // Within u32: bounded by `len`, checked above.
            ends.push(text.len() as u32);
        }
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut ids = HashTable::with_capacity(ends.len());
        let piece = |id: u32| piece_in(&text, &ends, id);
        for id in 0..ends.len() as u32 {
            let p = piece(id);
            let hash = hasher.hash_one(p);
            match ids.entry(hash, |&j| piece(j) == p, |&j| hasher.hash_one(piece(j))) {
                Entry::Occupied(mut e) => *e.get_mut() = id,
                Entry::Vacant(e) => {
                    e.insert(id);
                }
            }
        }
        Ok(Self {
            text,
            ends,
            ids,
            hasher,
        })
    }

    /// How many pieces there are.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The piece of `id`, if it exists.
    pub(super) fn get(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.ends.len()).then(|| piece_in(&self.text, &self.ends, id))
    }

    /// The id whose piece is `text` exactly.
    pub(super) fn id(&self, text: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(text);
        self.ids
            .find(hash, |&j| piece_in(&self.text, &self.ends, j) == text)
            .copied()
    }

    /// Every piece, by id.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len() as u32).map(|id| piece_in(&self.text, &self.ends, id))
    }
}

/// Piece `id` of `text` split at `ends` (`id` is in range; pieces end on character
/// boundaries, being whole strings pushed one after another).
fn piece_in<'t>(text: &'t str, ends: &[u32], id: u32) -> &'t str {
    let id = id as usize;
    let start = match id {
        0 => 0,
        _ => ends.get(id - 1).map_or(0, |&e| e as usize),
    };
    let end = ends.get(id).map_or(start, |&e| e as usize);
    text.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(v: &[&str]) -> Pieces {
        let tokens: Vec<Value> = v.iter().map(|s| Value::String(s.to_string())).collect();
        Pieces::new(&tokens).unwrap()
    }

    #[test]
    fn lookups_empty_pieces_and_duplicates() {
        let p = pieces(&["a", "", "bé", "a", "c"]);
        assert_eq!(p.len(), 5);
        assert_eq!(p.get(1), Some("[EMPTY_1]"));
        assert_eq!(p.get(2), Some("bé"));
        assert_eq!(p.get(5), None);
        // The later duplicate owns the text; the earlier one keeps its piece.
        assert_eq!(p.id("a"), Some(3));
        assert_eq!(p.get(0), Some("a"));
        assert_eq!(p.id("[EMPTY_1]"), Some(1));
        assert_eq!(p.id("b"), None);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            ["a", "[EMPTY_1]", "bé", "a", "c"]
        );
    }

    #[test]
    fn non_strings_are_refused() {
        let tokens = [Value::String("a".into()), Value::U32(1)];
        let err = Pieces::new(&tokens).err().unwrap();
        assert!(err.contains("tokens[1]"), "{err}");
    }
}
