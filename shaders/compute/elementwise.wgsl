// Element-wise passes: quantisation of a whole tensor, conversion to an int8 convolution's
// integer inputs, the arbitrary transform's quantised sigmoid, and model output to RGBA8 (the
// faces' resampled, the style networks' cropped).

struct EParams {
    n: u32, mode: u32, out_w: u32, out_h: u32,
    // Texels per row of the RGBA output buffer (rows padded for copy_buffer_to_texture).
    // `zero` is written as 0 (see OPAQUE_ZERO in common.wgsl).
    row_texels: u32, in_size: u32, batch_index: u32, zero: u32,
    q: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: EParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

// mode 0: fq(x); mode 1: round(x / scale) (int8 inputs); mode 2: fq(sigmoid(x)).
@compute @workgroup_size(64)
fn pointwise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let i = flat_index(wid, nwg, lid, 64u);
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    switch p.mode {
        case 1u: { x[i] = round(div_cr(v, p.q.x)); }
        case 2u: { x[i] = fq(div_cr(1.0, 1.0 + exp_portable(-v)), p.q); }
        default: { x[i] = fq(v, p.q); }
    }
}

@group(0) @binding(2) var<storage, read_write> rgba: array<u32>;

fn face_value(c: u32, yy: i32, xx: i32) -> f32 {
    let s = i32(p.in_size);
    let y = clamp(yy, 0, s - 1);
    let xc = clamp(xx, 0, s - 1);
    let v = x[((p.batch_index * 3u + c) * p.in_size + u32(y)) * p.in_size + u32(xc)];
    return (v + 1.0) * 127.5;
}

// Catmull–Rom weights (a = −0.5) for a sample at fractional offset t.
fn cubic(t: f32) -> vec4<f32> {
    let t2 = t * t;
    let t3 = t2 * t;
    return vec4<f32>(
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    );
}

// A generator output ([3][s][s] in −1..1) to RGBA8 at out_w × out_h: nearest when the sizes
// match, else Catmull–Rom (the preview filter of src/faces/render.rs), then rounded to 0..255.
@compute @workgroup_size(8, 8)
fn face_rgba(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.out_w || gid.y >= p.out_h) {
        return;
    }
    var px = vec3<f32>(0.0);
    let sx = (f32(gid.x) + 0.5) * f32(p.in_size) / f32(p.out_w) - 0.5;
    let sy = (f32(gid.y) + 0.5) * f32(p.in_size) / f32(p.out_h) - 0.5;
    let x0 = i32(floor(sx));
    let y0 = i32(floor(sy));
    let wx = cubic(sx - f32(x0));
    let wy = cubic(sy - f32(y0));
    for (var c = 0u; c < 3u; c++) {
        var acc = 0.0;
        for (var j = 0; j < 4; j++) {
            var row = 0.0;
            for (var i = 0; i < 4; i++) {
                row += wx[i] * face_value(c, y0 - 1 + j, x0 - 1 + i);
            }
            acc += wy[j] * row;
        }
        px[c] = acc;
    }
    let v = vec3<u32>(clamp(round(px), vec3<f32>(0.0), vec3<f32>(255.0)));
    rgba[gid.y * p.row_texels + gid.x] = v.x | (v.y << 8u) | (v.z << 16u) | (255u << 24u);
}

// A style network's output ([3][n] with rows of `in_size`, values 0..1) cropped to out_w ×
// out_h and rounded to RGBA8 as the CPU does (`image::to_u8`: v·255 rounded half away from
// zero, clamped), for a texture the finish shader reads without a trip through the CPU.
@compute @workgroup_size(8, 8)
fn style_rgba(@builtin(global_invocation_id) gid: vec3<u32>) {
    OPAQUE_ZERO = p.zero;
    if (gid.x >= p.out_w || gid.y >= p.out_h) {
        return;
    }
    let i = gid.y * p.in_size + gid.x;
    var c = vec3<u32>(0u);
    for (var k = 0u; k < 3u; k++) {
        // The product is rounded on its own, as on the CPU, before the half is added.
        let t = materialise(x[k * p.n + i] * 255.0);
        c[k] = u32(clamp(floor(t + 0.5), 0.0, 255.0));
    }
    rgba[gid.y * p.row_texels + gid.x] = c.x | (c.y << 8u) | (c.z << 16u) | (255u << 24u);
}
