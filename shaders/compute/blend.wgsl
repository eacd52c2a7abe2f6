// A picture larger than one tile, blended on the GPU: each tile's output is added into
// full-size sums with its feathered weights (`blend_tile`, tiles in the CPU's order), then
// each pixel is divided by its weight sum (`blend_finish`). The arithmetic is the CPU's
// (`tiling::stylize`): each product rounded on its own, the reciprocal correctly rounded.

struct BlendParams {
    img_w: u32, img_h: u32, x0: u32, y0: u32,
    tw: u32, th: u32, zero: u32, _p: u32,
}

@group(0) @binding(0) var<uniform> p: BlendParams;
// The tile's output, [3][th][tw].
@group(0) @binding(1) var<storage, read> tile: array<f32>;
// The tile's blend weights along x (tw) and y (th).
@group(0) @binding(2) var<storage, read> wx: array<f32>;
@group(0) @binding(3) var<storage, read> wy: array<f32>;
// [r, g, b, weight][img_h][img_w]: weighted sums; after `blend_finish` the first three
// planes hold the blended colour.
@group(0) @binding(4) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(8, 8)
fn blend_tile(@builtin(global_invocation_id) gid: vec3<u32>) {
    OPAQUE_ZERO = p.zero;
    let i = gid.x;
    let r = gid.y;
    if (i >= p.tw || r >= p.th) {
        return;
    }
    let gx = p.x0 + i;
    let gy = p.y0 + r;
    // Padding rows and columns past the picture's edge are dropped.
    if (gx >= p.img_w || gy >= p.img_h) {
        return;
    }
    let n = p.img_w * p.img_h;
    let at = gy * p.img_w + gx;
    let wt = materialise(wy[r] * wx[i]);
    acc[3u * n + at] = acc[3u * n + at] + wt;
    let hw = p.tw * p.th;
    for (var c = 0u; c < 3u; c++) {
        acc[c * n + at] = acc[c * n + at] + materialise(wt * tile[c * hw + r * p.tw + i]);
    }
}

@compute @workgroup_size(64)
fn blend_finish(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let n = p.img_w * p.img_h;
    let at = flat_index(wid, nwg, lid, 64u);
    if (at >= n) {
        return;
    }
    let wt = acc[3u * n + at];
    var inv = 0.0;
    if (wt > 0.0) {
        inv = div_cr(1.0, wt);
    }
    for (var c = 0u; c < 3u; c++) {
        acc[c * n + at] = materialise(acc[c * n + at] * inv);
    }
}
