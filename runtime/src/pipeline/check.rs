//! The checks serde cannot make: each names the JSON path of the field it refuses.

use serde_json::Value;

use super::loss::expr::Component;
use super::{
    DatasetKind, EvalMetric, Framework, Join, LossClass, LossParams, MetricName, MissingStrategy,
    ModelFormat, ModelName, ModelType, PRIVACY_PARAMS, PipelineError, Scheduler, Solver, Step,
    StructureType, TaskType, TrainConfig, XGB_FIELDS, XgbObjective, privacy_param,
};

/// The train step's path.
const P: &str = "pipeline[1].config";

pub(super) fn field(path: &str, reason: &str) -> PipelineError {
    PipelineError::Field {
        path: path.into(),
        reason: reason.into(),
    }
}

fn at(suffix: &str, reason: &str) -> PipelineError {
    field(&format!("{P}.{suffix}"), reason)
}

/// The first step: a keyed join with its query, or a union; at least one dataset.
pub(super) fn join(step: Option<Step>) -> Result<Join, PipelineError> {
    let join = match step {
        Some(Step::SparkJoin(c)) => {
            let q = c
                .joined_dataset
                .as_ref()
                .and_then(|j| j.joining_query.as_deref());
            const QUERY: &str = "pipeline[0].config.joined_dataset.joining_query";
            match q {
                None => return Err(field(QUERY, "required for SparkJoin")),
                Some(q) if q.trim().is_empty() => {
                    return Err(field(QUERY, "required for SparkJoin"));
                }
                // One read-only query, refused here, before anything is attested or released.
                Some(q) => crate::tabular::sql::check_read_only(q)
                    .map_err(|e| field(QUERY, &e.to_string()))?,
            }
            Join::Keyed(c)
        }
        Some(Step::DirectoryJoin(c)) => Join::Union(c),
        _ => {
            return Err(field(
                "pipeline[0].name",
                "the first step must be SparkJoin or DirectoryJoin",
            ));
        }
    };
    if join.config().datasets.is_empty() {
        return Err(field("pipeline[0].config.datasets", "empty"));
    }
    Ok(join)
}

/// A two-step pipeline's `paths.input_dataset_path` is the join's output.
pub(super) fn joined_path(j: &Join, t: &TrainConfig) -> Result<(), PipelineError> {
    let given = t
        .paths
        .as_ref()
        .and_then(|p| p.input_dataset_path.as_deref());
    let joined = j
        .config()
        .joined_dataset
        .as_ref()
        .and_then(|d| d.joined_dataset.as_deref());
    if let (Some(g), Some(o)) = (given, joined)
        && g != o
    {
        return Err(at(
            "paths.input_dataset_path",
            &format!(
                "`{g}` is not the join's output `{o}` (pipeline[0].config.joined_dataset.joined_dataset)"
            ),
        ));
    }
    Ok(())
}

/// A one-step pipeline's dataset: `paths.input_dataset_path` as `/mnt/remote/<name>/<file>`
/// (or `<folder>/<name>/<file>`).
pub(super) fn single(t: &TrainConfig) -> Result<Join, PipelineError> {
    let path = t
        .paths
        .as_ref()
        .and_then(|p| p.input_dataset_path.as_deref())
        .ok_or_else(|| {
            at(
                "paths.input_dataset_path",
                "required in a one-step pipeline (the dataset file, /mnt/remote/<dataset>/<file>)",
            )
        })?;
    // A directory dataset names a folder: the image's root (`/mnt/remote/<dataset>`) or one
    // inside it, with or without a trailing slash.
    let dir = t.dataset_config.kind == DatasetKind::Directory;
    let path = if dir {
        path.trim_end_matches('/')
    } else {
        path
    };
    let rest = path.strip_prefix("/mnt/remote/");
    let split = |r: &'_ str| match r.split_once('/') {
        None if dir => Some((r.to_string(), String::new())),
        o => o.map(|(a, b)| (a.to_string(), b.to_string())),
    };
    let parts = rest.and_then(split);
    let (mount, name, file) = match &parts {
        Some((name, file)) => (format!("/mnt/remote/{name}/"), name.as_str(), file.as_str()),
        None => {
            let p = std::path::Path::new(path);
            let (Some(parent), Some(file)) = (p.parent(), p.file_name().and_then(|f| f.to_str()))
            else {
                return Err(at(
                    "paths.input_dataset_path",
                    "expected <folder>/<dataset>/<file>",
                ));
            };
            let name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (format!("{}/", parent.display()), name, file)
        }
    };
    let bad_file = if dir && file.is_empty() {
        false
    } else {
        file.is_empty()
            || file
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
    };
    if name.is_empty() || bad_file {
        return Err(at(
            "paths.input_dataset_path",
            &format!("`{path}`: expected /mnt/remote/<dataset>/<file>"),
        ));
    }
    Ok(Join::Single(super::JoinConfig {
        datasets: vec![super::DatasetInput {
            id: String::new(),
            provider: String::new(),
            name: name.to_string(),
            file: file.to_string(),
            select_variables: None,
            mount_path: mount,
        }],
        joined_dataset: None,
    }))
}

