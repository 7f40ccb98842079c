//! Checks of `privacy_params`: DP-SGD's and DP trees' fields.

use super::*;

pub(super) fn privacy(t: &TrainConfig) -> Result<(), PipelineError> {
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
