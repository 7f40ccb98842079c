//! ccr's losses (value and gradient with respect to the outputs) and learning-rate schedules
//! equal PyTorch's on fixed inputs: the losses as DEPA-Training's own `LossComposer` computes
//! them, the schedules as `torch.optim.lr_scheduler` steps them (tests/py/torch_definitions.py).
//! Runs where `CCR_TORCH_PYTHON` (default `python3`) imports torch and `../shared/depa` is
//! present; otherwise prints why it skipped. The formulas are also checked without PyTorch by
//! the unit tests of `learn::loss` and `learn::schedule`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use ccr_runtime::learn::loss::loss_and_gradient;
use ccr_runtime::learn::schedule::{Plateau, lr_at};
use ccr_runtime::learn::target::LossSpec;
use ccr_runtime::pipeline::{Scheduler, TrainConfig};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with PyTorch, and DEPA's loss utilities, or why the test skips.
fn setup() -> Result<(String, PathBuf), String> {
    let py = std::env::var("CCR_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let utilities = root().join("../shared/depa/common/pytrain/utilities");
    if !utilities.join("loss_constructor.py").is_file() {
        return Err(format!("{} is absent", utilities.display()));
    }
    let ok = Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!(
            "{py} cannot import torch (set CCR_TORCH_PYTHON to a Python that can; torch is not \
             in tests/requirements.txt: its wheels are gigabytes)"
        ));
    }
    Ok((py, utilities))
}

/// One loss case: the config, the task, the outputs `[B, k]` and the labels.
struct LossCase {
    config: Value,
    regression: bool,
    outputs: Vec<Vec<f32>>,
    labels: Vec<f32>,
}

fn loss_cases() -> Vec<LossCase> {
    let logits = vec![
        vec![1.2, -0.3, 0.4],
        vec![-0.7, 2.1, 0.0],
        vec![0.3, 0.2, -1.5],
        vec![2.5, -1.0, 0.9],
        vec![-0.2, -0.4, 1.7],
    ];
    let classes = vec![0.0, 1.0, 2.0, 2.0, 1.0];
    let single = |v: &[f32]| v.iter().map(|&x| vec![x]).collect::<Vec<_>>();
    let logit = single(&[0.8, -1.3, 0.1, 2.2, -0.5]);
    let prob = single(&[0.7, 0.2, 0.55, 0.9, 0.35]);
    let binary = vec![1.0, 0.0, 0.0, 1.0, 1.0];
    let pred = single(&[0.5, -1.2, 2.9, 0.05, -0.4]);
    let value = vec![0.1, -0.2, 1.0, 0.8, -2.0];
    let focal: Value = serde_json::from_slice(
        &std::fs::read(root().join("../shared/depa/mnist/config/loss_config.json"))
            .expect("mnist's loss_config.json"),
    )
    .expect("json");
    let cls = |config: Value| LossCase {
        config,
        regression: false,
        outputs: logits.clone(),
        labels: classes.clone(),
    };
    let bin = |config: Value, outputs: &Vec<Vec<f32>>| LossCase {
        config,
        regression: false,
        outputs: outputs.clone(),
        labels: binary.clone(),
    };
    let reg = |config: Value| LossCase {
        config,
        regression: true,
        outputs: pred.clone(),
        labels: value.clone(),
    };
    vec![
        cls(json!({"class": "nn.CrossEntropyLoss"})),
        cls(json!({"class": "nn.CrossEntropyLoss",
                   "params": {"label_smoothing": 0.1, "reduction": "sum"}})),
        cls(json!({"class": "nn.CrossEntropyLoss", "params": {"weight": [1.0, 2.0, 0.5]}})),
        cls(focal),
        cls(json!({"class": "nn.NLLLoss"})),
        bin(json!({"class": "nn.BCEWithLogitsLoss"}), &logit),
        bin(
            json!({"class": "nn.BCELoss", "params": {"reduction": "sum"}}),
            &prob,
        ),
        reg(json!({"class": "nn.MSELoss"})),
        reg(json!({"class": "nn.L1Loss"})),
        reg(json!({"class": "nn.HuberLoss", "params": {"delta": 0.5}})),
        reg(json!({"class": "nn.SmoothL1Loss", "params": {"beta": 0.3, "reduction": "sum"}})),
    ]
}

fn schedule_cases() -> Vec<(Value, f64, usize)> {
    vec![
        (
            json!({"name": "StepLR", "params": {"step_size": 3, "gamma": 0.5}}),
            0.1,
            12,
        ),
        (
            json!({"name": "MultiStepLR", "params": {"milestones": [2, 5, 9], "gamma": 0.3}}),
            0.1,
            12,
        ),
        (
            json!({"name": "ExponentialLR", "params": {"gamma": 0.9}}),
            0.1,
            12,
        ),
        (
            json!({"name": "CosineAnnealingLR", "params": {"T_max": 7, "eta_min": 0.01}}),
            0.1,
            7,
        ),
        (
            json!({"name": "CyclicLR", "params": {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 4,
                 "step_size_down": 3, "cycle_momentum": false}}),
            0.1,
            20,
        ),
        (
            json!({"name": "CyclicLR", "params": {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 3,
                 "mode": "triangular2", "cycle_momentum": false}}),
            0.1,
            20,
        ),
        (
            json!({"name": "CyclicLR", "params": {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 3,
                 "mode": "exp_range", "gamma": 0.95, "cycle_momentum": false}}),
            0.1,
            20,
        ),
        (
            json!({"name": "OneCycleLR", "params": {"max_lr": 0.5, "total_steps": 20,
                 "cycle_momentum": false}}),
            0.1,
            20,
        ),
        (
            json!({"name": "OneCycleLR", "params": {"max_lr": 0.5, "epochs": 4, "steps_per_epoch": 5,
                 "anneal_strategy": "linear", "three_phase": true, "cycle_momentum": false}}),
            0.1,
            20,
        ),
    ]
}

