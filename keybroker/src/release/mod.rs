//! Key release, the runtime's one entry point: [`release`] takes the contract's key references,
//! the platform's [`Attester`] and the [`RuntimeKey`], and returns every key the run needs,
//! whatever released it:
//!
//! - keys of type `ccr`: the local broker, over the KBS protocol ([`kbs`]): one handshake per
//!   broker (`auth` with the run plan, evidence whose `report_data` binds the broker's nonce and
//!   the runtime key, `attest`), then one `resource` call per key, each wrapped to the runtime
//!   key;
//! - `azure`: Azure Key Vault Secure Key Release, through Microsoft Azure Attestation
//!   ([`azure`]);
//! - `gcp`: GCP Cloud KMS, through a Confidential Space token and STS ([`gcp`]); the wrapped DEK
//!   is [`gcp::WRAPPED_DEK_FILE`] in the dataset's image folder.
//!
//! With output approvers in the contract, no service releases the output key to a runtime: the
//! run makes its own, seals with it, and escrows it at the output's `ccr` broker together with
//! its signed report ([`Released::record_run`]); the consumer gets it once the approvers agree.

pub mod azure;
mod cloud;
pub mod gcp;
pub mod kbs;
mod threshold;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ccr_attest::AttestError;
use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use ccr_policy::Contract;
use ccr_policy::contract::{KeyKind, KeyRef};
use tracing::info;

use crate::error::BrokerError;
use crate::jwe::RuntimeKey;
use crate::runs::RunPlan;

pub use cloud::CloudOptions;

/// Which of the contract's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFor {
    /// The key of the dataset with this id (the contract's `datasets[].id`).
    Dataset(String),
    /// The output key (the contract's `output.key`).
    Output,
    /// The key file of the consumer's base model image (the contract's `baseModelImage.key`).
    BaseModel,
    /// Share `i` (from 1) of the threshold key of the dataset with this id.
    Share(String, u8),
}

impl std::fmt::Display for KeyFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dataset(id) => write!(f, "dataset {id}"),
            Self::Output => f.write_str("output"),
            Self::BaseModel => f.write_str("base model image"),
            Self::Share(id, i) => write!(f, "share {i} of dataset {id}"),
        }
    }
}

/// Where one of the run's keys came from (the run report's `key_release`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeySource {
    /// What the key is for: `dataset <id>`, `output`, `base model image`.
    pub key: String,
    /// The service type: `ccr`, `azure`, `gcp` or `threshold`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The contract's `properties.kid`.
    pub kid: String,
    /// For a threshold key: `k`, the shares it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// For a threshold key: each share's outcome, in the contract's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareOutcome>,
}

/// What became of one share of a threshold key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareOutcome {
    /// The share's index (from 1, its place in the contract's list).
    pub index: u8,
    /// Its service: `type kid`.
    pub service: String,
    /// `valid` (released and matching its commitment: used), `failed` (down, refused, or
    /// not matching its commitment; see `reason`), or `not waited for` (k valid shares came
    /// first).
    pub outcome: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One key to release: what it is for and the contract's reference to it.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// Dataset or output.
    pub what: KeyFor,
    /// The contract's key reference (`type`, `properties.kid`, endpoints).
    pub key: KeyRef,
}

impl KeyRequest {
    /// The key id (`properties.kid`).
    pub fn kid(&self) -> &str {
        &self.key.properties.kid
    }

    /// Wraps a service's error as [`ReleaseError::Key`] about this key.
    pub(crate) fn refused(&self) -> impl Fn(BrokerError) -> ReleaseError + use<> {
        ReleaseError::key(&self.what.to_string(), self.kid())
    }
}

/// A dataset the run reads: its id in the contract and its image folder (where a `gcp` key's
/// wrapped DEK lies).
#[derive(Debug, Clone)]
pub struct DatasetSource {
    /// The contract's `datasets[].id`.
    pub id: String,
    /// The sealed image's folder.
    pub image_dir: PathBuf,
}

/// Where the keys come from, beyond what the contract says.
#[derive(Debug, Clone, Default)]
pub struct ReleaseOptions {
    /// Broker URL for every `ccr` key (overrides each key's `endpoint`).
    pub broker: Option<String>,
    /// SHA-256 (hex, `:` separators allowed) of the `ccr` brokers' TLS certificate.
    pub broker_pin: Option<String>,
    /// Azure and GCP endpoints and TLS roots.
    pub cloud: CloudOptions,
}

