//! Running a style network on images of any size in bounded memory.
//!
//! An image that fits one tile runs whole. A larger one runs as overlapping tiles whose outputs
//! are blended with feathered weights. Instance norm is what makes this non-trivial: each tile
//! would otherwise normalise with its own statistics and tiles would disagree in colour and
//! contrast (visible seams). So the statistics of every norm layer are taken once, from the
//! whole image scaled to fit [`TileOptions::stats_size`], and every tile is normalised with
//! those. When the image is no larger than `stats_size` the statistics are exactly the
//! whole-image ones, and tiled output equals whole-image output except within the overlaps,
//! where the blend hides the tiles' edge effects (tests/style_job.rs measures the difference).
//!
//! Tiles are aligned to multiples of 4 pixels so the networks' two stride-2 layers sample the
//! same grid as for the whole image. Output rows are assembled one tile row at a time: memory
//! is the 8-bit input and output plus `tile × width` floats, whatever the image height.

use image::RgbImage;

use super::arbitrary::{StyleTransform, TransformStats, TransformStyle};
use super::image::{region, resize, to_rgb_image, to_u8};
use super::multistyle::{MixedStyle, Multistyle26, MultistyleStats};
use super::ops::FeatureMap;
use super::{StyleError, check_cancel};

/// A style network bound to its style, runnable on one tile.
pub trait TiledNet {
    /// The per-layer instance-norm statistics it can record and reuse.
    type Stats;

    /// Stylises a 0..1 RGB map (sides multiples of 4); with `stats`, normalises with them.
    fn run(
        &self,
        x: &FeatureMap,
        stats: Option<&Self::Stats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, Self::Stats), StyleError>;
}

/// multistyle26 with a mixed style.
pub struct MultistyleNet<'a> {
    /// The network.
    pub net: &'a Multistyle26,
    /// The blended norm parameters.
    pub style: MixedStyle,
}

impl TiledNet for MultistyleNet<'_> {
    type Stats = MultistyleStats;
    fn run(
        &self,
        x: &FeatureMap,
        stats: Option<&MultistyleStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, MultistyleStats), StyleError> {
        self.net.forward(x, &self.style, stats, cancel)
    }
}

/// The arbitrary-style transform with a predicted style.
pub struct TransformNet<'a> {
    /// The network.
    pub net: &'a StyleTransform,
    /// Norm parameters from the style bottleneck.
    pub style: TransformStyle,
}

impl TiledNet for TransformNet<'_> {
    type Stats = TransformStats;
    fn run(
        &self,
        x: &FeatureMap,
        stats: Option<&TransformStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, TransformStats), StyleError> {
        self.net.forward(x, &self.style, stats, cancel)
    }
}

/// How large images are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TileOptions {
    /// Tile side in pixels (rounded down to a multiple of 4, at least 128). Images no larger
    /// than this run whole.
    pub tile: u32,
    /// Pixels shared by neighbouring tiles (at most a third of the tile). Both networks see
    /// about 62 pixels around each output pixel; the blend ramp spans the middle half of the
    /// overlap.
    pub overlap: u32,
    /// Longest side of the scaled-down whole image the norm statistics are taken from.
    pub stats_size: u32,
}

impl Default for TileOptions {
    fn default() -> Self {
        Self {
            tile: 512,
            overlap: 128,
            stats_size: 1024,
        }
    }
}

/// What a tiled run did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TileReport {
    /// Tiles run (1: the whole image at once).
    pub tiles: usize,
    /// Size of the image the statistics came from, when tiled (equal to the input's size when
    /// it fit `stats_size`).
    pub stats_from: Option<(u32, u32)>,
}

