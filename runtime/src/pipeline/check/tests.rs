//! The pipeline checks' tests: each refusal names its JSON path.
use serde_json::json;

use super::super::{Pipeline, PipelineError, Solver};

fn pipeline(train: serde_json::Value) -> serde_json::Value {
    json!({"pipeline": [
        {"name": "DirectoryJoin", "config": {"datasets": [{"id": "d", "name": "d", "file": "d.csv"}]}},
        {"name": "Train_DL", "config": train},
    ]})
}

fn refusal(train: serde_json::Value) -> String {
    match Pipeline::from_value(&pipeline(train)) {
        Err(e @ (PipelineError::Json { .. } | PipelineError::Field { .. })) => e.to_string(),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn unknown_values_are_refused_naming_their_json_path() {
    let base = json!({"dataset_config": {"target_variable": "y"}, "model_config": {"name": "MLP", "hidden_layers": [4]}});
    assert!(Pipeline::from_value(&pipeline(base.clone())).is_ok());
    for (path, value, names) in [
        (
            "/model_config/activation",
            json!("sigmoid"),
            "model_config.activation",
        ),
        (
            "/model_config/name",
            json!("Transformer"),
            "model_config.name",
        ),
        ("/task_type", json!("ranking"), "task_type"),
        ("/loss", json!("hinge"), "loss"),
        ("/metrics", json!(["accuracy", "bleu"]), "metrics[1]"),
        ("/optimizer", json!({"name": "RMSprop"}), "optimizer.name"),
        (
            "/dataset_config/preprocessing",
            json!({"scaler": "normalizer"}),
            "preprocessing.scaler",
        ),
        (
            "/dataset_config/type",
            json!("image"),
            "dataset_config.type",
        ),
    ] {
        let mut t = base.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        t.pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_string(), value);
        let e = refusal(t);
        assert!(
            e.contains(names) && e.contains("unknown variant"),
            "{path}: {e}"
        );
    }
}

#[test]
fn a_loss_of_the_other_task_and_a_model_that_cannot_do_the_task_are_refused() {
    let e = refusal(json!({"dataset_config": {"target_variable": "y"},
        "model_config": {"name": "LogisticRegression"}, "loss": "MSELoss"}));
    assert!(
        e.contains("pipeline[1].config.loss") && e.contains("regression"),
        "{e}"
    );
    let e = refusal(json!({"dataset_config": {"target_variable": "y"},
        "model_config": {"name": "LinearRegression"}}));
    assert!(
        e.contains("model_config.name") && e.contains("cannot do classification"),
        "{e}"
    );
}

#[test]
fn metrics_are_names_or_depa_objects_with_checked_params() {
    use super::super::{Average, MetricName};
    let t = |metrics: serde_json::Value| {
        json!({"dataset_config": {"target_variable": "y"},
               "model_config": {"name": "MLP", "hidden_layers": [4]}, "metrics": metrics})
    };
    let p = Pipeline::from_value(&pipeline(t(json!([
        "accuracy",
        "f1",
        {"name": "f1_score", "params": {"average": "weighted"}},
        {"name": "confusion_matrix", "params": {}},
        {"name": "roc_auc", "params": null}
    ]))))
    .unwrap();
    let m = &p.train.metrics;
    assert_eq!(m[1].name, MetricName::F1Score);
    assert_eq!(
        m[1].key, "f1",
        "the key in metrics.json is the name as written"
    );
    assert_eq!(m[2].params.average, Some(Average::Weighted));
    for (metrics, names) in [
        (
            json!([{"name": "f1_score", "params": {"averag": "macro"}}]),
            "metrics[0]",
        ),
        (
            json!([{"name": "f1_score", "params": {"average": "samples"}}]),
            "unknown variant",
        ),
        (json!([{"nam": "accuracy"}]), "unknown field `nam`"),
        (json!([7]), "expected a metric name"),
        (
            json!([{"name": "accuracy", "params": {"average": "macro"}}]),
            "metrics[0].params.average",
        ),
    ] {
        let e = refusal(t(metrics));
        assert!(e.contains(names) && e.contains("metrics[0]"), "{e}");
    }
}

#[test]
fn schedulers_are_pytorchs_with_their_params_checked() {
    let t = |s: serde_json::Value| {
        json!({"dataset_config": {"target_variable": "y"},
               "model_config": {"name": "MLP", "hidden_layers": [4]}, "scheduler": s})
    };
    assert!(
        Pipeline::from_value(&pipeline(t(json!({"name": "CyclicLR",
            "params": {"base_lr": 0.0001, "max_lr": 0.01, "cycle_momentum": false}}))))
        .is_ok()
    );
    for (s, needle) in [
        (
            json!({"name": "CyclicLR", "params": {"base_lr": 0.0001, "max_lr": 0.01}}),
            "scheduler.params.cycle_momentum",
        ),
        (
            json!({"name": "StepLR", "params": {"step_size": 0}}),
            "scheduler.params.step_size",
        ),
        (
            json!({"name": "StepLR", "params": {"step_sise": 2}}),
            "unknown field `step_sise`",
        ),
        (
            json!({"name": "LambdaLR", "params": {}}),
            "unknown variant `LambdaLR`",
        ),
        (
            json!({"name": "OneCycleLR", "params": {"max_lr": 0.1, "cycle_momentum": false}}),
            "scheduler.params.total_steps",
        ),
    ] {
        let e = refusal(t(s));
        assert!(e.contains(needle) && e.contains("scheduler"), "{e}");
    }
}

#[test]
fn reduce_lr_on_plateau_needs_a_validation_split_and_no_dp() {
    let plateau = json!({"name": "ReduceLROnPlateau", "params": {"patience": 2}});
    let t = |val: f64, private: bool| {
        let mut t = json!({"dataset_config": {"target_variable": "y",
                                              "splits": {"train": 0.7, "val": val, "test": 0.3 - val}},
                           "model_config": {"name": "MLP", "hidden_layers": [4]},
                           "scheduler": plateau.clone()});
        if private {
            t["is_private"] = json!(true);
            t["privacy_params"] = json!({"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0});
        }
        t
    };
    assert!(Pipeline::from_value(&pipeline(t(0.1, false))).is_ok());
    let e = refusal(t(0.0, false));
    assert!(e.contains("dataset_config.splits.val"), "{e}");
    let e = refusal(t(0.1, true));
    assert!(
        e.contains("scheduler.name") && e.contains("accountant"),
        "{e}"
    );
    let e = refusal(json!({"dataset_config": {"target_variable": "y",
                                              "splits": {"train": 0.7, "val": 0.1, "test": 0.2}},
                           "model_config": {"name": "MLP", "hidden_layers": [4]},
                           "scheduler": {"name": "ReduceLROnPlateau", "params": {"factor": 1.5}}}));
    assert!(e.contains("scheduler.params.factor"), "{e}");
}

#[test]
fn train_mls_linear_models_default_to_the_lbfgs_solver_and_its_params_are_checked() {
    let ml = |model: serde_json::Value, extra: serde_json::Value| {
        let mut t = json!({"dataset_config": {"target_variable": "y"}, "model_config": model});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        json!({"pipeline": [
            {"name": "DirectoryJoin", "config": {"datasets": [{"id": "d", "name": "d", "file": "d.csv"}]}},
            {"name": "Train_ML", "config": t},
        ]})
    };
    let lr = json!({"name": "LogisticRegression"});
    let p = Pipeline::from_value(&ml(lr.clone(), json!({}))).unwrap();
    assert_eq!(p.train.model_config.solver, Some(Solver::Lbfgs));
    // Train_DL, DP, or SGD's own settings keep the epochs.
    let p = Pipeline::from_value(&pipeline(
        json!({"dataset_config": {"target_variable": "y"},
        "model_config": lr}),
    ))
    .unwrap();
    assert_eq!(p.train.model_config.solver, None);
    let p = Pipeline::from_value(&ml(
        lr,
        json!({"is_private": true, "privacy_params": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}}),
    ))
    .unwrap();
    assert_eq!(p.train.model_config.solver, None);
    for (model, extra, needle) in [
        (
            json!({"name": "LogisticRegression", "C": 0.0}),
            json!({}),
            "model_config.C",
        ),
        (
            json!({"name": "MLP", "hidden_layers": [4], "solver": "lbfgs"}),
            json!({}),
            "model_config.solver",
        ),
        (
            json!({"name": "LogisticRegression", "solver": "sgd", "tol": 0.1}),
            json!({}),
            "model_config.tol",
        ),
        (
            json!({"name": "LogisticRegression", "solver": "lbfgs"}),
            json!({"scheduler": {"name": "StepLR", "params": {"step_size": 2}}}),
            "scheduler",
        ),
        (
            json!({"name": "LogisticRegression", "solver": "lbfgs"}),
            json!({"is_private": true, "privacy_params": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}}),
            "model_config.solver",
        ),
    ] {
        let e = Pipeline::from_value(&ml(model, extra))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

#[test]
fn loss_configs_are_depas_class_form_with_checked_params() {
    let t = |task: &str, l: serde_json::Value| {
        json!({"dataset_config": {"target_variable": "y"}, "task_type": task,
               "model_config": {"name": "MLP", "hidden_layers": [4]}, "loss_config": l})
    };
    // mnist's focal loss by expression, as DEPA writes it.
    let p = Pipeline::from_value(&pipeline(t(
        "classification",
        json!({"expression": "alpha * (1 - pt)**gamma * ce_loss",
            "components": {
                "ce_loss": {"class": "nn.CrossEntropyLoss", "params": {"reduction": "none"}},
                "pt": {"class": "torch.exp", "params": {"input": "-$ce_loss"}}},
            "variables": {"alpha": 1, "gamma": 2}, "reduction": "mean"}),
    )))
    .unwrap();
    assert_eq!(
        p.train
            .loss_config
            .unwrap()
            .expression
            .unwrap()
            .components
            .len(),
        2
    );
    // cifar10's loss config, as DEPA writes it.
    let p = Pipeline::from_value(&pipeline(t(
        "classification",
        json!({"class": "nn.CrossEntropyLoss", "params": {"reduction": "mean"}}),
    )))
    .unwrap();
    assert_eq!(
        p.train.loss_config.unwrap().class,
        super::super::LossClass::CrossEntropyLoss
    );
    for (task, l, needle) in [
        // Class weights are for CrossEntropyLoss and NLLLoss, each >= 0.
        (
            "regression",
            json!({"class": "MSELoss", "params": {"weight": [1.0]}}),
            "MSELoss takes no weight",
        ),
        (
            "classification",
            json!({"class": "CrossEntropyLoss", "params": {"weight": [1.0, -1.0]}}),
            "one finite weight >= 0 per class",
        ),
        // covid's BCELoss trains a classifier, not a regression.
        (
            "regression",
            json!({"class": "torch.nn.BCELoss", "params": {"reduction": "mean"}}),
            "BCELoss",
        ),
        // Losses by expression: a component is needed, names must be defined, no calls,
        // a function reads an earlier component, a component's loss is per sample.
        (
            "classification",
            json!({"expression": "alpha * ce", "components": {}}),
            "at least one loss class",
        ),
        (
            "classification",
            json!({"expression": "alpha * ce", "components": {"ce": {"class": "nn.CrossEntropyLoss"}}}),
            "`alpha` is neither",
        ),
        (
            "classification",
            json!({"expression": "exp(ce)", "components": {"ce": {"class": "nn.CrossEntropyLoss"}}}),
            "calls and attributes",
        ),
        (
            "classification",
            json!({"expression": "pt * ce", "components": {
                "pt": {"class": "torch.exp", "params": {"input": "-$ce"}},
                "ce": {"class": "nn.CrossEntropyLoss"}}}),
            "no component `ce` before it",
        ),
        (
            "classification",
            json!({"expression": "ce", "components": {"ce": {"class": "nn.CrossEntropyLoss", "params": {"reduction": "mean"}}}}),
            "reduction `none`",
        ),
        (
            "classification",
            json!({"expression": "(ce", "components": {"ce": {"class": "nn.CrossEntropyLoss"}}}),
            "is not closed",
        ),
        (
            "regression",
            json!({"expression": "ce", "components": {"ce": {"class": "nn.CrossEntropyLoss", "params": {"reduction": "none"}}}}),
            "loss_config.components.ce.class",
        ),
        (
            "regression",
            json!({"class": "torch.nn.HuberLoss", "params": {"label_smoothing": 0.1}}),
            "loss_config.params.label_smoothing",
        ),
        (
            "regression",
            json!({"class": "torch.nn.CrossEntropyLoss"}),
            "loss_config.class",
        ),
        (
            "regression",
            json!({"class": "torch.nn.L1Loss", "params": {"reduction": "none"}}),
            "unknown variant `none`",
        ),
        (
            "regression",
            json!({"class": "torch.nn.HuberLoss", "params": {"delta": 0}}),
            "loss_config.params.delta",
        ),
    ] {
        let e = refusal(t(task, l));
        assert!(e.contains(needle) && e.contains("loss_config"), "{e}");
    }
}

#[test]
fn a_joining_query_that_writes_is_refused_when_the_pipeline_is_read() {
    let keyed = |q: &str| {
        json!({"pipeline": [
            {"name": "SparkJoin", "config": {"datasets": [{"id": "d", "name": "d", "file": "d.csv"}],
                "joined_dataset": {"joining_query": q}}},
            {"name": "Train_DL", "config": {"dataset_config": {"target_variable": "y"},
                "model_config": {"name": "MLP", "hidden_layers": [4]}}},
        ]})
    };
    assert!(Pipeline::from_value(&keyed("SELECT * FROM d")).is_ok());
    for q in [
        "DROP TABLE d",
        "SELECT * FROM d; DELETE FROM d",
        "COPY d TO 'x.csv'",
    ] {
        let e = Pipeline::from_value(&keyed(q)).unwrap_err().to_string();
        assert!(
            e.contains("joined_dataset.joining_query") && e.contains("refused"),
            "{q}: {e}"
        );
    }
}

#[test]
fn dp_trees_take_their_own_privacy_params() {
    let xgb = |privacy: serde_json::Value, objective: &str| {
        json!({"pipeline": [
            {"name": "DirectoryJoin", "config": {"datasets": [{"id": "d", "name": "d", "file": "d.csv"}]}},
            {"name": "Train_XGB", "config": {"dataset_config": {"target_variable": "y"},
                "model_config": {"name": "XGBoost", "objective": objective, "eval_metric": "auc"},
                "is_private": true, "privacy_params": privacy}},
        ]})
    };
    let ok = json!({"epsilon": 4.0, "delta": 1e-5, "mechanism": "gaussian"});
    if let Err(e) = Pipeline::from_value(&xgb(ok.clone(), "binary:logistic")) {
        panic!("{e}");
    }
    for (privacy, objective, path) in [
        (
            json!({"epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 1.0}),
            "binary:logistic",
            "privacy_params.max_grad_norm",
        ),
        (
            json!({"epsilon": 4.0, "delta": 1e-5, "mechanism": "laplace"}),
            "binary:logistic",
            "privacy_params.mechanism",
        ),
        (ok.clone(), "multi:softprob", "model_config.objective"),
    ] {
        let e = Pipeline::from_value(&xgb(privacy, objective))
            .unwrap_err()
            .to_string();
        assert!(e.contains(path), "{path}: {e}");
    }
    // eval_metric must fit the objective.
    let mut p = xgb(ok, "binary:logistic");
    p["pipeline"][1]["config"]["model_config"]["eval_metric"] = json!("rmse");
    let e = Pipeline::from_value(&p).unwrap_err().to_string();
    assert!(e.contains("model_config.eval_metric"), "{e}");
}
