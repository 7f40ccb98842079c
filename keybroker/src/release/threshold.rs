//! Keys of type `threshold` (ccr addition, issue 17): a dataset key split into n shares
//! ([`crate::threshold`]), each share's 32-byte value held by its own service (`ccr`, `azure`
//! or `gcp`, each checking the evidence against its own release policy). The runtime asks
//! every share's service at once (one thread each) and takes the answers as they come until it
//! holds `k` shares that match their commitments; then it stops listening: the threads still
//! waiting on a slow service are left to end on their own (their answers, when they come, are
//! dropped and zeroized), so the release takes the time of the k-th valid answer, not of the
//! slowest service. A service that is down, refuses, or answers a share that fails its
//! commitment before then is named in the log and, when fewer than `k` are valid, in the error.
//! The key is rebuilt in zeroizing memory and the shares dropped.
//!
//! A `ccr` broker whose share is released after the wait has ended has charged the run's
//! budget (brokers charge on release) but does not get the run report, as for a run that
//! stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use ccr_policy::Contract;
use ccr_policy::contract::{KeyKind, KeyRef};
use tracing::{info, warn};

use super::{
    DatasetSource, KeyFor, KeyRequest, KeySource, ReleaseError, ReleaseOptions, ReleaseRequest,
    ShareOutcome, azure, gcp, kbs,
};
use crate::jwe::RuntimeKey;
use crate::runs::RunPlan;
use crate::threshold::{Share, combine};

/// Everything a share's release needs, owned, so that a share's thread may outlive the wait
/// for `k` valid answers. The runtime key is a clone (zeroized on drop, as the original).
pub(super) struct ShareContext {
    contract: Contract,
    datasets: Vec<DatasetSource>,
    base_model_dir: Option<PathBuf>,
    plan: RunPlan,
    opts: ReleaseOptions,
    attester: Arc<dyn Attester>,
    runtime_key: RuntimeKey,
}

impl ShareContext {
    /// Copies what the shares' releases read out of the run's request.
    pub(super) fn new(
        req: &ReleaseRequest<'_>,
        opts: &ReleaseOptions,
        attester: &Arc<dyn Attester>,
        runtime_key: &RuntimeKey,
    ) -> Self {
        Self {
            contract: req.contract.clone(),
            datasets: req.datasets.to_vec(),
            base_model_dir: req.base_model_dir.map(PathBuf::from),
            plan: req.plan.clone(),
            opts: opts.clone(),
            attester: Arc::clone(attester),
            runtime_key: runtime_key.clone(),
        }
    }

    fn request(&self) -> ReleaseRequest<'_> {
        ReleaseRequest {
            contract: &self.contract,
            datasets: &self.datasets,
            base_model_dir: self.base_model_dir.as_deref(),
            plan: &self.plan,
        }
    }
}

/// What the threshold keys of a run gave.
#[derive(Default)]
pub(super) struct Outcomes {
    /// Each rebuilt dataset key.
    pub(super) keys: Vec<(KeyFor, DatasetKey)>,
    /// The `ccr` brokers that released shares (they get the run report).
    pub(super) brokers: Vec<String>,
    /// The evidence digest the last of them verified.
    pub(super) evidence_digest: String,
    /// Their certificate pin.
    pub(super) pin: Option<[u8; 32]>,
    /// Each rebuilt key's shares and what became of them (for the run report).
    pub(super) sources: Vec<KeySource>,
}

/// One share's answer, from its thread: (position in the contract's list, share index, value).
type Answer = (usize, u8, Result<(DatasetKey, Option<KbsFacts>), String>);

