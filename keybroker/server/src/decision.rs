//! The release decision: a key's stored policy (the JSON grammar or Rego) over the verified
//! claims, and the check that the evidence binds the contract the key is registered under.

use ccr_policy::{Contract, Decision, ReleasePolicy};
use serde_json::{Value, json};

/// The authority name of this broker's verifier in release policies.
pub const LOCAL_AUTHORITY: &str = "local";

/// A key's release policy as stored: the JSON grammar ([`ReleasePolicy`]) or a Rego module
/// ([`ccr_policy::RegoPolicy`], stored as its source text, registered as a JSON string).
pub enum KeyPolicy {
    /// The JSON grammar.
    Json(ReleasePolicy),
    /// Rego, with `data.ccr.allow`.
    Rego(Box<ccr_policy::RegoPolicy>),
}

impl KeyPolicy {
    /// Parses stored policy text: a JSON object is the JSON grammar, anything else Rego.
    ///
    /// # Errors
    /// [`ccr_policy::PolicyError`] from either parser (Rego errors give line and column).
    pub fn parse(text: &str) -> Result<Self, ccr_policy::PolicyError> {
        if text.trim_start().starts_with('{') {
            ReleasePolicy::from_json(text.as_bytes()).map(Self::Json)
        } else {
            ccr_policy::RegoPolicy::from_source("release.rego", text)
                .map(|r| Self::Rego(Box::new(r)))
        }
    }

    /// The decision over verified `claims`; Rego gets the input `{"claims", "authority",
    /// "contract", "request"}`, where `request` is `{"resource", "platform",
    /// "pipeline_digest", "run"}`. A Rego evaluation error is a denial naming it.
    pub fn decide(&self, claims: &Value, contract: &Contract, request: &Value) -> Decision {
        match self {
            Self::Json(p) => release_decision(p, claims),
            Self::Rego(r) => {
                let mut c = serde_json::to_value(contract).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut c {
                    m.remove("signatures");
                }
                let input = json!({
                    "claims": claims,
                    "authority": LOCAL_AUTHORITY,
                    "contract": c,
                    "request": request,
                });
                r.decide(&input)
            }
        }
    }
}

/// The broker's release decision: `policy` evaluated over verified `claims` (as
/// [`ccr_attest::Claims::to_policy_input`] makes them) for this broker's authority
/// ([`LOCAL_AUTHORITY`]). The resource handler calls it after the contract checks; tests call it
/// with the claims of real evidence.
pub fn release_decision(policy: &ReleasePolicy, claims: &Value) -> Decision {
    policy.evaluate(claims, LOCAL_AUTHORITY)
}

/// Checks that verified `claims` (as [`ccr_attest::Claims::to_policy_input`] makes them) bind
/// the contract whose digest is `contract_digest` (64 hex), and says through which claim:
/// - `host_data` equal to the digest (SNP `HOST_DATA`, sim; 32 bytes);
/// - `host_data` starting with the digest and zero after it (TDX `MRCONFIGID`, 48 bytes);
/// - `aci.ccr_contract_digest`: on ACI, `HOST_DATA` is SHA-256 of the CCE policy, verified
///   against the policy given, and the policy fixes `CCR_CONTRACT_DIGEST` for the container;
/// - `submods.container.env.CCR_CONTRACT_DIGEST` (or `env_override`): a Confidential Space
///   token's attested container environment.
///
/// # Errors
/// A reason naming what was compared, when none binds it.
pub fn contract_binding(claims: &Value, contract_digest: &str) -> Result<&'static str, String> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if let Some(hd) = s("host_data") {
        if hd == contract_digest {
            return Ok("host_data");
        }
        if hd.len() == 96 && hd.starts_with(contract_digest) && hd[64..].bytes().all(|b| b == b'0')
        {
            return Ok("host_data (MRCONFIGID)");
        }
    }
    if s("aci.ccr_contract_digest") == Some(contract_digest) {
        return Ok("aci.ccr_contract_digest");
    }
    for k in [
        "submods.container.env.CCR_CONTRACT_DIGEST",
        "submods.container.env_override.CCR_CONTRACT_DIGEST",
    ] {
        if s(k) == Some(contract_digest) {
            return Ok("submods.container.env.CCR_CONTRACT_DIGEST");
        }
    }
    Err(format!(
        "the evidence does not bind the contract this key is registered under ({contract_digest}): host_data is {}",
        s("host_data").unwrap_or("absent")
    ))
}