/// Refuses the first of `fields` (`(name, given)`) that is given, at `prefix.name`.
fn none_given(prefix: &str, fields: &[(&str, bool)], reason: &str) -> Result<(), PipelineError> {
    match fields.iter().find(|(_, given)| *given) {
        Some((k, _)) => Err(at(&format!("{prefix}.{k}"), reason)),
        None => Ok(()),
    }
}

/// The serialized-dataset fields of `dataset_config` and whether each is given.
fn serialized_fields(dc: &super::DatasetConfig) -> [(&'static str, bool); 4] {
    [
        ("format", dc.format.is_some()),
        ("structure", dc.structure.is_some()),
        ("features_key", dc.features_key.is_some()),
        ("targets_key", dc.targets_key.is_some()),
    ]
}

/// `model_config.solver` `lbfgs` (scikit-learn's full-batch solve) and its parameters.
fn solver(t: &TrainConfig) -> Result<(), PipelineError> {
    let mc = &t.model_config;
    if mc.solver != Some(Solver::Lbfgs) {
        none_given(
            "model_config",
            &[
                ("C", mc.c.is_some()),
                ("max_iter", mc.max_iter.is_some()),
                ("tol", mc.tol.is_some()),
            ],
            "goes with solver lbfgs (LogisticRegression, LinearRegression)",
        )?;
        return Ok(());
    }
    let refuse = |k: &str, reason: &str| Err(at(&format!("model_config.{k}"), reason));
    if !matches!(
        mc.name,
        ModelName::LogisticRegression | ModelName::LinearRegression
    ) {
        return refuse(
            "solver",
            "lbfgs solves LogisticRegression and LinearRegression only",
        );
    }
    if t.is_private {
        return refuse(
            "solver",
            "a DP run trains by DP-SGD: use solver sgd (or leave it out) with is_private",
        );
    }
    if mc.model_format == Some(ModelFormat::Safetensors) {
        return refuse(
            "solver",
            "lbfgs solves from zero; a base model is trained on with solver sgd",
        );
    }
    if t.loss_config.is_some() {
        return Err(at(
            "loss_config",
            "solver lbfgs fits scikit-learn's loss (log loss, squared error): leave loss_config \
             out, or use solver sgd",
        ));
    }
    if t.scheduler.is_some() {
        return Err(at(
            "scheduler",
            "solver lbfgs takes no learning rate: leave the scheduler out, or use solver sgd",
        ));
    }
    if mc.c.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
        return refuse("C", "must be > 0");
    }
    if mc.max_iter == Some(0) {
        return refuse("max_iter", "must be > 0");
    }
    if mc.tol.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
        return refuse("tol", "must be > 0");
    }
    Ok(())
}

