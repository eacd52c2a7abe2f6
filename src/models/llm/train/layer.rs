//! One decoder layer, forward and backward, with LoRA on any of its seven projections. The
//! order of operations is the native decoder's (`native::Decoder::chunk_forward`): pre-norm
//! attention with q/k norms (Gemma), RoPE, grouped-query attention, the output projection and
//! its post-norm (Gemma), the residual; then the pre-norm gated MLP and its post-norm (Gemma),
//! the residual.

use rayon::prelude::*;

use super::attention::{self, BackwardScratch};
use super::gemm::{View, matmul};
use super::lora::{Grads, Lora, slot};
use super::ops::{gate_bwd, gate_fwd, rms_norm_apply, rms_norm_bwd, rms_norm_fwd};
use super::{LayerWeights, TrainModel};
use crate::models::llm::lora::LoraTarget;
use crate::models::llm::native::Activation;
use crate::models::llm::native::ops;

/// The batch's shape: `seqs` sequences of `len` tokens, `rows = seqs · len`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub seqs: usize,
    pub len: usize,
}

impl Dims {
    pub fn rows(&self) -> usize {
        self.seqs * self.len
    }
}

/// RoPE tables for positions `0..len`: cos, sin and −sin (the backward pass rotates back).
pub(crate) struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    neg_sin: Vec<f32>,
}

impl Rope {
    /// One table per RoPE configuration of the model.
    pub fn tables(model: &TrainModel, len: usize) -> Vec<Rope> {
        let c = &model.hp.cfg;
        c.ropes
            .iter()
            .map(|r| {
                let (cos, sin) = ops::rope_tables(r.base, c.rope_dims, r.pos_scale, 0, len);
                let neg_sin = sin.iter().map(|v| -v).collect();
                Rope { cos, sin, neg_sin }
            })
            .collect()
    }
}

/// What one layer keeps from its forward pass for its backward pass (Gemma-only buffers stay
/// empty for Llama). Inputs of normalisations are kept, their outputs recomputed.
#[derive(Default)]
pub(crate) struct Saved {
    /// The layer's input (the residual stream).
    x: Vec<f32>,
    inv1: Vec<f32>,
    /// q and k before their per-head norms (Gemma) and those norms' scales.
    q_pre: Vec<f32>,
    inv_q: Vec<f32>,
    k_pre: Vec<f32>,
    inv_k: Vec<f32>,
    /// Queries and keys after norm and RoPE, and values: attention's inputs.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention's output (the o projection's input).
    att: Vec<f32>,
    /// The o projection's output before its post-norm (Gemma).
    o_pre: Vec<f32>,
    inv_o: Vec<f32>,
    /// The residual stream after attention.
    x1: Vec<f32>,
    inv2: Vec<f32>,
    /// Gate and up projections (before the activation).
    g: Vec<f32>,
    u: Vec<f32>,
    /// The down projection's output before its post-norm (Gemma).
    d_pre: Vec<f32>,
    inv_d: Vec<f32>,
    /// `x · Aᵀ` of each adapted projection.
    lora_u: [Vec<f32>; 7],
}

/// Buffers every layer uses in turn (nothing in them outlives a layer's pass).
#[derive(Default)]
pub(crate) struct Scratch {
    h: Vec<f32>,
    o: Vec<f32>,
    a: Vec<f32>,
    t: Vec<f32>,
    da: Vec<f32>,
    dg: Vec<f32>,
    du: Vec<f32>,
    dh: Vec<f32>,
    dx1: Vec<f32>,
    dtmp: Vec<f32>,
    datt: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dq_pre: Vec<f32>,
    dk_pre: Vec<f32>,
    attn: Vec<f32>,
    attn_bwd: BackwardScratch,
}

/// Resizes `v` to `n` values (contents are overwritten by the caller).
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..]
}

/// `y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ` for `m` rows; keeps `x·Aᵀ` in `lu` for the backward pass.
#[allow(clippy::too_many_arguments)]
fn project(
    model: &TrainModel,
    lora: Option<&Lora>,
    layer: usize,
    target: LoraTarget,
    x: &[f32],
    m: usize,
    y: &mut Vec<f32>,
    lu: &mut Vec<f32>,
) {
    let (n_out, n_in) = model.target_shape(target);
    let w = &model.layers[layer].proj[slot(target)];
    let y = sized(y, m * n_out);
    matmul(
        m,
        n_out,
        n_in,
        View::rows(x, n_in),
        View::rows(w, n_in).t(),
        y,
        n_out,
        1.0,
        false,
    );
    if let Some((lora, (_, p))) = lora.and_then(|l| Some((l, l.pair(layer, target)?))) {
        let r = p.rank;
        let lu = sized(lu, m * r);
        matmul(
            m,
            r,
            n_in,
            View::rows(x, n_in),
            View::rows(&p.a, n_in).t(),
            lu,
            r,
            1.0,
            false,
        );
        let s = lora.scale();
        matmul(
            m,
            n_out,
            r,
            View::rows(lu, r),
            View::rows(&p.b, r).t(),
            y,
            n_out,
            s,
            true,
        );
    }
}

