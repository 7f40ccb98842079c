//! The checks serde cannot make: each names the JSON path of the field it refuses.

use serde_json::Value;

use super::loss::expr::Component;
use super::{
    DatasetKind, EvalMetric, Framework, Join, LossClass, LossParams, MetricName, MissingStrategy,
    ModelFormat, ModelName, ModelType, PRIVACY_PARAMS, PipelineError, Scheduler, Solver, Step,
    StructureType, TaskType, TrainConfig, XGB_FIELDS, XgbObjective, privacy_param,
};

mod data;
mod model;
mod privacy;

use data::data;
use model::{loss_config, model};
use privacy::privacy;

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

/// `privacy_params` of a private train step (`LLM_Finetune`'s, in its train-config shape).
pub(super) fn privacy_of(t: &TrainConfig) -> Result<(), PipelineError> {
    privacy(t)
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
pub(super) fn device(d: &str) -> Result<(), PipelineError> {
    let gpu = d == "gpu"
        || d == "cuda"
        || d.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
    if d == "cpu" || d == "auto" || (gpu && cfg!(any(feature = "gpu", feature = "torch"))) {
        return Ok(());
    }
    Err(at(
        "device",
        &if gpu {
            format!(
                "`{d}`: this ccr-init has no GPU backend (built without the `gpu` or `torch` feature); use cpu or auto"
            )
        } else {
            format!("`{d}`: expected cpu, auto, cuda, cuda:N or gpu")
        },
    ))
}

#[cfg(test)]
mod tests;
