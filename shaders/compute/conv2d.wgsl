// Direct 2-D convolution with reflect or zero padding and nearest upsampling folded into the
// input indexing (no padded or upsampled copy is made), four output channels per invocation,
// and the layer's epilogue (bias, activation, quantisation) fused in.
//
// Each output sums its products in the CPU port's order, input channel, kernel row, column,
// with fused multiply-adds from zero in runs of `run` terms, each run's sum added to the total
// (onnxruntime's MLAS order; `run` = K for one run). Summing in the same order is what keeps
// the quantised arbitrary-style network on the CPU's grid points.

struct ConvParams {
    cin: u32, h: u32, w: u32, cout: u32,
    oh: u32, ow: u32, k: u32, stride: u32,
    pad: u32, up: u32, run: u32, reflect: u32,
    // 0: sum + bias; 1: fq(act(sum + bias)); 2: act(round(clamp((sum + bias)·mult)) · os)
    // `zero` is written as 0 (see OPAQUE_ZERO in common.wgsl).
    epilogue: u32, act: u32, cout4: u32, zero: u32,
    act_lo: f32, act_hi: f32, i8_lo: f32, i8_hi: f32,
    i8_os: f32, _u1: f32, _u2: f32, _u3: f32,
    q: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// [cout4][cin·k·k] vec4s: the weights of output channels 4·b .. 4·b+3 (zero past cout).
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
// [bias; cout] then [int8 multiplier; cout].
@group(0) @binding(3) var<storage, read> chan: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Source index along an axis of length n upsampled `up`x, for padded position i (pad already
// subtracted); -1 reads a zero.
fn src_index(i: i32, n: u32, up: u32, reflect: u32) -> i32 {
    let u = i32(n * up);
    if (reflect == 1u) {
        if (u <= 1) {
            return 0;
        }
        let period = 2 * (u - 1);
        var m = i % period;
        if (m < 0) {
            m += period;
        }
        if (m >= u) {
            m = period - m;
        }
        return m / i32(up);
    }
    if (i < 0 || i >= u) {
        return -1;
    }
    return i / i32(up);
}

fn act(v: f32) -> f32 {
    switch p.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, p.act_lo, p.act_hi); }
        default: { return v; }
    }
}

@compute @workgroup_size(64)
fn conv2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let hw = p.oh * p.ow;
    let pix = flat_index(vec3<u32>(wid.x, wid.y, 0u), nwg, lid, 64u);
    let cb = wid.z;
    if (pix >= hw) {
        return;
    }
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    let hw_in = p.h * p.w;
    let kk = p.k * p.k;
    let wbase = cb * p.cin * kk;
    var total = vec4<f32>(0.0);
    var acc = vec4<f32>(0.0);
    var n = 0u;
    var t = 0u;
    for (var ci = 0u; ci < p.cin; ci++) {
        for (var ky = 0u; ky < p.k; ky++) {
            let sy = src_index(i32(oy * p.stride + ky) - i32(p.pad), p.h, p.up, p.reflect);
            for (var kx = 0u; kx < p.k; kx++) {
                let sx = src_index(i32(ox * p.stride + kx) - i32(p.pad), p.w, p.up, p.reflect);
                var v = 0.0;
                if (sy >= 0 && sx >= 0) {
                    v = x[ci * hw_in + u32(sy) * p.w + u32(sx)];
                }
                acc = fma_x4(vec4<f32>(v), wt[wbase + t], acc);
                t++;
                n++;
                if (n == p.run) {
                    total = total + acc;
                    acc = vec4<f32>(0.0);
                    n = 0u;
                }
            }
        }
    }
    if (n > 0u) {
        total = total + acc;
    }
    for (var j = 0u; j < 4u; j++) {
        let co = cb * 4u + j;
        if (co >= p.cout) {
            break;
        }
        var r = total[j] + chan[co];
        if (p.epilogue == 1u) {
            r = fq(act(r), p.q);
        } else if (p.epilogue == 2u) {
            r = act(round(clamp(r * chan[p.cout + co], p.i8_lo, p.i8_hi)) * p.i8_os);
        }
        y[co * hw + pix] = r;
    }
}
