// Whether this adapter's `fma` is fused. WGSL lets an implementation compute fma(a, b, c) as
// a rounded product plus c (mesa's lavapipe does); the CPU ports' float convolutions sum
// with true fused multiply-adds (onnxruntime's order), so only a fused `fma` reproduces them
// bit for bit. With a = 1 + 2^-23, b = 1 - 2^-23, c = -1 the exact result is -2^-46; a
// rounded product gives 0.

@group(0) @binding(0) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(1)
fn fma_probe() {
    v[3] = fma(v[0], v[1], v[2]);
}
