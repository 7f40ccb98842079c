//! Per-sample gradients of a graph's parameters from each layer's input `a` and output gradient
//! `δ` (the gradient of the probe [`GraphNet::forward_probed`] adds), as Opacus's per-sample
//! hooks compute them, without a per-sample backward pass:
//!
//! | layer | weight gradient of sample i | kept as |
//! | --- | --- | --- |
//! | Linear, `[B, in]` input | `aᵢᵀ δᵢ` | the pair (`‖·‖² = ‖aᵢ‖²‖δᵢ‖²`, no `B×in×out` tensor) |
//! | Linear, `[B, T, in]` input | `Σₜ aᵢₜᵀ δᵢₜ` | `[B, in·out]` |
//! | Conv1d/2d | `δᵢ Uᵢᵀ` per group, `Uᵢ` the unfolded input patches | `[B, out·in/g·kh·kw]` |
//! | ConvTranspose2d | `aᵢ unfold(δᵢ)ᵀ` per group | `[B, in·out/g·kh·kw]` |
//! | GroupNorm, LayerNorm | `Σ δᵢ ⊙ x̂ᵢ` over positions (`x̂` the normalized input) | `[B, C]` |
//! | Embedding | rows `Σ_{t: idₜ = v} δᵢₜ` | ids and `δ` (`‖·‖²` from the `T×T` Gram matrix of equal ids) |
//!
//! Biases are `δᵢ` summed over positions. BatchNorm mixes samples and has no per-sample
//! gradient (Opacus replaces it with GroupNorm): [`check_private`] refuses it.

use burn::module::ParamId;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::{Tensor, TensorData};

use super::net::{GraphNet, ParamInfo, ParamLayer, ProbeRecord, padding_of};
use super::ops::Val;
use super::spec::{LayerClass, SpecError, err};

/// One parameter's per-sample gradients.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Rank one per sample: `aᵢᵀ δᵢ`, `a` `[B, in]`, `d` `[B, out]` (a linear weight in Burn's
    /// `[in, out]` layout).
    Outer {
        /// `[B, in]`.
        a: Tensor<2>,
        /// `[B, out]`.
        d: Tensor<2>,
    },
    /// Materialised: `[B, numel]`, each row the sample's gradient of a parameter of Burn
    /// shape `shape`.
    Full {
        /// `[B, numel]`.
        g: Tensor<2>,
        /// The parameter's shape.
        shape: Vec<usize>,
    },
    /// An embedding's rows: ids `[B, T]` and output gradients `[B, T, dim]` of a `[vocab, dim]`
    /// table.
    Rows {
        /// `[B, T]` ids (as floats).
        ids: Tensor<2>,
        /// `[B, T, dim]`.
        d: Tensor<3>,
        /// The vocabulary size.
        vocab: usize,
    },
}

impl Piece {
    /// Each sample's squared norm, `[B]`.
    pub fn sq_norms(&self) -> Tensor<1> {
        match self {
            Self::Outer { a, d } => {
                (a.clone().square().sum_dim(1) * d.clone().square().sum_dim(1)).squeeze_dim(1)
            }
            Self::Full { g, .. } => g.clone().square().sum_dim(1).squeeze_dim(1),
            Self::Rows { ids, d, .. } => {
                let same = ids
                    .clone()
                    .unsqueeze_dim::<3>(2)
                    .equal(ids.clone().unsqueeze_dim::<3>(1))
                    .float();
                let gram = d.clone().matmul(d.clone().swap_dims(1, 2));
                let [b, _, _] = gram.dims();
                (same * gram)
                    .reshape([b as i64, -1])
                    .sum_dim(1)
                    .squeeze_dim(1)
            }
        }
    }

