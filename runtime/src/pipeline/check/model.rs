//! Checks of `model_config` and the loss: ccr's models, DEPA's graphs and ONNX base models,
//! Train_ML's solver, XGBoost's fields (and its DP variant's), the loss classes.

use super::*;

/// `model_config.solver` `lbfgs` (scikit-learn's full-batch solve) and its parameters.
pub(super) fn solver(t: &TrainConfig) -> Result<(), PipelineError> {
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

/// A DEPA graph or an ONNX base model: Train_DL, with the `model_type` that goes with it.
pub(super) fn graph_model(t: &TrainConfig, framework: Framework) -> Result<(), PipelineError> {
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

pub(super) fn model(t: &TrainConfig, framework: Framework) -> Result<(), PipelineError> {
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

pub(super) fn xgboost(t: &TrainConfig) -> Result<(), PipelineError> {
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

/// DEPA's `loss_config`: instead of `loss`, of the task's kind, with the params its class takes.
pub(super) fn loss_config(t: &TrainConfig) -> Result<(), PipelineError> {
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
pub(super) fn class_loss(
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