/// Backward of [`project`]: adds the adapter's gradients (`dB += s·dYᵀ·u`, `dA += s·(dY·B)ᵀ·x`)
/// and, when `dx` is given, writes (or adds) `dX = dY·W + s·(dY·B)·A`.
#[allow(clippy::too_many_arguments)]
fn project_bwd(
    model: &TrainModel,
    lora: &Lora,
    grads: &mut Grads,
    layer: usize,
    target: LoraTarget,
    x: &[f32],
    lu: &[f32],
    dy: &[f32],
    m: usize,
    t: &mut Vec<f32>,
    dx: Option<(&mut [f32], bool)>,
) {
    let (n_out, n_in) = model.target_shape(target);
    let w = &model.layers[layer].proj[slot(target)];
    let s = lora.scale();
    let pair = lora.pair(layer, target);
    if let Some((i, p)) = pair {
        let r = p.rank;
        let gb = &mut grads.b[i];
        matmul(
            n_out,
            r,
            m,
            View::rows(dy, n_out).t(),
            View::rows(lu, r),
            gb,
            r,
            s,
            true,
        );
        let t = sized(t, m * r);
        matmul(
            m,
            r,
            n_out,
            View::rows(dy, n_out),
            View::rows(&p.b, r),
            t,
            r,
            1.0,
            false,
        );
        let ga = &mut grads.a[i];
        matmul(
            r,
            n_in,
            m,
            View::rows(t, r).t(),
            View::rows(x, n_in),
            ga,
            n_in,
            s,
            true,
        );
    }
    if let Some((dx, accumulate)) = dx {
        let (dy_v, w_v) = (View::rows(dy, n_out), View::rows(w, n_in));
        matmul(m, n_in, n_out, dy_v, w_v, dx, n_in, 1.0, accumulate);
        if let Some((_, p)) = pair {
            let r = p.rank;
            matmul(
                m,
                n_in,
                r,
                View::rows(t, r),
                View::rows(&p.a, n_in),
                dx,
                n_in,
                s,
                true,
            );
        }
    }
}

/// RoPE over every sequence of a `(seqs·len) × heads·head_dim` matrix (positions from 0).
fn rope_rows(
    model: &TrainModel,
    x: &mut [f32],
    heads: usize,
    dims: Dims,
    cos: &[f32],
    sin: &[f32],
) {
    let c = &model.hp.cfg;
    x.par_chunks_mut(dims.len * heads * c.head_dim)
        .for_each(|seq| ops::rope(seq, heads, c.head_dim, c.rope_dims, c.neox, cos, sin));
}

fn residual_add(out: &mut Vec<f32>, a: &[f32], b: &[f32]) {
    out.clear();
    out.extend(a.iter().zip(b).map(|(a, b)| a + b));
}

fn attention_shape(model: &TrainModel, lw: &LayerWeights, dims: Dims) -> attention::Shape {
    let c = &model.hp.cfg;
    attention::Shape {
        seqs: dims.seqs,
        len: dims.len,
        heads: c.n_head,
        kv_heads: c.n_kv,
        head_dim: c.head_dim,
        scale: c.score_scale,
        window: lw.window,
    }
}

