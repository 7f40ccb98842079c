//! The main job of `ccr-init`: the seven steps of DESIGN.md.
//!
//! 1. start: read and verify the contract (signatures, validity) and the pipeline (digest);
//! 2. attest: make the runtime key, pick the platform;
//! 3. release: for each broker, KBS handshake with evidence binding its nonce and the runtime
//!    key, then fetch every dataset key and the output key;
//! 4. decrypt: open each sealed image in memory with its key;
//! 5. join; 6. train; 7. seal the model, metrics and run report with the output key,
//!    atomically.
//!
//! Nothing decrypted is written to disk; keys are zeroized on drop.
//!
//! # The run and its report
//! Each run has a fresh id ([`RunPlan`]) and names it, with the epsilon it plans to spend on
//! each dataset (the pipeline's target epsilon, `privacy_params.epsilon`; none without DP), in
//! its KBS request; the broker charges the datasets' budgets with it. `run.json` (in the sealed
//! output) gives the run id, the runtime key, the evidence digest and, per dataset, the epsilon
//! planned and spent; `run.jws` is the same bytes signed with the runtime key (ES256), and the
//! runtime sends that JWS to every `ccr` broker it got keys from before it commits the output.
//! When the contract names output approvers, the runtime makes a fresh output key, seals with
//! it, and escrows it at the output's broker with the report; the output's manifest `kid` is
//! `runs/<run id>`, and the data consumer gets the key once the approvers agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ccr_attest::Platform;
use ccr_attest::attester::{Attester, SimAttester};
use ccr_attest::report_data::kbs_report_data;
use ccr_attest::sim::{SimAuthority, sim_measurement};
use ccr_images::{DatasetKey, Image, ImageBuilder};
use ccr_keybroker::runs::RunPlan;
use ccr_keybroker::{KbsClient, RuntimeKey};
use ccr_policy::contract::KeyRef;
use ccr_policy::{Contract, VerifiedContract};
use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use tracing::{info, info_span, warn};
use zeroize::Zeroizing;

use crate::join::{self, Table};
use crate::pipeline::{Join, Pipeline, PipelineError};
use crate::train;

/// Which platform to attest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformChoice {
    /// Probe the hardware; never falls back to sim.
    Auto,
    /// The software simulator, by explicit request only.
    Sim,
    /// A real platform named by the operator (detection skipped).
    Named(Platform),
}

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
    pub cloud: crate::cloud::CloudOptions,
    /// The running `ccr-init` binary (hashed into the sim measurement).
    pub init_binary: PathBuf,
    /// Set by SIGTERM/SIGINT: the job stops after the current step or epoch.
    pub abort: crate::init::Abort,
}

/// A job error; each names its step and input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reading an input failed.
    #[error("{path}: {reason}")]
    Input {
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The contract is malformed, unsigned, expired, or does not match the pipeline.
    #[error("contract {path}: {source}")]
    Contract {
        /// The contract's path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: ccr_policy::PolicyError,
    },
    /// The pipeline config is malformed.
    #[error("{path}: {source}")]
    Pipeline {
        /// The pipeline's path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: PipelineError,
    },
    /// The platform could not attest.
    #[error("attestation: {0}")]
    Attest(String),
    /// A key could not be released.
    #[error("key release for {what} ({kid}): {source}")]
    Release {
        /// `dataset <id>` or `output`.
        what: String,
        /// The key id.
        kid: String,
        /// The broker's answer.
        #[source]
        source: ccr_keybroker::BrokerError,
    },
    /// A configuration error outside a single document.
    #[error("{0}")]
    Config(String),
    /// A dataset image failed to open or decrypt.
    #[error("dataset `{dataset}`: {source}")]
    Image {
        /// The dataset id.
        dataset: String,
        /// The reason (names the file and segment).
        #[source]
        source: ccr_images::ImageError,
    },
    /// The join failed.
    #[error("join: {0}")]
    Join(#[from] join::JoinError),
    /// Training failed.
    #[error("train: {0}")]
    Train(#[from] train::TrainError),
    /// A termination signal arrived; the job stopped before writing anything.
    #[error("aborted by a termination signal during {step}")]
    Aborted {
        /// The step that was running.
        step: &'static str,
    },
    /// Sealing the output failed.
    #[error("seal output {path}: {source}")]
    Seal {
        /// The output path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: ccr_images::ImageError,
    },
}

impl JobError {
    /// The process exit status for this error: 2 inputs, 3 attestation, 4 key release,
    /// 5 decryption, 6 join or training, 7 sealing, 143 aborted by SIGTERM.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Input { .. }
            | Self::Contract { .. }
            | Self::Pipeline { .. }
            | Self::Config(_) => 2,
            Self::Attest(_) => 3,
            Self::Release { .. } => 4,
            Self::Image { .. } => 5,
            Self::Join(_) | Self::Train(_) => 6,
            Self::Seal { .. } => 7,
            Self::Aborted { .. } => 143,
        }
    }
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `metrics.json` content.
    pub metrics: Value,
    /// `run.json` content.
    pub run: Value,
}

