//! Weights as integer quants for VNNI dot products, repacked once at load from the GGUF's
//! blocks, and activations quantized to 8 bits per 32 values before every product.
//!
//! Every GGUF format Atelier's default models use is a per-block affine map of small unsigned
//! integers: `w = scale * u + min` (Q4_1, Q5_1, Q4_K, Q5_K), or `w = scale * (u - offset)`
//! (Q4_0, Q5_0, Q8_0, Q6_K). Both forms are kept **exactly** (the scales are f32 products of
//! the stored f16 and 6/8-bit sub-scales), so the integer dot products equal llama.cpp's
//! and only the activation rounding differs (finer here: one scale per 32 values, where
//! llama.cpp uses one per 256 for the k-quants). Formats without an exact form (F16, BF16,
//! F32, Q2_K, Q3_K, ...) are re-quantized to 8 bits per 32 values, like Q8_0.
//!
//! Layout: rows in groups of 16, blocks along `k`; for each (group, block) the quants of the
//! 16 rows interleave in 4-value steps, so one 64-byte load holds 4 consecutive values of
//! all 16 rows — the operand shape of `vpdpbusd` (16 lanes, each summing 4 u8 x i8 products).
//! No horizontal sums: a 16-row group accumulates in one register. Decoding is bound by
//! memory traffic, so storage stays close to the GGUF's size: 4-bit formats keep their
//! nibbles (values `j` and `j + 4` of an 8-value step share a byte), 5-bit formats add one
//! bit plane (a 64-bit mask per register, OR-ed in with one masked instruction), and scales
//! that are f16 in the file stay f16.

use candle_core::quantized::GgmlDType;

use super::blocks::FactorsMut;
use super::read_at::ReadAt;

/// Bytes of the file each repacking task reads at once: large enough that a read's cost is
/// small, small enough to stay in a core's L2 cache while it is repacked.
const READ_CHUNK: usize = 256 << 10;
/// Tasks a matrix is repacked in at least (when it has that many 16-row groups).
const MIN_TASKS: usize = 8;
pub use super::blocks::{ACT_BLOCK, ActView, Bias, Factors, GROUP, MatView, Store};

/// Why a weight tensor cannot be repacked.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The byte length does not match the shape and format.
    #[error("tensor '{name}': {got} bytes where {format:?} {rows}x{cols} needs {want}")]
    Size {
        /// Tensor name.
        name: String,
        /// Its GGUF format.
        format: GgmlDType,
        /// Output rows.
        rows: usize,
        /// Input columns.
        cols: usize,
        /// Bytes present.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The row length is not a whole number of the format's blocks.
    #[error("tensor '{name}': rows of {cols} values do not split into {format:?} blocks")]
    Shape {
        /// Tensor name.
        name: String,
        /// Its GGUF format.
        format: GgmlDType,
        /// Input columns.
        cols: usize,
    },
    /// A shape whose size overflows (a hostile or damaged header).
    #[error("tensor '{name}': a {rows}x{cols} matrix is too large to hold")]
    TooLarge {
        /// Tensor name.
        name: String,
        /// Output rows.
        rows: usize,
        /// Input columns.
        cols: usize,
    },
    /// A format whose fallback (dequantize with candle) failed.
    #[error("tensor '{name}': {detail}")]
    Other {
        /// Tensor name.
        name: String,
        /// What failed.
        detail: String,
    },
}

/// A weight matrix `rows x cols` (`y = W x`) as interleaved integer quants.
pub struct QMatrix {
    rows: usize,
    cols: usize,
    layout: Layout,
    /// `groups x blocks x group_block_bytes`, laid out as described in the module doc.
    quants: Vec<u8>,
    /// `groups x blocks x GROUP`.
    scales: Factors,
    /// `groups x blocks x GROUP` (empty unless `bias == Min`).
    mins: Factors,
}

/// The storage parameters of a matrix.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Values per block along `cols`: 16 (Q6_K) or 32.
    block: usize,
    store: Store,
    bias: Bias,
    /// Scales and mins in f16.
    half: bool,
}

