//! Running a style network on images of any size in bounded memory.
//!
//! An image whose run fits the memory budget runs whole ([`TilePlan`] decides, from what the
//! network costs per pixel on its device: [`TiledNet::cost`]). A larger one runs as
//! overlapping tiles whose outputs are blended with feathered weights. Instance norm is what
//! makes this non-trivial: each tile would otherwise normalise with its own statistics and
//! tiles would disagree in colour and contrast (visible seams). So the statistics of every
//! norm layer are taken once, from the whole image scaled to fit [`TileOptions::stats_size`]
//! (and the budget), and every tile is normalised with those. When the image is no larger
//! than that the statistics are exactly the whole-image ones, and tiled output equals
//! whole-image output except within the overlaps, where the blend hides the tiles' edge
//! effects (tests/style_job.rs measures the difference).
//!
//! Tiles are aligned to multiples of 4 pixels so the networks' two stride-2 layers sample the
//! same grid as for the whole image. Output rows are assembled one tile row at a time: memory
//! is the 8-bit input and output, one tile's run, plus `tile height × width` floats of sums,
//! whatever the image height.

use image::RgbImage;

use super::arbitrary::{StyleTransform, TransformStats, TransformStyle};
use super::image::{region, resize, to_rgb_image, to_u8};
use super::multistyle::{MixedStyle, Multistyle26, MultistyleStats};
use super::ops::FeatureMap;
pub use super::tile_plan::{MapFloats, TileCost, TileOptions, TilePlan, stats_size};
use super::{StyleError, check_cancel};

/// Working memory of multistyle26 on the CPU per pixel of a run, in bytes: the input map (12),
/// the first layer's 32 planes (128) while the next layer's 32 quarter-size planes (32) are
/// written, and a few smaller recycled maps. Measured: `atelier style` grew by 195 bytes a
/// pixel from 1024² to 2048² (whole image, the 8-bit pictures included); rounded up.
pub const MULTISTYLE_CPU_BYTES_PER_PIXEL: u64 = 200;

/// The same for the arbitrary-style transform on the CPU (its widest full-size map has 8
/// channels): measured 93 bytes a pixel the same way; rounded up.
pub const TRANSFORM_CPU_BYTES_PER_PIXEL: u64 = 96;

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

    /// What one run costs per pixel, and the device's limits: what tiles are chosen from.
    fn cost(&self) -> TileCost;
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

    fn cost(&self) -> TileCost {
        TileCost::memory(MULTISTYLE_CPU_BYTES_PER_PIXEL)
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

    fn cost(&self) -> TileCost {
        TileCost::memory(TRANSFORM_CPU_BYTES_PER_PIXEL)
    }
}

/// What a tiled run did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TileReport {
    /// Tiles run (1: the whole image at once).
    pub tiles: usize,
    /// Tile size (width, height), when tiled.
    pub tile: Option<(u32, u32)>,
    /// Size of the image the statistics came from, when tiled (equal to the input's size when
    /// it fit `stats_size`).
    pub stats_from: Option<(u32, u32)>,
}

/// Runs `net` on the whole of `img` (padded by reflection to a multiple of 4, then cropped).
pub fn run_whole<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<(RgbImage, N::Stats), StyleError> {
    let (w, h) = img.dimensions();
    let x = region(img, 0, 0, w.div_ceil(4) * 4, h.div_ceil(4) * 4);
    let (y, stats) = net.run(&x, None, cancel)?;
    let out = to_rgb_image(&y, w, h)
        .ok_or_else(|| StyleError::BadInput("the network returned a smaller image".into()))?;
    Ok((out, stats))
}

/// The picture the tiles' norm statistics come from: `img` itself, or scaled down to fit
/// [`TileOptions::stats_size`] and the budget ([`stats_size`]).
pub fn stats_image<'a>(
    img: &'a RgbImage,
    opts: &TileOptions,
    cost: &TileCost,
) -> std::borrow::Cow<'a, RgbImage> {
    let (w, h) = img.dimensions();
    let (sw, sh) = stats_size(w, h, opts, cost);
    if (sw, sh) == (w, h) {
        std::borrow::Cow::Borrowed(img)
    } else {
        std::borrow::Cow::Owned(resize(img, sw, sh))
    }
}

/// `net`'s statistics of the whole of `img` (padded by reflection to a multiple of 4).
pub fn whole_stats<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<N::Stats, StyleError> {
    let (w, h) = img.dimensions();
    let x = region(img, 0, 0, w.div_ceil(4) * 4, h.div_ceil(4) * 4);
    Ok(net.run(&x, None, cancel)?.1)
}

/// Stylises `img`: whole when its run fits the budget (or the explicit tile), else in tiles
/// ([`TilePlan::new`] with `net`'s cost). `progress(done, total)` is called once for a whole
/// run, or after the statistics pass and after each tile; `cancel` is checked between tiles
/// and layers.
pub fn stylize<N: TiledNet>(
    net: &N,
    img: &RgbImage,
    opts: &TileOptions,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<(RgbImage, TileReport), StyleError> {
    let (w, h) = img.dimensions();
    let cost = net.cost();
    let plan = TilePlan::new(w, h, opts, &cost)?;
    if plan.is_whole() {
        let (out, _) = run_whole(net, img, cancel)?;
        progress(1, 1);
        return Ok((
            out,
            TileReport {
                tiles: 1,
                tile: None,
                stats_from: None,
            },
        ));
    }

    // Statistics from the whole image, scaled down to fit `stats_size` and the budget.
    let stats_img = stats_image(img, opts, &cost);
    let stats_from = stats_img.dimensions();
    let stats = whole_stats(net, &stats_img, cancel)?;
    drop(stats_img);

    let tile = plan.tile_h;
    let total = plan.tiles() + 1;
    let mut done = 1;
    progress(done, total);

    let mut out = RgbImage::new(w, h);
    let row_floats = w as usize * 3;
    // Accumulators for rows acc_y0 .. acc_y0 + tile height (weighted colour sums and weight
    // sums), counted in the plan's budget.
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
            tile: Some((plan.tile_w, plan.tile_h)),
            stats_from: Some(stats_from),
        },
    ))
}
