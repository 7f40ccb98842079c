//! DP-LoRA: DP-SGD (Abadi et al., 2016) on the LoRA adapters only, one example (a whole
//! sequence) the unit of privacy. Each step: Poisson sampling at rate `q`; each example's loss
//! `Lᵢ` the mean next-token loss over its counted tokens; per-example gradient norms over every
//! adapter; `Σᵢ min(1, C/(‖gᵢ‖ + 10⁻⁶)) gᵢ` by a second backward pass of `Σᵢ cᵢ Lᵢ`; Gaussian
//! noise `N(0, σ²C²)` on each adapter parameter; division by the expected batch `q·N`; AdamW.
//! σ is the smallest that keeps `steps` steps within the target epsilon (the RDP accountant of
//! [`crate::learn::dp::accountant`], as for Train_DL).
//!
//! Per-example norms without per-example backward passes: the first backward pass (parameters
//! untracked) gives each adapter's `δ = ∂L/∂(H·B) = s·∂L/∂y` `[B, T, out]` through a zero
//! probe added to `H·B` inside the scaling `s`; with the recorded input `X` `[B, T, in]` and
//! `H = X·A` `[B, T, r]`, `g_Bᵢ = Hᵢᵀδᵢ` and `g_Aᵢ = Xᵢᵀ(δᵢBᵀ)`. Their squared norms come from whichever is
//! smaller: the per-example gradient itself (`r × out` and `in × r` numbers, small for LoRA), or
//! the ghost-norm identity `‖XᵢᵀEᵢ‖² = ⟨XᵢXᵢᵀ, EᵢEᵢᵀ⟩` (`T × T` numbers, for short sequences).

use burn::module::{Module, ParamId};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

use super::LlmError;
use super::lora::LoraProbe;
use super::model::CausalLm;
use super::train::{Example, FitLog, batch};
use crate::learn::dp::sgd::{DpRng, noisy};
use crate::learn::dp::{DpPlan, DpSpent, accountant};

/// DP-LoRA's settings besides the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DpFitConfig {
    /// Passes over the data (each `plan.steps_per_epoch` steps; at most `plan.max_steps` in
    /// all).
    pub epochs: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// The plan: clipping norm, noise multiplier, sampling rate, steps, target epsilon, delta
    /// ([`crate::learn::dp::plan_dp`]).
    pub plan: DpPlan,
}

/// Each example's loss `[B]`: its mean next-token loss over its counted tokens.
fn per_example_loss(
    model: &CausalLm,
    examples: &[&Example],
    probes: Option<&mut Vec<LoraProbe>>,
) -> Result<Tensor<1>, LlmError> {
    let device = model.embed.val().device();
    let (ids, targets, mask) = batch(examples, &device);
    let logits = model.forward_probed(&ids, probes)?;
    let picked = log_softmax(logits, 2)
        .gather(2, targets.unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2);
    let counts = mask.clone().sum_dim(1).squeeze_dim::<1>(1).clamp_min(1.0);
    Ok((picked * mask).sum_dim(1).squeeze_dim::<1>(1).neg() / counts)
}

/// Squared Frobenius norms `[B]` of `Uᵢᵀ Vᵢ` for `U` `[B, T, m]`, `V` `[B, T, n]`: by the
/// per-example product when `m·n ≤ T²`, else by the ghost-norm identity.
fn sq_norms(u: Tensor<3>, v: Tensor<3>) -> Tensor<1> {
    let [b, t, m] = u.dims();
    let n = v.dims()[2];
    if m * n <= t * t {
        u.swap_dims(1, 2)
            .matmul(v)
            .square()
            .reshape([b, m * n])
            .sum_dim(1)
            .squeeze_dim::<1>(1)
    } else {
        let gu = u.clone().matmul(u.swap_dims(1, 2));
        let gv = v.clone().matmul(v.swap_dims(1, 2));
        (gu * gv).reshape([b, t * t]).sum_dim(1).squeeze_dim::<1>(1)
    }
}

/// Each example's squared adapter-gradient norm `[B]` from the probes of one forward pass and
/// the gradients of `Σᵢ Lᵢ`.
fn norms(probes: &[LoraProbe], grads: &burn::tensor::Gradients, b: usize) -> Vec<f64> {
    let mut total = vec![0.0f64; b];
    for p in probes {
        let Some(delta) = p.probe.grad(grads) else {
            continue;
        };
        // The probe sits inside the scaling: its gradient is already s·∂L/∂y.
        let delta = Tensor::<3>::from_inner(delta);
        let e = delta
            .clone()
            .matmul(p.b.clone().transpose().unsqueeze::<3>());
        let nb = sq_norms(p.h.clone(), delta);
        let na = sq_norms(p.x.clone(), e);
        let v = (nb + na)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        for (t, x) in total.iter_mut().zip(v) {
            *t += f64::from(x);
        }
    }
    total
}