impl Layout {
    /// Writes one decoded row into lane `lane` of its group's buffers (four values at a time:
    /// this runs once per weight at load).
    fn set_row(
        &self,
        lane: usize,
        blocks: usize,
        row: &RowQuants,
        quants: &mut [u8],
        scales: &mut FactorsMut<'_>,
        mins: &mut FactorsMut<'_>,
    ) {
        for b in 0..blocks {
            scales.set(b * GROUP + lane, row.scales[b]);
            if self.bias == Bias::Min {
                mins.set(b * GROUP + lane, row.mins[b]);
            }
        }
        let pgb = self.store.group_block_bytes(self.block);
        let word = |four: &[u8]| u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
        let blocks_of = quants
            .chunks_exact_mut(pgb)
            .zip(row.u.chunks_exact(self.block));
        for (q, u) in blocks_of.take(blocks) {
            match self.store {
                Store::Nib4 | Store::Nib5 => {
                    // Values j and j + 4 of each 8-value step share a byte (low, high nibble).
                    for (c, eight) in u.chunks_exact(8).enumerate() {
                        const LOW: u32 = 0x0F0F_0F0F;
                        let v = (word(&eight[..4]) & LOW) | ((word(&eight[4..]) & LOW) << 4);
                        q[c * 64 + lane * 4..c * 64 + lane * 4 + 4]
                            .copy_from_slice(&v.to_le_bytes());
                    }
                    if self.store == Store::Nib5 {
                        // Register s holds values 4s..4s+4 of every row; its mask has one bit
                        // per byte lane (row * 4 + j). The multiply gathers the four fifth
                        // bits (one per byte) into bits 24..28, value j at bit 24 + j.
                        let planes = &mut q[GROUP * self.block / 2..];
                        for (s, four) in u.chunks_exact(4).enumerate() {
                            let fifth = (word(four) >> 4) & 0x0101_0101;
                            let bits = (fifth.wrapping_mul(0x0102_0408) >> 24) as u8 & 0xF;
                            planes[s * 8 + lane / 2] |= bits << ((lane % 2) * 4);
                        }
                    }
                }
                Store::Byte => {
                    for (s, four) in u.chunks_exact(4).enumerate() {
                        q[s * 64 + lane * 4..s * 64 + lane * 4 + 4].copy_from_slice(four);
                    }
                }
            }
        }
    }

    /// The unsigned quant of value `v` (of the block at `q`) in row `lane`.
    fn quant(&self, q: &[u8], lane: usize, v: usize) -> u8 {
        match self.store {
            Store::Byte => q[(v / 4) * 64 + lane * 4 + v % 4],
            Store::Nib4 | Store::Nib5 => {
                let (c, j) = (v / 8, v % 8);
                let byte = q[c * 64 + lane * 4 + j % 4];
                let low = if j < 4 { byte & 0xF } else { byte >> 4 };
                if self.store == Store::Nib5 {
                    let bit = lane * 4 + v % 4;
                    let planes = &q[GROUP * self.block / 2..];
                    low | (((planes[(v / 4) * 8 + bit / 8] >> (bit % 8)) & 1) << 4)
                } else {
                    low
                }
            }
        }
    }
}

/// One row decoded from a GGUF block format: unsigned quants plus per-block scale (and min).
#[derive(Default)]
struct RowQuants {
    u: Vec<u8>,
    scales: Vec<f32>,
    mins: Vec<f32>,
}

/// The low nibble of every byte.
const NIBBLES: u128 = u128::from_le_bytes([0x0F; 16]);