/// A directory dataset: image files in class folders (`nested`), or in one folder with a
/// labels file (`flat`), as tensors (`image_config.to_tensor`).
fn directory(t: &TrainConfig) -> Result<(), PipelineError> {
    let dc = &t.dataset_config;
    let tabular = [
        ("target_variable", dc.target_variable.is_some()),
        ("feature_columns", dc.feature_columns.is_some()),
    ];
    none_given(
        "dataset_config",
        &[&tabular[..], &serialized_fields(dc)[..]].concat(),
        "is not for directory datasets (their labels are class folders or labels_file)",
    )?;
    if dc.data_type.as_deref().is_some_and(|d| d != "image") {
        return Err(at(
            "dataset_config.data_type",
            "directory datasets of images only (`image`): text and audio files are not supported",
        ));
    }
    if let Some(p) = &dc.file_pattern
        && glob::Pattern::new(p).is_err()
    {
        return Err(at("dataset_config.file_pattern", "not a glob pattern"));
    }
    if dc.image_config.is_some_and(|i| !i.to_tensor) {
        return Err(at(
            "dataset_config.image_config.to_tensor",
            "must be true: a sample is the image's tensor",
        ));
    }
    match (
        dc.structure_type.unwrap_or(StructureType::Flat),
        &dc.labels_file,
    ) {
        (StructureType::Paired, _) => Err(at(
            "dataset_config.structure_type",
            "`paired` (input and target files, segmentation) is not supported: use nested (one \
             folder per class) or flat with labels_file",
        )),
        (StructureType::Nested, Some(_)) => Err(at(
            "dataset_config.labels_file",
            "a nested directory's labels are its class folders",
        )),
        (StructureType::Nested, None) if t.task_type == TaskType::Regression => Err(at(
            "dataset_config.structure_type",
            "class folders are labels for classification: a regression needs flat with labels_file",
        )),
        (StructureType::Flat, None) => Err(at(
            "dataset_config.labels_file",
            "a flat directory has no labels (DEPA's flat layout is unlabelled): give labels_file \
             (a CSV with columns file and label), or use structure_type nested",
        )),
        _ => Ok(()),
    }
}

/// The train step: data, task, model, optimizer, metrics and DP parameters.
pub(super) fn train(t: &TrainConfig, framework: Framework) -> Result<(), PipelineError> {
    data(t)?;
    task(t)?;
    model(t, framework)?;
    if t.optimizer.params.lr.is_nan() || t.optimizer.params.lr <= 0.0 {
        return Err(at("optimizer.params.lr", "must be > 0"));
    }
    if t.total_epochs == 0 || t.batch_size == 0 {
        return Err(field(P, "total_epochs and batch_size must be > 0"));
    }
    metric_params(t)?;
    if let Some(sch) = &t.scheduler {
        scheduler(sch)?;
    }
    plateau(t)?;
    if t.is_private {
        privacy(t)?;
    }
    Ok(())
}