fn read(path: &Path) -> Result<Vec<u8>, JobError> {
    std::fs::read(path).map_err(|e| JobError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Loads and verifies the contract and pipeline at `now`.
///
/// # Errors
/// [`JobError::Contract`], [`JobError::Pipeline`], [`JobError::Input`].
pub fn load_inputs(cfg: &JobConfig) -> Result<(VerifiedContract, Pipeline, Value), JobError> {
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
    let formats = output_formats(vc.contract());
    let (fits, wants) = if pipeline.train.model_config.name == "XGBoost" {
        (formats.contains(&"XGBoostJSON"), "XGBoostJSON")
    } else {
        (
            formats.contains(&"Safetensors") || formats.contains(&"ONNX"),
            "Safetensors or ONNX",
        )
    };
    if !fits {
        return Err(cerr(ccr_policy::PolicyError::Contract {
            field: "allowedModelFormats".into(),
            reason: format!(
                "lists {formats:?}; this pipeline's {} model leaves as {wants}",
                pipeline.train.model_config.name
            ),
        }));
    }
    Ok((vc, pipeline, pval))
}

/// The SHA-384 of a file (the ccr-init binary for the sim measurement).
///
/// # Errors
/// [`JobError::Input`].
pub fn file_sha384(path: &Path) -> Result<[u8; 48], JobError> {
    let err = |e: std::io::Error| JobError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(err)?);
    let mut h = Sha384::new();
    std::io::copy(&mut f, &mut h).map_err(err)?;
    Ok(h.finalize().into())
}

fn attester(cfg: &JobConfig, contract: &VerifiedContract) -> Result<Box<dyn Attester>, JobError> {
    match cfg.platform {
        PlatformChoice::Sim => {
            let dir = cfg
                .sim_state
                .clone()
                .ok_or_else(|| JobError::Config("--platform sim needs --sim-state DIR".into()))?;
            let authority =
                SimAuthority::load_or_create(&dir).map_err(|e| JobError::Attest(e.to_string()))?;
            let m = sim_measurement(
                &file_sha384(&cfg.init_binary)?,
                &contract.contract().launch_digest(),
            );
            info!(measurement = %hex::encode(m), host_data = %hex::encode(contract.digest()), "sim report values");
            Ok(Box::new(SimAttester::new(authority, m, contract.digest())))
        }
        PlatformChoice::Named(p) => {
            ccr_attest::attester::for_platform(Path::new("/"), p, &cfg.cs_audience)
                .map_err(|e| JobError::Attest(e.to_string()))
        }
        PlatformChoice::Auto => {
            let d = ccr_attest::attester::detect(Path::new("/"));
            for p in &d.probes {
                info!(probe = %p, "platform detection");
            }
            match d.platform {
                Some(p) => {
                    info!(platform = %p, found = %d.found.as_deref().unwrap_or(Path::new("")).display(), "platform detected");
                    ccr_attest::attester::for_platform(Path::new("/"), p, &cfg.cs_audience)
                        .map_err(|e| JobError::Attest(e.to_string()))
                }
                None => Err(JobError::Attest(
                    "no confidential-computing platform found (probed the Confidential Space launcher, configfs-tsm, /dev/sev-guest, /dev/tdx_guest, the Azure vTPM); \
                     ccr never falls back to sim: pass --platform sim for a local, non-confidential run"
                        .into(),
                )),
            }
        }
    }
}

/// Runs the whole job.
///
/// # Errors
/// [`JobError`]; on error nothing is written to `cfg.out`.
pub fn run(cfg: &JobConfig) -> Result<Summary, JobError> {
    let started = chrono::Utc::now();
    let mut timings: BTreeMap<&'static str, u128> = BTreeMap::new();
    let mut t0 = Instant::now();
    let abort = cfg.abort.clone();
    let mut lap = |name: &'static str, t0: &mut Instant| {
        timings.insert(name, t0.elapsed().as_millis());
        *t0 = Instant::now();
        if abort.requested() {
            return Err(JobError::Aborted { step: name });
        }
        Ok(())
    };

    // 1. start
    let (vc, pipeline, pval) = info_span!("start").in_scope(|| load_inputs(cfg))?;
    let contract = vc.contract().clone();
    if cfg.out.exists() {
        return Err(JobError::Config(format!(
            "--out {}: already exists, refusing to overwrite",
            cfg.out.display()
        )));
    }
    info!(contract = %contract.id, contract_digest = %hex::encode(vc.digest()), pipeline_digest = %contract.pipeline_digest, "contract verified");
    check_privacy_plan(&contract, &pipeline)?;
    let base_model = load_base_model(cfg, &pipeline.train)?;
    lap("start", &mut t0)?;

    // 2. attest
    let (attester, runtime_key) = info_span!("attest").in_scope(|| {
        let a = attester(cfg, &vc)?;
        let rk = RuntimeKey::generate();
        info!(platform = %a.platform(), runtime_key = %rk.fingerprint(), "runtime key made");
        Ok::<_, JobError>((a, rk))
    })?;
    lap("attest", &mut t0)?;

    // 3. release keys
    let plan = planned_privacy(&pipeline.train);
    let plan = RunPlan::new(plan.map(|p| p.0), plan.map(|p| p.1));
    info!(run = %plan.id, epsilon = ?plan.epsilon, delta = ?plan.delta, "run plan");
    let span = info_span!("release");
    let released = span.in_scope(|| {
        release_keys(
            cfg,
            &contract,
            &pipeline,
            attester.as_ref(),
            &runtime_key,
            &plan,
        )
    })?;
    let (dataset_keys, output_key, evidence_digest) =
        (released.datasets, released.output, released.evidence_digest);
    lap("release", &mut t0)?;

    // 4. decrypt
    let tables = info_span!("decrypt").in_scope(|| decrypt(cfg, &pipeline, &dataset_keys))?;
    drop(dataset_keys);
    lap("decrypt", &mut t0)?;

    // 5. join
    let jc = pipeline.join.config();
    let identifiers = jc
        .joined_dataset
        .as_ref()
        .map(|j| j.identifiers.clone())
        .unwrap_or_default();
    let joined = info_span!("join").in_scope(|| {
        let rows_in: Vec<usize> = tables.iter().map(|t| t.1.rows.len()).collect();
        let t = join::run(matches!(pipeline.join, Join::Keyed(_)), jc, tables)?;
        info!(rows_in = ?rows_in, rows = t.rows.len(), columns = t.columns.len(), "joined");
        Ok::<_, JobError>(t)
    })?;
    lap("join", &mut t0)?;

    // 6. train
    let tc = &pipeline.train;
    // A noise multiplier the contract fixes for any joined dataset is a floor.
    let contract_noise = pipeline
        .join
        .config()
        .datasets
        .iter()
        .filter_map(|d| contract.privacy_for(&d.id).and_then(|p| p.noise_multiplier))
        .reduce(f64::max);
    let (metrics, model_bytes, dp_spent) = info_span!("train").in_scope(|| {
        train_and_eval(
            &joined,
            tc,
            &identifiers,
            contract_noise,
            &output_formats(&contract),
            base_model.as_deref(),
            &cfg.abort,
        )
    })?;
    drop(joined);
    lap("train", &mut t0)?;

    // 7. seal
    let dataset_ids: Vec<&str> = pipeline
        .join
        .config()
        .datasets
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    let privacy: serde_json::Map<String, Value> = dataset_ids
        .iter()
        .map(|d| {
            (
                d.to_string(),
                json!({
                    "dp": plan.epsilon.is_some(),
                    "epsilon_planned": plan.epsilon,
                    "delta": plan.delta,
                    "epsilon_spent": dp_spent.as_ref().map(|s| s.epsilon),
                }),
            )
        })
        .collect();
    let run_report = json!({
        "format": "ccr-run/1",
        "ccr_version": env!("CARGO_PKG_VERSION"),
        "run_id": plan.id,
        "runtime_key": runtime_key.tee_pubkey_json(),
        "contract_id": contract.id,
        "contract_digest": hex::encode(vc.digest()),
        "pipeline_digest": crate::pipeline_digest_of(&pval),
        "platform": attester.platform().as_str(),
        "evidence_digest": evidence_digest,
        "datasets": pipeline.join.config().datasets.iter().map(|d| json!({"id": d.id, "name": d.name})).collect::<Vec<_>>(),
        "rows": metrics["rows"],
        "privacy": privacy,
        "dp_sgd": dp_spent.as_ref().map(|s| json!({
            "accountant": "rdp",
            "epsilon": s.epsilon,
            "delta": s.delta,
            "order": s.order,
            "steps": s.steps,
            "noise_multiplier": s.plan.noise_multiplier,
            "sampling_rate": s.plan.sampling_rate,
            "max_grad_norm": s.plan.max_grad_norm,
            "target_epsilon": s.plan.target_epsilon,
            // Released without DP: the scaler's per-feature offset and scale (fitted on the
            // training split, inside the model) and the held-out metrics. The training loss and
            // validation metric are not reported for DP runs.
            "not_covered": ["scaler.offset and scaler.scale in the model", "held-out metrics"],
        })),
        "metrics": metrics_summary(&metrics),
        "output_approvers": contract.output.approvers,
        "started": started.to_rfc3339(),
        "finished": chrono::Utc::now().to_rfc3339(),
        "timings_ms": timings,
    });
    info_span!("seal").in_scope(|| {
        let serr = |source| JobError::Seal {
            path: cfg.out.clone(),
            source,
        };
        let kid = if released.escrow.is_some() {
            format!("runs/{}", plan.id)
        } else {
            contract.output.key.properties.kid.clone()
        };
        let mut b = ImageBuilder::new(&cfg.out, &contract.output.id, &kid, &output_key)
            .map_err(serr)?;
        let m = serde_json::to_vec_pretty(&metrics).unwrap_or_default();
        let r = serde_json::to_vec_pretty(&run_report).unwrap_or_default();
        let signed = runtime_key.sign_report(&r);
        for (name, bytes) in &model_bytes {
            b.add_file(name, Path::new("<model>"), &bytes[..])
                .map_err(serr)?;
        }
        b.add_file("metrics.json", Path::new("<metrics>"), &m[..])
            .map_err(serr)?;
        b.add_file("run.json", Path::new("<run report>"), &r[..])
            .map_err(serr)?;
        b.add_file("run.jws", Path::new("<signed run report>"), signed.as_bytes())
            .map_err(serr)?;
        // The brokers record the report (and hold the escrowed output key) before the output
        // exists: an output nobody could ever open is never written.
        for url in &released.brokers {
            let escrow = (released.escrow.as_deref() == Some(url.as_str()))
                .then(|| output_key.as_bytes().as_slice());
            let mut cl = KbsClient::new(url, released.pin);
            cl.post_report(&plan.id, &signed, escrow)
                .map_err(|source| JobError::Release {
                    what: "the run report".into(),
                    kid: format!("runs/{}", plan.id),
                    source,
                })?;
            info!(broker = %url, run = %plan.id, escrowed = escrow.is_some(), "run report recorded by the broker");
        }
        b.commit().map_err(serr)?;
        info!(out = %cfg.out.display(), "output sealed");
        Ok::<_, JobError>(())
    })?;
    Ok(Summary {
        metrics,
        run: run_report,
    })
}

