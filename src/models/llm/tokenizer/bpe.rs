//! Byte-level BPE for `gpt2` vocabularies: the merge table read from `tokenizer.ggml.merges`,
//! and the merge loop run on each pre-token.
//!
//! The table maps a pair of ids straight to its rank and merged id, built from the
//! vocabulary's [`Pieces`] without copying a string. The `tokenizers` crate's BPE, used before,
//! needed the vocabulary and merges as owned strings and built three string-keyed maps from
//! them: on SmolLM2 that was a third of the CPU of a model load, on a core the weights were
//! loading on. The merge loop is that crate's (`Word::merge_all`): the adjacent pair with the
//! lowest rank merges first, the leftmost on equal ranks, and a queued pair that no longer
//! stands (a neighbour merged first) is dropped. Its results are compared with the crate's on
//! the real vocabulary in `tests/tokenizer.rs`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use candle_core::quantized::gguf_file::Value;

use super::pieces::Pieces;

/// `tokenizer.ggml.merges`, by id pair.
pub(super) struct Merges {
    /// (left id, right id) → (rank, merged id).
    table: hashbrown::HashMap<(u32, u32), (u32, u32)>,
    /// A pre-token that is a piece is that piece, unmerged (llama 3's vocabularies).
    ignore_merges: bool,
}

/// One symbol of a word being merged: a piece, linked to its live neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: Option<u32>,
    next: Option<u32>,
    /// Merged into its left neighbour.
    gone: bool,
}

impl Merges {
    /// The merges of `merges` (lines "left right") over `pieces`. Lines whose parts or result
    /// are not pieces are skipped (llama.cpp would fall back to bytes for them; the
    /// `tokenizers` crate, whose results these are, refused them), as is a later duplicate of
    /// a pair (llama.cpp's rank map keeps the first); ranks follow the order of the lines
    /// kept. `Err` says what is wrong.
    pub(super) fn new(
        merges: &[Value],
        pieces: &Pieces,
        ignore_merges: bool,
    ) -> Result<Self, String> {
        let mut table = hashbrown::HashMap::with_capacity(merges.len());
        let mut joined = String::new();
        let mut rank = 0u32;
        for v in merges {
            let Value::String(line) = v else {
                return Err("tokenizer.ggml.merges holds a non-string".into());
            };
            // llama.cpp splits at the first space after the first byte.
            let Some(split) = line.bytes().skip(1).position(|c| c == b' ').map(|i| i + 1) else {
                continue;
            };
            let (a, b) = (&line[..split], &line[split + 1..]);
            let (Some(ia), Some(ib)) = (pieces.id(a), pieces.id(b)) else {
                continue;
            };
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let Some(merged) = pieces.id(&joined) else {
                continue;
            };
            if let hashbrown::hash_map::Entry::Vacant(e) = table.entry((ia, ib)) {
                e.insert((rank, merged));
                rank += 1;
            }
        }
        Ok(Self {
            table,
            ignore_merges,
        })
    }