fn data(t: &TrainConfig) -> Result<(), PipelineError> {
    let dc = &t.dataset_config;
    match dc.kind {
        DatasetKind::Tabular => {
            if dc.target_variable.is_none() {
                return Err(at(
                    "dataset_config.target_variable",
                    "required for tabular data",
                ));
            }
            none_given(
                "dataset_config",
                &serialized_fields(dc),
                "is for serialized datasets",
            )?;
        }
        DatasetKind::Serialized => {
            if dc.format.is_none() {
                return Err(at(
                    "dataset_config.format",
                    "required for serialized data: hdf5 or safetensors",
                ));
            }
            if dc.target_variable.is_some() || dc.feature_columns.is_some() {
                return Err(at(
                    "dataset_config",
                    "target_variable and feature_columns are for tabular data (serialized data has features_key and targets_key)",
                ));
            }
        }
        DatasetKind::Directory => directory(t)?,
    }
    if dc.kind != DatasetKind::Directory {
        none_given(
            "dataset_config",
            &[
                ("structure_type", dc.structure_type.is_some()),
                ("file_pattern", dc.file_pattern.is_some()),
                ("labels_file", dc.labels_file.is_some()),
                ("image_config", dc.image_config.is_some()),
            ],
            "is for directory datasets",
        )?;
    }
    if dc.kind != DatasetKind::Tabular {
        let pre = dc.preprocessing.as_ref();
        none_given(
            "dataset_config",
            &[
                ("missing_strategy", dc.missing_strategy.is_some()),
                (
                    "preprocessing.categorical_encoding",
                    pre.is_some_and(|p| p.categorical_encoding.is_some()),
                ),
                (
                    "preprocessing.handle_unknown",
                    pre.is_some_and(|p| p.handle_unknown.is_some()),
                ),
            ],
            "is for tabular datasets",
        )?;
    }
    if dc.fill_value.is_some() && dc.missing_strategy != Some(MissingStrategy::Fill) {
        return Err(at(
            "dataset_config.fill_value",
            "goes with missing_strategy fill",
        ));
    }
    if dc.fill_value.is_some_and(|v| !v.is_finite()) {
        return Err(at("dataset_config.fill_value", "must be a finite number"));
    }
    if let Some(d) = &t.device {
        device(d)?;
    }
    let s = &t.dataset_config.splits;
    // DEPA divides each share by their sum (cifar10's add up to 1.05), and so does ccr.
    if !(s.train > 0.0 && s.test > 0.0 && s.val >= 0.0 && (s.train + s.val + s.test).is_finite()) {
        return Err(at(
            "dataset_config.splits",
            "train > 0, test > 0, val >= 0 (each share is divided by their sum)",
        ));
    }
    Ok(())
}

fn task(t: &TrainConfig) -> Result<(), PipelineError> {
    loss_config(t)?;
    if let Some(l) = t.loss
        && l.task() != t.task_type
    {
        return Err(at(
            "loss",
            &format!(
                "`{}` is the loss of {}, the task_type is {}",
                l.as_str(),
                l.task(),
                t.task_type
            ),
        ));
    }
    let name = t.model_config.name;
    if !name.does(t.task_type) {
        return Err(at(
            "model_config.name",
            &format!(
                "`{name}` cannot do {} (LogisticRegression: classification, LinearRegression: regression, MLP, CNN and XGBoost: both)",
                t.task_type
            ),
        ));
    }
    Ok(())
}

/// DEPA's `loss_config`: instead of `loss`, of the task's kind, with the params its class takes.
fn loss_config(t: &TrainConfig) -> Result<(), PipelineError> {
    let Some(lc) = &t.loss_config else {
        return Ok(());
    };
    if t.loss.is_some() {
        return Err(at("loss_config", "give `loss` or `loss_config`, not both"));
    }
    match &lc.expression {
        None => class_loss(t, "loss_config", lc.class, &lc.params),
        Some(e) => {
            for (name, c) in &e.components {
                if let Component::Loss(class, params) = c {
                    class_loss(t, &format!("loss_config.components.{name}"), *class, params)?;
                }
            }
            Ok(())
        }
    }
}

/// One loss class at `path`: of the task, with the params its class takes, in range.
fn class_loss(
    t: &TrainConfig,
    path: &str,
    class: LossClass,
    p: &LossParams,
) -> Result<(), PipelineError> {
    if class.task() != t.task_type {
        return Err(at(
            &format!("{path}.class"),
            &format!(
                "{} is a loss of {}, the task_type is {}",
                class.as_str(),
                class.task(),
                t.task_type
            ),
        ));
    }
    let own = |k: &str, given: bool, owner: LossClass| {
        if given && class != owner {
            Err(at(
                &format!("{path}.params.{k}"),
                &format!("{} takes no {k} ({} does)", class.as_str(), owner.as_str()),
            ))
        } else {
            Ok(())
        }
    };
    own(
        "label_smoothing",
        p.label_smoothing.is_some(),
        LossClass::CrossEntropyLoss,
    )?;
    if let Some(w) = &p.weight {
        if !matches!(class, LossClass::CrossEntropyLoss | LossClass::NllLoss) {
            return Err(at(
                &format!("{path}.params.weight"),
                &format!(
                    "{} takes no weight (CrossEntropyLoss and NLLLoss do)",
                    class.as_str()
                ),
            ));
        }
        if path != "loss_config" {
            return Err(at(
                &format!("{path}.params.weight"),
                "class weights are not supported inside a loss expression",
            ));
        }
        if w.is_empty() || w.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(at(
                &format!("{path}.params.weight"),
                "one finite weight >= 0 per class",
            ));
        }
    }
    own("delta", p.delta.is_some(), LossClass::HuberLoss)?;
    own("beta", p.beta.is_some(), LossClass::SmoothL1Loss)?;
    if p.label_smoothing.is_some_and(|e| !(0.0..=1.0).contains(&e)) {
        return Err(at(
            &format!("{path}.params.label_smoothing"),
            "must be in [0, 1]",
        ));
    }
    if p.delta.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(at(&format!("{path}.params.delta"), "must be > 0"));
    }
    if p.beta.is_some_and(|b| !(b >= 0.0 && b.is_finite())) {
        return Err(at(&format!("{path}.params.beta"), "must be >= 0"));
    }
    Ok(())
}