fn endpoint(cfg: &JobConfig, key: &KeyRef) -> Result<String, JobError> {
    if key.kind != "ccr" {
        return Err(JobError::Config(format!(
            "key type `{}` ({}): known types are ccr, azure, gcp",
            key.kind, key.properties.kid
        )));
    }
    cfg.broker
        .clone()
        .or_else(|| (!key.properties.endpoint.is_empty()).then(|| key.properties.endpoint.clone()))
        .ok_or_else(|| {
            JobError::Config(format!(
                "no broker endpoint for key {} (set --broker)",
                key.properties.kid
            ))
        })
}

/// What step 3 got.
struct Released {
    datasets: Vec<(String, DatasetKey)>,
    output: DatasetKey,
    evidence_digest: String,
    /// The `ccr` brokers that released keys (they get the run report).
    brokers: Vec<String>,
    /// Their certificate pin.
    pin: [u8; 32],
    /// With output approvers: the broker that escrows the output key.
    escrow: Option<String>,
}

/// The (epsilon, delta) a private training step plans to spend on each dataset: its
/// `privacy_params` `epsilon` and `delta` (the targets the accountant keeps to); `None` without
/// DP.
pub fn planned_privacy(train: &crate::pipeline::TrainConfig) -> Option<(f64, f64)> {
    if !train.is_private {
        return None;
    }
    let p = train.privacy_params.as_ref()?;
    let num = |k: &str| {
        p.get(k).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    num("epsilon").zip(num("delta"))
}

/// Reads the consumer's base model when the pipeline names `model_format` `Safetensors`
/// (from `--base-model`, else `model_config.model_path`) and checks its SHA-256 against
/// `model_config.model_sha256` (which the signed pipeline digest fixes).
///
/// # Errors
/// [`JobError::Input`] naming the file (unreadable, or another digest).
fn load_base_model(
    cfg: &JobConfig,
    tc: &crate::pipeline::TrainConfig,
) -> Result<Option<Vec<u8>>, JobError> {
    let mc = &tc.model_config;
    if mc.model_format.as_deref() != Some("Safetensors") {
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
    let Some((epsilon, delta)) = planned_privacy(&pipeline.train) else {
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

/// The held-out metrics for the run report (the numbers only; no per-row predictions).
fn metrics_summary(metrics: &Value) -> Value {
    metrics.get("test").cloned().unwrap_or(Value::Null)
}

/// A dataset's image folder: `--datasets/<name>`, or its `mount_path`.
fn dataset_dir(cfg: &JobConfig, name: &str, mount_path: &str) -> PathBuf {
    match &cfg.datasets {
        Some(root) => root.join(name),
        None => PathBuf::from(mount_path),
    }
}

fn release_keys(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
    attester: &dyn Attester,
    runtime_key: &RuntimeKey,
    plan: &RunPlan,
) -> Result<Released, JobError> {
    // Everything to fetch: (what, key ref).
    let mut wanted: Vec<(String, String, KeyRef)> = Vec::new();
    for d in &pipeline.join.config().datasets {
        let cd = contract
            .datasets
            .iter()
            .find(|c| c.id == d.id)
            .ok_or_else(|| {
                JobError::Config(format!(
                    "pipeline dataset `{}` ({}) is not in the contract",
                    d.id, d.name
                ))
            })?;
        wanted.push((format!("dataset {}", d.id), d.id.clone(), cd.key.clone()));
    }
    let mut output = None;
    let escrow = if contract.output.approvers.is_empty() {
        wanted.push((
            "output".into(),
            contract.output.id.clone(),
            contract.output.key.clone(),
        ));
        None
    } else {
        // The approvers release the output key to the consumer later: this run makes its own
        // and escrows it at the output's broker, which must be one this run attests to.
        let url = endpoint(cfg, &contract.output.key)?;
        let ds_brokers: Vec<String> = wanted
            .iter()
            .filter(|w| w.2.kind == "ccr")
            .map(|w| endpoint(cfg, &w.2))
            .collect::<Result<_, _>>()?;
        if !ds_brokers.contains(&url) {
            return Err(JobError::Config(format!(
                "output approvers need the output's broker ({url}) to be a broker of a dataset key, so that it knows this run"
            )));
        }
        info!(approvers = ?contract.output.approvers, broker = %url, "output key made in the CCR; escrowed with the run report until the approvers agree");
        output = Some(DatasetKey::generate());
        Some(url)
    };
    let mut keys: Vec<(String, DatasetKey)> = Vec::new();
    let mut evidence_digest = String::new();
    let (azure, rest): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|w| w.2.kind == "azure");
    let (gcp, rest): (Vec<_>, Vec<_>) = rest.into_iter().partition(|w| w.2.kind == "gcp");
    let mut from_cloud = Vec::new();
    if !azure.is_empty() {
        from_cloud.extend(crate::cloud::release_azure(&cfg.cloud, attester, &azure)?);
    }
    if !gcp.is_empty() {
        let dir = |id: &str| {
            pipeline
                .join
                .config()
                .datasets
                .iter()
                .find(|d| d.id == id)
                .map(|d| dataset_dir(cfg, &d.name, &d.mount_path))
        };
        from_cloud.extend(crate::cloud::release_gcp(&cfg.cloud, &dir, &gcp)?);
    }
    for (what, id, k) in from_cloud {
        if what == "output" {
            output = Some(k);
        } else {
            keys.push((id, k));
        }
    }
    let mut by_broker: BTreeMap<String, Vec<(String, String, KeyRef)>> = BTreeMap::new();
    for w in rest {
        by_broker.entry(endpoint(cfg, &w.2)?).or_default().push(w);
    }
    let pin = if by_broker.is_empty() {
        [0u8; 32]
    } else {
        let pin = cfg.broker_pin.as_deref().ok_or_else(|| {
            JobError::Config(
                "--broker-pin (SHA-256 of the broker's certificate) is required".into(),
            )
        })?;
        ccr_keybroker::client::parse_pin(pin).map_err(|e| JobError::Config(e.to_string()))?
    };
    let brokers: Vec<String> = by_broker.keys().cloned().collect();
    for (url, items) in by_broker {
        let rel = |source| JobError::Release {
            what: format!("the attestation handshake with {url}"),
            kid: items
                .iter()
                .map(|i| i.2.properties.kid.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            source,
        };
        let mut client = KbsClient::new(&url, pin);
        let challenge = client
            .auth(
                attester.platform().as_str(),
                json!({"pipeline-digest": contract.pipeline_digest, "run": plan}),
            )
            .map_err(rel)?;
        let rd = kbs_report_data(&challenge.nonce, &runtime_key.tee_pubkey_json(), "");
        let evidence = attester
            .evidence(&rd)
            .map_err(|e| JobError::Attest(e.to_string()))?;
        let ans = client
            .attest(&challenge.nonce, runtime_key, evidence)
            .map_err(rel)?;
        evidence_digest = ans
            .get("evidence_digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        info!(broker = %url, evidence_digest = %evidence_digest, "attested to broker");
        for (what, id, key) in items {
            let secret: Zeroizing<Vec<u8>> = client
                .get_resource(&key.properties.kid, runtime_key)
                .map_err(|source| JobError::Release {
                    what: what.clone(),
                    kid: key.properties.kid.clone(),
                    source,
                })?;
            let k = DatasetKey::from_slice(&secret).map_err(|e| JobError::Release {
                what: what.clone(),
                kid: key.properties.kid.clone(),
                source: ccr_keybroker::BrokerError::Crypto(e.to_string()),
            })?;
            info!(key = %key.properties.kid, what = %what, "key released");
            if what == "output" {
                output = Some(k);
            } else {
                keys.push((id, k));
            }
        }
    }
    let output = output.ok_or_else(|| JobError::Config("output key not released".into()))?;
    Ok(Released {
        datasets: keys,
        output,
        evidence_digest,
        brokers,
        pin,
        escrow,
    })
}

fn decrypt(
    cfg: &JobConfig,
    pipeline: &Pipeline,
    keys: &[(String, DatasetKey)],
) -> Result<Vec<(String, Table)>, JobError> {
    let mut out = Vec::new();
    for d in &pipeline.join.config().datasets {
        let ierr = |source| JobError::Image {
            dataset: d.id.clone(),
            source,
        };
        let key = &keys
            .iter()
            .find(|k| k.0 == d.id)
            .ok_or_else(|| JobError::Config(format!("no key for dataset {}", d.id)))?
            .1;
        let dir = dataset_dir(cfg, &d.name, &d.mount_path);
        let image = Image::load(&dir).map_err(ierr)?;
        image.expect_dataset(&d.id).map_err(ierr)?;
        let entry = image
            .manifest()
            .files
            .iter()
            .find(|f| f.path == d.file)
            .ok_or_else(|| {
                JobError::Config(format!(
                    "dataset `{}`: file `{}` is not in image {}",
                    d.id,
                    d.file,
                    dir.display()
                ))
            })?;
        let plain = image.read_file(entry, &d.id, key).map_err(ierr)?;
        let mut t = join::parse_csv(&d.name, &d.file, &plain)?;
        drop(plain);
        if let Some(sel) = &d.select_variables {
            t = join::select_columns(&t, sel, &d.name)?;
        }
        info!(dataset = %d.id, name = %d.name, rows = t.rows.len(), columns = t.columns.len(), "decrypted");
        out.push((d.name.clone(), t));
    }
    Ok(out)
}

/// The model files the output carries: `model.safetensors` and `model.onnx`, or those of them
/// the contract's `allowedModelFormats` names.
pub fn output_formats(contract: &Contract) -> Vec<&'static str> {
    ccr_policy::contract::MODEL_FORMATS
        .iter()
        .copied()
        .filter(|f| {
            contract
                .allowed_model_formats
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == f))
        })
        .collect()
}

/// What training gives the seal step: metrics.json, the model files, what DP spent.
type TrainOutput = (Value, Vec<(String, Vec<u8>)>, Option<train::DpSpent>);

/// What a fitted model gives the metrics and the output.
struct Fitted {
    /// Held-out outputs, row-major `[n, k]`.
    out: Vec<f32>,
    k: usize,
    epochs: Vec<train::EpochLog>,
    dp: Option<train::DpSpent>,
    files: Vec<(String, Vec<u8>)>,
}

fn fit_xgb(
    p: &train::Prepared,
    sp: &train::Split,
    tc: &crate::pipeline::TrainConfig,
    formats: &[&str],
) -> Result<Fitted, JobError> {
    if !formats.contains(&"XGBoostJSON") {
        return Err(JobError::Config(
            "Train_XGB writes model.xgb.json, and the contract's allowedModelFormats does not list XGBoostJSON".into(),
        ));
    }
    let t0 = Instant::now();
    let m = crate::xgb::train(p, sp, tc)?;
    info!(objective = %m.objective, boosters = m.boosters.len(), seconds = t0.elapsed().as_secs_f64(), "Train_XGB done");
    Ok(Fitted {
        out: m.predict(p, &sp.test),
        k: m.outputs,
        epochs: Vec::new(),
        dp: None,
        files: vec![("model.xgb.json".to_string(), m.to_json(p)?)],
    })
}

fn fit_net(
    p: &train::Prepared,
    sp: &train::Split,
    tc: &crate::pipeline::TrainConfig,
    contract_noise: Option<f64>,
    formats: &[&str],
    base_model: Option<&[u8]>,
    abort: &crate::init::Abort,
) -> Result<Fitted, JobError> {
    let total = tc.total_epochs;
    let dp = if tc.is_private {
        let plan = train::plan_dp(tc, sp.train.len(), contract_noise)?;
        info!(
            noise_multiplier = plan.noise_multiplier,
            sampling_rate = plan.sampling_rate,
            max_grad_norm = plan.max_grad_norm,
            steps = plan.max_steps,
            target_epsilon = plan.target_epsilon,
            delta = plan.delta,
            "DP-SGD plan"
        );
        Some(plan)
    } else {
        None
    };
    // A progress bar on a terminal; one structured log line per epoch otherwise.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "train [{bar:30}] epoch {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let trained = train::train(p, sp, tc, dp.as_ref(), base_model, |e| {
        match &bar {
            Some(b) => {
                let eps = e.epsilon.map(|x| format!(" epsilon {x:.3}")).unwrap_or_default();
                let loss = e
                    .train_loss
                    .map(|l| format!("loss {l:.4}"))
                    .unwrap_or_default();
                b.set_message(format!("{loss}{eps}"));
                b.inc(1);
            }
            None => {
                info!(epoch = e.epoch, epochs = total, train_loss = ?e.train_loss, epsilon = ?e.epsilon, val_metric = ?e.val_metric, "epoch");
            }
        }
        !abort.requested()
    })?
    .ok_or(JobError::Aborted { step: "train" })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(s) = &trained.dp {
        info!(
            epsilon = s.epsilon,
            delta = s.delta,
            steps = s.steps,
            "DP-SGD done: privacy spent"
        );
    }
    let device = train::device();
    let xte = trained.scaler.transform(p, &sp.test);
    let out = train::predict(&trained.net, &device, &xte, sp.test.len(), p.d())?;
    let k = *trained.dims.last().unwrap_or(&1);
    let mut files = vec![(
        "loss_curve.svg".to_string(),
        train::loss_curve_svg(&trained.epochs).into_bytes(),
    )];
    if formats.contains(&"Safetensors") {
        files.push((
            "model.safetensors".to_string(),
            train::to_safetensors(&trained, p, tc)?,
        ));
    }
    if formats.contains(&"ONNX") {
        let meta = vec![
            (
                "feature_columns".to_string(),
                serde_json::to_string(&p.features).unwrap_or_default(),
            ),
            (
                "classes".to_string(),
                serde_json::to_string(&p.classes).unwrap_or_default(),
            ),
            ("task".to_string(), tc.task_type.clone()),
            ("model".to_string(), tc.model_config.name.clone()),
        ];
        let w = train::onnx_weights(&trained, tc, meta)?;
        files.push(("model.onnx".to_string(), crate::onnx::export(&w)));
    }
    Ok(Fitted {
        out,
        k,
        epochs: trained.epochs,
        dp: trained.dp,
        files,
    })
}

