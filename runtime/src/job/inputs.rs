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
    /// `LLM_Finetune`'s base model and tokenizer, read and checked (absent until its LUKS2
    /// image is opened when the contract names a `baseModelImage`).
    pub llm_base: Option<crate::learn::llm::BaseModel>,
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
    let perr = |source| JobError::Pipeline {
        path: cfg.pipeline.clone(),
        source,
    };
    let mut pipeline = Pipeline::from_value(&pval).map_err(perr)?;
    let named: Vec<(String, String, Option<String>)> = vc
        .contract()
        .datasets
        .iter()
        .map(|d| (d.id.clone(), d.name.clone(), d.owner.clone()))
        .collect();
    pipeline.bind_single(&named).map_err(perr)?;
    log_depa_mappings(&pipeline.train);
    // Refused before the base model is read or anything is attested.
    if cfg.out.exists() {
        return Err(JobError::Config(format!(
            "--out {}: already exists, refusing to overwrite",
            cfg.out.display()
        )));
    }
    let formats = vc.contract().output_formats();
    let (fits, wants) = if pipeline.finetune.is_some() {
        (formats.contains(&OutputFormat::Safetensors), "Safetensors")
    } else if pipeline.train.model_config.name == ModelName::XgBoost {
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
                if pipeline.finetune.is_some() {
                    "LLM_Finetune"
                } else {
                    pipeline.train.model_config.name.as_str()
                }
            ),
        }));
    }
    check_privacy_plan(vc.contract(), &pipeline)?;
    if let Some(f) = &pipeline.finetune {
        check_declared_fields(vc.contract(), &pipeline, f)?;
    }
    let (base_model, llm_base) = match &pipeline.finetune {
        Some(f) => (None, load_llm_base(cfg, vc.contract(), f)?),
        None => (load_base_model(cfg, vc.contract(), &pipeline.train)?, None),
    };
    Ok(Inputs {
        contract: vc,
        pipeline,
        pipeline_json: pval,
        formats,
        base_model,
        llm_base,
    })
}

/// Refuses, before attesting, an `LLM_Finetune` pipeline that reads a field a dataset's
/// provider did not declare in the contract (`datasets[].fields`): the records must carry the
/// text field, or both the prompt and the completion fields.
///
/// # Errors
/// [`JobError::Config`] naming the dataset, the fields it declares and those the pipeline
/// reads.
fn check_declared_fields(
    contract: &Contract,
    pipeline: &Pipeline,
    f: &crate::pipeline::FinetuneConfig,
) -> Result<(), JobError> {
    for d in &pipeline.join.config().datasets {
        let Some(declared) = contract
            .datasets
            .iter()
            .find(|c| c.id == d.id)
            .and_then(|c| c.fields.as_ref())
        else {
            continue;
        };
        let has = |n: &str| declared.iter().any(|x| x == n);
        let readable = has(&f.text_field) || (has(&f.prompt_field) && has(&f.completion_field));
        if !readable {
            return Err(JobError::Config(format!(
                "dataset `{}`: its records have the fields {declared:?} (the contract's datasets[].fields); LLM_Finetune reads `{}`, or `{}` and `{}`",
                d.name, f.text_field, f.prompt_field, f.completion_field
            )));
        }
    }
    Ok(())
}

/// `LLM_Finetune`'s base model from its folder (`--base-model DIR`, else `base_model.path`),
/// each file read only when the pipeline pins it and checked against its SHA-256, then built
/// and checked ([`llm_base_from_files`]). With a `baseModelImage` in the contract, nothing is
/// read here ([`llm_base_from_image`] reads it once its key is released).
///
/// # Errors
/// [`JobError::Input`] naming the folder: a pinned file that is missing or has another
/// digest, a config ccr does not run, weights that do not match it, a tokenizer that does not
/// match the vocabulary, a `max_seq_len` or LoRA target the model cannot take.
fn load_llm_base(
    cfg: &JobConfig,
    contract: &Contract,
    f: &crate::pipeline::FinetuneConfig,
) -> Result<Option<crate::learn::llm::BaseModel>, JobError> {
    if let Some(m) = &contract.base_model_image {
        if let Some(b) = &cfg.base_model {
            tracing::warn!(base_model = %b.display(), image = %m.image_file_name(), "--base-model is not read: the contract's baseModelImage names the base model (see --base-model-image)");
        }
        return Ok(None);
    }
    let dir = cfg
        .base_model
        .clone()
        .unwrap_or_else(|| PathBuf::from(f.model_dir()));
    let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
        let p = dir.join(name);
        if !p.is_file() {
            return Ok(None);
        }
        std::fs::read(&p).map(Some).map_err(|e| e.to_string())
    };
    llm_base_from_files(&dir, f, &read).map(Some)
}