/// The 16 bytes at `i`, little-endian.
fn u128_at(b: &[u8], i: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[i..i + 16]);
    u128::from_le_bytes(a)
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The storage this crate uses for a GGUF format, with the bytes and values of one GGUF
/// block; `None` for formats that are re-quantized.
fn layout_of(format: GgmlDType) -> Option<(Layout, usize, usize)> {
    let l = |block, store, bias, half| Layout {
        block,
        store,
        bias,
        half,
    };
    Some(match format {
        GgmlDType::Q4_0 => (l(32, Store::Nib4, Bias::Offset(8), true), 18, 32),
        GgmlDType::Q4_1 => (l(32, Store::Nib4, Bias::Min, true), 20, 32),
        GgmlDType::Q5_0 => (l(32, Store::Nib5, Bias::Offset(16), true), 22, 32),
        GgmlDType::Q5_1 => (l(32, Store::Nib5, Bias::Min, true), 24, 32),
        GgmlDType::Q8_0 => (l(32, Store::Byte, Bias::Offset(128), true), 34, 32),
        GgmlDType::Q4K => (l(32, Store::Nib4, Bias::Min, false), 144, 256),
        GgmlDType::Q5K => (l(32, Store::Nib5, Bias::Min, false), 176, 256),
        GgmlDType::Q6K => (l(16, Store::Byte, Bias::Offset(128), false), 210, 256),
        _ => return None,
    })
}

/// Where re-quantized formats go: like Q8_0.
const REQUANTIZED: Layout = Layout {
    block: 32,
    store: Store::Byte,
    bias: Bias::Offset(128),
    half: true,
};

/// Decodes one row of GGUF k-quant blocks (`src`, `cols` values) into unsigned quants and
/// scales (the 32-value formats go through [`repack_row_directly`]). ggml's
/// `dequantize_row_*` define every format; each arm follows its function.
fn decode_row(format: GgmlDType, src: &[u8], cols: usize, out: &mut RowQuants) {
    out.u.clear();
    out.u.resize(cols, 0);
    out.scales.clear();
    out.mins.clear();
    let u = &mut out.u;
    match format {
        GgmlDType::Q4K | GgmlDType::Q5K => {
            let bs = if format == GgmlDType::Q4K { 144 } else { 176 };
            for (s, blk) in src.chunks_exact(bs).enumerate() {
                let d = f16_at(blk, 0);
                let dmin = f16_at(blk, 2);
                let scales = &blk[4..16];
                let (qh, ql) = if format == GgmlDType::Q5K {
                    (&blk[16..48], &blk[48..176])
                } else {
                    (&blk[0..0], &blk[16..144])
                };
                for j in 0..4 {
                    let q = &ql[j * 32..j * 32 + 32];
                    for half in 0..2 {
                        let (sc, m) = scale_min_k4(2 * j + half, scales);
                        out.scales.push(d * sc as f32);
                        out.mins.push(-(dmin * m as f32));
                        let base = s * 256 + j * 64 + half * 32;
                        for l in 0..32 {
                            let nib = if half == 0 { q[l] & 0xF } else { q[l] >> 4 };
                            let high = if qh.is_empty() {
                                0
                            } else {
                                ((qh[l] >> (2 * j + half)) & 1) << 4
                            };
                            u[base + l] = nib | high;
                        }
                    }
                }
            }
        }
        GgmlDType::Q6K => {
            for (s, blk) in src.chunks_exact(210).enumerate() {
                let d = f16_at(blk, 208);
                let sc = &blk[192..208];
                for n in 0..2 {
                    let ql = &blk[n * 64..n * 64 + 64];
                    let qh = &blk[128 + n * 32..128 + n * 32 + 32];
                    let y = s * 256 + n * 128;
                    for l in 0..32 {
                        let q1 = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                        let q2 = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                        let q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                        let q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                        // Signed q - 32, stored as q - 32 + 128.
                        u[y + l] = q1 + 96;
                        u[y + l + 32] = q2 + 96;
                        u[y + l + 64] = q3 + 96;
                        u[y + l + 96] = q4 + 96;
                    }
                    for i in 0..8 {
                        out.scales.push(d * sc[n * 8 + i] as i8 as f32);
                    }
                }
            }
        }
        _ => unreachable_format(),
    }
}

