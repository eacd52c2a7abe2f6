// Helpers shared by the compute kernels (prepended to each kernel file at build time).
//
// The CPU ports round to quantisation grids (ONNX QuantizeLinear -> DequantizeLinear), so a
// last-bit difference can move a value one grid step. WGSL's `/` is only accurate to 2.5 ULP;
// `div_cr` corrects the quotient with one fused residual step, which gives the correctly
// rounded result the CPU computes.

// a / b, correctly rounded (Markstein: q + (a - q*b) * (1/b), the residual exact with fma).
fn div_cr(a: f32, b: f32) -> f32 {
    let q = a / b;
    let r = fma(-q, b, a);
    return fma(r, 1.0 / b, q);
}

// ONNX QuantizeLinear -> DequantizeLinear: divide, round half to even, add the zero point,
// saturate, subtract the zero point, multiply by the scale. `q` = (scale, zero point, qmin,
// qmax); a scale of 0 means "no quantiser" (identity).
fn fq(x: f32, q: vec4<f32>) -> f32 {
    if (q.x == 0.0) {
        return x;
    }
    let t = round(div_cr(x, q.x)) + q.y;
    return (clamp(t, q.z, q.w) - q.y) * q.x;
}

// The flat index of this invocation over a 2-D grid of 1-D workgroups (dispatches wider than
// 65,535 workgroups are folded into y).
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * size + lid;
}
