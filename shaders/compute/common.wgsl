// Helpers shared by the compute kernels (prepended to each kernel file at build time).
//
// The CPU ports round to quantisation grids (ONNX QuantizeLinear -> DequantizeLinear), so a
// last-bit difference can move a value one grid step. WGSL's `/` is only accurate to 2.5 ULP;
// `div_cr` corrects the quotient with one fused residual step, which gives the correctly
// rounded result the CPU computes.

// Whether `fma_x` emulates a fused multiply-add. WGSL's `fma` may round the product before
// adding (mesa's lavapipe does); the host probes the adapter (`GpuContext::fma_is_fused`) and
// sets this when it compiles a pipeline that must reproduce the CPU's bits on such an adapter.
// Float networks that only need to be close (1e-3) run the hardware's `fma` as it is.
override EMULATE_FMA: bool = false;

// The error-free transformations below hold only if every operation is rounded as written;
// drivers may reassociate float arithmetic they see through (mesa folds `t - (t - a)` to `a`),
// so each intermediate passes through `materialise`, which they cannot see through.

// a + b as the rounded sum and its exact error (Knuth's TwoSum).
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = materialise(a + b);
    let bb = materialise(s - a);
    let e = materialise(a - materialise(s - bb)) + materialise(b - bb);
    return vec2<f32>(s, materialise(e));
}

// a·b as the rounded product and its exact error (Dekker, with Veltkamp's split).
fn two_prod(a: f32, b: f32) -> vec2<f32> {
    let p = materialise(a * b);
    let ta = materialise(4097.0 * a);
    let ah = materialise(ta - materialise(ta - a));
    let al = materialise(a - ah);
    let tb = materialise(4097.0 * b);
    let bh = materialise(tb - materialise(tb - b));
    let bl = materialise(b - bh);
    let e1 = materialise(materialise(ah * bh) - p);
    let e2 = materialise(e1 + materialise(ah * bl));
    let e3 = materialise(e2 + materialise(al * bh));
    return vec2<f32>(p, materialise(e3 + materialise(al * bl)));
}

// a + b rounded to odd: exact sums stay, inexact ones take the neighbour with an odd last bit.
fn add_odd(a: f32, b: f32) -> f32 {
    let s = two_sum(a, b);
    let bits = bitcast<u32>(s.x);
    if (s.y == 0.0 || (bits & 1u) == 1u) {
        return s.x;
    }
    let away = (s.y > 0.0) == (s.x > 0.0);
    return bitcast<f32>(select(bits - 1u, bits + 1u, away));
}

// a·b + c with one rounding where it matters: the hardware's `fma` unless EMULATE_FMA, then
// Boldo and Melquiond's emulation (exact product and sum, the low parts added with rounding to
// odd, then one rounding to nearest), which gives a fused multiply-add's bits.
fn fma_x(a: f32, b: f32, c: f32) -> f32 {
    if (!EMULATE_FMA) {
        return fma(a, b, c);
    }
    let u = two_prod(a, b);
    let t = two_sum(c, u.x);
    return materialise(t.x + add_odd(t.y, u.y));
}

fn fma_x4(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>) -> vec4<f32> {
    if (!EMULATE_FMA) {
        return fma(a, b, c);
    }
    return vec4<f32>(fma_x(a.x, b.x, c.x), fma_x(a.y, b.y, c.y), fma_x(a.z, b.z, c.z), fma_x(a.w, b.w, c.w));
}

// Of `q` and its two neighbouring floats, the one whose exact residual `a - c·b` (one fused
// multiply-add, exact this close to the quotient) is smallest: the correctly rounded a / b
// for any `q` within a couple of ULP. An exact tie (a / b halfway between two floats) takes
// the even one, as IEEE division rounds.
fn nearest_quotient(q: f32, a: f32, b: f32) -> f32 {
    let bits = bitcast<u32>(q);
    let lo = bitcast<f32>(bits - 1u);
    let hi = bitcast<f32>(bits + 1u);
    let r = abs(fma_x(-q, b, a));
    let rl = abs(fma_x(-lo, b, a));
    let rh = abs(fma_x(-hi, b, a));
    var best = q;
    var rb = r;
    if (rl < rb || (rl == rb && (bitcast<u32>(lo) & 1u) == 0u)) {
        best = lo;
        rb = rl;
    }
    if (rh < rb || (rh == rb && (bitcast<u32>(hi) & 1u) == 0u)) {
        best = hi;
    }
    // A zero or non-finite quotient has no neighbours to compare (NaN residuals).
    if (q == 0.0 || !(r == r)) {
        return q;
    }
    return best;
}