/// Repacks one row of a 32-value format straight from its GGUF blocks into lane `lane` (no
/// intermediate quants: the bulk of a load is these formats); `false` for other formats.
fn repack_row_directly(
    format: GgmlDType,
    src: &[u8],
    lane: usize,
    pgb: usize,
    (quants, scales, mins): (&mut [u8], &mut FactorsMut<'_>, &mut FactorsMut<'_>),
) -> bool {
    let (bs, has_min) = match format {
        GgmlDType::Q4_0 => (18, false),
        GgmlDType::Q4_1 => (20, true),
        GgmlDType::Q5_0 => (22, false),
        GgmlDType::Q5_1 => (24, true),
        GgmlDType::Q8_0 => (34, false),
        _ => return false,
    };
    let put = |q: &mut [u8], at: usize, v: u32| q[at..at + 4].copy_from_slice(&v.to_le_bytes());
    for (b, (blk, q)) in src
        .chunks_exact(bs)
        .zip(quants.chunks_exact_mut(pgb))
        .enumerate()
    {
        // These formats' f16 factors are stored as they are.
        scales.set_half(b * GROUP + lane, u16::from_le_bytes([blk[0], blk[1]]));
        if has_min {
            mins.set_half(b * GROUP + lane, u16::from_le_bytes([blk[2], blk[3]]));
        }
        if format == GgmlDType::Q8_0 {
            // Register s holds values 4s..4s+4 of every row, signed q stored as q + 128.
            for s in 0..8 {
                let at = 2 + 4 * s;
                let w = u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]);
                put(q, s * 64 + lane * 4, w ^ 0x8080_8080);
            }
            continue;
        }
        // Byte j of the block's nibbles holds value j (low) and value j + 16 (high); register
        // c holds values 8c..8c+4 in low nibbles and 8c+4..8c+8 in high ones.
        let qs = u128_at(blk, bs - 16);
        let (low, high) = (qs & NIBBLES, (qs >> 4) & NIBBLES);
        for (c, x) in [low, low >> 64, high, high >> 64].into_iter().enumerate() {
            put(q, c * 64 + lane * 4, (x as u32) | (((x >> 32) as u32) << 4));
        }
        if matches!(format, GgmlDType::Q5_0 | GgmlDType::Q5_1) {
            // Bit j of `qh` is value j's fifth bit; register s's plane takes values 4s..4s+4.
            let h = if has_min { 4 } else { 2 };
            let qh = u32::from_le_bytes([blk[h], blk[h + 1], blk[h + 2], blk[h + 3]]);
            let planes = &mut q[GROUP * 32 / 2..];
            for s in 0..8 {
                planes[s * 8 + lane / 2] |= (((qh >> (4 * s)) & 0xF) as u8) << ((lane % 2) * 4);
            }
        }
    }
    true
}

#[cold]
fn unreachable_format() {
    // `layout_of` returned Some only for the formats handled above.
    debug_assert!(false, "decode_row called for a format it does not decode");
}

/// Quantizes a row of floats to the Q8_0-like form (`u = round(w / d) + 128`, 32 per block).
fn requantize_row(w: &[f32], out: &mut RowQuants) {
    out.u.clear();
    out.scales.clear();
    out.mins.clear();
    for blk in w.chunks(32) {
        let amax = blk.iter().fold(0f32, |a, &x| a.max(x.abs()));
        // The scale is stored in f16: quantize against the stored value.
        let d = half::f16::from_f32(amax / 127.0).to_f32();
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.scales.push(d);
        out.u.extend(
            blk.iter()
                .map(|&x| ((x * id).round().clamp(-127.0, 127.0) as i32 + 128) as u8),
        );
    }
}

impl QMatrix {
    /// Repacks a GGUF tensor: `data` holds `rows` rows of `cols` values in `format`.
    /// `dequantize` is called only for formats without an exact integer form; it must return
    /// the `rows * cols` weights as f32.
    pub fn from_gguf(
        name: &str,
        format: GgmlDType,
        rows: usize,
        cols: usize,
        data: &[u8],
        dequantize: impl FnOnce() -> Result<Vec<f32>, String>,
    ) -> Result<Self, QuantError> {
        Self::from_source(name, format, rows, cols, data, 0, data.len(), dequantize)
    }

