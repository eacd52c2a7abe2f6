//! How a picture is cut for a style network: whole while its working memory fits a budget,
//! tiles only beyond, and which tiles.
//!
//! A run of either network holds a few feature maps at once: multistyle26's first layer alone
//! is 32 floats a pixel (128 bytes). [`TileCost`] says what one run costs per pixel on the
//! device that runs it, and any hard limits that device has (a GPU's largest storage binding
//! and texture side). [`TilePlan::new`] then runs the whole image when that fits
//! [`TileOptions::budget_mb`], and otherwise picks the tile shape (rectangular, full width
//! when that is cheapest) that runs the fewest pixels in all within the budget, counting the
//! blend's accumulators for one row of tiles. An explicit [`TileOptions::tile`] overrides the
//! choice (`atelier style --tile`), and is checked against the same budget and limits.
//!
//! Every size is computed in `u64` and checked before anything is allocated: a picture that
//! cannot run within the budget even in the smallest tiles is refused with a message.

use super::StyleError;
use super::image::ImageLimits;

/// Bytes in a mebibyte.
const MIB: u64 = 1 << 20;

/// The default budget for one run's working memory, in MiB: whole images up to about 5
/// megapixels (2240², 2048² included) on multistyle26 on the CPU; larger ones in tiles.
pub const DEFAULT_BUDGET_MB: u32 = 1024;

/// The smallest explicit tile side.
pub const MIN_TILE: u32 = 128;

/// Pixels neighbouring tiles share by default. Both networks see 62 pixels around each output
/// pixel (9×9, two stride-2 3×3s, twelve or ten 3×3s at quarter size, the way back up), so the
/// middle of a 128-pixel overlap, where the blend gives both tiles equal weight, is computed
/// from its whole receptive field by both tiles. Less would blend in the tiles' padded edges.
pub const DEFAULT_OVERLAP: u32 = 128;

/// Bytes per pixel of a row of tiles that the CPU's blend keeps: three weighted colour sums
/// and one weight sum, all `f32`.
pub const BLEND_BYTES_PER_PIXEL: u64 = 16;

/// How large images are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TileOptions {
    /// `None` (the default): run the whole image while it fits `budget_mb`, tiles chosen from
    /// the budget beyond. `Some(side)`: square tiles of this side (rounded down to a multiple
    /// of 4, at least [`MIN_TILE`]); images no larger run whole.
    pub tile: Option<u32>,
    /// Pixels shared by neighbouring tiles (at most a third of the tile; see
    /// [`DEFAULT_OVERLAP`]).
    pub overlap: u32,
    /// Longest side of the scaled-down whole image the norm statistics of a tiled run are
    /// taken from (smaller when that pass would not fit the budget).
    pub stats_size: u32,
    /// Working memory one run of the network may take, in MiB: its feature maps and, when
    /// tiled, the blend's sums for one row of tiles (not the 8-bit pictures in and out).
    pub budget_mb: u32,
}

impl Default for TileOptions {
    fn default() -> Self {
        Self {
            tile: None,
            overlap: DEFAULT_OVERLAP,
            stats_size: 1024,
            budget_mb: DEFAULT_BUDGET_MB,
        }
    }
}

impl TileOptions {
    /// The budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_mb as u64 * MIB
    }
}

/// What one run of a network costs on the device that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileCost {
    /// Working memory per pixel of the run's input, in bytes.
    pub bytes_per_pixel: u64,
    /// The most pixels one run may have whatever the budget (a GPU's largest binding).
    pub max_pixels: Option<u64>,
    /// The longest side one run may have (a GPU's largest texture).
    pub max_side: Option<u32>,
}

impl TileCost {
    /// A device with no limits but memory (the CPU).
    pub fn memory(bytes_per_pixel: u64) -> Self {
        Self {
            bytes_per_pixel: bytes_per_pixel.max(1),
            max_pixels: None,
            max_side: None,
        }
    }

    /// Whether a `w × h` run is within the device's own limits.
    fn allows(&self, w: u64, h: u64) -> bool {
        self.max_side.is_none_or(|s| w <= s as u64 && h <= s as u64)
            && self.max_pixels.is_none_or(|m| w * h <= m)
    }

    /// Bytes a `w × h` run takes.
    fn bytes(&self, w: u64, h: u64) -> u64 {
        w.saturating_mul(h).saturating_mul(self.bytes_per_pixel)
    }
}

