//! The training loop: mini-batches (plain) or Poisson-sampled batches with clipped, noised
//! gradients (DP-SGD, [`super::dp`]; per-sample norms by [`super::graph::step`]); the optimizer;
//! the per-epoch log; stopping at the privacy budget.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::TrainError;
use super::data::{Prepared, Scaler, Split};
use super::dp::plan::{DpPlan, DpSpent};
use super::dp::{accountant, sgd};
use super::graph::step as gstep;
use super::loss::{Target, loss_and_gradient};
use super::metrics::{accuracy, argmax_rows, mse};
use super::model::{Net, builtin_graph, device, predict, with_weights_from};
use super::schedule::{Plateau, lr_at};
use super::target::LossSpec;
use crate::pipeline::{ModelName, OptimizerName, Scheduler, Solver, TaskType, TrainConfig};

/// Per-epoch record.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss; `None` for DP runs (a loss over private batches, without noise, is
    /// not covered by the DP guarantee, so it is not reported, logged or drawn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// DP runs: epsilon spent so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Validation accuracy (classification) or MSE (regression), when there is a validation
    /// split and the run is not DP (for the same reason as the loss).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f64>,
}

/// The trained model and what to report.
pub struct Trained {
    /// The network.
    pub net: Net,
    /// The number of outputs (classes, or 1).
    pub outputs: usize,
    /// The scaler.
    pub scaler: Scaler,
    /// Per-epoch log.
    pub epochs: Vec<EpochLog>,
    /// DP runs: what was spent.
    pub dp: Option<DpSpent>,
}