const PLATEAU_VALUES: [f64; 12] = [
    1.0, 0.9, 0.9, 0.95, 0.9, 0.85, 0.85, 0.85, 0.85, 0.8, 0.9, 0.9,
];

fn plateau_cases() -> Vec<Value> {
    vec![
        json!({"name": "ReduceLROnPlateau", "params": {"factor": 0.5, "patience": 1, "cooldown": 1}}),
        json!({"name": "ReduceLROnPlateau", "params": {"mode": "max", "factor": 0.3, "patience": 0,
               "threshold": 0.05, "threshold_mode": "abs", "min_lr": 0.02}}),
    ]
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: ccr {got}, PyTorch {want}"
    );
}

/// ccr's loss and gradient (`[B, k]`) for a case, with the config's reduction.
fn ccr_loss(c: &LossCase) -> (f64, Vec<f32>) {
    let k = c.outputs[0].len();
    let cfg: TrainConfig = serde_json::from_value(json!({
        "dataset_config": {"target_variable": "y"},
        "task_type": if c.regression { "regression" } else { "classification" },
        "model_config": {"name": "MLP", "hidden_layers": [4]},
        "loss_config": c.config,
    }))
    .unwrap_or_else(|e| panic!("{}: {e}", c.config));
    let spec = LossSpec::new(&cfg, k);
    let device = ccr_runtime::learn::device().inner();
    let flat: Vec<f32> = c.outputs.iter().flatten().copied().collect();
    let out = Tensor::<2>::from_data(TensorData::new(flat, [c.outputs.len(), k]), &device);
    let (grad, sum) = loss_and_gradient(out, &spec.target(&c.labels));
    let div = if spec.mean() {
        spec.mean_divisor(&c.labels)
    } else {
        1.0
    };
    let grad: Vec<f32> = grad
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 values")
        .into_iter()
        .map(|g| (f64::from(g) / div) as f32)
        .collect();
    (sum / div, grad)
}

#[test]
fn losses_and_schedules_equal_pytorchs() {
    let (py, utilities) = match setup() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let losses = loss_cases();
    let cases = json!({
        "losses": losses.iter().map(|c| json!({
            "config": c.config,
            "target": if c.regression || c.outputs[0].len() == 1 { "value" } else { "index" },
            "outputs": c.outputs, "labels": c.labels,
        })).collect::<Vec<_>>(),
        "schedules": schedule_cases().iter().map(|(s, lr, steps)| json!({"config": s, "lr": lr, "steps": steps}))
            .chain(plateau_cases().iter().map(|s| json!({"config": s, "lr": 0.1, "values": PLATEAU_VALUES})))
            .collect::<Vec<_>>(),
    });
    let torch = common::python_json(&py, "tests/py/torch_definitions.py", &[&utilities], &cases);
    println!("PyTorch {}", torch["torch"]);

    for (i, c) in losses.iter().enumerate() {
        let want = &torch["losses"][i];
        let (loss, grad) = ccr_loss(c);
        let what = c.config.to_string();
        close(loss, want["loss"].as_f64().unwrap(), 1e-5, &what);
        let want_grad: Vec<f64> = want["grad"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(grad.len(), want_grad.len(), "{what}");
        for (g, w) in grad.iter().zip(&want_grad) {
            close(f64::from(*g), *w, 1e-5, &format!("{what} gradient"));
        }
    }

    let schedules = schedule_cases();
    for (i, (s, lr, steps)) in schedules.iter().enumerate() {
        let sch: Scheduler = serde_json::from_value(s.clone()).unwrap();
        let want = torch["schedules"][i].as_array().unwrap();
        assert_eq!(want.len(), *steps);
        for (t, w) in want.iter().enumerate() {
            close(
                lr_at(Some(&sch), *lr, t as u64),
                w.as_f64().unwrap(),
                1e-9,
                &format!("{s} step {t}"),
            );
        }
    }
    for (j, s) in plateau_cases().iter().enumerate() {
        let Scheduler::ReduceLROnPlateau(p) = serde_json::from_value(s.clone()).unwrap() else {
            unreachable!()
        };
        let want = torch["schedules"][schedules.len() + j].as_array().unwrap();
        let mut plateau = Plateau::new(&p, 0.1);
        for (v, w) in PLATEAU_VALUES.iter().zip(want) {
            plateau.step(*v);
            close(
                plateau.lr(),
                w.as_f64().unwrap(),
                1e-12,
                &format!("{s} after {v}"),
            );
        }
    }
}
