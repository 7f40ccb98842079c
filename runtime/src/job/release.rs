//! Step 3, release keys: every dataset key and the output key, through `ccr_keybroker::release`
//! (the ccr broker over KBS, Azure Key Vault SKR, GCP Cloud KMS: this step knows no protocol).
//! The run plan names the run and the epsilon/delta it plans to spend on each dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ccr_attest::attester::Attester;
use ccr_keybroker::RuntimeKey;
use ccr_keybroker::release::{self, DatasetSource, ReleaseOptions, ReleaseRequest, Released};
use ccr_keybroker::runs::RunPlan;
use ccr_policy::Contract;
use tracing::info;

use super::{JobConfig, JobError};
use crate::pipeline::{Pipeline, TrainConfig, planned_privacy};

/// The run's id and the epsilon/delta it plans to spend on each dataset (the pipeline's
/// `privacy_params` targets; none without DP).
pub fn run_plan(pipeline: &Pipeline) -> RunPlan {
    let plan = planned_privacy(&pipeline.train);
    let plan = RunPlan::new(plan.map(|p| p.0), plan.map(|p| p.1));
    info!(run = %plan.id, epsilon = ?plan.epsilon, delta = ?plan.delta, "run plan");
    plan
}

/// A dataset's image folder: `--datasets/<name>`, or its `mount_path`.
pub fn dataset_dir(cfg: &JobConfig, name: &str, mount_path: &str) -> PathBuf {
    match &cfg.datasets {
        Some(root) => root.join(name),
        None => PathBuf::from(mount_path),
    }
}

/// The base model image file when the contract names a `baseModelImage`: `--base-model-image`,
/// else the image named as the contract's `url` ends (DEPA: `model.img`) in the folder of the
/// pipeline's base model path (DEPA: `/mnt/remote/model/model.onnx` → `/mnt/remote/model/`).
/// For `LLM_Finetune`, the image in its `base_model.path` folder.
pub fn base_model_image_path(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
) -> Option<PathBuf> {
    base_model_image_path_for(
        cfg,
        contract,
        &pipeline.train,
        pipeline.finetune.as_deref().map(|f| f.model_dir()),
    )
}

/// [`base_model_image_path`] from the train config, or from `model_dir` when given.
pub fn base_model_image_path_for(
    cfg: &JobConfig,
    contract: &Contract,
    tc: &TrainConfig,
    model_dir: Option<&str>,
) -> Option<PathBuf> {
    let m = contract.base_model_image.as_ref()?;
    if let Some(p) = &cfg.base_model_image {
        return Some(p.clone());
    }
    if let Some(dir) = model_dir {
        return Some(Path::new(dir).join(m.image_file_name()));
    }
    let inner = base_model_path_in_pipeline(tc)?;
    Some(
        Path::new(&inner)
            .parent()
            .unwrap_or(Path::new(""))
            .join(m.image_file_name()),
    )
}

/// The pipeline's base model path: `model_config.model_path`, else `paths.base_model_path`.
pub fn base_model_path_in_pipeline(tc: &TrainConfig) -> Option<String> {
    tc.model_config
        .model_path
        .clone()
        .or_else(|| tc.paths.as_ref().and_then(|p| p.base_model_path.clone()))
}

/// Gets every key released.
///
/// # Errors
/// [`JobError::Release`] (attestation, refusal, or a key with no usable source).
pub fn release(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
    plan: &RunPlan,
    attester: &Arc<dyn Attester>,
    runtime_key: &RuntimeKey,
) -> Result<Released, JobError> {
    let datasets: Vec<DatasetSource> = pipeline
        .join
        .config()
        .datasets
        .iter()
        .map(|d| DatasetSource {
            id: d.id.clone(),
            image_dir: dataset_dir(cfg, &d.name, &d.mount_path),
        })
        .collect();
    let model_dir = base_model_image_path(cfg, contract, pipeline)
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let req = ReleaseRequest {
        contract,
        datasets: &datasets,
        base_model_dir: model_dir.as_deref(),
        plan,
    };
    let opts = ReleaseOptions {
        broker: cfg.broker.clone(),
        broker_pin: cfg.broker_pin.clone(),
        cloud: cfg.cloud.clone(),
    };
    Ok(release::release(&req, &opts, attester, runtime_key)?)
}