    /// Appends the ids of one pre-token (already in byte-level characters). A character that
    /// is not a piece is dropped, as the `tokenizers` crate does without an unknown token.
    pub(super) fn tokenize(&self, pieces: &Pieces, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges
            && let Some(id) = pieces.id(word)
        {
            out.push(id);
            return;
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut buf = [0u8; 4];
        for c in word.chars() {
            if let Some(id) = pieces.id(c.encode_utf8(&mut buf)) {
                let at = symbols.len() as u32;
                symbols.push(Symbol {
                    id,
                    prev: at.checked_sub(1),
                    next: Some(at + 1),
                    gone: false,
                });
            }
        }
        let Some(last) = symbols.last_mut() else {
            return;
        };
        last.next = None;

        // Min-heap on (rank, position): the lowest rank first, then the leftmost.
        let mut queue: BinaryHeap<Reverse<(u32, u32, u32)>> = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| {
                let &(rank, merged) = self.table.get(&(w[0].id, w[1].id))?;
                Some(Reverse((rank, pos as u32, merged)))
            })
            .collect();
        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let left = symbols[pos as usize];
            let Some(next) = left.next.filter(|_| !left.gone) else {
                continue;
            };
            let right = symbols[next as usize];
            // A pair queued before a neighbour merged may no longer stand.
            if self.table.get(&(left.id, right.id)).map(|m| m.1) != Some(merged) {
                continue;
            }
            symbols[pos as usize].id = merged;
            symbols[pos as usize].next = right.next;
            symbols[next as usize].gone = true;
            if let Some(after) = right.next {
                symbols[after as usize].prev = Some(pos);
            }
            if let Some(before) = left.prev
                && let Some(&(rank, m)) = self.table.get(&(symbols[before as usize].id, merged))
            {
                queue.push(Reverse((rank, before, m)));
            }
            if let Some(after) = right.next
                && let Some(&(rank, m)) = self.table.get(&(merged, symbols[after as usize].id))
            {
                queue.push(Reverse((rank, pos, m)));
            }
        }
        out.extend(symbols.iter().filter(|s| !s.gone).map(|s| s.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<Value> {
        v.iter().map(|s| Value::String(s.to_string())).collect()
    }

    fn run(merges: &Merges, pieces: &Pieces, word: &str) -> Vec<String> {
        let mut out = Vec::new();
        merges.tokenize(pieces, word, &mut out);
        out.iter()
            .map(|&id| pieces.get(id).unwrap_or("?").to_owned())
            .collect()
    }

    #[test]
    fn lowest_rank_first_then_leftmost_and_stale_pairs_are_dropped() {
        let pieces = Pieces::new(&strings(&[
            "a", "b", "c", "d", "ab", "bc", "cd", "abc", "abcd", "x",
        ]))
        .unwrap();
        // "b c" outranks "a b": "abcd" becomes a + bc + d, then nothing joins them (no
        // "a bc" merge); "ab" queued for position 0 is stale once b merged with c.
        let merges = Merges::new(
            &strings(&["b c", "a b", "c d", "ab c", "abc d", "zz", "a q"]),
            &pieces,
            false,
        )
        .unwrap();
        assert_eq!(run(&merges, &pieces, "abcd"), ["a", "bc", "d"]);
        // Without "b c": "a b", then "c d" outranks the newly queued "ab c", which is then
        // stale ("ab cd" is no merge).
        let merges =
            Merges::new(&strings(&["a b", "c d", "ab c", "abc d"]), &pieces, false).unwrap();
        assert_eq!(run(&merges, &pieces, "abcd"), ["ab", "cd"]);
        // With "ab c" first, everything joins.
        let merges =
            Merges::new(&strings(&["a b", "ab c", "abc d", "c d"]), &pieces, false).unwrap();
        assert_eq!(run(&merges, &pieces, "abcd"), ["abcd"]);
        // Equal pairs: the leftmost merges first ("aaa" → "aa a" style), and characters that
        // are not pieces are dropped.
        let pieces = Pieces::new(&strings(&["a", "aa"])).unwrap();
        let merges = Merges::new(&strings(&["a a"]), &pieces, false).unwrap();
        assert_eq!(run(&merges, &pieces, "aaa"), ["aa", "a"]);
        assert_eq!(run(&merges, &pieces, "aéa"), ["aa"]);
        assert_eq!(run(&merges, &pieces, ""), Vec::<String>::new());
    }

    #[test]
    fn ignore_merges_takes_a_whole_piece_and_bad_lines_are_skipped() {
        let pieces = Pieces::new(&strings(&["a", "b", "c", "ab", "abc"])).unwrap();
        let merges =
            Merges::new(&strings(&["a b", "nospace", " x", "b c"]), &pieces, true).unwrap();
        assert_eq!(run(&merges, &pieces, "abc"), ["abc"]);
        let merges = Merges::new(&strings(&["a b"]), &pieces, false).unwrap();
        assert_eq!(run(&merges, &pieces, "abc"), ["ab", "c"]);
        let bad = [Value::String("a b".into()), Value::U32(1)];
        assert!(Merges::new(&bad, &pieces, false).is_err());
    }
}
