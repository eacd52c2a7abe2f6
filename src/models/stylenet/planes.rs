//! Planar (CHW, batch 1) feature maps and the index maps that fold padding and nearest
//! upsampling into the convolutions' reads ([`axis_map`], on the one reflect rule in
//! [`reflect_index`]). Shared by the im2col kernels ([`super::ops`]) and the direct AVX-512
//! convolution ([`super::direct`]).

/// One image's activations: `c` planes of `h × w`.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    /// Channels.
    pub c: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// `c * h * w` values: plane by plane, each row-major.
    pub data: Vec<f32>,
}

/// `len` zeros, for a buffer that will be written in full (on huge pages when large: see
/// [`crate::models::huge_pages`]).
pub fn zeroed(len: usize) -> Vec<f32> {
    crate::models::huge_pages::zeroed(len)
}

impl FeatureMap {
    /// A zero-filled map.
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            h,
            w,
            data: zeroed(c * h * w),
        }
    }

    /// Wraps `data`; `None` if its length is not `c * h * w`.
    pub fn from_vec(c: usize, h: usize, w: usize, data: Vec<f32>) -> Option<Self> {
        (data.len() == c * h * w).then_some(Self { c, h, w, data })
    }

    /// Pixels per plane.
    pub fn pixels(&self) -> usize {
        self.h * self.w
    }

    /// Channel `ch`'s plane.
    pub fn plane(&self, ch: usize) -> &[f32] {
        &self.data[ch * self.pixels()..(ch + 1) * self.pixels()]
    }

    /// As a candle tensor `[1, c, h, w]` (for callers that work in candle).
    pub fn to_tensor(&self) -> candle_core::Result<candle_core::Tensor> {
        candle_core::Tensor::from_slice(
            &self.data,
            (1, self.c, self.h, self.w),
            &candle_core::Device::Cpu,
        )
    }

    /// From a candle tensor `[1, c, h, w]` or `[c, h, w]` (any float dtype).
    pub fn from_tensor(t: &candle_core::Tensor) -> candle_core::Result<Self> {
        let t = match t.rank() {
            4 => t.squeeze(0)?,
            _ => t.clone(),
        };
        let (c, h, w) = t.dims3()?;
        let data = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self { c, h, w, data })
    }
}

/// The source index of position `i` on an axis of length `n` extended by reflection about the
/// edge samples (the edge is not repeated: `-1 -> 1`, `n -> n - 2`), as ONNX `Pad` mode
/// `reflect`, numpy `reflect` and TensorFlow `MirrorPad(REFLECT)` define it. Positions further
/// out than one period keep reflecting.
pub fn reflect_index(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    if m < n as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// Reflect-pads every plane by the given amounts.
pub fn reflect_pad(
    x: &FeatureMap,
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
) -> FeatureMap {
    let (h, w) = (x.h + top + bottom, x.w + left + right);
    let xs: Vec<usize> = (0..w)
        .map(|i| reflect_index(i as isize - left as isize, x.w))
        .collect();
    let mut data = Vec::with_capacity(x.c * h * w);
    for ch in 0..x.c {
        let plane = x.plane(ch);
        for y in 0..h {
            let row = &plane[reflect_index(y as isize - top as isize, x.h) * x.w..][..x.w];
            data.extend(xs.iter().map(|&sx| row[sx]));
        }
    }
    FeatureMap { c: x.c, h, w, data }
}

/// How a convolution fills positions outside its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// Mirror the input about its edge samples ([`reflect_index`]).
    Reflect,
    /// Zeros (ONNX `Conv` pads, TensorFlow `SAME`).
    Zero,
}

/// Source index (or -1 for a zero) of every position along one padded axis: the input of
/// length `n` is first upsampled `up`× (nearest), then padded by `before` on the low side.
pub fn axis_map(n: usize, up: usize, before: usize, padded: usize, mode: PadMode) -> Vec<i32> {
    let u = n * up;
    (0..padded)
        .map(|i| {
            let j = i as isize - before as isize;
            match mode {
                PadMode::Reflect => (reflect_index(j, u) / up) as i32,
                PadMode::Zero if j < 0 || j >= u as isize => -1,
                PadMode::Zero => (j as usize / up) as i32,
            }
        })
        .collect()
}