/// Runs layer `l` on `x` (`rows × n_embd`), writing the layer's output to `out` and what the
/// backward pass needs to `saved`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    model: &TrainModel,
    lora: Option<&Lora>,
    l: usize,
    dims: Dims,
    ropes: &[Rope],
    x: &[f32],
    saved: &mut Saved,
    sc: &mut Scratch,
    out: &mut Vec<f32>,
) {
    let c = &model.hp.cfg;
    let lw = &model.layers[l];
    let (m, d, hd) = (dims.rows(), c.n_embd, c.head_dim);
    let (nh, nkv) = (c.n_head, c.n_kv);
    let s = saved;
    s.x.clear();
    s.x.extend_from_slice(x);
    rms_norm_fwd(
        x,
        d,
        &lw.attn_norm,
        c.eps,
        sized(&mut sc.h, m * d),
        sized(&mut s.inv1, m),
    );
    let [lq, lk, lv, lo, lg, lup, ld] = &mut s.lora_u;
    // q and k go through their per-head norms (Gemma) before RoPE.
    for (target, norm, pre, inv, out, lu, heads) in [
        (
            LoraTarget::Q,
            &lw.q_norm,
            &mut s.q_pre,
            &mut s.inv_q,
            &mut s.q,
            lq,
            nh,
        ),
        (
            LoraTarget::K,
            &lw.k_norm,
            &mut s.k_pre,
            &mut s.inv_k,
            &mut s.k,
            lk,
            nkv,
        ),
    ] {
        match norm {
            Some(w) => {
                project(model, lora, l, target, &sc.h, m, pre, lu);
                let n = m * heads;
                rms_norm_fwd(pre, hd, w, c.eps, sized(out, n * hd), sized(inv, n));
            }
            None => project(model, lora, l, target, &sc.h, m, out, lu),
        }
    }
    project(model, lora, l, LoraTarget::V, &sc.h, m, &mut s.v, lv);
    let rope = &ropes[lw.rope];
    rope_rows(model, &mut s.q, nh, dims, &rope.cos, &rope.sin);
    rope_rows(model, &mut s.k, nkv, dims, &rope.cos, &rope.sin);
    let shape = attention_shape(model, lw, dims);
    let att = sized(&mut s.att, m * nh * hd);
    attention::forward(&shape, &s.q, &s.k, &s.v, &mut sc.attn, att);
    match &lw.post_attn_norm {
        Some(w) => {
            project(model, lora, l, LoraTarget::O, &s.att, m, &mut s.o_pre, lo);
            rms_norm_fwd(
                &s.o_pre,
                d,
                w,
                c.eps,
                sized(&mut sc.o, m * d),
                sized(&mut s.inv_o, m),
            );
        }
        None => project(model, lora, l, LoraTarget::O, &s.att, m, &mut sc.o, lo),
    }
    residual_add(&mut s.x1, x, &sc.o);

    rms_norm_fwd(
        &s.x1,
        d,
        &lw.ffn_norm,
        c.eps,
        sized(&mut sc.h, m * d),
        sized(&mut s.inv2, m),
    );
    project(model, lora, l, LoraTarget::Gate, &sc.h, m, &mut s.g, lg);
    project(model, lora, l, LoraTarget::Up, &sc.h, m, &mut s.u, lup);
    let gelu = c.activation == Activation::GeluTanh;
    let n_ff = model.hp.n_ff;
    gate_fwd(gelu, &s.g, &s.u, sized(&mut sc.a, m * n_ff));
    match &lw.post_ffn_norm {
        Some(w) => {
            project(model, lora, l, LoraTarget::Down, &sc.a, m, &mut s.d_pre, ld);
            rms_norm_fwd(
                &s.d_pre,
                d,
                w,
                c.eps,
                sized(&mut sc.o, m * d),
                sized(&mut s.inv_d, m),
            );
        }
        None => project(model, lora, l, LoraTarget::Down, &sc.a, m, &mut sc.o, ld),
    }
    residual_add(out, &s.x1, &sc.o);
}

