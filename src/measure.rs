//! Small measurements shared by the benchmarks, the soak and the CLI's reports: medians and
//! the process's memory as Linux reports it.

/// The median (mean of the middle two for an even count); NaN for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// A `/proc/self/status` memory line (e.g. `VmHWM:`) in KiB; `None` off Linux.
pub fn memory_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// KiB as megabytes (10⁶ bytes) with one decimal, as the reports print them.
pub fn kib_to_mb(kib: u64) -> f64 {
    (kib as f64 * 1024.0 / 1e6 * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn reads_own_memory_on_linux() {
        if cfg!(target_os = "linux") {
            let hwm = memory_kib("VmHWM:");
            assert!(hwm.is_some_and(|k| k > 0));
        }
    }
}
