//! Whole passes over a batch: the training step's loss and adapter gradients, the evaluation
//! loss, and next-token logits for samples. Each calls `pause` between layers, so a job that
//! is asked to yield or stop does so within one layer's work.

use super::head::{self, HeadScratch};
use super::layer::{self, Dims, Rope, Saved, Scratch};
use super::{Grads, Lora, TrainModel};
use crate::long_job::Stopped;

/// Why a pass did not finish.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Interrupted {
    /// The job was stopped (between two layers).
    #[error("stopped")]
    Stopped,
    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the model's vocabulary of {vocab} tokens")]
    BadToken { id: u32, vocab: usize },
    /// The tokens do not split into the given number of sequences of at least two tokens.
    #[error("{tokens} tokens do not make {seqs} sequences of two or more tokens")]
    BadBatch { tokens: usize, seqs: usize },
}

impl From<Stopped> for Interrupted {
    fn from(_: Stopped) -> Self {
        Self::Stopped
    }
}

/// Buffers reused from one pass to the next: the activations each layer keeps for its
/// backward pass, and scratch.
#[derive(Default)]
pub struct Workspace {
    saved: Vec<Saved>,
    scratch: Scratch,
    head: HeadScratch,
    x: Vec<f32>,
    next: Vec<f32>,
    dx: Vec<f32>,
    dnext: Vec<f32>,
}

impl TrainModel {
    fn check(&self, tokens: &[u32], seqs: usize, min_len: usize) -> Result<Dims, Interrupted> {
        let bad = Interrupted::BadBatch {
            tokens: tokens.len(),
            seqs,
        };
        if seqs == 0 || !tokens.len().is_multiple_of(seqs) || tokens.len() / seqs < min_len {
            return Err(bad);
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(Interrupted::BadToken {
                id,
                vocab: self.vocab,
            });
        }
        Ok(Dims {
            seqs,
            len: tokens.len() / seqs,
        })
    }

    /// The scaled token embeddings of `tokens` into `x`.
    fn embed_into(&self, tokens: &[u32], x: &mut Vec<f32>) {
        let c = &self.hp.cfg;
        let d = c.n_embd;
        x.clear();
        for &t in tokens {
            let row = &self.embed[t as usize * d..(t as usize + 1) * d];
            x.extend(row.iter().map(|v| v * c.embed_scale));
        }
    }

    /// Runs every layer over `tokens` (`seqs` sequences), keeping each layer's activations
    /// when `keep` (for a backward pass) or only the last's; leaves the output in `ws.x`.
    #[allow(clippy::too_many_arguments)]
    fn layers_forward(
        &self,
        lora: Option<&Lora>,
        tokens: &[u32],
        dims: Dims,
        ropes: &[Rope],
        keep: bool,
        ws: &mut Workspace,
        pause: &dyn Fn() -> Result<(), Stopped>,
    ) -> Result<(), Interrupted> {
        let kept = if keep { self.n_layer() } else { 1 };
        ws.saved
            .resize_with(kept.max(ws.saved.len()), Saved::default);
        self.embed_into(tokens, &mut ws.x);
        for l in 0..self.n_layer() {
            pause()?;
            let saved = &mut ws.saved[if keep { l } else { 0 }];
            layer::forward(
                self,
                lora,
                l,
                dims,
                ropes,
                &ws.x,
                saved,
                &mut ws.scratch,
                &mut ws.next,
            );
            std::mem::swap(&mut ws.x, &mut ws.next);
        }
        Ok(())
    }

    /// One training step's forward and backward pass over `tokens` (`seqs` sequences of equal
    /// length): returns the mean next-token loss and adds its gradient with respect to every A
    /// and B to `grads`.
    pub fn loss_and_grads(
        &self,
        lora: &Lora,
        tokens: &[u32],
        seqs: usize,
        grads: &mut Grads,
        ws: &mut Workspace,
        pause: &dyn Fn() -> Result<(), Stopped>,
    ) -> Result<f64, Interrupted> {
        let dims = self.check(tokens, seqs, 2)?;
        let ropes = Rope::tables(self, dims.len);
        self.layers_forward(Some(lora), tokens, dims, &ropes, true, ws, pause)?;
        let (sum, n) = head::loss(self, dims, tokens, &ws.x, &mut ws.head, Some(&mut ws.dx));
        for l in (0..self.n_layer()).rev() {
            pause()?;
            let dx = (l > 0).then_some(&mut ws.dnext);
            layer::backward(
                self,
                lora,
                grads,
                l,
                dims,
                &ropes,
                &ws.saved[l],
                &mut ws.scratch,
                &ws.dx,
                dx,
            );
            std::mem::swap(&mut ws.dx, &mut ws.dnext);
        }
        Ok(sum / n as f64)
    }

    /// The summed next-token loss over `tokens` (`seqs` sequences) and how many tokens were
    /// predicted, with the adapter or without it.
    pub fn eval_loss(
        &self,
        lora: Option<&Lora>,
        tokens: &[u32],
        seqs: usize,
        ws: &mut Workspace,
        pause: &dyn Fn() -> Result<(), Stopped>,
    ) -> Result<(f64, usize), Interrupted> {
        let dims = self.check(tokens, seqs, 2)?;
        let ropes = Rope::tables(self, dims.len);
        self.layers_forward(lora, tokens, dims, &ropes, false, ws, pause)?;
        Ok(head::loss(self, dims, tokens, &ws.x, &mut ws.head, None))
    }

    /// The logits predicting the token after `tokens` (one sequence), with the adapter or
    /// without it.
    pub fn next_logits(
        &self,
        lora: Option<&Lora>,
        tokens: &[u32],
        ws: &mut Workspace,
        pause: &dyn Fn() -> Result<(), Stopped>,
    ) -> Result<Vec<f32>, Interrupted> {
        let dims = self.check(tokens, 1, 1)?;
        let ropes = Rope::tables(self, dims.len);
        self.layers_forward(lora, tokens, dims, &ropes, false, ws, pause)?;
        Ok(head::last_logits(self, &ws.x))
    }
}