/// Trains on the split's training rows.
///
/// `on_epoch` is called after each epoch (for progress logs); when it returns `false`
/// training stops and `Ok(None)` is returned.
///
/// # Errors
/// [`TrainError`].
pub fn train(
    p: &Prepared,
    sp: &Split,
    cfg: &TrainConfig,
    dp: Option<&DpPlan>,
    base_model: Option<&[u8]>,
    mut on_epoch: impl FnMut(&EpochLog) -> bool,
) -> Result<Option<Trained>, TrainError> {
    let seed = cfg.dataset_config.splits.random_state;
    let device = device();
    device.seed(seed);
    let binary = cfg.loss_config.as_ref().is_some_and(|l| l.class.binary());
    let outputs = match cfg.task_type {
        TaskType::Classification if binary => {
            if p.classes.len() != 2 {
                return Err(TrainError::Data(format!(
                    "loss_config: a binary cross-entropy needs two classes, the labels have {}",
                    p.classes.len()
                )));
            }
            1
        }
        TaskType::Classification => p.classes.len(),
        TaskType::Regression => 1,
    };
    if let Some(w) = cfg
        .loss_config
        .as_ref()
        .and_then(|l| l.params.weight.as_ref())
        && w.len() != p.classes.len()
    {
        return Err(TrainError::Data(format!(
            "loss_config.params.weight has {} values, the labels have {} classes",
            w.len(),
            p.classes.len()
        )));
    }
    let mut net = build_net(p, cfg, &device, base_model, outputs)?;
    check_token_ids(&net, p)?;
    if dp.is_some() {
        super::graph::per_sample::check_private(net.param_info())?;
    }
    let scaler = Scaler::fit(cfg.dataset_config.scaler(), p, &sp.train);
    let rows = Rows::new(p, sp, &scaler, cfg, outputs);
    let xval = scaler.transform(p, &sp.val);
    if cfg.model_config.solver == Some(Solver::Lbfgs) && dp.is_none() {
        // scikit-learn's full-batch solve in place of epochs (checked: a linear model, no DP).
        let y: Vec<f32> = sp.train.iter().map(|&i| p.y[i]).collect();
        let (net, objective) =
            super::solver::train_linear(net, cfg, &rows.x, &y, p.d(), outputs, &device)?;
        let val_metric = if sp.val.is_empty() {
            None
        } else {
            let out = predict(&net, &device, &xval, sp.val.len(), p.d())?;
            let labels: Vec<f32> = sp.val.iter().map(|&i| p.y[i]).collect();
            Some(match cfg.task_type {
                TaskType::Classification => accuracy(&argmax_rows(&out, outputs), &labels),
                TaskType::Regression => mse(&out, &labels),
            })
        };
        let log = EpochLog {
            epoch: 1,
            train_loss: Some(objective),
            epsilon: None,
            val_metric,
        };
        if !on_epoch(&log) {
            return Ok(None);
        }
        return Ok(Some(Trained {
            net,
            outputs,
            scaler,
            epochs: vec![log],
            dp: None,
        }));
    }
    let prm = &cfg.optimizer.params;
    let wd = (prm.weight_decay > 0.0).then(|| WeightDecayConfig::new(prm.weight_decay as f32));
    let mut optim = match cfg.optimizer.name {
        OptimizerName::Sgd => SgdConfig::new()
            .with_weight_decay(wd)
            .with_momentum(
                (prm.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(prm.momentum)),
            )
            .init(),
        OptimizerName::AdamW => AdamWConfig::new()
            .with_weight_decay(prm.weight_decay as f32)
            .init(),
        OptimizerName::Adam => AdamConfig::new().with_weight_decay(wd).init(),
    };
    check_schedule(cfg, sp.train.len(), dp)?;
    // The learning rate of each optimizer step, from the schedule (PyTorch's, stepped after
    // every batch as DEPA's trainer does).
    // ReduceLROnPlateau holds its rate between epochs instead (checked: never under DP).
    let mut plateau = match &cfg.scheduler {
        Some(Scheduler::ReduceLROnPlateau(p)) => Some(Plateau::new(p, prm.lr)),
        _ => None,
    };
    let plateau_lr = std::cell::Cell::new(prm.lr);
    let on_plateau = plateau.is_some();
    let mut t = 0u64;
    let mut step = |net: Net, grads: GradientsParams| {
        let lr = if on_plateau {
            plateau_lr.get()
        } else {
            lr_at(cfg.scheduler.as_ref(), prm.lr, t)
        };
        t += 1;
        optim.step(lr, net, grads)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0fb_a7c4);
    let mut order: Vec<usize> = (0..sp.train.len()).collect();
    let mut epochs = Vec::new();
    let mut dp_state = match dp {
        Some(plan) => Some(DpState {
            plan,
            rng: sgd::DpRng::from_os(),
            accountant: accountant::Accountant::new(plan.sampling_rate, plan.noise_multiplier)
                .map_err(|e| TrainError::Data(format!("privacy_params: {e}")))?,
            steps: 0,
        }),
        None => None,
    };
    for epoch in 1..=cfg.total_epochs {
        let (next, loss_sum, batches) = match &mut dp_state {
            Some(state) => state.epoch(net, &rows, &order, &device, &mut step),
            None => {
                order.shuffle(&mut rng);
                plain_epoch(net, &rows, &order, cfg.batch_size, &device, &mut step)
            }
        };
        net = next;
        let epsilon = match &dp_state {
            Some(s) => Some(
                s.accountant
                    .epsilon(s.steps, s.plan.delta)
                    .map_err(|e| TrainError::Data(e.to_string()))?
                    .0,
            ),
            None => None,
        };
        let val_metric = if sp.val.is_empty() || dp_state.is_some() {
            None
        } else {
            let out = predict(&net, &device, &xval, sp.val.len(), p.d())?;
            let labels: Vec<f32> = sp.val.iter().map(|&i| p.y[i]).collect();
            if let Some(plateau) = &mut plateau {
                plateau.step(rows.mean_loss(&out, &sp.val, &device));
                plateau_lr.set(plateau.lr());
            }
            Some(match cfg.task_type {
                TaskType::Classification => accuracy(&argmax_rows(&out, rows.out_dim), &labels),
                TaskType::Regression => mse(&out, &labels),
            })
        };
        let log = EpochLog {
            epoch,
            train_loss: dp_state.is_none().then(|| loss_sum / batches.max(1) as f64),
            epsilon,
            val_metric,
        };
        let go_on = on_epoch(&log);
        epochs.push(log);
        if !go_on {
            return Ok(None);
        }
        if dp_state
            .as_ref()
            .is_some_and(|s| s.steps >= s.plan.max_steps)
        {
            break; // the budget is spent
        }
    }
    let dp = match dp_state {
        Some(s) => {
            let (epsilon, order) = s
                .accountant
                .epsilon(s.steps, s.plan.delta)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            Some(DpSpent {
                epsilon,
                delta: s.plan.delta,
                order,
                steps: s.steps,
                plan: s.plan.clone(),
            })
        }
        None => None,
    };
    Ok(Some(Trained {
        net,
        outputs,
        scaler,
        epochs,
        dp,
    }))
}