fn train_and_eval(
    joined: &Table,
    tc: &crate::pipeline::TrainConfig,
    identifiers: &[String],
    contract_noise: Option<f64>,
    formats: &[&str],
    base_model: Option<&[u8]>,
    abort: &crate::init::Abort,
) -> Result<TrainOutput, JobError> {
    let p = train::prepare(joined, tc, identifiers)?;
    let sp = train::split(&p, tc);
    info!(
        rows = p.n(),
        features = p.d(),
        train = sp.train.len(),
        val = sp.val.len(),
        test = sp.test.len(),
        "data prepared"
    );
    let fitted = if tc.model_config.name == "XGBoost" {
        fit_xgb(&p, &sp, tc, formats)?
    } else {
        fit_net(&p, &sp, tc, contract_noise, formats, base_model, abort)?
    };
    let labels: Vec<f32> = sp.test.iter().map(|&i| p.y[i]).collect();
    let classification = tc.task_type == "classification";
    let (out, k) = (&fitted.out, fitted.k);
    let preds = if classification {
        train::argmax_rows(out, k)
    } else {
        out.clone()
    };
    let mut test = serde_json::Map::new();
    test.insert("n".into(), json!(sp.test.len()));
    for m in &tc.metrics {
        let v = match m.as_str() {
            "accuracy" if classification => json!(train::accuracy(&preds, &labels)),
            "roc_auc" if classification && k == 2 => {
                json!(train::roc_auc(&train::positive_scores(out), &labels))
            }
            "f1" if classification => json!(train::f1(&preds, &labels, p.classes.len())),
            "mse" if !classification => json!(train::mse(&preds, &labels)),
            _ => {
                warn!(metric = %m, "metric does not apply to this task; skipped");
                continue;
            }
        };
        test.insert(m.clone(), v);
    }
    let test_metrics = Value::Object(test.clone());
    info!(metrics = %test_metrics, "held-out metrics");
    let mut metrics = json!({
        "format": "ccr-metrics/1",
        "task": tc.task_type,
        "model": tc.model_config.name,
        "features": p.features,
        "classes": p.classes,
        "rows": {"total": p.n(), "train": sp.train.len(), "val": sp.val.len(), "test": sp.test.len()},
        "test": Value::Object(test),
        "epochs": fitted.epochs,
    });
    if let Some(s) = &fitted.dp {
        metrics["dp_sgd"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    if tc.export_test_predictions {
        let rows: Vec<Value> = sp
            .test
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                json!({
                    "id": p.ids[i],
                    "label": p.y[i],
                    "prediction": preds[j],
                    "output": out[j * k..(j + 1) * k],
                })
            })
            .collect();
        metrics["test_predictions"] = Value::Array(rows);
    }
    Ok((metrics, fitted.files, fitted.dp))
}