/// What the run asks for: the verified contract's keys for these datasets, and the run plan the
/// `ccr` brokers charge the privacy budgets with.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseRequest<'a> {
    /// The contract (verified by the caller).
    pub contract: &'a Contract,
    /// The datasets this run reads, in the pipeline's order.
    pub datasets: &'a [DatasetSource],
    /// The folder of the base model image, when the contract names one (where a `gcp` key's
    /// wrapped DEK lies).
    pub base_model_dir: Option<&'a std::path::Path>,
    /// The run id and the epsilon/delta it plans to spend (KBS `extra-params.run`).
    pub plan: &'a RunPlan,
}

/// A key release error: each names the key (or the setting) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The platform could not produce evidence (or a Confidential Space token).
    #[error("attestation: {what}: {source}")]
    Attest {
        /// What the evidence was for.
        what: String,
        /// The platform's error.
        #[source]
        source: AttestError,
    },
    /// The platform's evidence cannot serve this key service (Azure needs SEV-SNP or TDX).
    #[error("attestation: {0}")]
    Unsupported(String),
    /// The RSA transfer key for Azure Secure Key Release could not be made.
    #[error("attestation: transfer key: {0}")]
    TransferKey(#[source] rsa::Error),
    /// A broker, a vault or KMS refused or failed to release a key.
    #[error("key release for {what} ({kid}): {source}")]
    Key {
        /// `dataset <id>`, `output`, the attestation handshake with a broker, or the run report.
        what: String,
        /// The key id (or ids).
        kid: String,
        /// The service's answer.
        #[source]
        source: BrokerError,
    },
    /// The pipeline reads a dataset the contract does not list.
    #[error("pipeline dataset `{0}` is not in the contract")]
    NotInContract(String),
    /// A `ccr` key names no broker and `--broker` is not set.
    #[error("no broker endpoint for key {kid} (set --broker)")]
    NoEndpoint {
        /// The key id.
        kid: String,
    },
    /// `ccr` keys need the broker's certificate pin.
    #[error("--broker-pin (SHA-256 of the broker's certificate) is required")]
    PinRequired,
    /// The pin is not 64 hex characters.
    #[error("--broker-pin: {0}")]
    Pin(#[source] BrokerError),
    /// With output approvers the output's broker must be one this run attests to.
    #[error(
        "output approvers need the output's broker ({0}) to be a broker of a dataset key, so that it knows this run"
    )]
    EscrowBroker(String),
    /// A key reference lacks what its type needs (an `RSA-HSM` key's `salt`, a `gcp` key's
    /// dataset folder).
    #[error("key {kid}: {reason}")]
    KeyRef {
        /// The key id.
        kid: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// A file beside a dataset image (a `gcp` key's `wrapped_dek.json`) is unreadable or
    /// malformed.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No source released the output key.
    #[error("output key not released")]
    NoOutputKey,
    /// Fewer than `k` shares of a threshold key were released and passed their commitments.
    #[error("dataset {dataset}: {valid} valid share(s) of the {k} its key needs: {}", reasons.join("; "))]
    Threshold {
        /// The dataset id.
        dataset: String,
        /// The threshold.
        k: usize,
        /// Shares released and valid.
        valid: usize,
        /// Each failed share: `share i (service kid): reason`.
        reasons: Vec<String>,
    },
}

/// What kind of failure a [`ReleaseError`] is, for the caller's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The platform's evidence could not be made.
    Attestation,
    /// A service refused or failed.
    Release,
    /// The inputs or settings are wrong (nothing was asked of a service).
    Input,
}

impl ReleaseError {
    /// Attestation, release or input failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Attest { .. } | Self::Unsupported(_) | Self::TransferKey(_) => {
                FailureKind::Attestation
            }
            Self::Key { .. } | Self::Threshold { .. } => FailureKind::Release,
            _ => FailureKind::Input,
        }
    }

    pub(crate) fn key(what: &str, kid: &str) -> impl Fn(BrokerError) -> Self + use<> {
        let (what, kid) = (what.to_string(), kid.to_string());
        move |source| Self::Key {
            what: what.clone(),
            kid: kid.clone(),
            source,
        }
    }
}

/// The keys of one run, and what the seal step needs to report to the brokers.
pub struct Released {
    /// Each dataset's key, by dataset id, in the request's order.
    pub datasets: Vec<(String, DatasetKey)>,
    /// The output key (made in the CCR when the contract names output approvers).
    pub output: DatasetKey,
    /// The base model image's key file, when the contract names a `baseModelImage`.
    pub base_model: Option<DatasetKey>,
    /// The SHA-256 (hex) of the evidence the last `ccr` broker verified (empty without one).
    pub evidence_digest: String,
    /// Where each key came from, in the order: datasets, base model image, output (a key
    /// made in the CCR for output approvers is not listed).
    pub sources: Vec<KeySource>,
    /// The `ccr` brokers that released keys (they get the run report).
    brokers: Vec<String>,
    /// Their certificate pin.
    pin: [u8; 32],
    /// With output approvers: the broker that escrows the output key.
    escrow: Option<String>,
}