/// The adapters' parameter ids and shapes.
fn adapter_params(model: &CausalLm) -> Vec<(ParamId, [usize; 2])> {
    model
        .projections()
        .into_iter()
        .filter_map(|p| p.lora.as_ref())
        .flat_map(|l| [(l.a.id, l.a.val().dims()), (l.b.id, l.b.val().dims())])
        .collect()
}

/// Trains the adapters with DP-SGD (see the module docs) for `cfg.epochs` epochs of
/// `plan.steps_per_epoch` steps, stopping at `plan.max_steps` (where the target epsilon is
/// reached) or when `keep_going` (called after each epoch with its index) says no. The base
/// must be frozen ([`super::train::freeze`]) before the adapters are attached.
///
/// The log's per-epoch loss is of the sampled private examples: it is not DP, and the caller
/// must not publish it.
///
/// # Errors
/// [`LlmError::Input`] for no examples, ids the model cannot take, or privacy settings the
/// accountant refuses.
pub fn fit_dp(
    mut model: CausalLm,
    train: &[Example],
    cfg: &DpFitConfig,
    rng: &mut DpRng,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<(CausalLm, FitLog, DpSpent), LlmError> {
    let n = train.len();
    if n == 0 {
        return Err(LlmError::Input("no training example".into()));
    }
    let plan = &cfg.plan;
    let q = plan.sampling_rate;
    let dp_err = |e: accountant::DpError| LlmError::Input(format!("privacy: {e}"));
    let params = adapter_params(&model);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let all: Vec<usize> = (0..n).collect();
    let expected = q * n as f64;
    let std = plan.noise_multiplier * plan.max_grad_norm;
    let mut log = FitLog {
        train_loss: Vec::new(),
    };
    let mut steps = 0u64;
    'epochs: for epoch in 0..cfg.epochs {
        let (mut sum, mut count) = (0.0, 0usize);
        for _ in 0..plan.steps_per_epoch {
            if steps >= plan.max_steps {
                break 'epochs;
            }
            steps += 1;
            let picked = rng.poisson(&all, q);
            let refs: Vec<&Example> = picked.iter().map(|&i| &train[i]).collect();
            let mut grads = GradientsParams::new();
            if !refs.is_empty() {
                // Both passes see the same LoRA dropout masks.
                model.set_dropout_seed(Some(rng.next_u64()));
                // Pass 1: parameters untracked, the probes give each example's norm.
                let frozen = model.clone().no_grad();
                let mut probes = Vec::new();
                let l = per_example_loss(&frozen, &refs, Some(&mut probes))?;
                let g1 = l.clone().sum().backward();
                let sq = norms(&probes, &g1, refs.len());
                let factors: Vec<f32> = sq
                    .iter()
                    .map(|s| (plan.max_grad_norm / (s.sqrt() + 1e-6)).min(1.0) as f32)
                    .collect();
                sum += l
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default()
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum::<f64>();
                count += refs.len();
                // Pass 2: the clipped sum, Σ cᵢ Lᵢ with the factors as constants.
                let device = model.embed.val().device();
                let c = Tensor::<1>::from_data(TensorData::new(factors, [refs.len()]), &device);
                let l = per_example_loss(&model, &refs, None)?;
                grads = GradientsParams::from_grads((l * c).sum().backward(), &model);
            }
            let device = model.embed.val().device();
            for (id, dims) in &params {
                let g = grads
                    .remove::<2>(*id)
                    .unwrap_or_else(|| Tensor::<2>::zeros(*dims, &device.clone().inner()));
                grads.register(*id, noisy(g, std, expected, rng));
            }
            model = optim.step(cfg.lr, model, grads);
        }
        log.train_loss
            .push(if count > 0 { sum / count as f64 } else { 0.0 });
        if !keep_going(epoch) {
            break;
        }
    }
    model.set_dropout_seed(None);
    let (epsilon, order) =
        accountant::epsilon(q, plan.noise_multiplier, steps, plan.delta).map_err(dp_err)?;
    Ok((
        model,
        log,
        DpSpent {
            epsilon,
            delta: plan.delta,
            order,
            steps,
            plan: plan.clone(),
        },
    ))
}

/// Each example's adapter-gradient norm, as DP-LoRA's clipping sees it (for tests and
/// diagnostics).
///
/// # Errors
/// [`LlmError::Input`] for ids the model cannot take.
pub fn example_grad_norms(model: &CausalLm, examples: &[Example]) -> Result<Vec<f64>, LlmError> {
    let refs: Vec<&Example> = examples.iter().collect();
    let frozen = model.clone().no_grad();
    let mut probes = Vec::new();
    let l = per_example_loss(&frozen, &refs, Some(&mut probes))?;
    let g = l.sum().backward();
    Ok(norms(&probes, &g, refs.len())
        .into_iter()
        .map(f64::sqrt)
        .collect())
}
