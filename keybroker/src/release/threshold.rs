//! Keys of type `threshold` (ccr addition, issue 17): a dataset key split into n shares
//! ([`crate::threshold`]), each share's 32-byte value held by its own service (`ccr`, `azure`
//! or `gcp`, each checking the evidence against its own release policy). The runtime asks
//! every share's service at once (one thread each) and takes the answers as they come until it
//! holds `k` shares that match their commitments (later answers are dropped, and the job waits
//! for them: a service that hangs is bounded by its client's deadline); a service that is down, refuses, or answers a share that fails its
//! commitment is named in the log and, when fewer than `k` are valid, in the error. The key is
//! rebuilt in zeroizing memory and the shares dropped.

use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use ccr_policy::contract::{KeyKind, KeyRef};
use tracing::{info, warn};

use super::{KeyFor, KeyRequest, ReleaseError, ReleaseOptions, ReleaseRequest, azure, gcp, kbs};
use crate::jwe::RuntimeKey;
use crate::threshold::{Share, combine};

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
}

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
        req: &ReleaseRequest<'_>,
        opts: &ReleaseOptions,
        attester: &dyn Attester,
        runtime_key: &RuntimeKey,
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
        let mut valid: Vec<Share> = Vec::with_capacity(k);
        let mut reasons = Vec::new();
        let items: Vec<(u8, KeyRequest)> = refs
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let index = u8::try_from(j + 1).unwrap_or(u8::MAX);
                let what = KeyFor::Share(dataset.clone(), index);
                (
                    index,
                    KeyRequest {
                        what,
                        key: r.key_ref(),
                    },
                )
            })
            .collect();
        // Every share's service asked at once; the answers taken as they come until k are
        // valid (the others, already asked, are dropped when they answer).
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            for (j, (index, item)) in items.iter().enumerate() {
                let tx = tx.clone();
                scope.spawn(move || {
                    let got = release_one(item, req, opts, attester, runtime_key);
                    let _ = tx.send((j, *index, got));
                });
            }
            drop(tx);
            for (j, index, got) in rx {
                let (r, service) = (&refs[j], describe(&items[j].1.key));
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
                if valid.len() == k {
                    // Answers after the k-th valid share: dropped (zeroized), failures logged.
                    if let Err(reason) = got {
                        warn!(dataset = %dataset, share = index, service = %service, reason = %reason, "share not obtained (not needed)");
                    }
                    continue;
                }
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
                        valid.push(share);
                    }
                    Err(reason) => {
                        warn!(dataset = %dataset, share = index, service = %service, reason = %reason, "share not obtained");
                        reasons.push(format!("share {index} ({service}): {reason}"));
                    }
                }
            }
        });
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
        info!(dataset = %dataset, k, n = refs.len(), failed = reasons.len(), "threshold key rebuilt");
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
    req: &ReleaseRequest<'_>,
    opts: &ReleaseOptions,
    attester: &dyn Attester,
    runtime_key: &RuntimeKey,
) -> Result<(DatasetKey, Option<KbsFacts>), String> {
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
            one(gcp::release(&opts.cloud, req, items).map_err(|e| e.to_string())?)?,
            None,
        )),
        KeyKind::Threshold => Err("a share cannot itself be a threshold key".into()),
    }
}

/// `type kid` of a share's service, for the log and the errors.
fn describe(k: &KeyRef) -> String {
    format!("{} {}", k.kind, k.properties.kid)
}
