//! A training run's checkpoint: everything a resumed run needs to go on exactly where the
//! last one stopped (the adapter, AdamW's moments and step, the sampler's RNG position, the
//! curves so far), in one file replaced atomically, so a crash or `kill -9` at any moment
//! leaves the previous complete checkpoint.
//!
//! Layout: `ATLRCKPT`, a u32 version, a u64 length and that many bytes of JSON
//! ([`RunState`]), then for every pair A, B, m(A), m(B), v(A), v(B) as little-endian f32, then
//! an FNV-1a 64 hash of everything before it (a torn or edited file is refused).

use std::path::{Path, PathBuf};

use crate::models::llm::lora::{LoraAdapter, LoraPair, LoraTarget};
use crate::models::llm::train::{AdamW, AdamWConfig, Grads};

const MAGIC: &[u8; 8] = b"ATLRCKPT";
const VERSION: u32 = 1;
/// The checkpoint's file name in a run folder.
pub const FILE: &str = "checkpoint.bin";

/// Where a run stands (the JSON part of a checkpoint).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Steps done.
    pub step: u64,
    /// The batch sampler's seed and its position in the ChaCha stream (a decimal u128).
    pub rng_seed: u64,
    pub rng_word_pos: String,
    /// AdamW's hyper-parameters and step count.
    pub adamw: AdamWConfig,
    pub adamw_step: u64,
    /// [`super::text::Corpus::fingerprint`] of the text trained on.
    pub fingerprint: u64,
    /// Validation loss of the base model (no adapter).
    pub base_val_loss: f64,
    /// `(step, training loss)` of every step.
    pub train_curve: Vec<(u64, f64)>,
    /// `(step, validation loss)` of every evaluation (step 0: the base model).
    pub val_curve: Vec<(u64, f64)>,
    /// Seconds spent training so far (across resumes).
    pub seconds: f64,
    /// The adapter's architecture and alpha.
    pub architecture: String,
    pub alpha: f32,
    /// `(layer, target, rank, n_in, n_out)` of every pair, in order.
    pub pairs: Vec<(usize, LoraTarget, usize, usize, usize)>,
}

