//! A layer as a set of gathered products ([`tile`]), built once at load from the folded
//! weights.
//!
//! A stride-2, 4×4, padding-1 transposed convolution splits by output parity: the output
//! pixels `(2a+py, 2b+px)` of one class `(py, px)` each sum exactly four input pixels — `(a, b)`
//! and its neighbour one step back (parity 0, kernel taps 1 and 3) or forward (parity 1, taps 2
//! and 0) along each axis — with the same four kernel taps. So a class is an ordinary product
//! with `k = 4·c_in` whose rows gather four input pixels' channel vectors, and its result is the
//! finished output pixel: no col2im, no scattered adds, shift and ReLU applied in registers.
//! Activations are pixel-major (`[H][W][C]` per sample) with a one-pixel zero border, so the
//! gathered neighbours of edge pixels read zeros instead of needing a branch.

use rayon::prelude::*;

use super::tile::{Kernel, LANES, SharedOut, Tile, max_rows, tile};

/// Output pixels sharing one set of taps (a parity class), and their packed weights.
struct Group {
    /// Offsets of the taps from a row's start in a sample's input.
    taps: Vec<isize>,
    /// `[panel][taps·kc][width]`.
    panels: Vec<f32>,
    /// Per row (output pixel of the class): where its tap-0 values start in a sample's input.
    in_px: Vec<usize>,
    /// Per row: where its output channels start in a sample's output.
    out_px: Vec<usize>,
}

/// One layer (or the last layer's patch product) as gathered tiles.
pub(super) struct GatherConv {
    kernel: Kernel,
    /// Input values per tap.
    kc: usize,
    /// Vectors per panel row: the panel is `16·nv` output columns wide.
    nv: usize,
    /// Values of `k` per pass over a run of rows: the panel's block (`k_block·16·nv` floats,
    /// 32 KB) then stays in the L1 cache while every tile of the run uses it.
    k_block: usize,
    relu: bool,
    /// Input and output values per sample.
    in_stride: usize,
    out_stride: usize,
    /// Per panel: added to a row's output offset.
    panel_out: Vec<usize>,
    /// `[panel][width]`: the shift for the panel's columns.
    panel_shift: Vec<f32>,
    groups: Vec<Group>,
}

/// A sample's `h×h×c` image with a one-pixel zero border: values, and the index of pixel
/// `(y, x)` (interior coordinates; -1 and `h` address the border).
pub(super) fn padded_len(h: usize, c: usize) -> usize {
    (h + 2) * (h + 2) * c
}

fn padded_at(h: usize, c: usize, y: isize, x: isize) -> isize {
    ((y + 1) * (h as isize + 2) + x + 1) * c as isize
}

impl GatherConv {
    /// The first layer (`ConvTranspose2d(100, 512, 4, 1, 0)` on a 1×1 input): each output value
    /// is a dot product of the latent with one weight column. `weight` is `[16][c_out][c_in]`;
    /// the output is `4×4×c_out` with a zero border.
    pub(super) fn first(weight: &[f32], shift: &[f32], c_in: usize, c_out: usize) -> Self {
        let (nv, width) = (4, 4 * LANES);
        let blocks = c_out / width;
        let n_panels = 16 * blocks;
        let mut panel_out = Vec::with_capacity(n_panels);
        let mut panel_shift = Vec::with_capacity(n_panels * width);
        for t in 0..16 {
            for cb in 0..blocks {
                let at = padded_at(4, c_out, (t / 4) as isize, (t % 4) as isize);
                panel_out.push(at as usize + cb * width);
                panel_shift.extend_from_slice(&shift[cb * width..][..width]);
            }
        }
        let panels = pack(n_panels, 1, c_in, width, |_, ci, p, v| {
            let (t, cb) = (p / blocks, p % blocks);
            weight[(t * c_out + cb * width + v) * c_in + ci]
        });
        Self::new(
            c_in,
            nv,
            true,
            c_in,
            padded_len(4, c_out),
            panel_out,
            panel_shift,
            vec![Group {
                taps: vec![0],
                panels,
                in_px: vec![0],
                out_px: vec![0],
            }],
        )
    }

