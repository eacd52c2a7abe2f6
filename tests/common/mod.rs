//! Helpers shared by the integration tests that run a peer implementation.

use std::path::PathBuf;

/// The Python of the llama.cpp peer's venv (`ATELIER_PEER_PYTHON`, else the default venv of
/// scripts/peer-venv.sh); fails the test with what to run when it is missing.
pub fn peer_python() -> PathBuf {
    let p = std::env::var_os("ATELIER_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/atelier-bench/venv/bin/python")
        });
    assert!(
        p.is_file(),
        "llama.cpp's peer (llama-cpp-python) is not installed at {}: run scripts/peer-venv.sh (scripts/test.sh does)",
        p.display()
    );
    p
}