impl std::fmt::Debug for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a key.
        f.debug_struct("Released")
            .field(
                "datasets",
                &self.datasets.iter().map(|d| &d.0).collect::<Vec<_>>(),
            )
            .field("evidence_digest", &self.evidence_digest)
            .field("brokers", &self.brokers)
            .field("escrow", &self.escrow)
            .finish_non_exhaustive()
    }
}

impl Released {
    /// Whether the output key is escrowed (the contract names output approvers).
    pub fn escrowed(&self) -> bool {
        self.escrow.is_some()
    }

    /// The key id the sealed output's manifest names: `runs/<run id>` when escrowed, else the
    /// contract's output `kid`.
    pub fn output_kid(&self, contract: &Contract, run_id: &str) -> String {
        if self.escrowed() {
            format!("runs/{run_id}")
        } else {
            contract.output.key.properties.kid.clone()
        }
    }

    /// Sends the run report, signed with the runtime key ([`RuntimeKey::sign_report`]), to every
    /// `ccr` broker that released a key, with the output key to the escrowing broker. Call it
    /// before committing the output: an output nobody could open is never written.
    ///
    /// # Errors
    /// [`ReleaseError::Key`] naming the run report.
    pub fn record_run(&self, run_id: &str, signed_report: &str) -> Result<(), ReleaseError> {
        for url in &self.brokers {
            let escrow = (self.escrow.as_deref() == Some(url.as_str()))
                .then(|| self.output.as_bytes().as_slice());
            // An unreachable broker is asked again until the deadline (as for the keys). A
            // conflict after a lost answer means an earlier try was recorded: only this run's
            // runtime key can sign a report for its run id.
            let mut backoff = kbs::Backoff::start();
            let mut lost_answer = false;
            loop {
                let mut cl = crate::KbsClient::new(url, self.pin);
                let e = match cl.post_report(run_id, signed_report, escrow) {
                    Ok(_) => break,
                    Err(BrokerError::Conflict(_)) if lost_answer => break,
                    Err(e) => e,
                };
                match (&e, backoff.next()) {
                    (BrokerError::Transport { .. }, Some(wait)) => {
                        tracing::warn!(broker = %url, error = %e, retry_in_ms = wait.as_millis() as u64, "broker unreachable: sending the run report again");
                        lost_answer = true;
                        std::thread::sleep(wait);
                    }
                    _ => {
                        return Err(ReleaseError::key(
                            "the run report",
                            &format!("runs/{run_id}"),
                        )(e));
                    }
                }
            }
            info!(broker = %url, run = %run_id, escrowed = escrow.is_some(), "run report recorded by the broker");
        }
        Ok(())
    }
}

/// Releases the keys held whole (`azure`, `gcp`, `ccr`): each kind's services asked at once
/// (a thread each for Key Vault and Cloud KMS, the `ccr` brokers on this one); also what the
/// `ccr` brokers said (URLs, evidence digest, pin). The first failure, in the order Key Vault,
/// Cloud KMS, `ccr`, is the error.
fn release_whole(
    req: &ReleaseRequest<'_>,
    opts: &ReleaseOptions,
    attester: &dyn Attester,
    runtime_key: &RuntimeKey,
    by_kind: &BTreeMap<KeyKind, Vec<KeyRequest>>,
) -> Result<(Vec<(KeyFor, DatasetKey)>, kbs::FromKbs), ReleaseError> {
    std::thread::scope(|scope| {
        let az = by_kind
            .get(&KeyKind::Azure)
            .map(|items| scope.spawn(|| azure::release(&opts.cloud, attester, items)));
        let gc = by_kind
            .get(&KeyKind::Gcp)
            .map(|items| scope.spawn(|| gcp::release(&opts.cloud, req, items)));
        let from_kbs = kbs::release(
            opts,
            req.contract,
            req.plan,
            attester,
            runtime_key,
            by_kind.get(&KeyKind::Ccr).map(Vec::as_slice).unwrap_or(&[]),
        );
        let join = |h: Option<std::thread::ScopedJoinHandle<'_, _>>| match h {
            Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => Ok(Vec::new()),
        };
        let (az, gc) = (join(az), join(gc));
        let mut got = az?;
        got.extend(gc?);
        let mut from_kbs = from_kbs?;
        got.append(&mut from_kbs.keys);
        Ok((got, from_kbs))
    })
}