/// A network's feature maps in floats per pixel of its input, from its layers' shapes: what a
/// GPU run, which keeps every map of the run until it is submitted, costs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MapFloats {
    /// The largest single map (what must fit one storage binding).
    pub largest: f64,
    /// All maps together, the input included.
    pub total: f64,
}

impl MapFloats {
    /// The maps of a chain of layers given as (output channels, stride, upsampling), in
    /// order, on a 3-channel input.
    pub fn of(layers: impl IntoIterator<Item = (usize, usize, usize)>) -> Self {
        let mut scale = 1.0f64;
        let mut m = Self {
            largest: 3.0,
            total: 3.0,
        };
        for (cout, stride, up) in layers {
            scale *= (up * up) as f64 / (stride * stride).max(1) as f64;
            let floats = cout as f64 * scale;
            m.largest = m.largest.max(floats);
            m.total += floats;
        }
        m
    }

    /// The cost of a run on a GPU whose largest storage binding is `max_binding` bytes and
    /// whose textures are at most `max_side` pixels a side.
    pub fn gpu_cost(&self, max_binding: u64, max_side: u32) -> TileCost {
        TileCost {
            bytes_per_pixel: (4.0 * self.total).ceil() as u64,
            max_pixels: Some((max_binding as f64 / (4.0 * self.largest.max(1.0))) as u64),
            max_side: Some(max_side),
        }
    }
}

/// `v` rounded up to a multiple of 4.
pub(crate) fn round4_up(v: u64) -> u64 {
    v.div_ceil(4) * 4
}

/// Tile origins along an axis of `len` (a multiple of 4): step `tile - overlap`, the last tile
/// flush with the end.
fn origins(len: u32, tile: u32, overlap: u32) -> Vec<u32> {
    if len <= tile {
        return vec![0];
    }
    let step = tile - overlap;
    let mut v: Vec<u32> = (0..)
        .map(|i| i * step)
        .take_while(|&x| x + tile < len)
        .collect();
    v.push(len - tile);
    v
}

/// Blend weight of position `i` in a tile of `n` along one axis: ramps up over the overlap
/// on sides that border another tile (zero in its outer quarter, where the tile's own edge
/// padding shows), 1 on sides at the image border.
fn ramp(i: u32, n: u32, overlap: u32, low_shared: bool, high_shared: bool) -> f32 {
    let margin = overlap as f32 / 4.0;
    let width = (overlap as f32 - 2.0 * margin).max(1.0);
    let f = |d: u32| ((d as f32 + 0.5 - margin) / width).clamp(0.0, 1.0);
    let mut w = 1.0;
    if low_shared {
        w *= f(i);
    }
    if high_shared {
        w *= f(n - 1 - i);
    }
    w
}

/// How a picture is cut: the whole of it ([`TilePlan::is_whole`]), or tile origins, the
/// overlap and the blend weights, shared by the CPU's blend
/// ([`stylize`](super::tiling::stylize)) and the GPU's ([`crate::gpu::blend`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TilePlan {
    /// Tile width (a multiple of 4; the padded width when the image runs whole).
    pub tile_w: u32,
    /// Tile height (a multiple of 4).
    pub tile_h: u32,
    /// Pixels shared by neighbouring tiles (a multiple of 4).
    pub overlap: u32,
    /// Tile origins along x.
    pub xs: Vec<u32>,
    /// Tile origins along y.
    pub ys: Vec<u32>,
    /// The picture's sides rounded up to multiples of 4.
    pub w4: u32,
    /// See `w4`.
    pub h4: u32,
}