impl Outcomes {
    /// Releases the shares of the threshold key `t` (a dataset's) and rebuilds it.
    ///
    /// # Errors
    /// [`ReleaseError::Threshold`] naming every share that failed and why, when fewer than `k`
    /// are valid; [`ReleaseError::KeyRef`] for a threshold key on something else than a
    /// dataset or without `k` and `shares`.
    pub(super) fn release(
        &mut self,
        t: &KeyRequest,
        ctx: &Arc<ShareContext>,
    ) -> Result<(), ReleaseError> {
        let kid = t.kid().to_string();
        let (KeyFor::Dataset(dataset), Some(k), Some(refs)) = (
            &t.what,
            t.key.properties.k,
            t.key.properties.shares.as_ref(),
        ) else {
            return Err(ReleaseError::KeyRef {
                kid,
                reason: "a threshold key is a dataset's, with k and shares".into(),
            });
        };
        // Every share's service asked at once, one thread each.
        let (tx, rx) = mpsc::channel::<Answer>();
        for (j, r) in refs.iter().enumerate() {
            let index = u8::try_from(j + 1).unwrap_or(u8::MAX);
            let item = KeyRequest {
                what: KeyFor::Share(dataset.clone(), index),
                key: r.key_ref(),
            };
            let (tx, ctx) = (tx.clone(), Arc::clone(ctx));
            std::thread::spawn(move || {
                let got = release_one(&item, &ctx);
                // After the wait has ended nobody listens: the answer is dropped (zeroized).
                let _ = tx.send((j, index, got));
            });
        }
        drop(tx);
        let mut valid: Vec<Share> = Vec::with_capacity(k);
        let mut reasons = Vec::new();
        let mut outcomes: Vec<ShareOutcome> = refs
            .iter()
            .enumerate()
            .map(|(j, r)| ShareOutcome {
                index: u8::try_from(j + 1).unwrap_or(u8::MAX),
                service: describe(&r.key_ref()),
                outcome: "not waited for",
                reason: None,
            })
            .collect();
        // The answers taken as they come until k are valid, or every thread has answered.
        for (j, index, got) in rx.iter() {
            let (r, service) = (&refs[j], describe(&refs[j].key_ref()));
            // A ccr broker that released anything knows the run: it gets the run report.
            let got = got.map(|(value, from_kbs)| {
                if let Some((brokers, digest, pin)) = from_kbs {
                    for b in brokers {
                        if !self.brokers.contains(&b) {
                            self.brokers.push(b);
                        }
                    }
                    self.evidence_digest = digest;
                    self.pin = Some(pin);
                }
                value
            });
            let checked = got.and_then(|value| {
                let share = Share::from_value(index, &value).map_err(|e| e.to_string())?;
                match share.matches(&r.commitment) {
                    Ok(true) => Ok(share),
                    Ok(false) => Err("the released share does not match its commitment".into()),
                    Err(e) => Err(e.to_string()),
                }
            });
            match checked {
                Ok(share) => {
                    info!(dataset = %dataset, share = index, service = %service, "share released and matches its commitment");
                    outcomes[j].outcome = "valid";
                    valid.push(share);
                    if valid.len() == k {
                        break;
                    }
                }
                Err(reason) => {
                    warn!(dataset = %dataset, share = index, service = %service, reason = %reason, "share not obtained");
                    reasons.push(format!("share {index} ({service}): {reason}"));
                    outcomes[j].outcome = "failed";
                    outcomes[j].reason = Some(reason);
                }
            }
        }
        drop(rx);
        if valid.len() < k {
            return Err(ReleaseError::Threshold {
                dataset: dataset.clone(),
                k,
                valid: valid.len(),
                reasons,
            });
        }
        let key = combine(&valid, k).map_err(|e| ReleaseError::KeyRef {
            kid,
            reason: e.to_string(),
        })?;
        drop(valid);
        let unheard = refs.len() - k - reasons.len();
        info!(dataset = %dataset, k, n = refs.len(), failed = reasons.len(), not_waited_for = unheard, "threshold key rebuilt");
        self.sources.push(KeySource {
            key: t.what.to_string(),
            kind: t.key.kind.to_string(),
            kid: t.kid().to_string(),
            k: Some(k),
            shares: outcomes,
        });
        self.keys.push((t.what.clone(), key));
        Ok(())
    }
}

/// What a `ccr` broker's release adds to the run: its URL(s), the evidence digest it verified,
/// the certificate pin.
type KbsFacts = (Vec<String>, String, [u8; 32]);

/// One share's value from its service; the error as text (it is reported, not raised).
fn release_one(
    item: &KeyRequest,
    ctx: &ShareContext,
) -> Result<(DatasetKey, Option<KbsFacts>), String> {
    let (req, opts, attester, runtime_key) = (
        ctx.request(),
        &ctx.opts,
        ctx.attester.as_ref(),
        &ctx.runtime_key,
    );
    let items = std::slice::from_ref(item);
    let one = |mut v: Vec<(KeyFor, DatasetKey)>| {
        v.pop()
            .map(|(_, k)| k)
            .ok_or_else(|| "the service released nothing".to_string())
    };
    match item.key.kind {
        KeyKind::Ccr => {
            let from = kbs::release(opts, req.contract, req.plan, attester, runtime_key, items)
                .map_err(|e| e.to_string())?;
            let facts = (from.brokers, from.evidence_digest, from.pin);
            Ok((one(from.keys)?, Some(facts)))
        }
        KeyKind::Azure => Ok((
            one(azure::release(&opts.cloud, attester, items).map_err(|e| e.to_string())?)?,
            None,
        )),
        KeyKind::Gcp => Ok((
            one(gcp::release(&opts.cloud, &req, items).map_err(|e| e.to_string())?)?,
            None,
        )),
        KeyKind::Threshold => Err("a share cannot itself be a threshold key".into()),
    }
}

/// `type kid` of a share's service, for the log and the errors.
fn describe(k: &KeyRef) -> String {
    format!("{} {}", k.kind, k.properties.kid)
}
