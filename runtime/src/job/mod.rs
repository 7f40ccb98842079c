//! The main job of `ccr-init`: the seven steps of DESIGN.md, one module each, in the order
//! [`run`] calls them:
//!
//! 1. [`inputs`]: read and verify the contract (signatures, validity) and the pipeline
//!    (digest, typed fields), the base model, the privacy plan;
//! 2. [`attest`]: pick the platform, make the runtime key;
//! 3. [`release`]: every dataset key and the output key, through `ccr_keybroker::release`
//!    (evidence bound to each broker's nonce and the runtime key);
//! 4. [`decrypt`]: open each sealed image in memory with its key;
//! 5. [`join`]: join the tables; 6. [`train`]: fit, evaluate, export ([`crate::learn`]), or
//!    [`finetune`]: a language model fine-tuned on the text datasets (`LLM_Finetune`);
//! 7. [`seal`]: the model, metrics and run report ([`report`]) sealed with the output key,
//!    the report recorded by the brokers, the output committed atomically.
//!
//! Nothing decrypted is written to disk; keys are zeroized on drop.
//!
//! # The run and its report
//! Each run has a fresh id (`ccr_keybroker::runs::RunPlan`) and names it, with the epsilon it plans to spend on
//! each dataset (the pipeline's target epsilon, `privacy_params.epsilon`; none without DP), in
//! its KBS request; the broker charges the datasets' budgets with it. `run.json` (in the sealed
//! output) gives the run id, the runtime key, the evidence digest and, per dataset, the epsilon
//! planned and spent; `run.jws` is the same bytes signed with the runtime key (ES256), and the
//! runtime sends that JWS to every `ccr` broker it got keys from before it commits the output.
//! When the contract names output approvers, the runtime makes a fresh output key, seals with
//! it, and escrows it at the output's broker with the report; the output's manifest `kid` is
//! `runs/<run id>`, and the data consumer gets the key once the approvers agree.

pub mod attest;
pub mod decrypt;
mod error;
pub mod finetune;
pub mod inputs;
pub mod join;
mod progress;
pub mod release;
pub mod report;
pub mod seal;
pub mod train;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ccr_keybroker::release::CloudOptions;
use serde_json::Value;
use tracing::{info, info_span};

pub use attest::PlatformChoice;
pub use error::JobError;
pub use inputs::file_sha384;

use crate::init::Abort;

/// The job's inputs (from flags or their environment twins).
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// `contract.json`.
    pub contract: PathBuf,
    /// `pipeline_config.json`.
    pub pipeline: PathBuf,
    /// Folder of sealed images, one per dataset named by its `name` (overrides `mount_path`).
    pub datasets: Option<PathBuf>,
    /// Where the sealed output image goes (must not exist).
    pub out: PathBuf,
    /// The base model file (overrides the pipeline's `model_config.model_path`).
    pub base_model: Option<PathBuf>,
    /// The base model's LUKS2 image file, when the contract names a `baseModelImage` (default:
    /// the image in the folder of the pipeline's base model path; see
    /// [`release::base_model_image_path`]).
    pub base_model_image: Option<PathBuf>,
    /// Broker URL for every `ccr` key (overrides the contract's `endpoint`).
    pub broker: Option<String>,
    /// SHA-256 of the broker's TLS certificate, hex.
    pub broker_pin: Option<String>,
    /// The platform.
    pub platform: PlatformChoice,
    /// The sim platform's state folder.
    pub sim_state: Option<PathBuf>,
    /// Confidential Space: the audience of the attestation token.
    pub cs_audience: String,
    /// Cloud key stores (Azure Key Vault, GCP KMS): endpoints and TLS roots.
    pub cloud: CloudOptions,
    /// The running `ccr-init` binary (hashed into the sim measurement).
    pub init_binary: PathBuf,
    /// Set by SIGTERM/SIGINT: the job stops after the current step or epoch.
    pub abort: Abort,
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `metrics.json` content.
    pub metrics: Value,
    /// `run.json` content.
    pub run: Value,
}

/// Step timings, and the abort check between steps.
struct Laps {
    timings: BTreeMap<&'static str, u128>,
    t0: Instant,
    abort: Abort,
}

impl Laps {
    /// Records the step that just ended; stops the job when termination was requested.
    fn done(&mut self, step: &'static str) -> Result<(), JobError> {
        let took = self.t0.elapsed();
        info!(step, seconds = took.as_secs_f64(), "step finished");
        self.timings.insert(step, took.as_millis());
        self.t0 = Instant::now();
        if self.abort.requested() {
            return Err(JobError::Aborted { step });
        }
        Ok(())
    }
}