// a / b, correctly rounded. WGSL's `/` may be 2.5 ULP off (a reciprocal and a product on
// many drivers); one Markstein step brings it within about an ULP, and the residual
// comparison settles the last bit, so quantisation rounds exactly as the CPU does.
fn div_cr(a: f32, b: f32) -> f32 {
    let q = a / b;
    let r = fma_x(-q, b, a);
    return nearest_quotient(fma_x(r, 1.0 / b, q), a, b);
}

// A zero the shader compiler cannot see through: entry points that need it copy it from a
// uniform field the host writes as 0. Drivers may contract `a * b + c` into one fused
// multiply-add (SPIR-V without NoContraction, Metal, DXIL all allow it); the CPU rounds the
// product first, so a product that is added to later passes through `materialise`.
var<private> OPAQUE_ZERO: u32 = 0u;

// `v`, rounded to f32 as computed and kept apart from any later addition.
fn materialise(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) | OPAQUE_ZERO);
}

// sqrt(x), correctly rounded: WGSL allows 2 ULP. One residual step with fma, then of the
// result and its neighbours the one whose exact residual x - c² is smallest (a square root is
// never exactly halfway between two floats).
fn sqrt_cr(x: f32) -> f32 {
    let s0 = sqrt(x);
    let s = fma_x(fma_x(-s0, s0, x), 0.5 / s0, s0);
    if (!(s > 0.0)) {
        return s0;
    }
    let bits = bitcast<u32>(s);
    var best = s;
    var rb = abs(fma_x(-s, s, x));
    for (var d = 0u; d < 2u; d++) {
        let c = bitcast<f32>(select(bits + 1u, bits - 1u, d == 0u));
        let r = abs(fma_x(-c, c, x));
        if (r < rb) {
            best = c;
            rb = r;
        }
    }
    return best;
}

// e^x from IEEE operations only (products, fused multiply-adds, rounding, scaling by a power
// of two), so the CPU (`ops::exp_portable`) computes the same bits: Cody–Waite reduction by
// ln 2 and Cephes' degree-6 polynomial on [-ln2/2, ln2/2], within 1 ULP of e^x.
fn exp_portable(x0: f32) -> f32 {
    let x = clamp(x0, -87.0, 88.0);
    let n = round(x * 1.44269504);
    var r = fma_x(-n, 0.693359375, x);
    r = fma_x(-n, -2.12194440e-4, r);
    var c = fma_x(1.9875691500e-4, r, 1.3981999507e-3);
    c = fma_x(c, r, 8.3334519073e-3);
    c = fma_x(c, r, 4.1665795894e-2);
    c = fma_x(c, r, 1.6666665459e-1);
    c = fma_x(c, r, 5.0000001201e-1);
    let e = fma_x(c, r * r, r) + 1.0;
    return e * bitcast<f32>(u32(i32(n) + 127) << 23u);
}

// ONNX QuantizeLinear -> DequantizeLinear: divide, round half to even, add the zero point,
// saturate, subtract the zero point, multiply by the scale. `q` = (scale, zero point, qmin,
// qmax); a scale of 0 means "no quantiser" (identity).
fn fq(x: f32, q: vec4<f32>) -> f32 {
    if (q.x == 0.0) {
        return x;
    }
    let t = round(div_cr(x, q.x)) + q.y;
    return materialise((clamp(t, q.z, q.w) - q.y) * q.x);
}

// The flat index of this invocation over a 2-D grid of 1-D workgroups (dispatches wider than
// 65,535 workgroups are folded into y).
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * size + lid;
}
