//! Keys of type `ccr`: the local broker over the KBS protocol. One handshake per broker
//! (`auth` naming the pipeline digest and the run plan in `extra-params`, evidence whose
//! `report_data` is [`kbs_report_data`] of the broker's nonce and the runtime key, `attest`),
//! then one `resource` call per key; every answer is a JWE wrapped to the runtime key.

use std::collections::BTreeMap;

use ccr_attest::attester::Attester;
use ccr_attest::report_data::kbs_report_data;
use ccr_images::DatasetKey;
use ccr_policy::Contract;
use ccr_policy::contract::{KeyKind, KeyRef};
use serde_json::{Value, json};
use tracing::info;
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
        let kids = items
            .iter()
            .map(|i| i.key.properties.kid.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let rel = ReleaseError::key(&format!("the attestation handshake with {url}"), &kids);
        let mut client = KbsClient::new(&url, pin);
        let challenge = client
            .auth(
                attester.platform().as_str(),
                json!({"pipeline-digest": contract.pipeline_digest, "run": plan}),
            )
            .map_err(&rel)?;
        let rd = kbs_report_data(&challenge.nonce, &runtime_key.tee_pubkey_json(), "");
        let evidence = attester
            .evidence(&rd)
            .map_err(|source| ReleaseError::Attest {
                what: format!("evidence for {url}"),
                source,
            })?;
        let ans = client
            .attest(&challenge.nonce, runtime_key, evidence)
            .map_err(&rel)?;
        out.evidence_digest = ans
            .get("evidence_digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        info!(broker = %url, evidence_digest = %out.evidence_digest, "attested to broker");
        for item in items {
            let (kid, what, r) = (item.kid(), item.what.to_string(), item.refused());
            let secret: Zeroizing<Vec<u8>> = client.get_resource(kid, runtime_key).map_err(&r)?;
            let k = DatasetKey::from_slice(&secret)
                .map_err(|e| r(BrokerError::Crypto(e.to_string())))?;
            info!(key = %kid, what = %what, "key released");
            out.keys.push((item.what.clone(), k));
        }
    }
    Ok(out)
}