    /// `Σᵢ cᵢ gᵢ` in the parameter's shape (`c`: `[B]`).
    pub fn weighted_sum(&self, c: &Tensor<1>) -> Val {
        let c2 = c.clone().unsqueeze_dim::<2>(1);
        match self {
            Self::Outer { a, d } => Val::R2(a.clone().transpose().matmul(d.clone() * c2)),
            Self::Full { g, shape } => {
                let s = (g.clone() * c2).sum_dim(0);
                Val::R2(s).reshape(shape)
            }
            Self::Rows { ids, d, vocab } => {
                let [b, t, dim] = d.dims();
                let device = d.device();
                let range: Vec<f32> = (0..*vocab).map(|v| v as f32).collect();
                let range = Tensor::<2>::from_data(TensorData::new(range, [1, *vocab]), &device);
                let onehot = ids
                    .clone()
                    .reshape([b * t, 1])
                    .equal(range.expand([b * t, *vocab]))
                    .float();
                let cd = (d.clone() * c.clone().reshape([b, 1, 1])).reshape([b * t, dim]);
                Val::R2(onehot.transpose().matmul(cd))
            }
        }
    }
}

/// Under DP every parameter layer needs a per-sample gradient: BatchNorm (it mixes the samples
/// of a batch) is refused, as are layouts the formulas above do not cover.
///
/// # Errors
/// [`SpecError`] naming the layer and the reason.
pub fn check_private(info: &[ParamInfo]) -> Result<(), SpecError> {
    for i in info {
        match &i.class {
            LayerClass::BatchNorm { .. } => {
                return Err(err(
                    &i.name,
                    "BatchNorm mixes the samples of a batch, so it has no per-sample gradient \
                     for DP-SGD: use GroupNorm (as Opacus does) or train without is_private",
                ));
            }
            LayerClass::ConvTranspose2d(s)
                if s.output_padding[0] >= s.stride[0] || s.output_padding[1] >= s.stride[1] =>
            {
                return Err(err(
                    &i.name,
                    "a ConvTranspose2d whose output_padding is not below its stride has no \
                     per-sample gradient here",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn grad_of(v: &Val, grads: &burn::tensor::Gradients) -> Option<Val> {
    Some(match v {
        Val::R1(t) => Val::R1(t.grad(grads)?),
        Val::R2(t) => Val::R2(t.grad(grads)?),
        Val::R3(t) => Val::R3(t.grad(grads)?),
        Val::R4(t) => Val::R4(t.grad(grads)?),
    })
}

/// Every parameter's per-sample gradients, with its id, from the probes of one forward pass and
/// the gradients of the summed loss.
pub fn pieces(
    net: &GraphNet,
    records: &[ProbeRecord],
    grads: &burn::tensor::Gradients,
) -> Vec<(ParamId, Piece)> {
    let mut out = Vec::new();
    for r in records {
        let Some(delta) = grad_of(&r.probe, grads) else {
            continue;
        };
        let info = &net.param_info()[r.layer];
        layer_pieces(
            &net.params[r.layer],
            &info.class,
            r.input.clone(),
            delta,
            &mut out,
        );
    }
    out
}

fn flat<const D: usize>(t: Tensor<D>) -> Tensor<2> {
    let b = t.dims()[0];
    t.reshape([b as i64, -1])
}

fn layer_pieces(
    layer: &ParamLayer,
    class: &LayerClass,
    a: Val,
    d: Val,
    out: &mut Vec<(ParamId, Piece)>,
) {
    match (layer, class) {
        (ParamLayer::Linear(l), _) => {
            let [din, dout] = l.weight.dims();
            if a.rank() == 2 {
                let d2 = d.r2();
                out.push((
                    l.weight.id,
                    Piece::Outer {
                        a: a.r2(),
                        d: d2.clone(),
                    },
                ));
                if let Some(b) = &l.bias {
                    full(out, b.id, d2, vec![dout]);
                }
            } else {
                let dims = a.dims();
                let b = dims[0];
                let t: usize = dims[1..dims.len() - 1].iter().product();
                let a3 = a.reshape(&[b, t, din]).r3();
                let d3 = d.reshape(&[b, t, dout]).r3();
                let g = a3.swap_dims(1, 2).matmul(d3.clone());
                full(out, l.weight.id, flat(g), vec![din, dout]);
                if let Some(bias) = &l.bias {
                    full(out, bias.id, flat(d3.sum_dim(1)), vec![dout]);
                }
            }
        }
        (ParamLayer::Conv(c), _) => conv_pieces(c, a, d, out),
        (ParamLayer::ConvTranspose(c), _) => conv_transpose_pieces(c, a, d, out),
        (ParamLayer::GroupNorm(g), LayerClass::GroupNorm { groups, eps, .. }) => {
            let dims = a.dims();
            let (b, ch) = (dims[0], dims[1]);
            let s: usize = dims[2..].iter().product::<usize>().max(1);
            let ag = a.reshape(&[b, *groups, (ch / groups) * s]).r3();
            let (var, mean) = ag.clone().var_mean_bias(2);
            let xhat = ((ag - mean) / (var + *eps).sqrt()).reshape([b, ch, s]);
            let d3 = d.reshape(&[b, ch, s]).r3();
            if let (Some(gm), Some(bt)) = (&g.gamma, &g.beta) {
                let gg = (d3.clone() * xhat).sum_dim(2).reshape([b, ch]);
                full(out, gm.id, gg, vec![ch]);
                full(out, bt.id, d3.sum_dim(2).reshape([b, ch]), vec![ch]);
            }
        }
        (ParamLayer::LayerNorm(n), LayerClass::LayerNorm { d: dim, eps, .. }) => {
            let dims = a.dims();
            let b = dims[0];
            let t: usize = dims[1..dims.len() - 1].iter().product::<usize>().max(1);
            let a3 = a.reshape(&[b, t, *dim]).r3();
            let (var, mean) = a3.clone().var_mean_bias(2);
            let xhat = (a3 - mean) / (var + *eps).sqrt();
            let d3 = d.reshape(&[b, t, *dim]).r3();
            let gg = (d3.clone() * xhat).sum_dim(1).reshape([b, *dim]);
            full(out, n.gamma.id, gg, vec![*dim]);
            if let Some(beta) = &n.beta {
                full(out, beta.id, d3.sum_dim(1).reshape([b, *dim]), vec![*dim]);
            }
        }
        (ParamLayer::Embedding(e), _) => {
            let [vocab, _] = e.weight.dims();
            out.push((
                e.weight.id,
                Piece::Rows {
                    ids: a.r2(),
                    d: d.r3(),
                    vocab,
                },
            ));
        }
        _ => {}
    }
}

/// A convolution's (1-d as 2-d) weight pieces `δᵢ Uᵢᵀ` per group, `Uᵢ` the unfolded input
/// patches, and its bias pieces `Σ_positions δᵢ`.
fn conv_pieces(c: &Conv2d, a: Val, d: Val, out: &mut Vec<(ParamId, Piece)>) {
    let [o, cg, kh, kw] = c.weight.dims();
    let dims = a.dims();
    let b = dims[0];
    let a4 = if dims.len() == 3 {
        a.reshape(&[b, dims[1], 1, dims[2]]).r4()
    } else {
        a.r4()
    };
    let u = unfold(a4, [kh, kw], c.stride, padding_of(c), c.dilation);
    let l = u.dims()[2];
    let d3 = d.reshape(&[b, o, l]).r3();
    let g = grouped(&d3, &u, c.groups);
    full(out, c.weight.id, flat(g), vec![o, cg, kh, kw]);
    if let Some(bias) = &c.bias {
        full(out, bias.id, flat(d3.sum_dim(2)), vec![o]);
    }
}

/// A transposed convolution's weight pieces `aᵢ unfold(δᵢ)ᵀ` per group and its bias pieces.
fn conv_transpose_pieces(c: &ConvTranspose2d, a: Val, d: Val, out: &mut Vec<(ParamId, Piece)>) {
    let [cin, og, kh, kw] = c.weight.dims();
    let groups = c.groups;
    let dims = a.dims();
    let b = dims[0];
    let l_in = dims[2] * dims[3];
    let a3 = a.r4().reshape([b, cin, l_in]);
    let d4 = d.r4();
    let o = d4.dims()[1];
    let dsum = d4.clone().sum_dim(3).sum_dim(2).reshape([b, o]);
    let ud = unfold(d4, [kh, kw], c.stride, c.padding, c.dilation);
    let ud = ud.slice([0..b, 0..og * groups * kh * kw, 0..l_in]);
    let g = grouped(&a3, &ud, groups);
    full(out, c.weight.id, flat(g), vec![cin, og, kh, kw]);
    if let Some(bias) = &c.bias {
        full(out, bias.id, dsum, vec![o]);
    }
}

/// Pushes a parameter's per-sample gradients `g` `[B, numel]` of a parameter of `shape`.
fn full(out: &mut Vec<(ParamId, Piece)>, id: ParamId, g: Tensor<2>, shape: Vec<usize>) {
    out.push((id, Piece::Full { g, shape }));
}

/// The unfolded patches `[B, C·kh·kw, Ho·Wo]` of `x` `[B, C, H, W]` (channel-major, as a
/// convolution weight's `[out, C, kh, kw]` flattens; zero outside the input): PyTorch's
/// `F.unfold`, written as one pass over the values (the input is detached, so no graph is kept).
pub(crate) fn unfold(
    x: Tensor<4>,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
    [dh, dw]: [usize; 2],
) -> Tensor<3> {
    let [b, ch, h, w] = x.dims();
    let device = x.device();
    let src = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converts to f32");
    let ho = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
    let wo = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    let (rows, l) = (ch * kh * kw, ho * wo);
    let mut out = vec![0f32; b * rows * l];
    for (n_c, plane) in src.chunks_exact(h * w).enumerate() {
        let (n, c) = (n_c / ch, n_c % ch);
        for i in 0..kh {
            for j in 0..kw {
                let row = (c * kh + i) * kw + j;
                let dst = &mut out[(n * rows + row) * l..][..l];
                for oy in 0..ho {
                    let Some(iy) = (oy * sh + i * dh).checked_sub(ph).filter(|&y| y < h) else {
                        continue;
                    };
                    let line = &plane[iy * w..][..w];
                    // The outputs whose input column `ox·sw + j·dw − pw` lies in `0..w`.
                    let first = (pw.saturating_sub(j * dw)).div_ceil(sw);
                    let end = ((w + pw).saturating_sub(j * dw)).div_ceil(sw).min(wo);
                    if first >= end {
                        continue;
                    }
                    let row = &mut dst[oy * wo + first..oy * wo + end];
                    let ix0 = first * sw + j * dw - pw;
                    if sw == 1 {
                        row.copy_from_slice(&line[ix0..ix0 + row.len()]);
                    } else {
                        for (k, v) in row.iter_mut().enumerate() {
                            *v = line[ix0 + k * sw];
                        }
                    }
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [b, rows, l]), &device)
}

/// Per group `j`, `lhsⱼ rhsⱼᵀ` over each sample (`lhs` `[B, g·m, L]`, `rhs` `[B, g·n, L]`),
/// concatenated: `[B, g·m, n]`.
fn grouped(lhs: &Tensor<3>, rhs: &Tensor<3>, groups: usize) -> Tensor<3> {
    let [b, lm, l] = lhs.dims();
    let [_, rn, _] = rhs.dims();
    let (m, n) = (lm / groups, rn / groups);
    Tensor::cat(
        (0..groups)
            .map(|j| {
                let lj = lhs.clone().slice([0..b, j * m..(j + 1) * m, 0..l]);
                let rj = rhs.clone().slice([0..b, j * n..(j + 1) * n, 0..l]);
                lj.matmul(rj.swap_dims(1, 2))
            })
            .collect(),
        1,
    )
}