/// Refuses a OneCycleLR whose cycle is shorter than the run's optimizer steps (PyTorch raises
/// when it is stepped past its end).
fn check_schedule(
    cfg: &TrainConfig,
    n_train: usize,
    dp: Option<&DpPlan>,
) -> Result<(), TrainError> {
    let Some(Scheduler::OneCycleLR(p)) = &cfg.scheduler else {
        return Ok(());
    };
    let planned = match dp {
        Some(plan) => plan.max_steps,
        None => (cfg.total_epochs * n_train.div_ceil(cfg.batch_size.max(1))) as u64,
    };
    let steps = p.steps().unwrap_or(0);
    if steps < planned {
        return Err(TrainError::Data(format!(
            "scheduler OneCycleLR: its cycle has {steps} steps, the run takes {planned} optimizer steps"
        )));
    }
    Ok(())
}

/// A model with an embedding reads its samples as token ids: each value must be a whole
/// number below the vocabulary (Burn's lookup would panic on another).
fn check_token_ids(net: &Net, p: &Prepared) -> Result<(), TrainError> {
    use crate::learn::graph::spec::LayerClass;
    let Some(vocab) = net
        .param_info()
        .iter()
        .filter_map(|i| match i.class {
            LayerClass::Embedding { num, .. } => Some(num),
            _ => None,
        })
        .min()
    else {
        return Ok(());
    };
    match p
        .x
        .iter()
        .position(|&v| v < 0.0 || v.fract() != 0.0 || v >= vocab as f32)
    {
        // The value itself stays out of the message: it is private data.
        Some(i) => Err(TrainError::Data(format!(
            "the model embeds token ids (whole numbers below {vocab}); sample {} holds another value",
            i / p.d().max(1)
        ))),
        None => Ok(()),
    }
}

/// The network the config describes, with the base model's weights when one is given: ccr's
/// own model, DEPA's layer graph (a safetensors `state_dict` for it), or an ONNX base model's
/// graph. Its input must take the data's samples and its output give `outputs` values.
fn build_net(
    p: &Prepared,
    cfg: &TrainConfig,
    device: &Device,
    base_model: Option<&[u8]>,
    outputs: usize,
) -> Result<Net, TrainError> {
    let mc = &cfg.model_config;
    let net = match (mc.name, &mc.graph) {
        (ModelName::BaseModel, _) => {
            let bytes = base_model.ok_or_else(|| {
                TrainError::Data("model_type onnx: no base model was given".into())
            })?;
            let imp = crate::learn::onnx::import::import(bytes)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            let n: usize = imp.sample_shape.iter().product();
            if n != p.d() {
                return Err(TrainError::Data(format!(
                    "base model (ONNX): its input {:?} takes {n} values a sample, the data has {}",
                    imp.sample_shape,
                    p.d()
                )));
            }
            let net = Net::new(&imp.spec, &imp.sample_shape, "", device)?;
            let get = |name: &str| {
                imp.tensors
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| (t.shape.clone(), t.values.clone()))
            };
            net.load_state_dict(&get, device)
                .map_err(|e| TrainError::Data(format!("base model (ONNX): {e}")))?
        }
        (ModelName::Graph, Some(spec)) => {
            let net = Net::new(spec, &p.sample_shape, "_layers.", device)?;
            match base_model {
                Some(bytes) => with_weights_from(net, bytes, device)?,
                None => net,
            }
        }
        _ => {
            let (spec, sample) = builtin_graph(mc, p.d(), outputs)?;
            let net = Net::new(&spec, &sample, "", device)?;
            match base_model {
                Some(bytes) => with_weights_from(net, bytes, device)?,
                None => net,
            }
        }
    };
    let out = net.output_shape();
    if out[1..] != [outputs] {
        return Err(TrainError::Data(format!(
            "the model's output is {:?} a sample; the task needs {outputs} ({})",
            &out[1..],
            match cfg.task_type {
                TaskType::Classification if outputs == 1 => "a binary cross-entropy: one value",
                TaskType::Classification => "one per class",
                TaskType::Regression => "one value",
            }
        )));
    }
    Ok(net)
}

/// The scaled training rows and their targets, batch by batch.
struct Rows<'a> {
    p: &'a Prepared,
    sp: &'a Split,
    /// Scaled training features, `[train rows, d]` row-major.
    x: Vec<f32>,
    out_dim: usize,
    /// The loss and how its targets are made.
    loss: LossSpec,
}