/// A scheduler's parameters are in range; momentum cycling, which PyTorch's CyclicLR and
/// OneCycleLR do by default, must be turned off (`cycle_momentum: false`).
fn scheduler(s: &Scheduler) -> Result<(), PipelineError> {
    let bad = |k: &str, reason: &str| Err(at(&format!("scheduler.params.{k}"), reason));
    let positive = |x: f64| x > 0.0 && x.is_finite();
    match s {
        Scheduler::StepLR(p) if p.step_size == 0 => bad("step_size", "must be > 0"),
        Scheduler::CosineAnnealingLR(p) if p.t_max == 0 => bad("T_max", "must be > 0"),
        Scheduler::CyclicLR(p) if p.cycle_momentum => bad(
            "cycle_momentum",
            "ccr does not cycle the optimizer's momentum: set cycle_momentum false",
        ),
        Scheduler::CyclicLR(p) if !(positive(p.base_lr) && positive(p.max_lr)) => {
            bad("max_lr", "base_lr and max_lr must be > 0")
        }
        Scheduler::CyclicLR(p)
            if p.step_size_up + p.step_size_down.unwrap_or(p.step_size_up) == 0 =>
        {
            bad("step_size_up", "the cycle must have steps")
        }
        Scheduler::OneCycleLR(p) if p.cycle_momentum => bad(
            "cycle_momentum",
            "ccr does not cycle the optimizer's momentum: set cycle_momentum false",
        ),
        Scheduler::OneCycleLR(p) if p.steps().is_none_or(|n| n == 0) => bad(
            "total_steps",
            "total_steps, or epochs and steps_per_epoch, are required (> 0)",
        ),
        Scheduler::OneCycleLR(p) if !(p.pct_start > 0.0 && p.pct_start < 1.0) => {
            bad("pct_start", "must be in (0, 1)")
        }
        Scheduler::OneCycleLR(p)
            if !(positive(p.max_lr) && positive(p.div_factor) && positive(p.final_div_factor)) =>
        {
            bad(
                "max_lr",
                "max_lr, div_factor and final_div_factor must be > 0",
            )
        }
        Scheduler::ReduceLROnPlateau(p) if !(p.factor >= 0.0 && p.factor < 1.0) => {
            bad("factor", "must be in [0, 1): the rate drops by it")
        }
        Scheduler::ReduceLROnPlateau(p)
            if ![p.threshold, p.min_lr, p.eps]
                .iter()
                .all(|v| *v >= 0.0 && v.is_finite()) =>
        {
            bad("threshold", "threshold, min_lr and eps must be >= 0")
        }
        _ => Ok(()),
    }
}