    /// [`QMatrix::from_gguf`] for a tensor of `bytes` bytes at `offset` in `source`: the
    /// threads repacking it each read the rows they repack, so no copy of the whole tensor is
    /// ever held (Gemma 3's embedding table is 178 MB).
    #[allow(clippy::too_many_arguments)]
    pub fn from_source<S: ReadAt + Sync + ?Sized>(
        name: &str,
        format: GgmlDType,
        rows: usize,
        cols: usize,
        source: &S,
        offset: u64,
        bytes: usize,
        dequantize: impl FnOnce() -> Result<Vec<f32>, String>,
    ) -> Result<Self, QuantError> {
        let too_large = || QuantError::TooLarge {
            name: name.into(),
            rows,
            cols,
        };
        let known = layout_of(format);
        let per = known.map_or(32, |(_, _, per)| per);
        if cols == 0 || !cols.is_multiple_of(per) {
            return Err(QuantError::Shape {
                name: name.into(),
                format,
                cols,
            });
        }
        let layout = known.map_or(REQUANTIZED, |(l, _, _)| l);
        let (row_bytes, float) = match known {
            Some((_, block_bytes, _)) => {
                let rb = cols / per * block_bytes;
                let want = rb.checked_mul(rows).ok_or_else(too_large)?;
                if bytes != want {
                    return Err(QuantError::Size {
                        name: name.into(),
                        format,
                        rows,
                        cols,
                        got: bytes,
                        want,
                    });
                }
                (rb, Vec::new())
            }
            None => {
                let float = dequantize().map_err(|detail| QuantError::Other {
                    name: name.into(),
                    detail,
                })?;
                if Some(float.len()) != rows.checked_mul(cols) {
                    return Err(QuantError::Other {
                        name: name.into(),
                        detail: format!("{} values for a {rows}x{cols} matrix", float.len()),
                    });
                }
                (0, float)
            }
        };
        let mut m = Self::empty(rows, cols, layout).ok_or_else(too_large)?;
        // Groups of 16 rows own disjoint, contiguous parts of every buffer: repack them in
        // parallel, a few groups per task (about READ_CHUNK bytes of the file each).
        let blocks = m.blocks();
        let pgb = layout.store.group_block_bytes(layout.block);
        // Small matrices still split into several tasks, so that every thread has work.
        let per_task = (READ_CHUNK / (GROUP * row_bytes.max(1)))
            .min(m.groups().div_ceil(MIN_TASKS))
            .max(1);
        let mut scales = m.scales.chunks_mut(per_task * blocks * GROUP);
        let mut mins: Vec<FactorsMut<'_>> = if layout.bias == Bias::Min {
            m.mins.chunks_mut(per_task * blocks * GROUP)
        } else {
            (0..scales.len())
                .map(|_| FactorsMut::F32(&mut []))
                .collect()
        };
        // Padding rows of the last group: zero scales, and for byte offsets the quants of a
        // zero weight, which keeps their integer sums small too.
        let padding = match (layout.store, layout.bias) {
            (Store::Byte, Bias::Offset(o)) => Some(RowQuants {
                u: vec![o as u8; cols],
                scales: vec![0.0; blocks],
                mins: Vec::new(),
            }),
            _ => None,
        };
        let read_error = |e: std::io::Error| QuantError::Other {
            name: name.into(),
            detail: format!("cannot read it: {e}"),
        };
        use rayon::prelude::*;
        m.quants
            .par_chunks_mut(per_task * blocks * pgb)
            .zip(scales.par_iter_mut())
            .zip(mins.par_iter_mut())
            .enumerate()
            .try_for_each_init(
                || (Vec::new(), RowQuants::default()),
                |(buf, row), (t, ((quants, scales), mins))| {
                    let first = t * per_task * GROUP;
                    let last = (first + per_task * GROUP).min(rows);
                    if known.is_some() {
                        buf.resize((last - first) * row_bytes, 0);
                        // Within the tensor, whose size was checked above (a source
                        // shorter than it fails the read).
                        let at = offset.saturating_add((first * row_bytes) as u64);
                        source.read_exact_at(buf, at).map_err(read_error)?;
                    }
                    let n = quants.len() / (blocks * pgb);
                    let groups = quants.chunks_exact_mut(blocks * pgb);
                    let metas = scales.chunks_mut(blocks * GROUP, n);
                    let biases = mins.chunks_mut(blocks * GROUP, n);
                    let each = groups.zip(metas).zip(biases).enumerate();
                    for (g, ((quants, mut scales), mut mins)) in each {
                        for lane in 0..GROUP {
                            let r = first + g * GROUP + lane;
                            let src = if r < rows {
                                match known {
                                    Some(_) => {
                                        let at = (r - first) * row_bytes;
                                        let src = &buf[at..at + row_bytes];
                                        let dst = (&mut *quants, &mut scales, &mut mins);
                                        if repack_row_directly(format, src, lane, pgb, dst) {
                                            continue;
                                        }
                                        decode_row(format, src, cols, row);
                                    }
                                    None => requantize_row(&float[r * cols..(r + 1) * cols], row),
                                }
                                &*row
                            } else if let Some(pad) = &padding {
                                pad
                            } else {
                                break;
                            };
                            layout.set_row(lane, blocks, src, quants, &mut scales, &mut mins);
                        }
                    }
                    Ok(())
                },
            )?;
        Ok(m)
    }

    /// Whether `format` is repacked exactly (else it is dequantized and re-quantized).
    pub fn keeps_exactly(format: GgmlDType) -> bool {
        layout_of(format).is_some()
    }

    /// Zeroed storage for a `rows x cols` matrix; `None` if its size overflows.
    fn empty(rows: usize, cols: usize, layout: Layout) -> Option<Self> {
        let groups = rows.div_ceil(GROUP);
        let blocks = cols / layout.block;
        let metas = groups.checked_mul(blocks)?.checked_mul(GROUP)?;
        let quant_bytes = groups
            .checked_mul(blocks)?
            .checked_mul(layout.store.group_block_bytes(layout.block))?;
        // Written in full by the repack (padding rows included), so left untouched here.
        let quants = crate::models::huge_pages::zeroed(quant_bytes);
        let min_len = if layout.bias == Bias::Min { metas } else { 0 };
        Some(Self {
            rows,
            cols,
            layout,
            quants,
            scales: Factors::new(layout.half, metas),
            mins: Factors::new(layout.half, min_len),
        })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Values per block (activations for this matrix keep sums per block).
    pub fn block(&self) -> usize {
        self.layout.block
    }

    fn blocks(&self) -> usize {
        self.cols / self.layout.block
    }

    fn groups(&self) -> usize {
        self.rows.div_ceil(GROUP)
    }

    /// Whether the SIMD kernel covers this matrix's storage (else the portable one runs).
    pub fn has_simd_kernel(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let l = self.layout;
            super::avx512::covers(l.store, l.block, l.bias == Bias::Min, l.half)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Bytes the kernels stream per product (what bounds decoding speed).
    pub fn bytes(&self) -> usize {
        let factor = if self.layout.half { 2 } else { 4 };
        self.quants.len() + (self.scales.len() + self.mins.len()) * factor
    }

    /// Decodes row `r` to floats (embedding lookups share the output projection's table).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let (g, lane) = (r / GROUP, r % GROUP);
        let (blocks, l) = (self.blocks(), self.layout);
        let pgb = l.store.group_block_bytes(l.block);
        for b in 0..blocks {
            let meta = (g * blocks + b) * GROUP + lane;
            let scale = self.scales.get(meta);
            let q = &self.quants[(g * blocks + b) * pgb..(g * blocks + b + 1) * pgb];
            for i in 0..l.block {
                let u = l.quant(q, lane, i);
                out[b * l.block + i] = match l.bias {
                    Bias::Offset(o) => scale * (u as i32 - o) as f32,
                    Bias::Min => scale * u as f32 + self.mins.get(meta),
                };
            }
        }
    }
}

