//! Keys of type `ccr`: the local broker over the KBS protocol. One handshake per broker
//! (`auth` naming the pipeline digest and the run plan in `extra-params`, evidence whose
//! `report_data` is [`kbs_report_data`] of the broker's nonce and the runtime key, `attest`),
//! then one `resource` call per key; every answer is a JWE wrapped to the runtime key. A broker
//! that cannot be reached or no longer knows the session (it restarted) is asked again with a
//! new handshake until [`BROKER_RETRY_DEADLINE`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ccr_attest::attester::Attester;
use ccr_attest::report_data::kbs_report_data;
use ccr_images::DatasetKey;
use ccr_policy::Contract;
use ccr_policy::contract::{KeyKind, KeyRef};
use serde_json::{Value, json};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::{KeyFor, KeyRequest, ReleaseError, ReleaseOptions};
use crate::error::BrokerError;
use crate::jwe::RuntimeKey;
use crate::runs::RunPlan;
use crate::{KbsClient, client};

/// What the `ccr` brokers released.
pub(crate) struct FromKbs {
    pub(crate) keys: Vec<(KeyFor, DatasetKey)>,
    pub(crate) evidence_digest: String,
    pub(crate) brokers: Vec<String>,
    pub(crate) pin: [u8; 32],
}

/// The broker URL of a `ccr` key: `--broker`, else the key's `endpoint`.
///
/// # Errors
/// [`ReleaseError::KeyRef`] for a key of another type, [`ReleaseError::NoEndpoint`].
pub fn endpoint(opts: &ReleaseOptions, key: &KeyRef) -> Result<String, ReleaseError> {
    if key.kind != KeyKind::Ccr {
        return Err(ReleaseError::KeyRef {
            kid: key.properties.kid.clone(),
            reason: format!("type `{}` has no ccr broker", key.kind),
        });
    }
    opts.broker
        .clone()
        .or_else(|| (!key.properties.endpoint.is_empty()).then(|| key.properties.endpoint.clone()))
        .ok_or_else(|| ReleaseError::NoEndpoint {
            kid: key.properties.kid.clone(),
        })
}

pub(crate) fn release(
    opts: &ReleaseOptions,
    contract: &Contract,
    plan: &RunPlan,
    attester: &dyn Attester,
    runtime_key: &RuntimeKey,
    items: &[KeyRequest],
) -> Result<FromKbs, ReleaseError> {
    let mut by_broker: BTreeMap<String, Vec<&KeyRequest>> = BTreeMap::new();
    for w in items {
        by_broker
            .entry(endpoint(opts, &w.key)?)
            .or_default()
            .push(w);
    }
    let pin = if by_broker.is_empty() {
        [0u8; 32]
    } else {
        let pin = opts
            .broker_pin
            .as_deref()
            .ok_or(ReleaseError::PinRequired)?;
        client::parse_pin(pin).map_err(ReleaseError::Pin)?
    };
    let mut out = FromKbs {
        keys: Vec::new(),
        evidence_digest: String::new(),
        brokers: by_broker.keys().cloned().collect(),
        pin,
    };
    for (url, items) in by_broker {
        // A broker that is unreachable or lost its sessions (restarted) is asked again, with a
        // new handshake, until the deadline; keys already released are kept. The ledger
        // charges a run once per dataset however often it asks.
        let mut backoff = Backoff::start();
        let mut pending = items;
        loop {
            match session(
                contract,
                plan,
                attester,
                runtime_key,
                &url,
                &mut pending,
                &mut out,
            ) {
                Ok(()) => break,
                Err((e, true)) => match backoff.next() {
                    Some(wait) => {
                        warn!(broker = %url, error = %e, retry_in_ms = wait.as_millis() as u64, "broker unreachable or restarted: redoing the handshake");
                        std::thread::sleep(wait);
                    }
                    None => return Err(e),
                },
                Err((e, false)) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// How long a run keeps asking a `ccr` broker that is unreachable or has lost the run's session
/// (a restart): 30 s from its first try, with waits of 0.25 s doubling to 2 s.
pub const BROKER_RETRY_DEADLINE: Duration = Duration::from_secs(30);

/// Whether asking again with a new handshake may succeed: the broker could not be reached, or
/// asks for a new session ([`client::REDO_HANDSHAKE`]: it lost or expired this one, as after a
/// restart).
fn retryable(e: &BrokerError) -> bool {
    match e {
        BrokerError::Transport { .. } => true,
        BrokerError::Unauthorized(detail) => detail.ends_with(client::REDO_HANDSHAKE),
        _ => false,
    }
}

/// Waits between tries at a broker: 0.25 s doubling to 2 s, while a wait still ends before
/// [`BROKER_RETRY_DEADLINE`] from the first try.
pub(crate) struct Backoff {
    deadline: Instant,
    wait: Duration,
}

impl Backoff {
    /// Starts the clock.
    pub(crate) fn start() -> Self {
        Self {
            deadline: Instant::now() + BROKER_RETRY_DEADLINE,
            wait: Duration::from_millis(250),
        }
    }

    /// The wait before the next try, or `None` when it would pass the deadline.
    pub(crate) fn next(&mut self) -> Option<Duration> {
        let w = self.wait;
        self.wait = (w * 2).min(Duration::from_secs(2));
        (Instant::now() + w < self.deadline).then_some(w)
    }
}

/// One handshake with the broker at `url`, then each pending key (removed from `pending` once
/// released, into `out`). The error says whether another try may succeed.
#[allow(clippy::too_many_arguments)]
fn session(
    contract: &Contract,
    plan: &RunPlan,
    attester: &dyn Attester,
    runtime_key: &RuntimeKey,
    url: &str,
    pending: &mut Vec<&KeyRequest>,
    out: &mut FromKbs,
) -> Result<(), (ReleaseError, bool)> {
    let kids = pending
        .iter()
        .map(|i| i.key.properties.kid.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let rel = ReleaseError::key(&format!("the attestation handshake with {url}"), &kids);
    let handshake = |e: BrokerError| {
        let again = retryable(&e);
        (rel(e), again)
    };
    let mut client = KbsClient::new(url, out.pin);
    let challenge = client
        .auth(
            attester.platform().as_str(),
            json!({"pipeline-digest": contract.pipeline_digest, "run": plan}),
        )
        .map_err(handshake)?;
    let rd = kbs_report_data(&challenge.nonce, &runtime_key.tee_pubkey_json(), "");
    let evidence = attester.evidence(&rd).map_err(|source| {
        (
            ReleaseError::Attest {
                what: format!("evidence for {url}"),
                source,
            },
            false,
        )
    })?;
    let ans = client
        .attest(&challenge.nonce, runtime_key, evidence)
        .map_err(handshake)?;
    out.evidence_digest = ans
        .get("evidence_digest")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    info!(broker = %url, evidence_digest = %out.evidence_digest, "attested to broker");
    while let Some(item) = pending.first() {
        let (kid, what, r) = (item.kid(), item.what.to_string(), item.refused());
        let secret: Zeroizing<Vec<u8>> = client.get_resource(kid, runtime_key).map_err(|e| {
            let again = retryable(&e);
            (r(e), again)
        })?;
        let k = DatasetKey::from_slice(&secret)
            .map_err(|e| (r(BrokerError::Crypto(e.to_string())), false))?;
        info!(key = %kid, what = %what, "key released");
        out.keys.push((item.what.clone(), k));
        pending.remove(0);
    }
    Ok(())
}