/// Releases every key the run needs: each dataset's in `req.datasets`, and the output key (or,
/// with output approvers, a fresh one to escrow).
///
/// # Errors
/// [`ReleaseError`]: [`FailureKind::Attestation`] when the platform gives no evidence,
/// [`FailureKind::Release`] when a service refuses (its reason kept), [`FailureKind::Input`]
/// for a contract or setting that names no usable source.
pub fn release(
    req: &ReleaseRequest<'_>,
    opts: &ReleaseOptions,
    attester: &Arc<dyn Attester>,
    runtime_key: &RuntimeKey,
) -> Result<Released, ReleaseError> {
    let contract = req.contract;
    let mut wanted: Vec<KeyRequest> = Vec::new();
    for d in req.datasets {
        let cd = contract
            .datasets
            .iter()
            .find(|c| c.id == d.id)
            .ok_or_else(|| ReleaseError::NotInContract(d.id.clone()))?;
        wanted.push(KeyRequest {
            what: KeyFor::Dataset(d.id.clone()),
            key: cd.key.clone(),
        });
    }
    if let Some(m) = &contract.base_model_image {
        wanted.push(KeyRequest {
            what: KeyFor::BaseModel,
            key: m.key.clone(),
        });
    }
    let mut output = None;
    let escrow = if contract.output.approvers.is_empty() {
        wanted.push(KeyRequest {
            what: KeyFor::Output,
            key: contract.output.key.clone(),
        });
        None
    } else {
        // The approvers release the output key to the consumer later: this run makes its own
        // and escrows it at the output's broker, which must be one this run attests to.
        let url = kbs::endpoint(opts, &contract.output.key)?;
        let ds_brokers: Vec<String> = wanted
            .iter()
            .filter(|w| w.key.kind == KeyKind::Ccr)
            .map(|w| kbs::endpoint(opts, &w.key))
            .collect::<Result<_, _>>()?;
        if !ds_brokers.contains(&url) {
            return Err(ReleaseError::EscrowBroker(url));
        }
        info!(approvers = ?contract.output.approvers, broker = %url, "output key made in the CCR; escrowed with the run report until the approvers agree");
        output = Some(DatasetKey::generate());
        Some(url)
    };
    let mut sources: Vec<KeySource> = wanted
        .iter()
        .map(|w| KeySource {
            key: w.what.to_string(),
            kind: w.key.kind.to_string(),
            kid: w.kid().to_string(),
            k: None,
            shares: Vec::new(),
        })
        .collect();
    let mut by_kind: BTreeMap<KeyKind, Vec<KeyRequest>> = BTreeMap::new();
    for w in wanted {
        by_kind.entry(w.key.kind).or_default().push(w);
    }
    // Threshold keys: their shares, each from its own service, until k are valid; in a thread
    // of their own, while the other keys are released here.
    let thresholds = by_kind.remove(&KeyKind::Threshold).unwrap_or_default();
    let thresholds = (!thresholds.is_empty()).then(|| {
        let ctx = Arc::new(threshold::ShareContext::new(
            req,
            opts,
            attester,
            runtime_key,
        ));
        std::thread::spawn(move || {
            let mut o = threshold::Outcomes::default();
            for t in &thresholds {
                o.release(t, &ctx)?;
            }
            Ok::<_, ReleaseError>(o)
        })
    });
    let others = release_whole(req, opts, attester.as_ref(), runtime_key, &by_kind);
    // A threshold key's failure first (it names every share), then the others'.
    let thresholds = match thresholds {
        Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?,
        None => threshold::Outcomes::default(),
    };
    let (mut got, from_kbs) = others?;
    got.extend(thresholds.keys);
    for t in thresholds.sources {
        if let Some(s) = sources.iter_mut().find(|s| s.key == t.key) {
            *s = t;
        }
    }
    let mut brokers = from_kbs.brokers;
    for b in thresholds.brokers {
        if !brokers.contains(&b) {
            brokers.push(b);
        }
    }
    let evidence_digest = if from_kbs.evidence_digest.is_empty() {
        thresholds.evidence_digest
    } else {
        from_kbs.evidence_digest
    };
    let pin = thresholds.pin.unwrap_or(from_kbs.pin);
    let mut datasets = Vec::new();
    let mut base_model = None;
    for (what, k) in got {
        match what {
            KeyFor::Output => output = Some(k),
            KeyFor::BaseModel => base_model = Some(k),
            KeyFor::Dataset(id) | KeyFor::Share(id, _) => datasets.push((id, k)),
        }
    }
    // In the request's order.
    datasets.sort_by_key(|(id, _)| req.datasets.iter().position(|d| &d.id == id));
    Ok(Released {
        datasets,
        output: output.ok_or(ReleaseError::NoOutputKey)?,
        base_model,
        evidence_digest,
        sources,
        brokers,
        pin,
        escrow,
    })
}
