// Direct 2-D convolution with reflect or zero padding and nearest upsampling folded into the
// input indexing (no padded or upsampled copy is made), eight output channels per invocation,
// and the layer's epilogue (bias, activation, quantisation) fused in.
//
// Each output sums its products in the CPU port's order, input channel, kernel row, column,
// with fused multiply-adds from zero in runs of `run` terms, each run's sum added to the total
// (onnxruntime's MLAS order; `run` = K for one run). Summing in the same order is what keeps
// the quantised arbitrary-style network on the CPU's grid points.
//
// Where a tap reads is worked out once per invocation, not once per input channel: the
// padding and upsampling arithmetic (an integer remainder for reflection) would otherwise cost
// more than the multiply-adds. The kernel size is a pipeline constant, so the window's loops
// unroll and its offsets stay in registers.

// The kernel's side (the host compiles a pipeline per size it needs, up to MAX_K).
override KS: u32;
const MAX_K: u32 = 9u;

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

// Bias, epilogue and store of output channels 4·b .. 4·b+3 at `pix`.
fn store(b: u32, total: vec4<f32>, pix: u32, hw: u32) {
    for (var j = 0u; j < 4u; j++) {
        let co = b * 4u + j;
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

@compute @workgroup_size(64)
fn conv2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let hw = p.oh * p.ow;
    let pix = flat_index(vec3<u32>(wid.x, wid.y, 0u), nwg, lid, 64u);
    if (pix >= hw) {
        return;
    }
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    // Each window row's offset into a plane and each column's index; -1 reads a zero.
    var rows: array<i32, MAX_K>;
    var cols: array<i32, MAX_K>;
    for (var i = 0u; i < KS; i++) {
        let sy = src_index(i32(oy * p.stride + i) - i32(p.pad), p.h, p.up, p.reflect);
        rows[i] = select(-1, sy * i32(p.w), sy >= 0);
        cols[i] = src_index(i32(ox * p.stride + i) - i32(p.pad), p.w, p.up, p.reflect);
    }
    // Channel blocks 2z and 2z+1 (the second only where cout4 has it: uniform per dispatch).
    let b0 = wid.z * 2u;
    let two = b0 + 1u < p.cout4;
    let taps = p.cin * KS * KS;
    let w0 = b0 * taps;
    let w1 = w0 + taps;
    let hw_in = i32(p.h * p.w);
    var total0 = vec4<f32>(0.0);
    var total1 = vec4<f32>(0.0);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var n = 0u;
    var t = 0u;
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = i32(ci) * hw_in;
        for (var ky = 0u; ky < KS; ky++) {
            let r = rows[ky];
            for (var kx = 0u; kx < KS; kx++) {
                let c = cols[kx];
                var v = 0.0;
                if (r >= 0 && c >= 0) {
                    v = x[plane + r + c];
                }
                let vv = vec4<f32>(v);
                acc0 = fma_x4(vv, wt[w0 + t], acc0);
                if (two) {
                    acc1 = fma_x4(vv, wt[w1 + t], acc1);
                }
                t++;
                n++;
                if (n == p.run) {
                    total0 = total0 + acc0;
                    total1 = total1 + acc1;
                    acc0 = vec4<f32>(0.0);
                    acc1 = vec4<f32>(0.0);
                    n = 0u;
                }
            }
        }
    }
    if (n > 0u) {
        total0 = total0 + acc0;
        total1 = total1 + acc1;
    }
    store(b0, total0, pix, hw);
    if (two) {
        store(b0 + 1u, total1, pix, hw);
    }
}