impl TilePlan {
    /// The plan for a `w × h` picture on a device that costs `cost` (see the module docs).
    /// Refused: an image under 8×8 or over the image limits, an explicit tile under
    /// [`MIN_TILE`], and anything that does not fit the budget or the device.
    pub fn new(w: u32, h: u32, opts: &TileOptions, cost: &TileCost) -> Result<Self, StyleError> {
        if w < 8 || h < 8 {
            return Err(StyleError::BadInput(format!(
                "the image is {w}×{h} pixels; style transfer needs at least 8×8"
            )));
        }
        let limits = ImageLimits::default();
        if w.max(h) > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
            return Err(StyleError::BadInput(format!(
                "the image is {w}×{h} pixels; style transfer takes at most {} pixels a side \
                 and {} megapixels",
                limits.max_side,
                limits.max_pixels / 1_000_000
            )));
        }
        // Within the limits above, both fit u32 after rounding.
        let (w4, h4) = (round4_up(w as u64), round4_up(h as u64));
        match opts.tile {
            Some(tile) => Self::explicit(w4, h4, tile, opts, cost),
            None => Self::from_budget(w4, h4, opts, cost),
        }
    }

    /// Square tiles of the side the caller asked for.
    fn explicit(
        w4: u64,
        h4: u64,
        tile: u32,
        opts: &TileOptions,
        cost: &TileCost,
    ) -> Result<Self, StyleError> {
        let t = (tile / 4 * 4) as u64;
        if t < MIN_TILE as u64 {
            return Err(StyleError::BadInput(format!(
                "tile size {tile} is too small: use at least {MIN_TILE}"
            )));
        }
        let overlap = (opts.overlap as u64).min(t / 3) / 4 * 4;
        let (tw, th) = (t.min(w4), t.min(h4));
        let whole = tw == w4 && th == h4;
        let needed = cost.bytes(tw, th)
            + if whole {
                0
            } else {
                th * w4 * BLEND_BYTES_PER_PIXEL
            };
        if !cost.allows(tw, th) {
            return Err(StyleError::BadInput(format!(
                "tiles of {tw}×{th} pixels are larger than this device runs at once; \
                 use a smaller tile"
            )));
        }
        if needed > opts.budget_bytes() {
            return Err(StyleError::BadInput(format!(
                "tiles of {tw}×{th} pixels need about {} MB, more than the memory budget of \
                 {} MB; use a smaller tile or a larger budget",
                needed.div_ceil(MIB),
                opts.budget_mb
            )));
        }
        Ok(Self::with_sides(w4, h4, tw, th, overlap))
    }

    /// The whole image while it fits the budget, else the tiles that run the fewest pixels.
    fn from_budget(
        w4: u64,
        h4: u64,
        opts: &TileOptions,
        cost: &TileCost,
    ) -> Result<Self, StyleError> {
        let budget = opts.budget_bytes();
        if cost.allows(w4, h4) && cost.bytes(w4, h4) <= budget {
            return Ok(Self::with_sides(w4, h4, w4, h4, 0));
        }
        let overlap = (opts.overlap / 4 * 4) as u64;
        // The overlap stays at most a third of a tile, as for explicit tiles.
        let min_tile = (3 * overlap).max(MIN_TILE as u64);
        // (pixels run in all, tiles, tile width, tile height)
        let mut best: Option<(u64, u64, u64, u64)> = None;
        for nx in 1..=w4.div_ceil(min_tile.saturating_sub(overlap).max(4)) {
            // The narrowest tile that covers the width in `nx` columns.
            let tw = round4_up((w4 + (nx - 1) * overlap).div_ceil(nx)).min(w4);
            if tw < min_tile.min(w4) {
                break;
            }
            if cost.max_side.is_some_and(|s| tw > s as u64) {
                continue;
            }
            // The tallest tile of that width within the budget and the device's limits.
            let per_row = tw * cost.bytes_per_pixel + w4 * BLEND_BYTES_PER_PIXEL;
            let mut th_max = budget / per_row;
            if let Some(m) = cost.max_pixels {
                th_max = th_max.min(m / tw);
            }
            if let Some(s) = cost.max_side {
                th_max = th_max.min(s as u64);
            }
            let th_max = (th_max / 4 * 4).min(h4);
            if th_max < min_tile.min(h4) {
                continue;
            }
            let ny = if th_max >= h4 {
                1
            } else {
                (h4 - overlap).div_ceil(th_max - overlap)
            };
            if nx * ny == 1 {
                continue;
            }
            // The shortest tile that covers the height in `ny` rows (at most `th_max`).
            let th = round4_up((h4 + (ny - 1) * overlap).div_ceil(ny)).min(th_max);
            let run = nx * ny * tw * th;
            if best.is_none_or(|(r, n, _, _)| (run, nx * ny) < (r, n)) {
                best = Some((run, nx * ny, tw, th));
            }
        }
        let Some((_, _, tw, th)) = best else {
            let smallest = min_tile.min(w4) * min_tile.min(h4);
            let needed =
                smallest * cost.bytes_per_pixel + min_tile.min(h4) * w4 * BLEND_BYTES_PER_PIXEL;
            return Err(StyleError::BadInput(format!(
                "a {w4}×{h4} image needs at least {} MB to run even in the smallest tiles, \
                 more than the memory budget of {} MB",
                needed.div_ceil(MIB),
                opts.budget_mb
            )));
        };
        Ok(Self::with_sides(w4, h4, tw, th, overlap))
    }

    fn with_sides(w4: u64, h4: u64, tw: u64, th: u64, overlap: u64) -> Self {
        // Every value here is at most the image limits' side (checked in `new`).
        let [w4, h4, tw, th, overlap] = [w4, h4, tw, th, overlap].map(|v| v as u32);
        Self {
            tile_w: tw,
            tile_h: th,
            overlap,
            xs: origins(w4, tw, overlap),
            ys: origins(h4, th, overlap),
            w4,
            h4,
        }
    }

    /// Whether the picture runs whole (one tile, no statistics pass).
    pub fn is_whole(&self) -> bool {
        self.tiles() == 1
    }

    /// Tiles in the plan.
    pub fn tiles(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// Pixels the network runs on in all (the statistics pass not included).
    pub fn pixels_run(&self) -> u64 {
        let along = |os: &[u32], x_axis: bool| -> u64 {
            os.iter().map(|&o| self.side(o, x_axis) as u64).sum()
        };
        along(&self.xs, true) * along(&self.ys, false)
    }

    /// The tile's side along x (`x_axis`) or y, from origin `o`.
    pub fn side(&self, o: u32, x_axis: bool) -> u32 {
        if x_axis {
            self.tile_w.min(self.w4 - o)
        } else {
            self.tile_h.min(self.h4 - o)
        }
    }

    /// Blend weights along one axis of the tile at origin `o`.
    pub fn weights(&self, o: u32, x_axis: bool) -> Vec<f32> {
        let n = self.side(o, x_axis);
        let len = if x_axis { self.w4 } else { self.h4 };
        (0..n)
            .map(|i| ramp(i, n, self.overlap, o > 0, o + n < len))
            .collect()
    }
}

