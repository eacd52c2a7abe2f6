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
const QUERY_TILE: usize = 32;

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes the output of its own (head, query range): disjoint slices.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out[i, h] = softmax(q[i, h] . K * scale) V` for the `q.len() / (heads * head_dim)`
/// queries at positions `pos..`, whose keys are already in `cache`.
pub fn attend(q: &[f32], cache: &KvCache, pos: usize, s: Shape, out: &mut [f32]) {
    let qw = s.heads * s.head_dim;
    let m = q.len() / qw;
    assert_eq!(cache.len(), pos + m, "cache holds the chunk's keys");
    assert_eq!(out.len(), m * qw);
    let tiles = m.div_ceil(QUERY_TILE);
    let ptr = OutPtr(out.as_mut_ptr());
    (0..s.heads * tiles).into_par_iter().for_each(|task| {
        let (h, tile) = (task / tiles, task % tiles);
        let i0 = tile * QUERY_TILE;
        let i1 = (i0 + QUERY_TILE).min(m);
        tile_gemm(q, cache, pos, s, h, i0..i1, ptr);
    });
}

/// The keys query `i` (at position `pos + i`) sees: `lo..=p`.
fn key_range(s: &Shape, p: usize) -> (usize, usize) {
    (s.window.map_or(0, |w| (p + 1).saturating_sub(w)), p)
}

/// Queries `rows` of head `h`: scores = Q K^T (one GEMM over every key any of them sees),
/// masked softmax per row, then out = P V (a second GEMM, written in place).
fn tile_gemm(
    q: &[f32],
    cache: &KvCache,
    pos: usize,
    s: Shape,
    h: usize,
    rows: std::ops::Range<usize>,
    out: OutPtr,
) {
    let qw = s.heads * s.head_dim;
    let hd = s.head_dim;
    let kvh = h / (s.heads / s.kv_heads);
    let (lo, _) = key_range(&s, pos + rows.start);
    let (_, hi) = key_range(&s, pos + rows.end - 1);
    let (tq, nk) = (rows.len(), hi + 1 - lo);
    let mut scores = vec![0f32; tq * nk];
    let kbase = &cache.k[lo * cache.width + kvh * hd..];
    let vbase = &cache.v[lo * cache.width + kvh * hd..];
    // SAFETY: the strides address Q rows `rows` of head h, keys lo..=hi of KV head kvh and
    // the scores buffer, all in bounds; out's (rows, head h) block belongs to this task.
    unsafe {
        gemm::gemm(
            tq,
            nk,
            hd,
            scores.as_mut_ptr(),
            1,
            nk as isize,
            false,
            q.as_ptr().add(rows.start * qw + h * hd),
            1,
            qw as isize,
            kbase.as_ptr(),
            cache.width as isize,
            1,
            0.0,
            s.scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    for (r, row) in scores.chunks_exact_mut(nk).enumerate() {
        let (l, p) = key_range(&s, pos + rows.start + r);
        let (a, b) = (l - lo, p - lo + 1);
        row[..a].fill(0.0);
        row[b..].fill(0.0);
        ops::softmax(&mut row[a..b]);
    }
    // SAFETY: as above; P is tq x nk, V rows lo..=hi, the output block tq x hd at stride qw.
    unsafe {
        gemm::gemm(
            tq,
            hd,
            nk,
            out.0.add(rows.start * qw + h * hd),
            1,
            qw as isize,
            false,
            scores.as_ptr(),
            1,
            nk as isize,
            vbase.as_ptr(),
            1,
            cache.width as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
