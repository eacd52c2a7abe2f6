//! Causal grouped-query attention over a growing key/value cache, with an optional sliding
//! window (Gemma 3's local layers hide keys `window` or more positions back).

use rayon::prelude::*;

use super::ops;

/// Keys and values of one layer, one row of `kv_heads * head_dim` per position.
pub struct KvCache {
    width: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// An empty cache for rows of `width` values.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            k: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.k.len() / self.width
    }

    /// Keeps the first `len` positions (rewinding a sequence, or clearing it with 0).
    pub fn truncate(&mut self, len: usize) {
        self.k.truncate(len * self.width);
        self.v.truncate(len * self.width);
    }

    /// Appends the rows of `k` and `v` (equal lengths, whole rows).
    pub fn append(&mut self, k: &[f32], v: &[f32]) {
        self.k.extend_from_slice(k);
        self.v.extend_from_slice(v);
    }
}

/// Head layout and masking of one layer.
#[derive(Clone, Copy)]
pub struct Shape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (query heads share them in consecutive groups).
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Multiplies the scores.
    pub scale: f32,
    /// Sliding window, if any.
    pub window: Option<usize>,
}

/// Queries per parallel task.
const QUERY_TILE: usize = 16;

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes the output of its own (head, query range): disjoint slices.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out[i, h] = softmax(q[i, h] . K / sqrt) V` for the `q.len() / (heads * head_dim)` queries
/// at positions `pos..`, whose keys are already in `cache`.
pub fn attend(q: &[f32], cache: &KvCache, pos: usize, s: Shape, out: &mut [f32]) {
    let qw = s.heads * s.head_dim;
    let m = q.len() / qw;
    assert_eq!(cache.len(), pos + m, "cache holds the chunk's keys");
    assert_eq!(out.len(), m * qw);
    let group = s.heads / s.kv_heads;
    let tiles = m.div_ceil(QUERY_TILE);
    let ptr = OutPtr(out.as_mut_ptr());
    (0..s.heads * tiles).into_par_iter().for_each(|task| {
        let ptr = ptr;
        let (h, tile) = (task / tiles, task % tiles);
        let kvh = h / group;
        let mut scores = Vec::new();
        let mut acc = vec![0f32; s.head_dim];
        for i in tile * QUERY_TILE..((tile + 1) * QUERY_TILE).min(m) {
            let p = pos + i;
            let lo = s.window.map_or(0, |w| (p + 1).saturating_sub(w));
            let qh = &q[i * qw + h * s.head_dim..i * qw + (h + 1) * s.head_dim];
            scores.clear();
            for j in lo..=p {
                let k = &cache.k[j * cache.width + kvh * s.head_dim..][..s.head_dim];
                scores.push(ops::dot(qh, k) * s.scale);
            }
            ops::softmax(&mut scores);
            acc.fill(0.0);
            for (j, &w) in (lo..=p).zip(&scores) {
                let v = &cache.v[j * cache.width + kvh * s.head_dim..][..s.head_dim];
                ops::axpy(&mut acc, w, v);
            }
            // SAFETY: (query i, head h) is written by this task only, inside `out`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    acc.as_ptr(),
                    ptr.0.add(i * qw + h * s.head_dim),
                    s.head_dim,
                )
            };
        }
    });
}
