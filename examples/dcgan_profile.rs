// TEMPORARY profiling helper (to be deleted): thread CPU time, robust to a loaded machine.
#[repr(C)]
struct Ts {
    s: i64,
    ns: i64,
}
unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Ts) -> i32;
}
fn cpu() -> f64 {
    let mut t = Ts { s: 0, ns: 0 };
    unsafe {
        clock_gettime(3, &mut t);
    }
    t.s as f64 * 1e3 + t.ns as f64 / 1e6
}
fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(real_main);
}
fn real_main() {
    let mut g =
        atelier::models::dcgan::Generator::load(std::path::Path::new("models/dcgan-weights.tar"))
            .unwrap();
    for b in [1usize, 4, 16] {
        let z: Vec<f32> = (0..b as u64)
            .flat_map(atelier::faces::latent_for_seed)
            .collect();
        for _ in 0..20 {
            g.forward(&z).unwrap();
        }
        let n = 200 / b;
        let c0 = cpu();
        let w0 = std::time::Instant::now();
        for _ in 0..n {
            g.forward(&z).unwrap();
        }
        let c = (cpu() - c0) / n as f64;
        let w = w0.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!(
            "batch {b:2}: cpu {c:.3} ms ({:.3} ms/sample), wall {w:.3} ms",
            c / b as f64
        );
    }
    if std::env::var_os("PROFILE_LAYERS").is_some() {
        unsafe {
            std::env::set_var("DCGAN_PROFILE", "1");
        }
        for b in [1u64, 16] {
            let z: Vec<f32> = (0..b).flat_map(atelier::faces::latent_for_seed).collect();
            for _ in 0..3 {
                g.forward(&z).unwrap();
                eprintln!("--");
            }
        }
    }
}
