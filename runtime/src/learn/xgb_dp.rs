//! `Train_XGB` with `is_private`: differentially private gradient boosting, the **DP-TR Newton**
//! algorithm of Maddock, Cormode, Wang, Maple and Jha, "Federated Boosted Decision Trees with
//! Differential Privacy" (ACM CCS 2022, §4–5): totally random trees (each split's feature and
//! threshold drawn at random, without looking at the data) whose leaves are Newton steps on
//! Gaussian-noised sums of the gradients and hessians.
//!
//! Per boosting round (one of `n_estimators`):
//! 1. each training row is kept with probability `subsample` (Poisson sampling, rate `q`);
//! 2. its gradient and hessian at the current margin: `binary:logistic` `g = p − y ∈ [−1, 1]`,
//!    `h = p(1 − p) ∈ [0, ¼]`; `reg:squarederror` `g = F − y` clipped to `[−c, c]`
//!    (`privacy_params.clip_value`, default 1), `h = 1`;
//! 3. a tree of depth `max_depth`: node by node, a feature drawn uniformly and a threshold drawn
//!    uniformly inside that feature's range at the node (the feature bounds narrowed by the
//!    node's ancestors), so the tree's shape depends on the seed only;
//! 4. each leaf's `(G, H)` sums over its rows plus Gaussian noise `N(0, σ²Δ²)` on each, where
//!    `Δ = √(g_max² + h_max²)` is one row's L2 contribution (a row falls in one leaf);
//! 5. leaf weight `−η · G̃ / (max(H̃, 0) + λ)` (`learning_rate`, `l2_regularization`).
//!
//! **Accounting.** A round releases one Gaussian mechanism of sensitivity `Δ` and noise
//! multiplier `σ` on a Poisson sample of rate `q`: `n_estimators` rounds are `n_estimators` steps
//! of the sampled Gaussian mechanism, the RDP accountant of DP-SGD
//! ([`crate::learn::dp::accountant`]). `σ` is the smallest that keeps all rounds within the
//! pipeline's `privacy_params.epsilon` at its `delta` (DEPA splits its epsilon over the trees;
//! RDP composition over the trees spends it more tightly). The spent epsilon is charged to the
//! ledger like DP-SGD's. No non-DP model is trained or reported.
//!
//! **Not covered by the accountant** (as with DEPA's `Train_XGB`, which computes its
//! `feature_min`/`feature_max` from the training rows): the feature bounds (each feature's
//! minimum and maximum over the training split, in the model file), the categories of text
//! columns, and the held-out metrics. The run report lists them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;

use super::TrainError;
use super::data::{Prepared, Split};
use super::dp::accountant;
use super::dp::plan::{DpPlan, DpSpent};
use crate::pipeline::{TrainConfig, XgbObjective, privacy_param as num};

/// One totally random tree of depth `d`: internal nodes in heap order (node `i`'s children are
/// `2i + 1` and `2i + 2`), `2^d − 1` of them, then `2^d` leaves.
#[derive(Debug, Clone)]
pub struct RandomTree {
    /// Each internal node's feature index.
    pub feature: Vec<u32>,
    /// Each internal node's threshold: a row goes left when `x[feature] < threshold`.
    pub threshold: Vec<f32>,
    /// Leaf weights (margin contributions), left to right.
    pub leaf: Vec<f32>,
}

impl RandomTree {
    fn leaf_of(&self, x: &[f32]) -> usize {
        let mut i = 0;
        while i < self.feature.len() {
            let go_left = x[self.feature[i] as usize] < self.threshold[i];
            i = 2 * i + if go_left { 1 } else { 2 };
        }
        i - self.feature.len()
    }
}

/// A DP-trained booster: a margin `base + Σ trees`.
#[derive(Debug, Clone)]
pub struct DpBooster {
    /// The starting margin (0: a probability of ½, or a prediction of 0; not fitted to data).
    pub base_margin: f32,
    /// The trees.
    pub trees: Vec<RandomTree>,
    /// Per-feature `[min, max]` over the training split (the random thresholds' ranges).
    pub bounds: Vec<[f32; 2]>,
}