/// Activations `m x k` quantized to i8 with one f32 scale per 32 values, plus the sums of the
/// quants per weight block (for the offset/min terms).
pub struct QActs {
    m: usize,
    k: usize,
    /// Values per sum: the weight block size these were prepared for.
    sum_block: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    sums: Vec<i32>,
}

impl QActs {
    /// An empty buffer, reused across calls.
    pub fn new() -> Self {
        Self {
            m: 0,
            k: 0,
            sum_block: ACT_BLOCK,
            q: Vec::new(),
            d: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// Quantizes `x` (`m` rows of `k`) for products with matrices of block size `sum_block`.
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize, sum_block: usize) {
        debug_assert_eq!(x.len(), m * k);
        debug_assert!(k.is_multiple_of(ACT_BLOCK) && ACT_BLOCK.is_multiple_of(sum_block));
        self.m = m;
        self.k = k;
        self.sum_block = sum_block;
        self.q.resize(m * k, 0);
        self.d.resize(m * k / ACT_BLOCK, 0.0);
        self.sums.resize(m * k / sum_block, 0);
        for (i, blk) in x.chunks_exact(ACT_BLOCK).enumerate() {
            // Lane-wise maxima, then one reduction: keeps the loop vectorized.
            let mut lanes = [0f32; 16];
            for half in blk.chunks_exact(16) {
                for (l, &v) in lanes.iter_mut().zip(half) {
                    *l = l.max(v.abs());
                }
            }
            let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            self.d[i] = d;
            let q = &mut self.q[i * ACT_BLOCK..(i + 1) * ACT_BLOCK];
            for (o, &v) in q.iter_mut().zip(blk) {
                // Ties to even, as llama.cpp's SIMD quantizers (and one instruction here).
                *o = (v * id).round_ties_even() as i8;
            }
        }
        for (s, q) in self.sums.iter_mut().zip(self.q.chunks_exact(sum_block)) {
            *s = q.iter().map(|&v| v as i32).sum();
        }
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Whether these were prepared for `w` (same `k` and block size).
    fn fits(&self, w: &QMatrix) -> bool {
        self.k == w.cols && self.sum_block == w.block()
    }
}

impl Default for QActs {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether the fast kernels run on this CPU (AVX-512 with VNNI).
pub fn fast_kernels_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX2 kernel runs on this CPU (AVX2, FMA, F16C: x86 CPUs since 2013-2015).
pub fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Which kernel computes a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI.
    Vnni,
    /// AVX2 (`vpmaddubsw`), for CPUs without AVX-512 VNNI.
    Avx2,
    /// Plain Rust (the reference the fast kernels are tested against).
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        if fast_kernels_available() {
            Self::Vnni
        } else if avx2_available() {
            Self::Avx2
        } else {
            Self::Portable
        }
    }
}

/// The `m x n` output that tiles on different threads write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr {
    ptr: *mut f32,
    n: usize,
}
// SAFETY: every tile writes its own columns (16-row groups) of the output; no two tasks
// touch the same element, and the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out = x W^T`: `out` is `m x rows` row-major. Runs on the current rayon pool.
pub fn matmul(kernel: Kernel, x: &QActs, w: &QMatrix, out: &mut [f32]) {
    assert!(x.fits(w), "activations quantized for another matrix shape");
    let (m, n) = (x.m, w.rows);
    assert_eq!(out.len(), m * n);
    let groups = w.groups();
    // Groups per task: a few tasks per thread balance the load without drowning small
    // decode matrices in scheduling.
    let threads = rayon::current_num_threads().max(1);
    let per_task = groups.div_ceil(threads * if m > 1 { 4 } else { 1 }).max(1);
    let tasks = groups.div_ceil(per_task);
    let out = OutPtr {
        ptr: out.as_mut_ptr(),
        n,
    };
    let run = |task: usize| {
        let g0 = task * per_task;
        let g1 = (g0 + per_task).min(groups);
        for g in g0..g1 {
            let mut t = 0;
            while t < m {
                let left = m - t;
                let tile = if left >= 8 {
                    8
                } else if left >= 4 {
                    4
                } else if left >= 2 {
                    2
                } else {
                    1
                };
                // SAFETY: group `g` owns output columns 16g..16g+16 of rows t..t+tile.
                unsafe { tile_dispatch(kernel, tile, w, g, x, t, out) };
                t += tile;
            }
        }
    };
    if tasks == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(run);
    }
}