fn round4_up(v: u32) -> u32 {
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

/// Runs `net` on the whole of `img` (padded by reflection to a multiple of 4, then cropped).
pub fn run_whole<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<(RgbImage, N::Stats), StyleError> {
    let (w, h) = img.dimensions();
    let x = region(img, 0, 0, round4_up(w), round4_up(h));
    let (y, stats) = net.run(&x, None, cancel)?;
    let out = to_rgb_image(&y, w, h)
        .ok_or_else(|| StyleError::BadInput("the network returned a smaller image".into()))?;
    Ok((out, stats))
}

/// Whether a `w × h` picture runs whole (one tile) rather than tiled.
pub fn fits_one_tile(w: u32, h: u32, opts: &TileOptions) -> bool {
    let tile = opts.tile / 4 * 4;
    round4_up(w) <= tile && round4_up(h) <= tile
}

/// How a picture larger than one tile is cut: the tile origins, the overlap and the blend
/// weights, shared by the CPU's blend ([`stylize`]) and the GPU's
/// ([`crate::gpu::blend`]).
#[derive(Clone, Debug)]
pub struct TilePlan {
    /// Tile side (a multiple of 4).
    pub tile: u32,
    /// Pixels shared by neighbouring tiles (a multiple of 4).
    pub overlap: u32,
    /// Tile origins along x, then y.
    pub xs: Vec<u32>,
    /// Tile origins along y.
    pub ys: Vec<u32>,
    /// The picture's sides rounded up to multiples of 4.
    pub w4: u32,
    /// See `w4`.
    pub h4: u32,
}

impl TilePlan {
    /// The plan for a `w × h` picture; an image under 8×8 or a tile under 128 is an error.
    pub fn new(w: u32, h: u32, opts: &TileOptions) -> Result<Self, StyleError> {
        if w < 8 || h < 8 {
            return Err(StyleError::BadInput(format!(
                "the image is {w}×{h} pixels; style transfer needs at least 8×8"
            )));
        }
        let tile = opts.tile / 4 * 4;
        if tile < 128 {
            return Err(StyleError::BadInput(format!(
                "tile size {} is too small: use at least 128",
                opts.tile
            )));
        }
        let overlap = (opts.overlap.min(tile / 3)) / 4 * 4;
        let (w4, h4) = (round4_up(w), round4_up(h));
        Ok(Self {
            tile,
            overlap,
            xs: origins(w4, tile, overlap),
            ys: origins(h4, tile, overlap),
            w4,
            h4,
        })
    }

    /// Tiles in the plan.
    pub fn tiles(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// The tile's side along x (`x_axis`) or y, from origin `o`.
    pub fn side(&self, o: u32, x_axis: bool) -> u32 {
        self.tile.min(if x_axis { self.w4 } else { self.h4 } - o)
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

/// The picture the tiles' norm statistics come from: `img` itself, or scaled down to fit
/// [`TileOptions::stats_size`].
pub fn stats_image<'a>(img: &'a RgbImage, opts: &TileOptions) -> std::borrow::Cow<'a, RgbImage> {
    let (w, h) = img.dimensions();
    let stats_size = opts.stats_size.max(64);
    if w.max(h) > stats_size {
        let s = stats_size as f64 / w.max(h) as f64;
        std::borrow::Cow::Owned(resize(
            img,
            ((w as f64 * s).round() as u32).max(8),
            ((h as f64 * s).round() as u32).max(8),
        ))
    } else {
        std::borrow::Cow::Borrowed(img)
    }
}

/// `net`'s statistics of the whole of `img` (padded by reflection to a multiple of 4).
pub fn whole_stats<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<N::Stats, StyleError> {
    let (w, h) = img.dimensions();
    let x = region(img, 0, 0, round4_up(w), round4_up(h));
    Ok(net.run(&x, None, cancel)?.1)
}

/// Stylises `img`, tiled when it is larger than one tile. `progress(done, total)` is called
/// after the statistics pass and after each tile; `cancel` is checked between tiles and layers.
pub fn stylize<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    opts: &TileOptions,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<(RgbImage, TileReport), StyleError> {
    let (w, h) = img.dimensions();
    let plan = TilePlan::new(w, h, opts)?;
    if fits_one_tile(w, h, opts) {
        let (out, _) = run_whole(net, img, cancel)?;
        progress(1, 1);
        return Ok((
            out,
            TileReport {
                tiles: 1,
                stats_from: None,
            },
        ));
    }

    // Statistics from the whole image, scaled down to fit `stats_size` if needed.
    let stats_img = stats_image(img, opts);
    let stats_from = stats_img.dimensions();
    let stats = whole_stats(net, &stats_img, cancel)?;
    drop(stats_img);

    let tile = plan.tile;
    let total = plan.tiles() + 1;
    let mut done = 1;
    progress(done, total);

    let mut out = RgbImage::new(w, h);
    let row_floats = w as usize * 3;
    // Accumulators for rows acc_y0 .. acc_y0 + tile (weighted colour sums and weight sums).
    let mut acc = vec![0.0f32; tile as usize * row_floats];
    let mut wsum = vec![0.0f32; tile as usize * w as usize];
    let mut acc_y0 = 0u32;
    let finalize = |out: &mut RgbImage, acc: &[f32], wsum: &[f32], acc_y0: u32, rows: u32| {
        let raw: &mut [u8] = out;
        for r in 0..rows {
            let y = acc_y0 + r;
            if y >= h {
                break;
            }
            let dst = &mut raw[y as usize * row_floats..(y as usize + 1) * row_floats];
            let a = &acc[r as usize * row_floats..(r as usize + 1) * row_floats];
            let ws = &wsum[r as usize * w as usize..(r as usize + 1) * w as usize];
            for (x, &wt) in ws.iter().enumerate() {
                let inv = if wt > 0.0 { 1.0 / wt } else { 0.0 };
                for c in 0..3 {
                    dst[x * 3 + c] = to_u8(a[x * 3 + c] * inv);
                }
            }
        }
    };
    for &y0 in &plan.ys {
        let th = plan.side(y0, false);
        // Rows above y0 get no more contributions: write them out, slide the window down.
        if y0 > acc_y0 {
            let shift = y0 - acc_y0;
            finalize(&mut out, &acc, &wsum, acc_y0, shift);
            let (sa, sw) = (shift as usize * row_floats, shift as usize * w as usize);
            acc.copy_within(sa.., 0);
            let n = acc.len();
            acc[n - sa..].fill(0.0);
            wsum.copy_within(sw.., 0);
            let n = wsum.len();
            wsum[n - sw..].fill(0.0);
            acc_y0 = y0;
        }
        let wy = plan.weights(y0, false);
        for &x0 in &plan.xs {
            check_cancel(cancel)?;
            let tw = plan.side(x0, true);
            let x = region(img, x0, y0, tw, th);
            let (y, _) = net.run(&x, Some(&stats), cancel)?;
            if (y.c, y.h, y.w) != (3, th as usize, tw as usize) {
                return Err(StyleError::BadInput(
                    "the network changed the tile's size".into(),
                ));
            }
            let wx = plan.weights(x0, true);
            let cols = (w.saturating_sub(x0)).min(tw) as usize;
            for (r, &wy_r) in wy.iter().enumerate().take(th as usize) {
                let yy = y0 as usize + r;
                if yy >= h as usize {
                    break;
                }
                let ar = (yy - acc_y0 as usize) * row_floats + x0 as usize * 3;
                let wr = (yy - acc_y0 as usize) * w as usize + x0 as usize;
                let hw = y.pixels();
                let row = r * tw as usize;
                for i in 0..cols {
                    let wt = wy_r * wx[i];
                    wsum[wr + i] += wt;
                    for c in 0..3 {
                        acc[ar + i * 3 + c] += wt * y.data[c * hw + row + i];
                    }
                }
            }
            done += 1;
            progress(done, total);
        }
    }
    finalize(&mut out, &acc, &wsum, acc_y0, tile);
    Ok((
        out,
        TileReport {
            tiles: total - 1,
            stats_from: Some(stats_from),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
