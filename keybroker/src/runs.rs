//! Runs, the privacy ledger and output approval: what the runtime and the parties send the
//! local broker beyond the KBS handshake.
//!
//! - **Run plan.** The runtime names its run in the KBS `Request`'s `extra-params`:
//!   `"run": {"id": <32 hex>, "epsilon": <number>|null, "delta": <number>|null}`. `epsilon` is
//!   the most the run will spend on each dataset it reads (the pipeline config's target
//!   epsilon, which the accountant keeps to); `null` means no DP. The broker charges each
//!   dataset's budget with it when it releases that dataset's key (`ccr_keybroker_server::store::Store::reserve`).
//!   The `Request` travels over the TLS channel whose session the evidence binds (the nonce),
//!   and only the measured runtime makes it.
//! - **Run report.** At the end the runtime sends `POST /kbs/v0/runs/{id}/report` with
//!   `{"report": JWS, "output-key"?: base64}`: `report` is a compact JWS (ES256, `typ`
//!   [`REPORT_TYP`]) by the runtime key the run attested, over `run.json`; its
//!   `privacy.<dataset>.epsilon_spent` replaces the plan in the ledger. With output approvers,
//!   `output-key` is the run's fresh output key, escrowed until they approve.
//! - **Party requests.** `POST /kbs/v0/runs/{id}` with `{"request": JWS}`: a compact JWS by a
//!   party's contract key (`typ` [`PARTY_TYP`], `kid` = party id) over
//!   `{"run", "action", "iat", ...}` ([`PartyRequest`]). Actions: `show` (any party: the
//!   report, approvals, what is pending), `approve`/`deny` (an approver: with the
//!   `report_digest` it saw and a `reason`), `output-key` (the data consumer, with a
//!   `tee-pubkey` to wrap the key to; released only when every approver approved).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::BrokerError;

/// The JWS `typ` of a run report.
pub const REPORT_TYP: &str = "ccr-run+jws";
/// The JWS `typ` of a party's request about a run.
pub const PARTY_TYP: &str = "ccr-party-request+jws";
/// How far a party request's `iat` may be from the broker's clock, in seconds.
pub const IAT_SKEW_SECS: i64 = 300;

/// A run plan (`extra-params.run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    /// The run id: 16 random bytes, lowercase hex (32 characters).
    pub id: String,
    /// The epsilon the run may spend on each dataset; `None`: no DP.
    pub epsilon: Option<f64>,
    /// The run's delta; `None`: no DP.
    pub delta: Option<f64>,
}

impl RunPlan {
    /// A plan with a fresh random id.
    pub fn new(epsilon: Option<f64>, delta: Option<f64>) -> Self {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self {
            id: hex::encode(id),
            epsilon,
            delta,
        }
    }

    /// Reads `extra-params.run`; absent: `None`.
    ///
    /// # Errors
    /// [`BrokerError::Protocol`] naming the field when it is malformed: an id that is not 32
    /// lowercase hex characters, a non-positive or non-finite epsilon, a delta outside (0, 1),
    /// or one of epsilon and delta without the other.
    pub fn from_extra_params(extra: &Value) -> Result<Option<Self>, BrokerError> {
        let Some(v) = extra.get("run") else {
            return Ok(None);
        };
        let bad = |f: &str, reason: String| BrokerError::Protocol {
            field: format!("extra-params.run{f}"),
            reason,
        };
        let p: RunPlan = serde_json::from_value(v.clone()).map_err(|e| bad("", e.to_string()))?;
        if p.id.len() != 32 || !p.id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad(".id", "expected 32 lowercase hex characters".into()));
        }
        match (p.epsilon, p.delta) {
            (None, None) => {}
            (Some(e), Some(d)) => {
                if !(e.is_finite() && e > 0.0) {
                    return Err(bad(".epsilon", format!("{e} is not a positive number")));
                }
                if !(d > 0.0 && d < 1.0) {
                    return Err(bad(".delta", format!("{d} is not in (0, 1)")));
                }
            }
            _ => return Err(bad("", "epsilon and delta go together".into())),
        }
        Ok(Some(p))
    }
}