/// Backward of layer `l`: from `dout` (the gradient of the layer's output) adds the adapter's
/// gradients to `grads` and, when `dx` is given, writes the gradient of the layer's input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    model: &TrainModel,
    lora: &Lora,
    grads: &mut Grads,
    l: usize,
    dims: Dims,
    ropes: &[Rope],
    saved: &Saved,
    sc: &mut Scratch,
    dout: &[f32],
    dx: Option<&mut Vec<f32>>,
) {
    let c = &model.hp.cfg;
    let lw = &model.layers[l];
    let (m, d, hd, n_ff) = (dims.rows(), c.n_embd, c.head_dim, model.hp.n_ff);
    let (nh, nkv) = (c.n_head, c.n_kv);
    let s = saved;
    let [lq, lk, lv, lo, lg, lup, ld] = &s.lora_u;
    let gelu = c.activation == Activation::GeluTanh;

    // MLP: through the post-norm, the down projection, the gate, gate/up and the pre-norm.
    let ddown: &[f32] = match &lw.post_ffn_norm {
        Some(w) => {
            rms_norm_bwd(
                &s.d_pre,
                d,
                w,
                &s.inv_d,
                dout,
                sized(&mut sc.dtmp, m * d),
                false,
            );
            &sc.dtmp
        }
        None => dout,
    };
    gate_fwd(gelu, &s.g, &s.u, sized(&mut sc.a, m * n_ff));
    let da = sized(&mut sc.da, m * n_ff);
    project_bwd(
        model,
        lora,
        grads,
        l,
        LoraTarget::Down,
        &sc.a,
        ld,
        ddown,
        m,
        &mut sc.t,
        Some((da, false)),
    );
    gate_bwd(
        gelu,
        &s.g,
        &s.u,
        &sc.da,
        sized(&mut sc.dg, m * n_ff),
        sized(&mut sc.du, m * n_ff),
    );
    rms_norm_apply(&s.x1, d, &lw.ffn_norm, &s.inv2, sized(&mut sc.h, m * d));
    let dh = sized(&mut sc.dh, m * d);
    project_bwd(
        model,
        lora,
        grads,
        l,
        LoraTarget::Gate,
        &sc.h,
        lg,
        &sc.dg,
        m,
        &mut sc.t,
        Some((dh, false)),
    );
    let dh = &mut sc.dh[..];
    project_bwd(
        model,
        lora,
        grads,
        l,
        LoraTarget::Up,
        &sc.h,
        lup,
        &sc.du,
        m,
        &mut sc.t,
        Some((dh, true)),
    );
    sc.dx1.clear();
    sc.dx1.extend_from_slice(dout);
    rms_norm_bwd(&s.x1, d, &lw.ffn_norm, &s.inv2, &sc.dh, &mut sc.dx1, true);

    // Attention: post-norm, o projection, attention, RoPE, q/k norms, q/k/v, pre-norm.
    let dobuf: &[f32] = match &lw.post_attn_norm {
        Some(w) => {
            rms_norm_bwd(
                &s.o_pre,
                d,
                w,
                &s.inv_o,
                &sc.dx1,
                sized(&mut sc.dtmp, m * d),
                false,
            );
            &sc.dtmp
        }
        None => &sc.dx1,
    };
    let datt = sized(&mut sc.datt, m * nh * hd);
    project_bwd(
        model,
        lora,
        grads,
        l,
        LoraTarget::O,
        &s.att,
        lo,
        dobuf,
        m,
        &mut sc.t,
        Some((datt, false)),
    );
    let shape = attention_shape(model, lw, dims);
    attention::backward(
        &shape,
        &s.q,
        &s.k,
        &s.v,
        &sc.datt,
        &mut sc.attn_bwd,
        sized(&mut sc.dq, m * nh * hd),
        sized(&mut sc.dk, m * nkv * hd),
        sized(&mut sc.dv, m * nkv * hd),
    );
    let rope = &ropes[lw.rope];
    rope_rows(model, &mut sc.dq, nh, dims, &rope.cos, &rope.neg_sin);
    rope_rows(model, &mut sc.dk, nkv, dims, &rope.cos, &rope.neg_sin);
    let dq: &[f32] = match &lw.q_norm {
        Some(w) => {
            let dq_pre = sized(&mut sc.dq_pre, m * nh * hd);
            rms_norm_bwd(&s.q_pre, hd, w, &s.inv_q, &sc.dq, dq_pre, false);
            &sc.dq_pre
        }
        None => &sc.dq,
    };
    let dk: &[f32] = match &lw.k_norm {
        Some(w) => {
            let dk_pre = sized(&mut sc.dk_pre, m * nkv * hd);
            rms_norm_bwd(&s.k_pre, hd, w, &s.inv_k, &sc.dk, dk_pre, false);
            &sc.dk_pre
        }
        None => &sc.dk,
    };
    rms_norm_apply(&s.x, d, &lw.attn_norm, &s.inv1, sized(&mut sc.h, m * d));
    // The first layer's input gradient would only reach the frozen embeddings: skipped.
    let need_dx = dx.is_some();
    if need_dx {
        sized(&mut sc.dh, m * d);
    }
    for (target, lu, dy, accumulate) in [
        (LoraTarget::Q, lq, dq, false),
        (LoraTarget::K, lk, dk, true),
        (LoraTarget::V, lv, &sc.dv[..], true),
    ] {
        let dh = need_dx.then_some((&mut sc.dh[..], accumulate));
        project_bwd(
            model, lora, grads, l, target, &sc.h, lu, dy, m, &mut sc.t, dh,
        );
    }
    if let Some(dx) = dx {
        dx.clear();
        dx.extend_from_slice(&sc.dx1);
        rms_norm_bwd(&s.x, d, &lw.attn_norm, &s.inv1, &sc.dh, dx, true);
    }
}