    /// A `ConvTranspose2d(c_in, c_out, 4, 2, 1)` + shift + ReLU on an `h_in×h_in` input with a
    /// zero border. `weight` is `[16][c_out][c_in]`; the output is `2h_in×2h_in×c_out`, with a
    /// zero border when `pad_out`.
    pub(super) fn stride2(
        weight: &[f32],
        shift: &[f32],
        c_in: usize,
        c_out: usize,
        h_in: usize,
        pad_out: bool,
    ) -> Self {
        let (nv, width) = (4, 4 * LANES);
        let n_panels = c_out / width;
        let h_out = 2 * h_in;
        // Per parity: (input step, kernel tap) of the two input pixels covering an output.
        const COVER: [[(isize, usize); 2]; 2] = [[(0, 1), (-1, 3)], [(0, 2), (1, 0)]];
        let mut groups = Vec::with_capacity(4);
        for (py, y_cover) in COVER.iter().enumerate() {
            for (px, x_cover) in COVER.iter().enumerate() {
                let mut taps = Vec::with_capacity(4);
                let mut ktaps = Vec::with_capacity(4);
                for &(dy, ky) in y_cover {
                    for &(dx, kx) in x_cover {
                        taps.push(padded_at(h_in, c_in, dy, dx) - padded_at(h_in, c_in, 0, 0));
                        ktaps.push(ky * 4 + kx);
                    }
                }
                let mut in_px = Vec::with_capacity(h_in * h_in);
                let mut out_px = Vec::with_capacity(h_in * h_in);
                for a in 0..h_in {
                    for b in 0..h_in {
                        in_px.push(padded_at(h_in, c_in, a as isize, b as isize) as usize);
                        let (oy, ox) = (2 * a + py, 2 * b + px);
                        out_px.push(if pad_out {
                            padded_at(h_out, c_out, oy as isize, ox as isize) as usize
                        } else {
                            (oy * h_out + ox) * c_out
                        });
                    }
                }
                let panels = pack(n_panels, 4, c_in, width, |j, ci, p, v| {
                    weight[(ktaps[j] * c_out + p * width + v) * c_in + ci]
                });
                groups.push(Group {
                    taps,
                    panels,
                    in_px,
                    out_px,
                });
            }
        }
        let out_stride = if pad_out {
            padded_len(h_out, c_out)
        } else {
            h_out * h_out * c_out
        };
        Self::new(
            c_in,
            nv,
            true,
            padded_len(h_in, c_in),
            out_stride,
            (0..n_panels).map(|p| p * width).collect(),
            shift[..n_panels * width].to_vec(),
            groups,
        )
    }

    /// Every input pixel's full 4×4 patch for all `c_out` channels (`[h_in²][16·c_out]`, the
    /// GEMM of a col2im formulation), for the last layer, whose 3 output channels are too few
    /// to fill a vector: there the 48 patch values per pixel fill three. The input is
    /// `h_in×h_in×c_in` without a border.
    pub(super) fn patches(weight: &[f32], c_in: usize, c_out: usize, h_in: usize) -> Self {
        let n = 16 * c_out;
        assert!(n.is_multiple_of(LANES) && n <= 4 * LANES, "patch width");
        let nv = n / LANES;
        let pixels = h_in * h_in;
        let panels = pack(1, 1, c_in, n, |_, ci, _, col| weight[col * c_in + ci]);
        Self::new(
            c_in,
            nv,
            false,
            pixels * c_in,
            pixels * n,
            vec![0],
            vec![0.0; n],
            vec![Group {
                taps: vec![0],
                panels,
                in_px: (0..pixels).map(|p| p * c_in).collect(),
                out_px: (0..pixels).map(|p| p * n).collect(),
            }],
        )
    }

    /// Checks that every tile reads inside a sample's input and that the tiles' outputs
    /// tile a sample's output without overlapping — what makes the parallel writes of
    /// [`GatherConv::run`] sound.
    #[allow(clippy::too_many_arguments)]
    fn new(
        kc: usize,
        nv: usize,
        relu: bool,
        in_stride: usize,
        out_stride: usize,
        panel_out: Vec<usize>,
        panel_shift: Vec<f32>,
        groups: Vec<Group>,
    ) -> Self {
        let width = LANES * nv;
        let rows = groups[0].in_px.len();
        let mut written = vec![false; out_stride];
        for g in &groups {
            assert_eq!(g.in_px.len(), rows, "groups differ in size");
            assert_eq!(g.out_px.len(), rows, "group rows");
            assert_eq!(g.panels.len(), panel_out.len() * g.taps.len() * kc * width);
            for &i in &g.in_px {
                for &t in &g.taps {
                    let start = i as isize + t;
                    assert!(
                        start >= 0 && start as usize + kc <= in_stride,
                        "tap outside input"
                    );
                }
            }
            for &o in &g.out_px {
                for &p in &panel_out {
                    let range = &mut written[o + p..o + p + width];
                    assert!(range.iter().all(|w| !w), "two tiles write one output");
                    range.iter_mut().for_each(|w| *w = true);
                }
            }
        }
        assert_eq!(panel_shift.len(), panel_out.len() * width, "panel shifts");
        Self {
            kernel: Kernel::detect(),
            kc,
            nv,
            k_block: (32 * 1024 / (4 * width)).min(kc),
            relu,
            in_stride,
            out_stride,
            panel_out,
            panel_shift,
            groups,
        }
    }