/// ReduceLROnPlateau follows the validation loss: it needs a validation split, and DP-SGD runs
/// refuse it (the validation rows are the private datasets' rows, and the accountant does not
/// count training steered by them).
fn plateau(t: &TrainConfig) -> Result<(), PipelineError> {
    if !matches!(t.scheduler, Some(Scheduler::ReduceLROnPlateau(_))) {
        return Ok(());
    }
    if t.is_private {
        return Err(at(
            "scheduler.name",
            "ReduceLROnPlateau steers training by the validation loss of the private datasets, \
             which DP-SGD's accountant does not count: use a fixed schedule with is_private",
        ));
    }
    if t.dataset_config.splits.val.is_nan() || t.dataset_config.splits.val <= 0.0 {
        return Err(at(
            "dataset_config.splits.val",
            "ReduceLROnPlateau follows the validation loss: give the validation split a share > 0",
        ));
    }
    Ok(())
}

/// A metric's params are those of its scikit-learn function that ccr honours: `average` for
/// precision, recall and f1_score; `multi_class` for roc_auc.
fn metric_params(t: &TrainConfig) -> Result<(), PipelineError> {
    for (i, m) in t.metrics.iter().enumerate() {
        let averages = matches!(
            m.name,
            MetricName::Precision | MetricName::Recall | MetricName::F1Score
        );
        if m.params.average.is_some() && !averages {
            return Err(at(
                &format!("metrics[{i}].params.average"),
                &format!(
                    "`{}` takes no average (precision, recall and f1_score do)",
                    m.key
                ),
            ));
        }
        if m.params.multi_class.is_some() && m.name != MetricName::RocAuc {
            return Err(at(
                &format!("metrics[{i}].params.multi_class"),
                &format!("`{}` takes no multi_class (roc_auc does)", m.key),
            ));
        }
    }
    Ok(())
}

/// DEPA's `device`, mapped: `cpu`; `auto` (a GPU where this build has one, else the CPU);
/// `cuda`, `cuda:N`, `gpu` (refused where this build has no GPU backend).
fn device(d: &str) -> Result<(), PipelineError> {
    let gpu = d == "gpu"
        || d == "cuda"
        || d.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
    if d == "cpu" || d == "auto" || (gpu && cfg!(feature = "gpu")) {
        return Ok(());
    }
    Err(at(
        "device",
        &if gpu {
            format!(
                "`{d}`: this ccr-init has no GPU backend (built without the `gpu` feature); use cpu or auto"
            )
        } else {
            format!("`{d}`: expected cpu, auto, cuda, cuda:N or gpu")
        },
    ))
}

/// A DEPA graph or an ONNX base model: Train_DL, with the `model_type` that goes with it.
fn graph_model(t: &TrainConfig, framework: Framework) -> Result<(), PipelineError> {
    let mc = &t.model_config;
    if framework != Framework::TrainDl {
        return Err(at(
            "model_config",
            "model graphs and base models train in Train_DL",
        ));
    }
    match (mc.name, t.model_type) {
        (ModelName::BaseModel, Some(ModelType::Onnx))
        | (ModelName::Graph, None | Some(ModelType::Safetensors)) => {}
        (ModelName::BaseModel, _) => {
            return Err(at(
                "model_config",
                "required, unless model_type is onnx (the ONNX base model is the model)",
            ));
        }
        (_, _) => {
            return Err(at(
                "model_type",
                "onnx brings its own graph: give no model_config with it",
            ));
        }
    }
    if t.is_private
        && let Some(g) = &mc.graph
        && let Some(bn) = g.layers.iter().find(|l| {
            matches!(
                l.def,
                crate::learn::graph::spec::LayerDef::Class(
                    crate::learn::graph::spec::LayerClass::BatchNorm { .. }
                )
            )
        })
    {
        return Err(at(
            &format!("model_config.layers.{}", bn.name),
            "BatchNorm mixes the samples of a batch, so it has no per-sample gradient for DP-SGD: use GroupNorm (as Opacus does) or train without is_private",
        ));
    }
    Ok(())
}