/// Runs the whole job, step by step.
///
/// # Errors
/// [`JobError`]; on error nothing is written to `cfg.out`.
pub fn run(cfg: &JobConfig) -> Result<Summary, JobError> {
    let started = chrono::Utc::now();
    let mut laps = Laps {
        timings: BTreeMap::new(),
        t0: Instant::now(),
        abort: cfg.abort.clone(),
    };

    // 1. start
    let mut inp = info_span!("start").in_scope(|| inputs::load(cfg))?;
    let contract = inp.contract.contract();
    info!(contract = %contract.id, contract_digest = %hex::encode(inp.contract.digest()), pipeline_digest = %contract.pipeline_digest, "contract verified");
    laps.done("start")?;

    // 2. attest
    let (attester, runtime_key) =
        info_span!("attest").in_scope(|| attest::attest(cfg, &inp.contract))?;
    laps.done("attest")?;

    // 3. release keys
    let plan = release::run_plan(&inp.pipeline);
    let mut released = info_span!("release").in_scope(|| {
        release::release(cfg, contract, &inp.pipeline, &plan, &attester, &runtime_key)
    })?;
    laps.done("release")?;

    // 4. decrypt (the base model first, when it is in a LUKS2 image)
    if let Some(k) = released.base_model.take() {
        let _s = info_span!("decrypt").entered();
        if inp.pipeline.finetune.is_some() {
            inp.llm_base = Some(inputs::llm_base_from_image(
                cfg,
                inp.contract.contract(),
                &inp.pipeline,
                &k,
            )?);
        } else {
            inp.base_model = Some(inputs::base_model_from_image(
                cfg,
                inp.contract.contract(),
                &inp.pipeline.train,
                &k,
            )?);
        }
    }
    let dataset_keys = std::mem::take(&mut released.datasets);
    let decrypted = info_span!("decrypt").in_scope(|| {
        decrypt::decrypt(cfg, inp.contract.contract(), &inp.pipeline, &dataset_keys)
    })?;
    drop(dataset_keys);
    laps.done("decrypt")?;

    // 5. join
    let joined = info_span!("join").in_scope(|| join::join(&inp.pipeline, decrypted))?;
    laps.done("join")?;

    // 6. train
    let jc = inp.pipeline.join.config();
    let identifiers = jc
        .joined_dataset
        .as_ref()
        .map(|j| j.identifiers.clone())
        .unwrap_or_default();
    // A noise multiplier the contract fixes for any joined dataset is a floor.
    let contract_noise = jc
        .datasets
        .iter()
        .filter_map(|d| contract.privacy_for(&d.id).and_then(|p| p.noise_multiplier))
        .reduce(f64::max);
    let trained = info_span!("train").in_scope(|| match (joined, inp.llm_base.take()) {
        (join::Joined::Texts(texts), Some(base)) => {
            let Some(fc) = inp.pipeline.finetune.as_deref() else {
                return Err(JobError::Config(
                    "text datasets without LLM_Finetune".into(),
                ));
            };
            finetune::finetune(
                texts,
                finetune::FinetuneInputs {
                    config: fc,
                    train: &inp.pipeline.train,
                    base,
                    formats: &inp.formats,
                    contract_noise,
                    abort: &cfg.abort,
                },
            )
        }
        (join::Joined::Texts(_), None) => Err(JobError::Config(
            "LLM_Finetune: the base model was not read".into(),
        )),
        (joined, _) => train::train(
            joined,
            &train::TrainInputs {
                config: &inp.pipeline.train,
                identifiers: &identifiers,
                contract_noise,
                formats: &inp.formats,
                base_model: inp.base_model.as_deref(),
                abort: &cfg.abort,
            },
        ),
    })?;
    laps.done("train")?;

    // 7. seal
    let run_report = report::run_report(&report::RunFacts {
        inputs: &inp,
        plan: &plan,
        attested: (attester.platform(), &runtime_key),
        released: &released,
        trained: &trained,
        started,
        timings: &laps.timings,
    });
    info_span!("seal").in_scope(|| {
        seal::seal(
            cfg,
            contract,
            &plan.id,
            &released,
            &runtime_key,
            &seal::Output {
                files: &trained.files,
                metrics: &trained.metrics,
                report: &run_report,
            },
        )
    })?;
    Ok(Summary {
        metrics: trained.metrics,
        run: run_report,
    })
}
