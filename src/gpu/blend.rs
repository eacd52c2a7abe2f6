//! A picture larger than one tile, stylised and blended on the GPU into a texture: the same
//! tiles, statistics and feathered weights as the CPU's [`stylize`](crate::models::stylenet::tiling::stylize),
//! but each tile's output stays on the device and is added into full-size sums there
//! (`blend.wgsl`), so the Style panel shows a full-size result without reading it back.

use image::RgbImage;

use super::GpuContext;
use super::kernels::{Kernel, Params, Recorder, linear_groups};
use super::stylenet::{GpuTiledNet, rgba_texture};
use crate::models::stylenet::image::region;
use crate::models::stylenet::tiling::{
    TileOptions, TilePlan, TileReport, stats_image, whole_stats,
};
use crate::models::stylenet::{StyleError, check_cancel};

/// The largest picture blended on the GPU (16.8 megapixels: 256 MiB of sums). The CPU's
/// blend needs memory for one row of tiles only, so beyond this it is the better choice on
/// GPUs that share the system's memory.
pub const MAX_PIXELS: u64 = 1 << 24;

/// Whether a `w × h` result can be blended on `ctx`'s device: at most [`MAX_PIXELS`], the
/// texture within its side limit and the four planes of sums within one storage binding.
pub fn fits_device(ctx: &GpuContext, w: u32, h: u32) -> bool {
    let side = ctx.device.limits().max_texture_dimension_2d;
    let pixels = w as u64 * h as u64;
    pixels <= MAX_PIXELS && w <= side && h <= side && 16 * pixels <= ctx.max_binding()
}

/// Stylises `img` tile by tile with `net` and blends the tiles on the device into a new RGBA8
/// texture of `img`'s size; `None` when the result does not fit the device
/// ([`fits_device`]: the caller blends on the CPU). `progress(done, total)` is called after
/// the statistics pass and after each tile; `cancel` is checked between tiles.
pub fn stylize_to_texture<N: GpuTiledNet>(
    net: &N,
    img: &RgbImage,
    opts: &TileOptions,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<Option<(wgpu::Texture, TileReport)>, StyleError> {
    let (w, h) = img.dimensions();
    let cost = net.cost();
    let plan = TilePlan::new(w, h, opts, &cost)?;
    let ctx = net.ctx();
    if !fits_device(ctx, w, h) {
        return Ok(None);
    }
    let stats_img = stats_image(img, opts, &cost);
    let stats_from = stats_img.dimensions();
    let stats = whole_stats(net, &stats_img, cancel)?;
    drop(stats_img);
    let total = plan.tiles() + 1;
    let mut done = 1;
    progress(done, total);

    let n = w as usize * h as usize;
    let sums = ctx.tensor(4 * n, "blend sums")?;
    for &y0 in &plan.ys {
        let th = plan.side(y0, false);
        let wy = ctx.upload(&plan.weights(y0, false), "blend weights y")?;
        for &x0 in &plan.xs {
            check_cancel(cancel)?;
            let tw = plan.side(x0, true);
            let x = region(img, x0, y0, tw, th);
            ctx.checked(|| {
                let (mut rec, y, oh, ow) = net.record_tile(&x, &stats)?;
                if (oh, ow) != (th as usize, tw as usize) {
                    return Err(super::GpuError::Validation(
                        "the network changed the tile's size".into(),
                    ));
                }
                let wx = ctx.upload(&plan.weights(x0, true), "blend weights x")?;
                let params = Params::new()
                    .u(w as usize)
                    .u(h as usize)
                    .u(x0 as usize)
                    .u(y0 as usize)
                    .u(tw as usize)
                    .u(th as usize)
                    .u(0)
                    .u(0);
                rec.dispatch(
                    Kernel::BlendTile,
                    &params,
                    &[(1, &y.buf), (2, &wx.buf), (3, &wy.buf), (4, &sums.buf)],
                    [tw.div_ceil(8), th.div_ceil(8), 1],
                );
                rec.submit();
                Ok(())
            })?;
            // One tile's intermediates in flight at a time; a cancel is seen between tiles.
            ctx.wait()?;
            done += 1;
            progress(done, total);
        }
    }
    check_cancel(cancel)?;
    let texture = ctx.checked(|| {
        let mut rec = Recorder::new(ctx, net.kernels());
        let params = Params::new()
            .u(w as usize)
            .u(h as usize)
            .u(0)
            .u(0)
            .u(0)
            .u(0)
            .u(0)
            .u(0);
        rec.dispatch(
            Kernel::BlendFinish,
            &params,
            &[(4, &sums.buf)],
            linear_groups(n, 1),
        );
        rgba_texture(rec, &sums, (h as usize, w as usize), (w, h))
    })?;
    ctx.wait()?;
    Ok(Some((
        texture,
        TileReport {
            tiles: plan.tiles(),
            tile: Some((plan.tile_w, plan.tile_h)),
            stats_from: Some(stats_from),
        },
    )))
}