/// The size of the picture a tiled run's norm statistics come from: `w × h` scaled to fit
/// [`TileOptions::stats_size`] (never enlarged), and further while that whole-image pass
/// would not fit the budget or the device.
pub fn stats_size(w: u32, h: u32, opts: &TileOptions, cost: &TileCost) -> (u32, u32) {
    let long = w.max(h).max(1) as f64;
    let mut scale = (opts.stats_size.max(64) as f64 / long).min(1.0);
    let mut allowed = opts.budget_bytes() / cost.bytes_per_pixel;
    if let Some(m) = cost.max_pixels {
        allowed = allowed.min(m);
    }
    if let Some(s) = cost.max_side {
        scale = scale.min(s as f64 / (long + 4.0));
    }
    let sides = |s: f64| {
        (
            ((w as f64 * s).round() as u32).max(8),
            ((h as f64 * s).round() as u32).max(8),
        )
    };
    let padded = |(a, b): (u32, u32)| round4_up(a as u64) * round4_up(b as u64);
    let (sw, sh) = sides(scale);
    if padded((sw, sh)) > allowed {
        scale *= (allowed as f64 / padded((sw, sh)) as f64).sqrt();
    }
    // Rounding may leave it a little over: step down until it fits (or reaches 8×8).
    loop {
        let s = sides(scale);
        if padded(s) <= allowed || s.0.min(s.1) <= 8 {
            return s;
        }
        scale *= 0.99;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// multistyle26 on the CPU, roughly.
    const CPU: TileCost = TileCost {
        bytes_per_pixel: 200,
        max_pixels: None,
        max_side: None,
    };

    fn auto(budget_mb: u32) -> TileOptions {
        TileOptions {
            budget_mb,
            ..TileOptions::default()
        }
    }

    #[test]
    fn origins_cover_the_axis_aligned_to_4() {
        assert_eq!(origins(512, 512, 128), vec![0]);
        let o = origins(1000, 512, 128);
        assert_eq!(o, vec![0, 384, 488]);
        assert!(o.iter().all(|x| x % 4 == 0));
        assert_eq!(*o.last().unwrap() + 512, 1000);
    }

    #[test]
    fn ramps_overlap_to_a_positive_sum() {
        // Two tiles of 512 overlapping by 128 on [384, 512).
        for x in 384..512u32 {
            let a = ramp(x, 512, 128, false, true);
            let b = ramp(x - 384, 512, 128, true, false);
            assert!(a + b > 0.99, "x {x}: {a} + {b}");
        }
        assert_eq!(ramp(0, 512, 128, false, false), 1.0);
        assert_eq!(ramp(0, 512, 128, true, false), 0.0);
    }

    #[test]
    fn the_whole_image_runs_while_it_fits_the_budget() {
        let p = TilePlan::new(1024, 1024, &TileOptions::default(), &CPU).unwrap();
        assert!(p.is_whole(), "{p:?}");
        assert_eq!((p.tile_w, p.tile_h, p.overlap), (1024, 1024, 0));
        // 2048² at 200 bytes a pixel is 800 MiB: still whole under the default 1 GiB.
        assert!(
            TilePlan::new(2048, 2048, &TileOptions::default(), &CPU)
                .unwrap()
                .is_whole()
        );
        // Odd sides run whole, padded to multiples of 4.
        let p = TilePlan::new(1001, 603, &TileOptions::default(), &CPU).unwrap();
        assert!(p.is_whole());
        assert_eq!((p.w4, p.h4), (1004, 604));
    }

    #[test]
    fn beyond_the_budget_tiles_fit_it_and_overlap_as_asked() {
        for (w, h, budget) in [
            (4096, 4096, 1024),
            (4000, 3000, 1024),
            (2048, 2048, 256),
            (6000, 800, 128),
            (801, 5003, 64),
        ] {
            let opts = auto(budget);
            let p = TilePlan::new(w, h, &opts, &CPU).unwrap();
            assert!(!p.is_whole(), "{w}×{h} in {budget} MB: {p:?}");
            let (tw, th) = (p.tile_w as u64, p.tile_h as u64);
            let used = tw * th * CPU.bytes_per_pixel + th * p.w4 as u64 * BLEND_BYTES_PER_PIXEL;
            assert!(used <= opts.budget_bytes(), "{w}×{h}: {used} bytes: {p:?}");
            assert_eq!(p.overlap, DEFAULT_OVERLAP);
            assert!(p.tile_w.is_multiple_of(4) && p.tile_h.is_multiple_of(4));
            // The tiles cover the picture, neighbours overlapping by at least the overlap.
            for (os, t, len) in [(&p.xs, p.tile_w, p.w4), (&p.ys, p.tile_h, p.h4)] {
                assert_eq!(os[0], 0);
                assert_eq!(os.last().unwrap() + t.min(len), len);
                for pair in os.windows(2) {
                    assert!(pair[0] + t >= pair[1] + p.overlap, "{p:?}");
                }
            }
            // Not much more work than the whole image, even on tight budgets.
            let extra = p.pixels_run() as f64 / (p.w4 as f64 * p.h4 as f64);
            assert!(
                extra < 1.5,
                "{w}×{h} in {budget} MB runs {extra:.2}× the pixels"
            );
        }
        // 4096² in 1 GiB: a few large tiles (the old fixed 512s were 121, 2.0× the pixels).
        let p = TilePlan::new(4096, 4096, &auto(1024), &CPU).unwrap();
        let extra = p.pixels_run() as f64 / (4096.0 * 4096.0);
        assert!(p.tiles() <= 6 && extra < 1.15, "{extra:.2}×: {p:?}");
    }

    #[test]
    fn an_explicit_tile_overrides_the_budget_choice() {
        let opts = TileOptions {
            tile: Some(512),
            ..TileOptions::default()
        };
        let p = TilePlan::new(1024, 1024, &opts, &CPU).unwrap();
        assert_eq!(
            (p.tile_w, p.tile_h, p.overlap, p.tiles()),
            (512, 512, 128, 9)
        );
        let p = TilePlan::new(451, 300, &opts, &CPU).unwrap();
        assert!(p.is_whole());
        // The overlap stays at most a third of the tile.
        let small = TileOptions {
            tile: Some(130),
            ..TileOptions::default()
        };
        assert_eq!(TilePlan::new(600, 600, &small, &CPU).unwrap().overlap, 40);
        for tile in [0, 4, 127] {
            let o = TileOptions {
                tile: Some(tile),
                ..TileOptions::default()
            };
            assert!(TilePlan::new(600, 600, &o, &CPU).is_err(), "tile {tile}");
        }
        // ... and it must fit the budget too.
        let huge = TileOptions {
            tile: Some(8192),
            ..TileOptions::default()
        };
        let e = TilePlan::new(8000, 8000, &huge, &CPU).unwrap_err();
        assert!(e.to_string().contains("memory budget"), "{e}");
    }

    #[test]
    fn device_limits_bound_the_tiles_whatever_the_budget() {
        // A GPU whose largest binding holds 32 floats × 1024² (WebGPU's default 128 MiB).
        let gpu = TileCost {
            bytes_per_pixel: 312,
            max_pixels: Some(1 << 20),
            max_side: Some(8192),
        };
        let p = TilePlan::new(1024, 1024, &auto(4096), &gpu).unwrap();
        assert!(p.is_whole());
        let p = TilePlan::new(1100, 1024, &auto(4096), &gpu).unwrap();
        assert!(!p.is_whole());
        assert!(p.tile_w as u64 * p.tile_h as u64 <= 1 << 20, "{p:?}");
        let narrow = TileCost {
            max_side: Some(1000),
            ..gpu
        };
        let p = TilePlan::new(3000, 600, &auto(4096), &narrow).unwrap();
        assert!(p.tile_w <= 1000 && p.tile_h <= 1000, "{p:?}");
        let (sw, sh) = stats_size(3000, 600, &auto(4096), &narrow);
        assert!(sw <= 1000 && sh <= 1000, "{sw}×{sh}");
    }

    #[test]
    fn map_sizes_follow_strides_and_upsampling() {
        // multistyle26's shape: 32 full, 32 half, 32 quarter ×13, 8 half, 4 full, 3 full.
        let mut layers = vec![(32, 1, 1), (32, 2, 1), (32, 2, 1)];
        layers.extend([(32, 1, 1); 12]);
        layers.extend([(8, 1, 2), (4, 1, 2), (3, 1, 1)]);
        let m = MapFloats::of(layers);
        assert_eq!(m.largest, 32.0);
        assert_eq!(m.total, 3.0 + 32.0 + 8.0 + 2.0 * 13.0 + 2.0 + 4.0 + 3.0);
        // WebGPU's default 128 MiB binding holds the 32 planes of 1024².
        let c = m.gpu_cost(128 << 20, 8192);
        assert_eq!(c.max_pixels, Some(1 << 20));
        assert_eq!(c.bytes_per_pixel, 4 * 78);
    }

    #[test]
    fn huge_or_tiny_pictures_are_refused_without_allocating() {
        let opts = TileOptions::default();
        for (w, h) in [
            (u32::MAX, u32::MAX),
            (u32::MAX, 8),
            (40_000, 8),
            (20_000, 20_000),
        ] {
            let e = TilePlan::new(w, h, &opts, &CPU).unwrap_err();
            assert!(e.to_string().contains("at most"), "{w}×{h}: {e}");
        }
        assert!(TilePlan::new(7, 100, &opts, &CPU).is_err());
        // Within the image limits but not within a tiny budget, even in the smallest tiles.
        let e = TilePlan::new(32_000, 3000, &auto(16), &CPU).unwrap_err();
        assert!(e.to_string().contains("memory budget of 16 MB"), "{e}");
        // The largest picture the limits allow plans within the default budget.
        let p = TilePlan::new(12_000, 8_000, &opts, &CPU).unwrap();
        let used = p.tile_w as u64 * p.tile_h as u64 * CPU.bytes_per_pixel
            + p.tile_h as u64 * p.w4 as u64 * BLEND_BYTES_PER_PIXEL;
        assert!(used <= opts.budget_bytes());
    }

    #[test]
    fn the_statistics_pass_fits_the_budget_too() {
        let opts = TileOptions::default();
        assert_eq!(stats_size(4000, 3000, &opts, &CPU), (1024, 768));
        assert_eq!(stats_size(451, 300, &opts, &CPU), (451, 300));
        let (sw, sh) = stats_size(4000, 3000, &auto(64), &CPU);
        assert!(
            round4_up(sw as u64) * round4_up(sh as u64) * CPU.bytes_per_pixel <= 64 * MIB,
            "{sw}×{sh}"
        );
        assert!(sw > 400, "{sw}×{sh}: shrunk more than needed");
    }
}
