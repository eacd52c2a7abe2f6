// (Conditional) instance normalisation: per-channel statistics by a parallel reduction, the
// per-channel scale and shift, and the normalisation itself with the layer's activation or
// residual add.
//
// Statistics run in two stages, as the CPU ports sum: `chunk_sums` gives every run of 256
// values of a channel its own invocation, which adds them in order in f32; `reduce` then gives
// every channel a workgroup that adds the run sums in a tree in double-f32 (hi + lo, about
// 48 significant bits: the CPU adds them in f64) and divides by the pixel count. The mean pass
// runs first, then the variance pass, which sums (v - mean)² (quantised first for the
// arbitrary-style network, as its graph does).
//
// `kind` 0 is multistyle26 (plain floats); 1 is the arbitrary-style transform, whose graph
// fake-quantises the statistics and every step of the scale and shift.

struct NormParams {
    c: u32, hw: u32, chunks: u32, pass_var: u32,
    kind: u32, relu: u32, residual: u32, act: u32,
    // `zero` is written as 0 (see OPAQUE_ZERO in common.wgsl).
    eps: f32, zero: u32, _u1: f32, _u2: f32,
    q_mean: vec4<f32>,
    q_sq: vec4<f32>,
    q_var: vec4<f32>,
    q_var_eps: vec4<f32>,
    q_rsqrt: vec4<f32>,
    q_mul: vec4<f32>,
    q_mean_mul: vec4<f32>,
    q_shift: vec4<f32>,
    q_x_mul: vec4<f32>,
    q_out: vec4<f32>,
    q_res: vec4<f32>,
}

const CHUNK: u32 = 256u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// [c][chunks] run sums.
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// [mean; c] then [variance; c].
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
// [gamma; c] then [beta; c].
@group(0) @binding(4) var<storage, read> gb: array<f32>;
// [scale; c] then [shift; c].
@group(0) @binding(5) var<storage, read_write> affine: array<f32>;
// The residual block's input (a one-value dummy when the layer has none).
@group(0) @binding(6) var<storage, read> skip: array<f32>;

@compute @workgroup_size(64)
fn chunk_sums(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let i = flat_index(wid, nwg, lid, 64u);
    if (i >= p.c * p.chunks) {
        return;
    }
    let ch = i / p.chunks;
    let chunk = i % p.chunks;
    let start = ch * p.hw + chunk * CHUNK;
    let end = ch * p.hw + min((chunk + 1u) * CHUNK, p.hw);
    var s = 0.0;
    if (p.pass_var == 0u) {
        for (var j = start; j < end; j++) {
            s = s + x[j];
        }
    } else {
        let m = stats[ch];
        for (var j = start; j < end; j++) {
            let d = x[j] - m;
            s = s + fq(d * d, p.q_sq);
        }
    }
    partial[i] = s;
}

// Double-f32 addition (Knuth's two-sum, then renormalise).
fn df_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = a.x + b.x;
    let bb = s - a.x;
    let e = (a.x - (s - bb)) + (b.x - bb);
    let lo = e + a.y + b.y;
    let hi = s + lo;
    return vec2<f32>(hi, lo - (hi - s));
}

var<workgroup> tree: array<vec2<f32>, WG>;

// What the graph derives from the statistics: the per-channel scale and shift.
fn write_affine(ch: u32) {
    let mean = stats[ch];
    let v = stats[p.c + ch];
    let gamma = gb[ch];
    let beta = gb[p.c + ch];
    if (p.kind == 0u) {
        let a = gamma / sqrt(v + p.eps);
        affine[ch] = a;
        affine[p.c + ch] = beta - mean * a;
    } else {
        let ve = fq(v + p.eps, p.q_var_eps);
        let rs = fq(div_cr(1.0, sqrt_cr(ve)), p.q_rsqrt);
        let mul = fq(rs * gamma, p.q_mul);
        let mm = fq(mean * mul, p.q_mean_mul);
        affine[ch] = mul;
        affine[p.c + ch] = fq(beta - mm, p.q_shift);
    }
}

@compute @workgroup_size(256)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    OPAQUE_ZERO = p.zero;
    let ch = wid.x;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < p.chunks; i += WG) {
        acc = df_add(acc, vec2<f32>(partial[ch * p.chunks + i], 0.0));
    }
    tree[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            tree[lid] = df_add(tree[lid], tree[lid + half]);
        }
        workgroupBarrier();
    }
    if (lid != 0u) {
        return;
    }
    // (hi + lo) / n, rounded once: the quotient of hi, corrected by the exact remainder.
    let s = tree[0];
    let n = f32(p.hw);
    let q = s.x / n;
    let r = fma_x(-q, n, s.x) + s.y;
    let value = q + r / n;
    if (p.pass_var == 0u) {
        stats[ch] = fq(value, p.q_mean);
    } else {
        stats[p.c + ch] = fq(value, p.q_var);
        write_affine(ch);
    }
}

// The scale and shift from statistics given in `stats` (tiles of a larger image).
@compute @workgroup_size(64)
fn affine_from_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    OPAQUE_ZERO = p.zero;
    if (gid.x < p.c) {
        write_affine(gid.x);
    }
}

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

// Normalises in place; then multistyle26's activation (act 0 ReLU, 1 residual add, 2 sigmoid)
// or the arbitrary transform's quantised steps (ReLU optional, residual add quantised).
@compute @workgroup_size(64)
fn norm_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    OPAQUE_ZERO = p.zero;
    let i = flat_index(wid, nwg, lid, 64u);
    if (i >= p.c * p.hw) {
        return;
    }
    let ch = i / p.hw;
    let a = affine[ch];
    let b = affine[p.c + ch];
    let v = x[i];
    if (p.kind == 0u) {
        let n = v * a + b;
        switch p.act {
            case 0u: { x[i] = max(n, 0.0); }
            case 1u: {
                if (p.residual == 1u) {
                    x[i] = n + skip[i];
                } else {
                    x[i] = n;
                }
            }
            default: { x[i] = sigmoid(n); }
        }
    } else {
        var o = fq(v * a, p.q_x_mul) + b;
        if (p.relu == 1u && o < 0.0) {
            o = 0.0;
        }
        o = fq(o, p.q_out);
        if (p.residual == 1u) {
            o = fq(skip[i] + o, p.q_res);
        }
        x[i] = o;
    }
}
