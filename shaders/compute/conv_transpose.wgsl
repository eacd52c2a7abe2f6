// The DCGAN's transposed convolution (4×4 kernel) as a gather: each output pixel sums the
// input pixels whose kernel footprint covers it (o = i·stride − pad + k), four output channels
// per invocation, then adds the folded BatchNorm shift and applies ReLU or tanh. Activations
// are [batch][channel][y][x].

struct TParams {
    cin: u32, cout: u32, h_in: u32, h_out: u32,
    stride: u32, pad: u32, tanh: u32, batch: u32,
}

@group(0) @binding(0) var<uniform> p: TParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// [cout4][16 taps][cin] vec4s, BatchNorm scale folded in.
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
// [cout4] vec4s: the folded BatchNorm shift.
@group(0) @binding(3) var<storage, read> shift: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// tanh as the CPU port computes it (Eigen's rational approximation): the built-in may turn
// into exp(x)/exp(-x) and overflow to NaN for large |x| on some drivers.
fn fast_tanh(x0: f32) -> f32 {
    if (abs(x0) < 4e-4) {
        return x0;
    }
    let x = clamp(x0, -7.905311, 7.905311);
    let x2 = x * x;
    var q = fma(x2, -2.7607685e-16, 2.0001879e-13);
    q = fma(q, x2, -8.6046715e-11);
    q = fma(q, x2, 5.122297e-8);
    q = fma(q, x2, 1.4857224e-5);
    q = fma(q, x2, 6.3726193e-4);
    q = fma(q, x2, 4.8935246e-3);
    var d = fma(x2, 1.1982584e-6, 1.1853471e-4);
    d = fma(d, x2, 2.2684346e-3);
    d = fma(d, x2, 4.8935252e-3);
    return x * q / d;
}

@compute @workgroup_size(64)
fn conv_transpose(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane_out = p.h_out * p.h_out;
    let idx = flat_index(vec3<u32>(wid.x, wid.y, 0u), nwg, lid, 64u);
    if (idx >= p.batch * plane_out) {
        return;
    }
    let cb = wid.z;
    let b = idx / plane_out;
    let pix = idx % plane_out;
    let oy = pix / p.h_out;
    let ox = pix % p.h_out;
    let plane_in = p.h_in * p.h_in;
    let xb = b * p.cin * plane_in;
    var acc = shift[cb];
    for (var ky = 0u; ky < 4u; ky++) {
        let ty = i32(oy + p.pad) - i32(ky);
        if (ty < 0 || ty % i32(p.stride) != 0 || ty / i32(p.stride) >= i32(p.h_in)) {
            continue;
        }
        let iy = u32(ty) / p.stride;
        for (var kx = 0u; kx < 4u; kx++) {
            let tx = i32(ox + p.pad) - i32(kx);
            if (tx < 0 || tx % i32(p.stride) != 0 || tx / i32(p.stride) >= i32(p.h_in)) {
                continue;
            }
            let ix = u32(tx) / p.stride;
            let wb = (cb * 16u + ky * 4u + kx) * p.cin;
            let xo = xb + iy * p.h_in + ix;
            for (var ci = 0u; ci < p.cin; ci++) {
                acc = fma(vec4<f32>(x[xo + ci * plane_in]), wt[wb + ci], acc);
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        let co = cb * 4u + j;
        if (co >= p.cout) {
            break;
        }
        var v = acc[j];
        if (p.tanh == 1u) {
            v = fast_tanh(v);
        } else {
            v = max(v, 0.0);
        }
        y[(b * p.cout + co) * plane_out + pix] = v;
    }
}
