// TEMPORARY (to be deleted): which weight layout makes the NHWC GEMMs fastest.
use atelier::models::dcgan::sgemm_strided;
fn t(f: &mut dyn FnMut()) -> f64 {
    for _ in 0..3 {
        f()
    }
    let mut v = vec![];
    for _ in 0..15 {
        let s = std::time::Instant::now();
        f();
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    v[7]
}
fn main() {
    for &(m, n, k) in &[
        (16usize, 4096usize, 512usize),
        (64, 2048, 256),
        (256, 1024, 128),
        (1024, 48, 64),
        (256, 4096, 512),
        (4096, 1024, 128),
        (16384, 48, 64),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let kn = t(&mut || sgemm_strided(m, n, k, (&a, k, 1), (&w, n, 1), &mut c));
        let nk = t(&mut || sgemm_strided(m, n, k, (&a, k, 1), (&w, 1, k), &mut c));
        // the old channel-major orientation: c^T[n][m] = w^T[n][k] a^T[k][m]
        let mut ct = vec![0f32; m * n];
        let at: Vec<f32> = a.clone();
        let old = t(&mut || sgemm_strided(n, m, k, (&w, k, 1), (&at, m, 1), &mut ct));
        let mixed = t(&mut || sgemm_strided(n, m, k, (&w, k, 1), (&a, 1, k), &mut ct));
        let mixed2 = t(&mut || sgemm_strided(n, m, k, (&w, 1, n), (&a, 1, k), &mut ct));
        println!(
            "m={m:5} n={n:5} k={k:4}: W[k][n] {kn:.3} ms  W[n][k] {nk:.3} ms  channel-major {old:.3} ms  cm-out/nhwc-in Wnk {mixed:.3} Wkn {mixed2:.3}"
        );
    }
}