/// A party's request about a run (the payload of a [`PARTY_TYP`] JWS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyRequest {
    /// The run id.
    pub run: String,
    /// `show`, `approve`, `deny` or `output-key`.
    pub action: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// `approve`/`deny`: SHA-256 (hex) of the report the party saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_digest: Option<String>,
    /// `approve`/`deny`: the party's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `output-key`: the JWK to wrap the output key to (EC P-256, as the KBS `tee-pubkey`).
    #[serde(
        rename = "tee-pubkey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tee_pubkey: Option<Value>,
}

impl PartyRequest {
    /// Signs the request with the party's contract key.
    pub fn sign(&self, party: &str, key: &ccr_policy::sign::PrivateKey) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("serialises"));
        key.sign_compact(party, PARTY_TYP, &payload)
    }
}

/// The epsilon spent per dataset as `run.json` states it: `privacy.<dataset>.epsilon_spent`
/// (a number, or `null` for a run without DP).
///
/// # Errors
/// [`BrokerError::Protocol`] naming the field when `privacy` is not an object of objects or an
/// `epsilon_spent` is neither a non-negative number nor null.
pub fn reported_spend(report: &Value) -> Result<Vec<(String, Option<f64>)>, BrokerError> {
    let bad = |f: String, reason: &str| BrokerError::Protocol {
        field: f,
        reason: reason.into(),
    };
    let Some(p) = report.get("privacy") else {
        return Ok(Vec::new());
    };
    let p = p
        .as_object()
        .ok_or_else(|| bad("run.json privacy".into(), "not an object"))?;
    let mut out = Vec::new();
    for (d, v) in p {
        let f = format!("run.json privacy.{d}.epsilon_spent");
        let e = match v.get("epsilon_spent") {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                x.as_f64()
                    .filter(|e| e.is_finite() && *e >= 0.0)
                    .ok_or_else(|| bad(f, "not a non-negative number"))?,
            ),
        };
        out.push((d.clone(), e));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_plans_are_checked_field_by_field() {
        let ok = json!({"run": {"id": "ab".repeat(16), "epsilon": 1.5, "delta": 1e-5}});
        assert_eq!(
            RunPlan::from_extra_params(&ok).unwrap().unwrap().epsilon,
            Some(1.5)
        );
        assert!(RunPlan::from_extra_params(&json!({})).unwrap().is_none());
        for (v, field) in [
            (
                json!({"id": "xyz", "epsilon": null, "delta": null}),
                "run.id",
            ),
            (
                json!({"id": "ab".repeat(16), "epsilon": -1, "delta": 1e-5}),
                "run.epsilon",
            ),
            (
                json!({"id": "ab".repeat(16), "epsilon": 1, "delta": 2}),
                "run.delta",
            ),
            (
                json!({"id": "ab".repeat(16), "epsilon": 1, "delta": null}),
                "run",
            ),
            (
                json!({"id": "ab".repeat(16), "epsilon": 1, "delta": 0.1, "x": 1}),
                "run",
            ),
        ] {
            let e = RunPlan::from_extra_params(&json!({ "run": v }))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("extra-params.{field}")), "{e}");
        }
        let p = RunPlan::new(None, None);
        assert_eq!(p.id.len(), 32);
        assert_ne!(p.id, RunPlan::new(None, None).id);
    }

    #[test]
    fn reported_spend_reads_numbers_and_nulls_and_refuses_others() {
        let r = json!({"privacy": {"a": {"epsilon_spent": 0.5}, "b": {"epsilon_spent": null}}});
        assert_eq!(
            reported_spend(&r).unwrap(),
            vec![("a".into(), Some(0.5)), ("b".into(), None)]
        );
        let e = reported_spend(&json!({"privacy": {"a": {"epsilon_spent": -1}}})).unwrap_err();
        assert!(e.to_string().contains("privacy.a.epsilon_spent"), "{e}");
        assert!(reported_spend(&json!({"privacy": 3})).is_err());
    }
}