/// Computes output rows `t..t + tile` x columns of group `g`.
///
/// # Safety
/// `out` must point to an `m x n` buffer; columns past `n` of the last group are skipped.
unsafe fn tile_dispatch(
    kernel: Kernel,
    tile: usize,
    w: &QMatrix,
    g: usize,
    x: &QActs,
    t: usize,
    out: OutPtr,
) {
    let n = out.n;
    let mut acc = [[0f32; GROUP]; 8];
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Vnni` is only chosen when the CPU has the features.
        Kernel::Vnni
            if unsafe { super::avx512::tile(tile, w.view(), g, x.view(), t, &mut acc) } => {}
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is only chosen when the CPU has the features.
        Kernel::Avx2 if unsafe { super::avx2::tile(tile, w.view(), g, x.view(), t, &mut acc) } => {}
        _ => portable_tile(tile, w.view(), g, x.view(), t, &mut acc),
    }
    let cols = GROUP.min(n - g * GROUP);
    for (i, row) in acc.iter().take(tile).enumerate() {
        // SAFETY: row t + i < m and columns g*16..g*16+cols < n lie inside the buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(row.as_ptr(), out.ptr.add((t + i) * n + g * GROUP), cols)
        };
    }
}

impl QMatrix {
    fn view(&self) -> MatView<'_> {
        MatView {
            block: self.layout.block,
            store: self.layout.store,
            bias: self.layout.bias,
            blocks: self.blocks(),
            quants: &self.quants,
            scales: &self.scales,
            mins: &self.mins,
        }
    }
}

impl QActs {
    fn view(&self) -> ActView<'_> {
        ActView {
            k: self.k,
            sum_block: self.sum_block,
            q: &self.q,
            d: &self.d,
            sums: &self.sums,
        }
    }
}

/// The plain-Rust kernel: the same integer dot products and float steps as the SIMD one.
fn portable_tile(
    tile: usize,
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let l = Layout {
        block: w.block,
        store: w.store,
        bias: w.bias,
        half: false,
    };
    let pgb = w.store.group_block_bytes(w.block);
    for b in 0..w.blocks {
        let q = &w.quants[(g * w.blocks + b) * pgb..(g * w.blocks + b + 1) * pgb];
        let meta = (g * w.blocks + b) * GROUP;
        for (i, out) in acc.iter_mut().take(tile).enumerate() {
            let row = t + i;
            let xq = &x.q[row * x.k + b * w.block..row * x.k + (b + 1) * w.block];
            let dx = x.d[(row * x.k + b * w.block) / ACT_BLOCK];
            let sum = x.sums[(row * x.k) / x.sum_block + b];
            for (lane, o) in out.iter_mut().enumerate() {
                let mut dot = 0i32;
                for (v, &xv) in xq.iter().enumerate() {
                    dot += l.quant(q, lane, v) as i32 * xv as i32;
                }
                if let Bias::Offset(off) = w.bias {
                    dot -= off * sum;
                }
                *o = (dot as f32).mul_add(w.scales.get(meta + lane) * dx, *o);
                if w.bias == Bias::Min {
                    *o = w.mins.get(meta + lane).mul_add(dx * sum as f32, *o);
                }
            }
        }
    }
}