    /// Values per sample of the output.
    pub(super) fn out_stride(&self) -> usize {
        self.out_stride
    }

    /// Runs the layer on `batch` samples of `input` (`in_stride` values each) into `output`
    /// (`out_stride` each; values outside the tiles' outputs — the zero borders — are never
    /// written). Work is split over the rayon pool by (class, panel, run of rows), so a thread
    /// reuses one weight panel from its cache across many rows.
    pub(super) fn run(&self, input: &[f32], batch: usize, output: &mut [f32]) {
        let input = &input[..batch * self.in_stride];
        let output = &mut output[..batch * self.out_stride];
        let width = LANES * self.nv;
        let mr = max_rows(self.nv);
        let pixels = self.groups[0].in_px.len();
        let n_panels = self.panel_out.len();
        let rows = batch * pixels;
        let tiles = rows.div_ceil(mr);
        let combos = self.groups.len() * n_panels;
        // Enough pieces for the pool to balance, as few as that allows.
        let chunks = (4 * rayon::current_num_threads())
            .div_ceil(combos)
            .clamp(1, tiles);
        let rows_per_chunk = tiles.div_ceil(chunks) * mr;
        let out = SharedOut::new(output);
        (0..combos * chunks).into_par_iter().for_each(|item| {
            let (combo, chunk) = (item / chunks, item % chunks);
            let (g, p) = (&self.groups[combo / n_panels], combo % n_panels);
            let panel_len = g.taps.len() * self.kc * width;
            let panel = &g.panels[p * panel_len..][..panel_len];
            let shift = &self.panel_shift[p * width..][..width];
            let end = rows.min((chunk + 1) * rows_per_chunk);
            let n_taps = g.taps.len();
            for (j, &tap) in g.taps.iter().enumerate() {
                for k0 in (0..self.kc).step_by(self.k_block) {
                    let kb = self.k_block.min(self.kc - k0);
                    let block = &panel[(j * self.kc + k0) * width..][..kb * width];
                    let (mut rows_at, mut outs_at) = ([0usize; 16], [0usize; 16]);
                    for start in (chunk * rows_per_chunk..end).step_by(mr) {
                        let n = mr.min(end - start);
                        for i in 0..n {
                            let (s, px) = ((start + i) / pixels, (start + i) % pixels);
                            rows_at[i] = s * self.in_stride + g.in_px[px];
                            outs_at[i] = s * self.out_stride + g.out_px[px] + self.panel_out[p];
                        }
                        let t = Tile {
                            a: input,
                            rows: &rows_at[..n],
                            taps: &[tap + k0 as isize],
                            kc: kb,
                            panel: block,
                            shift,
                            nv: self.nv,
                            relu: self.relu,
                            first: j == 0 && k0 == 0,
                            last: j + 1 == n_taps && k0 + kb == self.kc,
                        };
                        // SAFETY: `new` checked that the (row, panel) output ranges of one
                        // sample are pairwise disjoint and inside `out_stride`, and samples
                        // are `out_stride` apart, so each range is touched by exactly one
                        // item of this parallel loop.
                        unsafe { tile(self.kernel, &t, out, &outs_at[..n]) };
                    }
                }
            }
        });
    }
}

/// Packs `[panel][tap][k][width]` from `w(tap, k, panel, column)`.
fn pack(
    n_panels: usize,
    taps: usize,
    kc: usize,
    width: usize,
    w: impl Fn(usize, usize, usize, usize) -> f32,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(n_panels * taps * kc * width);
    for p in 0..n_panels {
        for j in 0..taps {
            for ci in 0..kc {
                out.extend((0..width).map(|v| w(j, ci, p, v)));
            }
        }
    }
    out
}