/// A model folder's file by name, from disk or an image: `Ok(None)` when it is absent, `Err`
/// with the reason when it cannot be read.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<Option<Vec<u8>>, String>;

/// Builds `LLM_Finetune`'s base model from the folder's files as `read` gives them: only the
/// files `base_model.sha256` pins are read (a pinned file that is absent is an error), each
/// checked against its digest; then the config, tokenizer and weights are checked against
/// each other ([`crate::learn::llm::load_files`]) and the pipeline against the model
/// ([`super::finetune::check_against_model`]).
///
/// # Errors
/// [`JobError::Input`] naming `dir` (and the file).
pub fn llm_base_from_files(
    dir: &Path,
    f: &crate::pipeline::FinetuneConfig,
    read: ReadFile<'_>,
) -> Result<crate::learn::llm::BaseModel, JobError> {
    use crate::learn::llm::{self, LlmError};
    let pins = &f.base_model.sha256;
    let get = |name: &str| -> Result<Option<Vec<u8>>, LlmError> {
        let Some(want) = pins.get(name) else {
            // Not pinned: never read (a shard the index names is then reported missing).
            return Ok(None);
        };
        let bytes = read(name)
            .map_err(|e| LlmError::Weights(format!("{name}: {e}")))?
            .ok_or_else(|| {
                LlmError::Weights(format!(
                    "{name}: pinned in base_model.sha256 but not in the folder"
                ))
            })?;
        let got = hex::encode(sha2::Sha256::digest(&bytes));
        if &got != want {
            return Err(LlmError::Weights(format!(
                "{name}: SHA-256 {got} is not the pipeline's base_model.sha256 {want}"
            )));
        }
        Ok(Some(bytes))
    };
    let input = |e: LlmError| JobError::Input {
        path: dir.to_path_buf(),
        reason: format!("base model: {e}"),
    };
    let base = llm::load_files(&get, &crate::learn::device()).map_err(input)?;
    super::finetune::check_against_model(f, &base.model.config).map_err(input)?;
    info!(folder = %dir.display(), model_type = %base.model.config.model_type(), vocab = base.model.config.vocab(), files = pins.len(), "base model read and checked (LLM_Finetune)");
    Ok(base)
}

/// `LLM_Finetune`'s base model out of the contract's `baseModelImage` (LUKS2, ext4 inside):
/// the folder's pinned files read from the image (pinned itself when the contract gives
/// `imageSha256`), then as [`llm_base_from_files`].
///
/// # Errors
/// [`JobError::ModelImage`] for the image; [`JobError::Input`] for the model.
pub fn llm_base_from_image(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
    key: &ccr_images::DatasetKey,
) -> Result<crate::learn::llm::BaseModel, JobError> {
    let (Some(m), Some(f), Some(path)) = (
        contract.base_model_image.as_ref(),
        pipeline.finetune.as_deref(),
        super::release::base_model_image_path(cfg, contract, pipeline),
    ) else {
        return Err(JobError::Config(
            "no baseModelImage in the contract, or no LLM_Finetune base model".into(),
        ));
    };
    let img = open_base_model_image(m, &path, key)?;
    // The plaintext moved out of its zeroizing buffer, not copied (a model is large).
    let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
        img.read(name)
            .map(|mut b| Some(std::mem::take(&mut *b)))
            .map_err(|e| e.to_string())
    };
    let built = llm_base_from_files(&path, f, &read);
    img.finish(built).map_err(as_model_image)
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

