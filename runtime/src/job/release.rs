//! Step 3, release keys: every dataset key and the output key, through `ccr_keybroker::release`
//! (the ccr broker over KBS, Azure Key Vault SKR, GCP Cloud KMS: this step knows no protocol).
//! The run plan names the run and the epsilon/delta it plans to spend on each dataset.

use std::path::PathBuf;

use ccr_attest::attester::Attester;
use ccr_keybroker::RuntimeKey;
use ccr_keybroker::release::{self, DatasetSource, ReleaseOptions, ReleaseRequest, Released};
use ccr_keybroker::runs::RunPlan;
use ccr_policy::Contract;
use tracing::info;

use super::{JobConfig, JobError};
use crate::pipeline::{Pipeline, planned_privacy};

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

/// Gets every key released.
///
/// # Errors
/// [`JobError::Release`] (attestation, refusal, or a key with no usable source).
pub fn release(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
    plan: &RunPlan,
    attester: &dyn Attester,
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
    let req = ReleaseRequest {
        contract,
        datasets: &datasets,
        plan,
    };
    let opts = ReleaseOptions {
        broker: cfg.broker.clone(),
        broker_pin: cfg.broker_pin.clone(),
        cloud: cfg.cloud.clone(),
    };
    Ok(release::release(&req, &opts, attester, runtime_key)?)
}
