//! The repacked weights' block layout as the kernels see it: group and block sizes, how quants
//! are stored and mapped back, their factors, and borrowed views of a matrix and of quantized
//! activations. Shared by [`super::quant`] (which builds them) and the SIMD kernels
//! ([`super::avx2`], [`super::avx512`]) that read them, so neither depends on the other.

/// Rows per interleaved group (one AVX-512 register of i32 lanes).
pub const GROUP: usize = 16;
/// Activations are quantized with one scale per this many values.
pub const ACT_BLOCK: usize = 32;

/// How a block's integers map back to weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// `w = scale * (u - offset)`.
    Offset(i32),
    /// `w = scale * u + min`, with a min per row and block.
    Min,
}

/// How a block's quants are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// Two 4-bit values per byte.
    Nib4,
    /// 4-bit nibbles plus a bit plane holding each value's fifth bit.
    Nib5,
    /// One byte per value.
    Byte,
}

impl Store {
    /// Bytes of one (16-row group, block).
    pub fn group_block_bytes(self, block: usize) -> usize {
        match self {
            Self::Nib4 => GROUP * block / 2,
            Self::Nib5 => GROUP * block / 2 + GROUP * block / 8,
            Self::Byte => GROUP * block,
        }
    }
}

/// [`Store`] as the SIMD kernels' const parameter.
pub const NIB4: u8 = 0;
/// [`Store::Nib5`] as a const parameter.
pub const NIB5: u8 = 1;
/// [`Store::Byte`] as a const parameter.
pub const BYTE: u8 = 2;

impl Store {
    /// The storage a kernel's const `STORE` code names.
    pub const fn of_code(code: u8) -> Self {
        match code {
            NIB4 => Self::Nib4,
            NIB5 => Self::Nib5,
            _ => Self::Byte,
        }
    }
}

/// Checks, once per tile, that `w`'s buffers hold group `g` and `x`'s hold activation rows
/// `t..t + rows`, so that a SIMD kernel's loop can use raw pointers; returns the bytes of one
/// (group, block). A failed check is a bug in the caller, not bad input: shapes are checked
/// at load.
pub fn check_tile(
    w: &MatView<'_>,
    g: usize,
    x: &ActView<'_>,
    t: usize,
    rows: usize,
    store: Store,
    block: usize,
) -> usize {
    let pgb = store.group_block_bytes(block);
    let end = g * w.blocks + w.blocks;
    assert!(w.quants.len() >= end * pgb && w.scales.len() >= end * GROUP);
    assert!(w.bias != Bias::Min || w.mins.len() >= end * GROUP);
    assert!(x.k == w.blocks * block && x.sum_block == block && x.q.len() >= (t + rows) * x.k);
    assert!(x.sums.len() >= (t + rows) * w.blocks && x.d.len() >= (t + rows) * x.k / ACT_BLOCK);
    pgb
}

/// Per-(row, block) factors, kept in f16 where the file's are f16 (exactly), else f32.
pub enum Factors {
    /// Half-precision bits.
    F16(Vec<u16>),
    /// Single precision.
    F32(Vec<f32>),
}

impl Factors {
    pub(super) fn new(half: bool, len: usize) -> Self {
        if half {
            Self::F16(crate::models::huge_pages::zeroed(len))
        } else {
            Self::F32(crate::models::huge_pages::zeroed(len))
        }
    }

    pub(super) fn get(&self, i: usize) -> f32 {
        match self {
            Self::F16(v) => half::f16::from_bits(v[i]).to_f32(),
            Self::F32(v) => v[i],
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    /// Disjoint mutable views of `chunk` factors each.
    pub(super) fn chunks_mut(&mut self, chunk: usize) -> Vec<FactorsMut<'_>> {
        match self {
            Self::F16(v) => v.chunks_mut(chunk).map(FactorsMut::F16).collect(),
            Self::F32(v) => v.chunks_mut(chunk).map(FactorsMut::F32).collect(),
        }
    }
}

/// A mutable slice of [`Factors`].
pub(super) enum FactorsMut<'a> {
    F16(&'a mut [u16]),
    F32(&'a mut [f32]),
}

impl FactorsMut<'_> {
    /// Disjoint views of `chunk` factors each (`n` empty ones if this one is empty, as the
    /// mins of a matrix without them are).
    pub(super) fn chunks_mut(&mut self, chunk: usize, n: usize) -> Vec<FactorsMut<'_>> {
        match self {
            Self::F16(s) if !s.is_empty() => s.chunks_mut(chunk).map(FactorsMut::F16).collect(),
            Self::F32(s) if !s.is_empty() => s.chunks_mut(chunk).map(FactorsMut::F32).collect(),
            _ => (0..n).map(|_| FactorsMut::F32(&mut [])).collect(),
        }
    }

    /// Sets factor `i` from the bits of an f16 (exactly, either way).
    pub(super) fn set_half(&mut self, i: usize, bits: u16) {
        match self {
            Self::F16(s) => s[i] = bits,
            Self::F32(s) => s[i] = half::f16::from_bits(bits).to_f32(),
        }
    }

    pub(super) fn set(&mut self, i: usize, v: f32) {
        match self {
            Self::F16(s) => s[i] = half::f16::from_f32(v).to_bits(),
            Self::F32(s) => s[i] = v,
        }
    }
}

/// Borrowed fields of a [`super::quant::QMatrix`] for the kernels.
pub struct MatView<'a> {
    /// Values per block.
    pub block: usize,
    /// How quants are stored.
    pub store: Store,
    /// Offset or min.
    pub bias: Bias,
    /// Blocks per row.
    pub blocks: usize,
    /// Quants of all groups.
    pub quants: &'a [u8],
    /// Scales of all groups.
    pub scales: &'a Factors,
    /// Mins (empty unless `bias == Min`).
    pub mins: &'a Factors,
}

/// Borrowed fields of a [`super::quant::QActs`] for the kernels.
pub struct ActView<'a> {
    /// Values per row.
    pub k: usize,
    /// Values per sum.
    pub sum_block: usize,
    /// Quants, row-major.
    pub q: &'a [i8],
    /// One scale per 32 values.
    pub d: &'a [f32],
    /// One sum per `sum_block` values.
    pub sums: &'a [i32],
}