impl<'a> Rows<'a> {
    fn new(
        p: &'a Prepared,
        sp: &'a Split,
        scaler: &Scaler,
        cfg: &TrainConfig,
        out_dim: usize,
    ) -> Self {
        Self {
            p,
            sp,
            x: scaler.transform(p, &sp.train),
            out_dim,
            loss: LossSpec::new(cfg, out_dim),
        }
    }

    /// Whether the batch gradient is the mean (else the sum) of the per-sample gradients.
    fn mean(&self) -> bool {
        self.loss.mean()
    }

    /// The labels of the dataset's rows `rows`.
    fn labels(&self, rows: &[usize]) -> Vec<f32> {
        rows.iter().map(|&k| self.p.y[k]).collect()
    }

    /// The targets of training rows `rows` (indices into the training split).
    fn target(&self, rows: &[usize]) -> Target {
        self.loss.target(&self.labels(&self.ids(rows)))
    }

    /// The dataset's row indices of training rows `rows`.
    fn ids(&self, rows: &[usize]) -> Vec<usize> {
        rows.iter().map(|&k| self.sp.train[k]).collect()
    }

    /// What a mean loss divides the sum over the dataset's rows `rows` by.
    fn mean_divisor(&self, rows: &[usize]) -> f64 {
        self.loss.mean_divisor(&self.labels(rows))
    }

    /// The mean loss (weighted by class weights where given) of outputs `out` (`[rows, out_dim]`
    /// row-major, from [`predict`]) for the dataset's rows `rows`.
    fn mean_loss(&self, out: &[f32], rows: &[usize], device: &Device) -> f64 {
        let out = Tensor::<2>::from_data(
            TensorData::new(out.to_vec(), [rows.len(), self.out_dim]),
            &device.clone().inner(),
        );
        let labels = self.labels(rows);
        let (_, sum) = loss_and_gradient(out, &self.loss.target(&labels));
        sum / self.loss.mean_divisor(&labels)
    }

    /// The features of training rows `rows`, `[rows, d]`.
    fn x(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        let d = self.p.d();
        let mut xb = Vec::with_capacity(rows.len() * d);
        for &k in rows {
            xb.extend_from_slice(&self.x[k * d..(k + 1) * d]);
        }
        Tensor::<2>::from_data(TensorData::new(xb, [rows.len(), d]), device)
    }
}

/// Plain mini-batch training through the same backward pass (no clipping, no noise): the mean
/// loss's gradient is the summed gradient over the batch size. Returns the network, the summed
/// batch-mean loss and the number of batches.
fn plain_epoch(
    mut net: Net,
    rows: &Rows<'_>,
    order: &[usize],
    batch_size: usize,
    device: &Device,
    step: &mut impl FnMut(Net, GradientsParams) -> Net,
) -> (Net, f64, usize) {
    let (mut loss_sum, mut batches) = (0.0, 0usize);
    for chunk in order.chunks(batch_size) {
        let scale = if rows.mean() {
            1.0 / rows.mean_divisor(&rows.ids(chunk))
        } else {
            1.0
        };
        let (grads, loss) = gstep::plain(&net, rows.x(chunk, device), &rows.target(chunk), scale);
        loss_sum += loss / chunk.len() as f64;
        batches += 1;
        net = step(net, grads);
    }
    (net, loss_sum, batches)
}

/// A DP-SGD run's state: the plan, the noise and sampling randomness, the accountant, the
/// steps taken.
struct DpState<'a> {
    plan: &'a DpPlan,
    rng: sgd::DpRng,
    accountant: accountant::Accountant,
    steps: u64,
}

