//! Step 1, start: the signed contract (signatures, validity) and the pipeline config (its digest
//! is the contract's; its fields typed), the formats the output may carry, the consumer's base
//! model (its SHA-256 pinned by the pipeline), and the privacy plan against the contract's
//! budgets. Nothing here reaches a platform or a broker.

use std::path::{Path, PathBuf};

use ccr_policy::contract::OutputFormat;
use ccr_policy::{Contract, VerifiedContract};
use serde_json::Value;
use sha2::{Digest, Sha384};
use tracing::info;

use super::{JobConfig, JobError};
use crate::pipeline::{ModelFormat, ModelName, Pipeline, PipelineError, TrainConfig};

/// What the start step read and verified.
#[derive(Debug)]
pub struct Inputs {
    /// The contract, verified at start.
    pub contract: VerifiedContract,
    /// The pipeline, parsed and checked.
    pub pipeline: Pipeline,
    /// The pipeline config as JSON (its JCS digest is the contract's `pipelineDigest`).
    pub pipeline_json: Value,
    /// The model files the output may carry.
    pub formats: Vec<OutputFormat>,
    /// The consumer's base model (safetensors), when the pipeline names one.
    pub base_model: Option<Vec<u8>>,
}

fn read(path: &Path) -> Result<Vec<u8>, JobError> {
    std::fs::read(path).map_err(JobError::read(path))
}

/// Loads and verifies the contract and pipeline now, checks that the output does not exist
/// yet and the privacy plan against the contract's budgets, and reads the base model.
///
/// # Errors
/// [`JobError::Contract`], [`JobError::Pipeline`], [`JobError::Read`], [`JobError::Input`],
/// [`JobError::Config`].
pub fn load(cfg: &JobConfig) -> Result<Inputs, JobError> {
    let cerr = |source| JobError::Contract {
        path: cfg.contract.clone(),
        source,
    };
    let contract = Contract::from_json(&read(&cfg.contract)?).map_err(cerr)?;
    let vc = contract.verify(chrono::Utc::now()).map_err(cerr)?;
    let pbytes = read(&cfg.pipeline)?;
    let pval: Value = serde_json::from_slice(&pbytes).map_err(|e| JobError::Pipeline {
        path: cfg.pipeline.clone(),
        source: PipelineError::Json {
            path: format!("line {} column {}", e.line(), e.column()),
            reason: e.to_string(),
        },
    })?;
    vc.check_pipeline(&pval).map_err(cerr)?;
    let pipeline = Pipeline::from_value(&pval).map_err(|source| JobError::Pipeline {
        path: cfg.pipeline.clone(),
        source,
    })?;
    // Refused before the base model is read or anything is attested.
    if cfg.out.exists() {
        return Err(JobError::Config(format!(
            "--out {}: already exists, refusing to overwrite",
            cfg.out.display()
        )));
    }
    let formats = vc.contract().output_formats();
    let (fits, wants) = if pipeline.train.model_config.name == ModelName::XgBoost {
        (formats.contains(&OutputFormat::XgboostJson), "XGBoostJSON")
    } else {
        (
            formats.contains(&OutputFormat::Safetensors) || formats.contains(&OutputFormat::Onnx),
            "Safetensors or ONNX",
        )
    };
    if !fits {
        let listed: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
        return Err(cerr(ccr_policy::PolicyError::Contract {
            field: "allowedModelFormats".into(),
            reason: format!(
                "lists {listed:?}; this pipeline's {} model leaves as {wants}",
                pipeline.train.model_config.name
            ),
        }));
    }
    check_privacy_plan(vc.contract(), &pipeline)?;
    let base_model = load_base_model(cfg, &pipeline.train)?;
    Ok(Inputs {
        contract: vc,
        pipeline,
        pipeline_json: pval,
        formats,
        base_model,
    })
}

/// The SHA-384 of a file (the ccr-init binary for the sim measurement).
///
/// # Errors
/// [`JobError::Read`].
pub fn file_sha384(path: &Path) -> Result<[u8; 48], JobError> {
    let f = std::fs::File::open(path).map_err(JobError::read(path))?;
    let mut f = std::io::BufReader::with_capacity(1 << 20, f);
    let mut h = Sha384::new();
    std::io::copy(&mut f, &mut h).map_err(JobError::read(path))?;
    Ok(h.finalize().into())
}

/// Reads the consumer's base model when the pipeline names `model_format` `Safetensors`
/// (from `--base-model`, else `model_config.model_path`) and checks its SHA-256 against
/// `model_config.model_sha256` (which the signed pipeline digest fixes).
///
/// # Errors
/// [`JobError::Read`], or [`JobError::Input`] naming the file when its digest is another.
fn load_base_model(cfg: &JobConfig, tc: &TrainConfig) -> Result<Option<Vec<u8>>, JobError> {
    let mc = &tc.model_config;
    if mc.model_format != Some(ModelFormat::Safetensors) {
        return Ok(None);
    }
    let path = cfg
        .base_model
        .clone()
        .or_else(|| mc.model_path.as_ref().map(PathBuf::from))
        .unwrap_or_default();
    let bytes = read(&path)?;
    let got = hex::encode(sha2::Sha256::digest(&bytes));
    if Some(got.as_str()) != mc.model_sha256.as_deref() {
        return Err(JobError::Input {
            path,
            reason: format!(
                "SHA-256 {got} is not the pipeline's model_config.model_sha256 {}",
                mc.model_sha256.as_deref().unwrap_or("")
            ),
        });
    }
    info!(path = %path.display(), sha256 = %got, "base model read");
    Ok(Some(bytes))
}

/// Refuses, before attesting, a private pipeline whose epsilon or delta exceeds a joined
/// dataset's budget in the contract (the broker then checks what remains of it).
fn check_privacy_plan(contract: &Contract, pipeline: &Pipeline) -> Result<(), JobError> {
    let Some((epsilon, delta)) = crate::pipeline::planned_privacy(&pipeline.train) else {
        return Ok(());
    };
    for d in &pipeline.join.config().datasets {
        if let Some(p) = contract.privacy_for(&d.id) {
            if epsilon > p.epsilon_threshold {
                return Err(JobError::Config(format!(
                    "privacy_params.epsilon {epsilon} is more than dataset {}'s epsilon_threshold {} in the contract",
                    d.id, p.epsilon_threshold
                )));
            }
            if delta > p.delta {
                return Err(JobError::Config(format!(
                    "privacy_params.delta {delta} is more than dataset {}'s delta {} in the contract",
                    d.id, p.delta
                )));
            }
        }
    }
    Ok(())
}