/// What is wrong with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// It could not be read or written.
    #[error("checkpoint {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// It is not a checkpoint, or it is damaged or cut short.
    #[error("checkpoint {} is damaged ({detail}); start the run again or resume from a copy", path.display())]
    Damaged { path: PathBuf, detail: String },
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Writes a checkpoint of `state`, `adapter` and `opt` to `dir/checkpoint.bin` atomically.
pub fn save(
    dir: &Path,
    state: &RunState,
    adapter: &LoraAdapter,
    opt: &AdamW,
) -> Result<PathBuf, CheckpointError> {
    let path = dir.join(FILE);
    let io = |source| CheckpointError::Io {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec(state).map_err(|e| io(std::io::Error::other(e)))?;
    let floats: usize = adapter
        .pairs
        .iter()
        .map(|p| 3 * (p.a.len() + p.b.len()))
        .sum();
    let mut bytes = Vec::with_capacity(8 + 4 + 8 + json.len() + floats * 4 + 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    for (i, p) in adapter.pairs.iter().enumerate() {
        for v in [
            &p.a,
            &p.b,
            &opt.m.a[i],
            &opt.m.b[i],
            &opt.v.a[i],
            &opt.v.b[i],
        ] {
            for x in v.iter() {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    let h = fnv(&bytes);
    bytes.extend_from_slice(&h.to_le_bytes());
    crate::fsutil::atomic_write(&path, &bytes).map_err(io)?;
    Ok(path)
}

/// Reads `dir/checkpoint.bin`: the state, the adapter and AdamW's state.
pub fn load(dir: &Path) -> Result<(RunState, LoraAdapter, AdamW), CheckpointError> {
    let path = dir.join(FILE);
    let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    let damaged = |detail: &str| CheckpointError::Damaged {
        path: path.clone(),
        detail: detail.into(),
    };
    if bytes.len() < 8 + 4 + 8 + 8 || &bytes[..8] != MAGIC {
        return Err(damaged("not an Atelier training checkpoint"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let mut h = [0u8; 8];
    h.copy_from_slice(tail);
    if fnv(body) != u64::from_le_bytes(h) {
        return Err(damaged(
            "its checksum does not match: it was cut short or changed",
        ));
    }
    let mut word = [0u8; 8];
    let mut v4 = [0u8; 4];
    v4.copy_from_slice(&body[8..12]);
    if u32::from_le_bytes(v4) != VERSION {
        return Err(damaged("written by another version of Atelier"));
    }
    word.copy_from_slice(&body[12..20]);
    let json_len = usize::try_from(u64::from_le_bytes(word)).map_err(|_| damaged("bad header"))?;
    let json_end = 20usize
        .checked_add(json_len)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| damaged("bad header"))?;
    let state: RunState =
        serde_json::from_slice(&body[20..json_end]).map_err(|e| damaged(&e.to_string()))?;
    // Every size comes from the JSON: check they add up to the file before allocating.
    let mut need = 0usize;
    for &(_, _, rank, n_in, n_out) in &state.pairs {
        let per = rank
            .checked_mul(n_in)
            .and_then(|a| rank.checked_mul(n_out).and_then(|b| a.checked_add(b)))
            .and_then(|ab| ab.checked_mul(3 * 4));
        need = per
            .and_then(|p| need.checked_add(p))
            .ok_or_else(|| damaged("impossible pair sizes"))?;
    }
    if json_end.checked_add(need) != Some(body.len()) {
        return Err(damaged("its size does not match its pairs"));
    }
    let mut at = json_end;
    let mut next = |n: usize| -> Vec<f32> {
        let v = body[at..at + 4 * n]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        at += 4 * n;
        v
    };
    let mut pairs = Vec::with_capacity(state.pairs.len());
    let (mut m, mut v) = (
        Grads {
            a: Vec::new(),
            b: Vec::new(),
        },
        Grads {
            a: Vec::new(),
            b: Vec::new(),
        },
    );
    for &(layer, target, rank, n_in, n_out) in &state.pairs {
        let (na, nb) = (rank * n_in, rank * n_out);
        let (a, b) = (next(na), next(nb));
        m.a.push(next(na));
        m.b.push(next(nb));
        v.a.push(next(na));
        v.b.push(next(nb));
        pairs.push(LoraPair {
            layer,
            target,
            rank,
            n_in,
            n_out,
            a,
            b,
        });
    }
    let adapter = LoraAdapter {
        architecture: state.architecture.clone(),
        alpha: state.alpha,
        pairs,
    };
    let opt = AdamW {
        config: state.adamw,
        step: state.adamw_step,
        m,
        v,
    };
    Ok((state, adapter, opt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (RunState, LoraAdapter, AdamW) {
        let pair = LoraPair {
            layer: 1,
            target: LoraTarget::Down,
            rank: 2,
            n_in: 3,
            n_out: 4,
            a: vec![0.5; 6],
            b: vec![-1.5; 8],
        };
        let adapter = LoraAdapter {
            architecture: "llama".into(),
            alpha: 4.0,
            pairs: vec![pair],
        };
        let g = |x: f32| Grads {
            a: vec![vec![x; 6]],
            b: vec![vec![x; 8]],
        };
        let opt = AdamW {
            config: AdamWConfig::default(),
            step: 7,
            m: g(0.25),
            v: g(0.125),
        };
        let state = RunState {
            step: 7,
            rng_seed: 3,
            rng_word_pos: "1234".into(),
            adamw: opt.config,
            adamw_step: 7,
            fingerprint: 99,
            base_val_loss: 3.5,
            train_curve: vec![(1, 4.0), (7, 3.0)],
            val_curve: vec![(0, 3.5)],
            seconds: 12.5,
            architecture: "llama".into(),
            alpha: 4.0,
            pairs: vec![(1, LoraTarget::Down, 2, 3, 4)],
        };
        (state, adapter, opt)
    }

    #[test]
    fn a_checkpoint_reads_back_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (state, adapter, opt) = sample();
        save(dir.path(), &state, &adapter, &opt).expect("save");
        let (s, a, o) = load(dir.path()).expect("load");
        assert_eq!((s, a, o), (state, adapter, opt));
        let path = dir.path().join(FILE);
        let bytes = std::fs::read(&path).expect("read");
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            std::fs::write(&path, &bytes[..cut]).expect("write");
            assert!(matches!(
                load(dir.path()),
                Err(CheckpointError::Damaged { .. })
            ));
        }
    }
}