impl DpState<'_> {
    /// One epoch of DP-SGD: Poisson-sampled batches, clipped per-sample gradients, Gaussian
    /// noise; stops at the plan's last step.
    fn epoch(
        &mut self,
        mut net: Net,
        rows: &Rows<'_>,
        order: &[usize],
        device: &Device,
        step: &mut impl FnMut(Net, GradientsParams) -> Net,
    ) -> (Net, f64, usize) {
        let plan = self.plan;
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        // The noisy sum is divided by the expected batch size for a mean loss (Opacus's
        // `loss_reduction="mean"`), not for a summed one.
        let expected = if rows.mean() {
            plan.sampling_rate * order.len() as f64
        } else {
            1.0
        };
        for _ in 0..plan.steps_per_epoch {
            if self.steps >= plan.max_steps {
                break;
            }
            let sample = self.rng.poisson(order, plan.sampling_rate);
            let sums = if sample.is_empty() {
                gstep::zeros(&net, &device.clone().inner())
            } else {
                let (sums, loss) = gstep::clipped(
                    &net,
                    rows.x(&sample, device),
                    &rows.target(&sample),
                    plan.max_grad_norm,
                );
                loss_sum += loss / sample.len() as f64;
                batches += 1;
                sums
            };
            let std = plan.noise_multiplier * plan.max_grad_norm;
            let rng = &mut self.rng;
            let noisy = gstep::map(sums, |g| gstep::noisy(g, std, expected, rng));
            let grads = gstep::to_params(noisy);
            net = step(net, grads);
            self.steps += 1;
        }
        (net, loss_sum, batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 rows of 3 features, two classes; one optimizer step per epoch (the batch is the
    /// whole training split).
    fn data() -> (Prepared, Split) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 40;
        let x: Vec<f32> = (0..n * 3)
            .map(|_| rand::Rng::gen_range(&mut rng, -1.0..1.0))
            .collect();
        let y: Vec<f32> = (0..n).map(|i| f32::from(x[i * 3] > 0.0)).collect();
        let p = Prepared {
            features: vec!["a".into(), "b".into(), "c".into()],
            x,
            y,
            classes: vec!["0".into(), "1".into()],
            ids: (0..n).map(|i| i.to_string()).collect(),
            sample_shape: vec![3],
        };
        let sp = Split {
            train: (0..30).collect(),
            val: Vec::new(),
            test: (30..40).collect(),
        };
        (p, sp)
    }

    fn outputs(epochs: usize, scheduler: Option<serde_json::Value>) -> Vec<f32> {
        let (p, mut sp) = data();
        sp.val = sp.test.clone(); // a validation loss for ReduceLROnPlateau
        let mut c = serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "MLP", "hidden_layers": [4]},
            "optimizer": {"name": "Adam", "params": {"lr": 0.05}},
            "total_epochs": epochs, "batch_size": 64,
        });
        if let Some(s) = scheduler {
            c["scheduler"] = s;
        }
        let cfg: TrainConfig = serde_json::from_value(c).unwrap();
        test_predictions(&p, &sp, &cfg)
    }

    /// Trains `cfg` (holding the seed lock, so the initial weights repeat) and predicts the test
    /// rows.
    fn test_predictions(p: &Prepared, sp: &Split, cfg: &TrainConfig) -> Vec<f32> {
        let _seeded = crate::learn::testing::seeded();
        let t = train(p, sp, cfg, None, None, |_| true).unwrap().unwrap();
        let x = t.scaler.transform(p, &sp.test);
        predict(&t.net, &device(), &x, sp.test.len(), p.d()).unwrap()
    }

    #[test]
    fn the_schedule_sets_each_steps_learning_rate() {
        // ExponentialLR with gamma 0: the first step at lr, every later one at 0, so three
        // epochs (three steps) leave the model where one epoch does.
        let zero_after_first =
            serde_json::json!({"name": "ExponentialLR", "params": {"gamma": 0.0}});
        assert_eq!(outputs(3, Some(zero_after_first)), outputs(1, None));
        // Without the schedule the later steps move it.
        assert_ne!(outputs(3, None), outputs(1, None));
    }

    #[test]
    fn reduce_lr_on_plateau_follows_the_validation_loss_per_epoch() {
        // Any later epoch is a plateau (an absolute threshold no loss can beat) and patience 0:
        // after the second epoch the rate drops to 0 (factor 0), so five epochs end where two do.
        let plateau = serde_json::json!({"name": "ReduceLROnPlateau", "params": {
            "factor": 0.0, "patience": 0, "threshold_mode": "abs", "threshold": 1e9}});
        assert_eq!(outputs(5, Some(plateau)), outputs(2, None));
        assert_ne!(outputs(5, None), outputs(2, None));
        // With a threshold any change beats, the rate never drops.
        let never = serde_json::json!({"name": "ReduceLROnPlateau", "params": {
            "factor": 0.0, "patience": 0, "threshold_mode": "abs", "threshold": -1e9}});
        assert_eq!(outputs(5, Some(never)), outputs(5, None));
    }

    #[test]
    fn a_one_cycle_shorter_than_the_run_is_refused() {
        let _seeded = crate::learn::testing::seeded();
        let (p, sp) = data();
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "MLP", "hidden_layers": [4]},
            "total_epochs": 3, "batch_size": 64,
            "scheduler": {"name": "OneCycleLR",
                          "params": {"max_lr": 0.1, "total_steps": 2, "cycle_momentum": false}},
        }))
        .unwrap();
        let e = train(&p, &sp, &cfg, None, None, |_| true)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("2 steps, the run takes 3"), "{e}");
    }

    #[test]
    fn a_summed_loss_steps_batch_size_times_as_far_as_a_mean_one() {
        // Plain SGD, one step per epoch over the 30 training rows: the sum's gradient is 30
        // times the mean's, so a learning rate 30 times smaller gives the same model.
        let run = |reduction: &str, lr: f64| {
            let (p, sp) = data();
            let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
                "dataset_config": {"target_variable": "y"},
                "task_type": "regression",
                "model_config": {"name": "LinearRegression"},
                "loss_config": {"class": "torch.nn.HuberLoss", "params": {"reduction": reduction}},
                "optimizer": {"name": "SGD", "params": {"lr": lr}},
                "total_epochs": 3, "batch_size": 64,
            }))
            .unwrap();
            test_predictions(&p, &sp, &cfg)
        };
        let mean = run("mean", 0.3);
        let sum = run("sum", 0.01);
        for (a, b) in mean.iter().zip(&sum) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(
            mean.iter()
                .zip(run("sum", 0.3))
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "the reduction changes the step"
        );
    }

    #[test]
    fn class_weights_make_pytorchs_weighted_mean() {
        // Equal weights give the plain mean whatever their value (Σ w ℓ / Σ w); unequal ones
        // train another model.
        let run = |weight: Option<Vec<f64>>| {
            let (p, sp) = data();
            let mut loss = serde_json::json!({"class": "torch.nn.CrossEntropyLoss"});
            if let Some(w) = weight {
                loss["params"] = serde_json::json!({"weight": w});
            }
            let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
                "dataset_config": {"target_variable": "y"},
                "model_config": {"name": "MLP", "hidden_layers": [4]},
                "optimizer": {"name": "SGD", "params": {"lr": 0.5}},
                "loss_config": loss, "total_epochs": 3, "batch_size": 8,
            }))
            .unwrap();
            test_predictions(&p, &sp, &cfg)
        };
        let plain = run(None);
        for w in [vec![1.0, 1.0], vec![3.0, 3.0]] {
            for (a, b) in run(Some(w.clone())).iter().zip(&plain) {
                assert!((a - b).abs() < 1e-5, "weight {w:?}: {a} vs {b}");
            }
        }
        assert!(
            run(Some(vec![1.0, 5.0]))
                .iter()
                .zip(&plain)
                .any(|(a, b)| (a - b).abs() > 1e-4),
            "unequal weights train another model"
        );
        let (p, sp) = data();
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "MLP", "hidden_layers": [4]},
            "loss_config": {"class": "nn.CrossEntropyLoss", "params": {"weight": [1.0, 2.0, 3.0]}},
        }))
        .unwrap();
        let e = train(&p, &sp, &cfg, None, None, |_| true)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("weight has 3 values, the labels have 2 classes"),
            "{e}"
        );
    }

    #[test]
    fn a_focal_loss_with_gamma_zero_trains_as_cross_entropy() {
        let run = |loss: serde_json::Value| {
            let (p, sp) = data();
            let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
                "dataset_config": {"target_variable": "y"},
                "model_config": {"name": "MLP", "hidden_layers": [4]},
                "loss_config": loss, "total_epochs": 3, "batch_size": 8,
            }))
            .unwrap();
            test_predictions(&p, &sp, &cfg)
        };
        let focal = |gamma: f64| {
            serde_json::json!({"expression": "alpha * (1 - pt)**gamma * ce_loss",
                "components": {
                    "ce_loss": {"class": "nn.CrossEntropyLoss", "params": {"reduction": "none"}},
                    "pt": {"class": "torch.exp", "params": {"input": "-$ce_loss"}}},
                "variables": {"alpha": 1, "gamma": gamma}, "reduction": "mean"})
        };
        let ce = run(serde_json::json!({"class": "torch.nn.CrossEntropyLoss"}));
        for (a, b) in run(focal(0.0)).iter().zip(&ce) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(
            run(focal(2.0))
                .iter()
                .zip(&ce)
                .any(|(a, b)| (a - b).abs() > 1e-4),
            "gamma 2 trains another model"
        );
    }
}