fn model(t: &TrainConfig, framework: Framework) -> Result<(), PipelineError> {
    let mc = &t.model_config;
    if matches!(mc.name, ModelName::Graph | ModelName::BaseModel) {
        return graph_model(t, framework);
    }
    if t.model_type.is_some() {
        return Err(at(
            "model_type",
            "goes with a DEPA model graph or an ONNX base model (ccr's own models use model_format)",
        ));
    }
    if (framework == Framework::TrainXgb) != (mc.name == ModelName::XgBoost) {
        return Err(at(
            "model_config.name",
            "Train_XGB trains model XGBoost, and XGBoost only in Train_XGB",
        ));
    }
    if mc.name == ModelName::XgBoost {
        xgboost(t)?;
    } else if mc.n_estimators.is_some()
        || mc.max_depth.is_some()
        || mc.learning_rate.is_some()
        || mc.l2_regularization.is_some()
        || mc.min_child_weight.is_some()
        || mc.objective.is_some()
        || mc.subsample.is_some()
        || mc.seed.is_some()
        || mc.eval_metric.is_some()
    {
        return Err(at(
            "model_config",
            &format!("{} are for XGBoost only", XGB_FIELDS.join(", ")),
        ));
    }
    solver(t)?;
    match mc.model_format {
        None | Some(ModelFormat::Instantiate) => {
            if mc.model_path.is_some() || mc.model_sha256.is_some() {
                return Err(at(
                    "model_config.model_format",
                    "model_path and model_sha256 go with model_format Safetensors",
                ));
            }
        }
        Some(ModelFormat::Safetensors) => {
            if mc.name == ModelName::XgBoost {
                return Err(at(
                    "model_config.model_format",
                    "an XGBoost model is not read from safetensors",
                ));
            }
            if !mc.model_sha256.as_ref().is_some_and(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }) {
                return Err(at(
                    "model_config.model_sha256",
                    "64 lowercase hex characters (SHA-256 of the base model) are required with model_format Safetensors",
                ));
            }
        }
    }
    if mc.name == ModelName::Cnn {
        match mc.input_shape {
            Some([c, h, w]) if c > 0 && h >= 2 && w >= 2 && h % 2 == 0 && w % 2 == 0 => {}
            _ => {
                return Err(at(
                    "model_config.input_shape",
                    "a CNN needs [channels, height, width] with even height and width >= 2",
                ));
            }
        }
        if mc.conv_channels.is_none_or(|c| c == 0) {
            return Err(at(
                "model_config.conv_channels",
                "a CNN needs the convolution's output channels (> 0)",
            ));
        }
    } else if mc.input_shape.is_some() || mc.conv_channels.is_some() {
        return Err(at(
            "model_config",
            "input_shape and conv_channels are for a CNN only",
        ));
    }
    if mc.name == ModelName::Mlp && mc.hidden_layers.is_empty() {
        return Err(at(
            "model_config.hidden_layers",
            "an MLP needs at least one hidden layer",
        ));
    }
    Ok(())
}

fn xgboost(t: &TrainConfig) -> Result<(), PipelineError> {
    let mc = &t.model_config;
    let obj = mc
        .objective
        .unwrap_or_else(|| XgbObjective::default_for(t.task_type));
    if t.is_private {
        if !matches!(
            obj,
            XgbObjective::BinaryLogistic | XgbObjective::RegSquaredError
        ) {
            return Err(at(
                "model_config.objective",
                "DP trees (is_private) train binary:logistic or reg:squarederror",
            ));
        }
        if mc.max_depth.is_some_and(|d| d == 0 || d > 16) {
            return Err(at(
                "model_config.max_depth",
                "1 to 16 for DP trees (2^depth leaves, each with its own noise)",
            ));
        }
    }
    if let Some(m) = mc.eval_metric {
        let fits = match obj {
            XgbObjective::BinaryLogistic => {
                matches!(m, EvalMetric::Auc | EvalMetric::Logloss | EvalMetric::Error)
            }
            XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => {
                matches!(m, EvalMetric::Mlogloss | EvalMetric::Merror)
            }
            XgbObjective::RegSquaredError => m.regression(),
        };
        if !fits {
            return Err(at(
                "model_config.eval_metric",
                &format!(
                    "`{}` does not fit objective {} (binary: auc, logloss, error; multi-class: mlogloss, merror; regression: rmse, mae)",
                    m.as_str(),
                    obj.as_str()
                ),
            ));
        }
    }
    if obj.task() != t.task_type {
        return Err(at(
            "model_config.objective",
            &format!(
                "`{}` with task_type {}: binary:logistic or multi:softprob for classification, reg:squarederror for regression",
                obj.as_str(),
                t.task_type
            ),
        ));
    }
    for (k, ok) in [
        ("n_estimators", mc.n_estimators.is_none_or(|n| n > 0)),
        (
            "learning_rate",
            mc.learning_rate.is_none_or(|x| x > 0.0 && x.is_finite()),
        ),
        (
            "l2_regularization",
            mc.l2_regularization
                .is_none_or(|x| x >= 0.0 && x.is_finite()),
        ),
        (
            "min_child_weight",
            mc.min_child_weight
                .is_none_or(|x| x >= 0.0 && x.is_finite()),
        ),
        (
            "subsample",
            mc.subsample.is_none_or(|x| x > 0.0 && x <= 1.0),
        ),
    ] {
        if !ok {
            return Err(at(
                &format!("model_config.{k}"),
                "out of range (n_estimators > 0, learning_rate > 0, l2_regularization and min_child_weight >= 0, subsample in (0, 1])",
            ));
        }
    }
    Ok(())
}