impl DpBooster {
    /// The margin of one row.
    pub fn margin(&self, x: &[f32]) -> f32 {
        self.base_margin + self.trees.iter().map(|t| t.leaf[t.leaf_of(x)]).sum::<f32>()
    }

    /// The model as JSON (`trees` with `feature`, `threshold`, `leaf` arrays in heap order).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "algorithm": "DP-TR Newton (Maddock et al., CCS 2022)",
            "base_margin": self.base_margin,
            "feature_bounds": self.bounds,
            "trees": self.trees.iter().map(|t| json!({
                "feature": t.feature, "threshold": t.threshold, "leaf": t.leaf,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A DP booster's outputs for rows `idx`, laid out as [`super::xgb::XgbModel::predict`]'s.
pub fn outputs(b: &DpBooster, p: &Prepared, idx: &[usize], obj: XgbObjective) -> Vec<f32> {
    let d = p.d();
    let mut out = Vec::with_capacity(idx.len() * 2);
    for &i in idx {
        let m = b.margin(&p.x[i * d..(i + 1) * d]);
        if obj == XgbObjective::BinaryLogistic {
            out.extend([-m / 2.0, m / 2.0]);
        } else {
            out.push(m);
        }
    }
    out
}

/// `model.xgb.json` of a DP booster: `{"format": "ccr-xgb/1", "objective", "classes",
/// "feature_columns", "dp": {algorithm, base_margin, feature_bounds, trees}}`.
pub fn model_json(b: &DpBooster, p: &Prepared, obj: XgbObjective) -> Vec<u8> {
    let doc = json!({
        "format": "ccr-xgb/1",
        "objective": obj.as_str(),
        "classes": p.classes,
        "feature_columns": p.features,
        "dp": b.to_json(),
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Trains a DP booster on the training split (see the module documentation).
///
/// # Errors
/// [`TrainError::Data`]: an objective other than `binary:logistic` or `reg:squarederror`, a
/// privacy parameter the accountant refuses (named), or a depth over 16.
pub fn train(
    p: &Prepared,
    sp: &Split,
    cfg: &TrainConfig,
    contract_noise: Option<f64>,
) -> Result<(DpBooster, DpSpent), TrainError> {
    let mc = &cfg.model_config;
    let obj = super::xgb::objective(cfg);
    let (g_max, h_max) = match obj {
        XgbObjective::BinaryLogistic => (1.0f64, 0.25f64),
        XgbObjective::RegSquaredError => (num(cfg, "clip_value").unwrap_or(1.0), 1.0),
        other => {
            return Err(TrainError::Data(format!(
                "Train_XGB with is_private: objective `{}` is not supported (binary:logistic or reg:squarederror; a multi-class booster would need one noisy tree per class and round)",
                other.as_str()
            )));
        }
    };
    if !(g_max > 0.0 && g_max.is_finite()) {
        return Err(TrainError::Data(
            "privacy_params.clip_value: must be a finite number > 0".into(),
        ));
    }
    let depth = mc.max_depth.unwrap_or(6);
    if depth == 0 || depth > 16 {
        return Err(TrainError::Data(
            "model_config.max_depth: 1 to 16 for DP trees (a leaf per 2^depth)".into(),
        ));
    }
    let rounds = mc.n_estimators.unwrap_or(100) as u64;
    let q = mc.subsample.unwrap_or(1.0);
    let target = num(cfg, "epsilon").unwrap_or(f64::NAN);
    let delta = num(cfg, "delta").unwrap_or(f64::NAN);
    let bad = |e: accountant::DpError| TrainError::Data(format!("privacy_params: {e}"));
    let sigma = match (num(cfg, "noise_multiplier"), contract_noise) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            accountant::noise_multiplier(target, q, rounds, delta)
                .map_err(bad)?
                .0
        }
    };
    let acc = accountant::Accountant::new(q, sigma).map_err(bad)?;
    let max_rounds = acc.max_steps(target, delta, rounds).map_err(bad)?;
    if max_rounds == 0 {
        return Err(TrainError::Data(format!(
            "privacy_params: one tree at noise multiplier {sigma} already spends more than epsilon {target}"
        )));
    }
    let sensitivity = (g_max * g_max + h_max * h_max).sqrt();
    let eta = mc.learning_rate.unwrap_or(0.3) as f32;
    let lambda = mc.l2_regularization.unwrap_or(1.0) as f32;
    let d = p.d();
    let row = |i: usize| &p.x[i * d..(i + 1) * d];
    let mut bounds = vec![[f32::INFINITY, f32::NEG_INFINITY]; d];
    for &i in &sp.train {
        for (b, &v) in bounds.iter_mut().zip(row(i)) {
            b[0] = b[0].min(v);
            b[1] = b[1].max(v);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mc.seed.unwrap_or(0));
    let noise = Normal::new(0.0, sigma * sensitivity)
        .map_err(|e| TrainError::Data(format!("privacy_params: {e}")))?;
    let mut margin = vec![0f32; sp.train.len()];
    let leaves = 1usize << depth;
    let mut booster = DpBooster {
        base_margin: 0.0,
        trees: Vec::with_capacity(max_rounds as usize),
        bounds,
    };
    for _ in 0..max_rounds {
        let tree_shape = random_tree(&booster.bounds, depth, &mut rng);
        let mut g_sum = vec![0f64; leaves];
        let mut h_sum = vec![0f64; leaves];
        for (k, &i) in sp.train.iter().enumerate() {
            if q < 1.0 && rng.r#gen::<f64>() >= q {
                continue;
            }
            let (g, h) = match obj {
                XgbObjective::BinaryLogistic => {
                    let pr = 1.0 / (1.0 + (-f64::from(margin[k])).exp());
                    (pr - f64::from(p.y[i]), pr * (1.0 - pr))
                }
                _ => (
                    (f64::from(margin[k]) - f64::from(p.y[i])).clamp(-g_max, g_max),
                    1.0,
                ),
            };
            let l = tree_shape.leaf_of(row(i));
            g_sum[l] += g;
            h_sum[l] += h;
        }
        let mut tree = tree_shape;
        tree.leaf = (0..leaves)
            .map(|l| {
                let g = g_sum[l] + noise.sample(&mut rng);
                let h = (h_sum[l] + noise.sample(&mut rng)).max(0.0);
                (-f64::from(eta) * g / (h + f64::from(lambda))) as f32
            })
            .collect();
        for (k, &i) in sp.train.iter().enumerate() {
            margin[k] += tree.leaf[tree.leaf_of(row(i))];
        }
        booster.trees.push(tree);
    }
    let (epsilon, order) = acc.epsilon(max_rounds, delta).map_err(bad)?;
    let spent = DpSpent {
        epsilon,
        delta,
        order,
        steps: max_rounds,
        plan: DpPlan {
            max_grad_norm: sensitivity,
            noise_multiplier: sigma,
            sampling_rate: q,
            steps_per_epoch: 1,
            max_steps: max_rounds,
            target_epsilon: target,
            delta,
        },
    };
    Ok((booster, spent))
}

/// A tree whose splits are drawn at random inside the bounds (narrowed along each path).
fn random_tree(bounds: &[[f32; 2]], depth: usize, rng: &mut ChaCha8Rng) -> RandomTree {
    let internal = (1usize << depth) - 1;
    let mut feature = vec![0u32; internal];
    let mut threshold = vec![0f32; internal];
    // Each node's bounds, narrowed by its ancestors' splits.
    let mut node_bounds: Vec<Vec<[f32; 2]>> = vec![bounds.to_vec()];
    node_bounds.reserve(internal);
    for i in 0..internal {
        let b = node_bounds[i].clone();
        let j = rng.gen_range(0..b.len());
        let [lo, hi] = b[j];
        let t = if hi > lo {
            lo + (hi - lo) * rng.r#gen::<f32>()
        } else {
            lo
        };
        feature[i] = j as u32;
        threshold[i] = t;
        if 2 * i + 1 < internal {
            let mut left = b.clone();
            left[j][1] = t;
            let mut right = b;
            right[j][0] = t;
            node_bounds.push(left);
            node_bounds.push(right);
        }
    }
    RandomTree {
        feature,
        threshold,
        leaf: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> (Prepared, Split) {
        // Two informative features: the label is 1 when x0 + x1 > 1 (with 10% flipped).
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b, c) = (rng.r#gen::<f32>(), rng.r#gen::<f32>(), rng.r#gen::<f32>());
            x.extend([a, b, c]);
            let mut label = a + b > 1.0;
            if rng.r#gen::<f32>() < 0.1 {
                label = !label;
            }
            y.push(f32::from(u8::from(label)));
        }
        let p = Prepared {
            features: vec!["a".into(), "b".into(), "c".into()],
            x,
            y,
            classes: vec!["0".into(), "1".into()],
            ids: Vec::new(),
            sample_shape: vec![3],
        };
        let sp = Split {
            train: (0..n * 4 / 5).collect(),
            val: Vec::new(),
            test: (n * 4 / 5..n).collect(),
        };
        (p, sp)
    }

    fn cfg(eps: f64) -> TrainConfig {
        serde_json::from_value(serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "XGBoost", "n_estimators": 50, "max_depth": 3, "learning_rate": 0.3},
            "is_private": true,
            "privacy_params": {"epsilon": eps, "delta": 1e-5},
            "task_type": "classification"
        }))
        .unwrap()
    }

    fn auc(p: &Prepared, sp: &Split, b: &DpBooster) -> f64 {
        let scores: Vec<(f32, bool)> = sp
            .test
            .iter()
            .map(|&i| (b.margin(&p.x[i * 3..i * 3 + 3]), p.y[i] == 1.0))
            .collect();
        let pos: Vec<f32> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
        let neg: Vec<f32> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
        let mut wins = 0.0;
        for &a in &pos {
            for &b in &neg {
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (pos.len() * neg.len()) as f64
    }

    #[test]
    fn dp_trees_spend_at_most_the_target_and_learn_the_signal() {
        let (p, sp) = data(20_000);
        let (b, spent) = train(&p, &sp, &cfg(4.0), None).unwrap();
        assert!(
            spent.epsilon <= 4.0 && spent.epsilon > 3.9,
            "{}",
            spent.epsilon
        );
        assert_eq!(b.trees.len(), 50);
        let a = auc(&p, &sp, &b);
        assert!(a > 0.75, "held-out AUC {a}");
    }

    #[test]
    fn a_smaller_epsilon_means_more_noise() {
        let (p, sp) = data(2_000);
        let (_, loose) = train(&p, &sp, &cfg(8.0), None).unwrap();
        let (_, tight) = train(&p, &sp, &cfg(0.5), None).unwrap();
        assert!(tight.plan.noise_multiplier > loose.plan.noise_multiplier);
        // The accountant's epsilon for the noise used equals what is reported.
        let (e, _) = accountant::epsilon(1.0, tight.plan.noise_multiplier, 50, 1e-5).unwrap();
        assert!((e - tight.epsilon).abs() < 1e-9);
    }

    #[test]
    fn tree_shape_does_not_depend_on_the_labels() {
        let (p, sp) = data(500);
        let mut flipped = p.clone();
        flipped.y.iter_mut().for_each(|y| *y = 1.0 - *y);
        let (a, _) = train(&p, &sp, &cfg(2.0), None).unwrap();
        let (b, _) = train(&flipped, &sp, &cfg(2.0), None).unwrap();
        assert_eq!(a.trees[3].feature, b.trees[3].feature);
        assert_eq!(a.trees[3].threshold, b.trees[3].threshold);
    }
}
