// The Style panel's finish: strength, preserve-colour and the before/after split, per pixel.
//
// This is `src/models/style/colour.rs::compose_pixel`, line for line (the CPU reference the
// export and the CLI use): full-range BT.601 YCbCr with the same luma weights, preserve-colour
// first (stylised luma + original chroma), then `original*(1-t) + styled*t`, clamped to 0..1.
// Both work on the stored 0..1 values (the textures are Rgba8Unorm, not sRGB). Keep the two in
// step: a change to one is a change to the other.

struct Finish {
    // 0 = the original, 1 = fully stylised.
    strength: f32,
    // 1.0 = keep the original's colours (transfer only luminance).
    preserve: f32,
    // Divider position across the view, 0..1; left of it shows the original. Negative = off.
    split: f32,
    // 1.0 when the render target is sRGB and the output must be linearised.
    srgb_target: f32,
};

@group(0) @binding(0) var<uniform> finish: Finish;
@group(0) @binding(1) var original_tex: texture_2d<f32>;
@group(0) @binding(2) var stylised_tex: texture_2d<f32>;
@group(0) @binding(3) var image_sampler: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle covering the callback's viewport (egui sets the viewport to the image rect).
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

const LUMA = vec3<f32>(0.299, 0.587, 0.114);

fn rgb_to_ycbcr(c: vec3<f32>) -> vec3<f32> {
    let y = dot(LUMA, c);
    let cb = (c.b - y) / (2.0 * (1.0 - LUMA.z));
    let cr = (c.r - y) / (2.0 * (1.0 - LUMA.x));
    return vec3<f32>(y, cb, cr);
}

fn ycbcr_to_rgb(v: vec3<f32>) -> vec3<f32> {
    let r = v.x + 2.0 * (1.0 - LUMA.x) * v.z;
    let b = v.x + 2.0 * (1.0 - LUMA.z) * v.y;
    let g = (v.x - LUMA.x * r - LUMA.z * b) / LUMA.y;
    return vec3<f32>(r, g, b);
}

fn compose_pixel(original: vec3<f32>, stylised: vec3<f32>) -> vec3<f32> {
    var styled = stylised;
    if finish.preserve > 0.5 {
        let y = rgb_to_ycbcr(stylised).x;
        let chroma = rgb_to_ycbcr(original).yz;
        styled = ycbcr_to_rgb(vec3<f32>(y, chroma));
    }
    let t = clamp(finish.strength, 0.0, 1.0);
    // Weighted sum, not mix(): the ends are then exactly the two images, as on the CPU.
    return clamp(original * (1.0 - t) + styled * t, vec3<f32>(0.0), vec3<f32>(1.0));
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

// The textures have no mipmaps, and a 4096-pixel result is often drawn at a fifth of its size:
// average up to 4×4 bilinear taps across the screen pixel's footprint so it does not shimmer.
// compose_pixel is affine before its clamp, so averaging its inputs is averaging its output.
const MAX_TAPS: i32 = 4;

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<f32>(textureDimensions(original_tex));
    let footprint = vec2<f32>(abs(dpdx(in.uv).x), abs(dpdy(in.uv).y));
    let taps = clamp(vec2<i32>(ceil(footprint * size)), vec2<i32>(1), vec2<i32>(MAX_TAPS));
    var original = vec3<f32>(0.0);
    var stylised = vec3<f32>(0.0);
    for (var y = 0; y < taps.y; y++) {
        for (var x = 0; x < taps.x; x++) {
            let offset = (vec2<f32>(f32(x), f32(y)) + 0.5) / vec2<f32>(taps) - 0.5;
            let uv = in.uv + offset * footprint;
            original += textureSampleLevel(original_tex, image_sampler, uv, 0.0).rgb;
            stylised += textureSampleLevel(stylised_tex, image_sampler, uv, 0.0).rgb;
        }
    }
    let n = f32(taps.x * taps.y);
    original /= n;
    stylised /= n;
    var rgb = compose_pixel(original, stylised);
    if finish.split >= 0.0 && in.uv.x < finish.split {
        rgb = original;
    }
    if finish.srgb_target > 0.5 {
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