fn privacy(t: &TrainConfig) -> Result<(), PipelineError> {
    let pp = t.privacy_params.as_ref();
    let num = |k: &str| privacy_param(t, k);
    if !pp.is_some_and(Value::is_object) {
        return Err(at(
            "privacy_params",
            "an object {\"epsilon\", \"delta\", \"max_grad_norm\"[, \"noise_multiplier\"]} is required with is_private",
        ));
    }
    let trees = t.model_config.name == ModelName::XgBoost;
    let given = |k: &str| pp.and_then(|v| v.get(k)).is_some();
    // DP-SGD clips each sample's gradient at max_grad_norm; DP trees bound a row's gradient by
    // the objective (binary:logistic) or clip it at clip_value (reg:squarederror).
    let (wrong, why) = if trees {
        (
            "max_grad_norm",
            "is DP-SGD's; DP trees take clip_value (reg:squarederror)",
        )
    } else {
        (
            "clip_value",
            "is for DP trees (Train_XGB); DP-SGD clips at max_grad_norm",
        )
    };
    if given(wrong) {
        return Err(at(&format!("privacy_params.{wrong}"), why));
    }
    if pp
        .and_then(|v| v.get("mechanism"))
        .is_some_and(|m| m.as_str() != Some("gaussian"))
    {
        return Err(at(
            "privacy_params.mechanism",
            "ccr's DP mechanisms are Gaussian: \"gaussian\"",
        ));
    }
    if let Some(k) = pp
        .and_then(Value::as_object)
        .and_then(|m| m.keys().find(|k| !PRIVACY_PARAMS.contains(&k.as_str())))
    {
        return Err(at(
            &format!("privacy_params.{k}"),
            "unknown (known: epsilon, delta, max_grad_norm, noise_multiplier, clip_value, mechanism)",
        ));
    }
    for (k, ok, want) in [
        (
            "epsilon",
            num("epsilon").is_some_and(|e| e > 0.0 && e.is_finite()),
            "a number > 0",
        ),
        (
            "delta",
            num("delta").is_some_and(|d| d > 0.0 && d < 1.0),
            "a number in (0, 1)",
        ),
        (
            "max_grad_norm",
            trees || num("max_grad_norm").is_some_and(|c| c > 0.0 && c.is_finite()),
            "a number > 0",
        ),
        (
            "clip_value",
            !given("clip_value") || num("clip_value").is_some_and(|c| c > 0.0 && c.is_finite()),
            "a number > 0",
        ),
    ] {
        if !ok {
            return Err(at(&format!("privacy_params.{k}"), want));
        }
    }
    if pp.and_then(|v| v.get("noise_multiplier")).is_some()
        && !num("noise_multiplier").is_some_and(|s| s > 0.0 && s.is_finite())
    {
        return Err(at("privacy_params.noise_multiplier", "a number > 0"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