/// Says how DEPA's host-side fields map inside the CCR (none is silently ignored).
fn log_depa_mappings(tc: &TrainConfig) {
    if let Some(p) = &tc.paths {
        if let Some(o) = &p.trained_model_output_path {
            info!(depa_path = %o, "paths.trained_model_output_path: the output is sealed to --out instead");
        }
        if let Some(b) = &p.base_model_path {
            info!(depa_path = %b, "paths.base_model_path: the base model, unless --base-model is given");
        }
    }
    if let Some(t) = &tc.dataset_config.transforms
        && (t.normalize || t.augment)
    {
        info!(
            normalize = t.normalize,
            augment = t.augment,
            "dataset_config.transforms: applied by neither DEPA's trainer (a placeholder) nor ccr"
        );
    }
    if let Some(d) = &tc.device {
        info!(device = %d, "device: {}", if d.starts_with("cuda") || d == "gpu" { "Burn's CUDA backend" } else { "the CPU backend, or CUDA with auto where built in" });
    }
}

/// Whether the pipeline names a base model (`model_config.model_format` `Safetensors`, or
/// DEPA's `model_type`).
fn names_base_model(tc: &TrainConfig) -> bool {
    tc.model_config.model_format == Some(ModelFormat::Safetensors) || tc.model_type.is_some()
}

/// Reads the consumer's base model when the pipeline names one, from `--base-model`, else
/// `model_config.model_path` or `paths.base_model_path`, and checks it ([`check_base_model`]).
/// When the contract names a `baseModelImage`, nothing is read here: the model comes out of
/// that LUKS2 image once its key is released ([`base_model_from_image`]).
///
/// # Errors
/// [`JobError::Read`], or [`JobError::Input`] naming the file when its digest is another or
/// nothing signed fixes it, or when a `baseModelImage` is named but the pipeline names no
/// base model file.
fn load_base_model(
    cfg: &JobConfig,
    contract: &Contract,
    tc: &TrainConfig,
) -> Result<Option<Vec<u8>>, JobError> {
    if let Some(m) = &contract.base_model_image {
        if !names_base_model(tc) || super::release::base_model_path_in_pipeline(tc).is_none() {
            return Err(JobError::Config(format!(
                "the contract's baseModelImage ({}) needs a pipeline that names its base model file (model_config.model_path or paths.base_model_path)",
                m.image_file_name()
            )));
        }
        if let Some(b) = &cfg.base_model {
            tracing::warn!(base_model = %b.display(), image = %m.image_file_name(), "--base-model is not read: the contract's baseModelImage names the base model (see --base-model-image)");
        }
        return Ok(None);
    }
    if !names_base_model(tc) {
        return Ok(None);
    }
    let path = cfg
        .base_model
        .clone()
        .or_else(|| super::release::base_model_path_in_pipeline(tc).map(PathBuf::from))
        .unwrap_or_default();
    let bytes = read(&path)?;
    check_base_model(&path, &bytes, contract, tc)?;
    Ok(Some(bytes))
}

/// The base model out of the contract's `baseModelImage` (DEPA's `model.img`: LUKS2, ext4
/// inside), opened with its released key file: the file named as the pipeline's base model path
/// ends (`/mnt/remote/model/model.onnx` → `model.onnx`), checked against the image pin, then as
/// [`check_base_model`].
///
/// # Errors
/// [`JobError::Image`] for the image; [`JobError::Input`] for the model's digest or content.
pub fn base_model_from_image(
    cfg: &JobConfig,
    contract: &Contract,
    tc: &TrainConfig,
    key: &ccr_images::DatasetKey,
) -> Result<Vec<u8>, JobError> {
    let (Some(m), Some(path)) = (
        contract.base_model_image.as_ref(),
        super::release::base_model_image_path_for(cfg, contract, tc, None),
    ) else {
        return Err(JobError::Config(
            "no baseModelImage in the contract, or no base model path in the pipeline".into(),
        ));
    };
    let inner = super::release::base_model_path_in_pipeline(tc).unwrap_or_default();
    let file = Path::new(&inner)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let img = open_base_model_image(m, &path, key)?;
    let read = img.read(&file);
    let bytes = img.finish(read).map_err(as_model_image)?;
    check_base_model(&path.join(&file), &bytes, contract, tc)?;
    Ok(bytes.to_vec())
}

/// An image error of the base model's image reported as such ([`JobError::ModelImage`]).
fn as_model_image(e: JobError) -> JobError {
    match e {
        JobError::Image { source, .. } => JobError::ModelImage(source),
        other => other,
    }
}

/// The contract's `baseModelImage` at `path`, opened with its released key file (pinned when
/// the contract gives `imageSha256`).
///
/// # Errors
/// [`JobError::ModelImage`] naming the image.
fn open_base_model_image(
    m: &ccr_policy::contract::BaseModelImage,
    path: &Path,
    key: &ccr_images::DatasetKey,
) -> Result<super::decrypt::luks2::Luks2Dataset, JobError> {
    let pin = m
        .image_pin()
        .map(|(sha256, size)| ccr_images::luks2::ImagePin { sha256, size });
    super::decrypt::luks2::Luks2Dataset::open_file("base model", path.to_path_buf(), pin, key)
        .map_err(as_model_image)
}

/// Checks the base model's SHA-256 against the pipeline's `model_config.model_sha256` or, for
/// DEPA's pipelines (which carry no digest), the contract's `baseModelSha256`: either way the
/// parties' signatures fix the model. An ONNX model is imported to refuse ops ccr does not run
/// and layers DP-SGD cannot clip.
///
/// # Errors
/// [`JobError::Input`] naming `path`.
fn check_base_model(
    path: &Path,
    bytes: &[u8],
    contract: &Contract,
    tc: &TrainConfig,
) -> Result<(), JobError> {
    let path = path.to_path_buf();
    let mc = &tc.model_config;
    let ccr_form = mc.model_format == Some(ModelFormat::Safetensors);
    let (want, from) = if ccr_form {
        (
            mc.model_sha256.as_deref(),
            "the pipeline's model_config.model_sha256",
        )
    } else {
        (
            contract.base_model_sha256.as_deref(),
            "the contract's baseModelSha256",
        )
    };
    let got = hex::encode(sha2::Sha256::digest(bytes));
    if Some(got.as_str()) != want {
        return Err(JobError::Input {
            path,
            reason: match want {
                Some(w) => format!("SHA-256 {got} is not {from} {w}"),
                None => format!(
                    "SHA-256 {got}: no signed digest fixes the base model ({from} is absent; set it with `ccr contract set-base-model`)"
                ),
            },
        });
    }
    if tc.model_type == Some(crate::pipeline::ModelType::Onnx) {
        // Refused before any key is released: an op ccr does not run (the error names the
        // node), or a layer DP-SGD cannot clip per sample.
        let imp = crate::learn::onnx::import::import(bytes).map_err(|e| JobError::Input {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if tc.is_private
            && let Some(l) = imp.spec.layers.iter().find(|l| {
                matches!(
                    l.def,
                    crate::learn::graph::spec::LayerDef::Class(
                        crate::learn::graph::spec::LayerClass::BatchNorm { .. }
                    )
                )
            })
        {
            return Err(JobError::Input {
                path,
                reason: format!(
                    "layer `{}` is a BatchNormalization, which has no per-sample gradient for DP-SGD (is_private): use GroupNorm, as Opacus does",
                    l.name
                ),
            });
        }
        info!(path = %path.display(), sha256 = %got, opset = imp.opset, layers = imp.spec.layers.len(), sample_shape = ?imp.sample_shape, "base model read (ONNX)");
    } else {
        info!(path = %path.display(), sha256 = %got, "base model read");
    }
    Ok(())
}

/// Refuses, before attesting, a private pipeline whose epsilon or delta exceeds a joined
/// dataset's budget in the contract (the broker then checks what remains of it).
pub fn check_privacy_plan(contract: &Contract, pipeline: &Pipeline) -> Result<(), JobError> {
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
