//! GCP Confidential Space: the launcher's OIDC attestation token.
//!
//! Sources: Google Cloud "Confidential Space token claims" (`iss`
//! `https://confidentialcomputing.googleapis.com`, `aud`, `exp`, `iat`, `nbf`, `eat_nonce`,
//! `hwmodel`, `swname`, `swversion`, `dbgstat`, `secboot`, `submods.container`,
//! `submods.confidential_space.support_attributes`, `submods.gce`); RFC 7519 (JWT) and RFC 7517
//! (JWKS). The token is RS256-signed by Google's attestation service; the verifier is given the
//! JWKS (from `https://www.googleapis.com/service_accounts/v1/metadata/jwk/signer@confidentialspace-sign.iam.gserviceaccount.com`
//! or the issuer's discovery document, fetched out of band: verification never touches the
//! network).
//!
//! The runtime asks the launcher for a token whose `eat_nonce` holds the hex of the first 32
//! bytes of `report_data` ([`crate::report_data::BOUND_PREFIX_LEN`]); that nonce becomes the
//! `report_data` claim.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha384};

use crate::error::AttestError;
use crate::{Claims, Platform, VerifiedEvidence};

/// The issuer of Confidential Space tokens.
pub const ISSUER: &str = "https://confidentialcomputing.googleapis.com";
/// `swname` of the Confidential Space image.
pub const SWNAME: &str = "CONFIDENTIAL_SPACE";
/// `dbgstat` of a production (non-debug) image.
pub const DBGSTAT_DISABLED: &str = "disabled-since-boot";
/// Largest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The Confidential Space claims, beside the common ones (`measurement` = the container's
/// `image_digest`, `report_data` = the bound `eat_nonce`, `debug` = `dbgstat` is not
/// `disabled-since-boot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsClaims {
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: Value,
    /// `exp`, Unix seconds.
    pub exp: i64,
    /// `hwmodel` (`GCP_AMD_SEV`, `GCP_AMD_SEV_SNP`, `GCP_INTEL_TDX`).
    pub hwmodel: Option<String>,
    /// `swname` (`CONFIDENTIAL_SPACE`).
    pub swname: Option<String>,
    /// `dbgstat`.
    pub dbgstat: Option<String>,
    /// `submods.container.image_digest`.
    pub image_digest: Option<String>,
    /// `submods.confidential_space.support_attributes`.
    pub support_attributes: Vec<String>,
    /// Every claim of the token, as sent.
    pub token_claims: Value,
}

impl CsClaims {
    pub(crate) fn policy_input(&self, m: &mut Map<String, Value>) {
        flatten("", &self.token_claims, m);
    }
}

fn flatten(prefix: &str, v: &Value, m: &mut Map<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, m);
            }
            if !prefix.is_empty() {
                m.insert(prefix.to_string(), v.clone());
            }
        }
        _ => {
            m.insert(prefix.to_string(), v.clone());
        }
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenCheck<'a> {
    /// The signing keys.
    pub jwks: &'a JwkSet,
    /// Accepted audiences (one must match `aud`).
    pub audience: &'a [String],
    /// The expected issuer ([`ISSUER`]).
    pub issuer: &'a str,
    /// The time to check `exp`/`nbf` at, Unix seconds.
    pub at: i64,
    /// Seconds of clock skew allowed.
    pub leeway: i64,
}

/// Splits a compact JWS and decodes its header, without verifying anything.
///
/// # Errors
/// [`AttestError::Evidence`] naming `token` when it is not three base64url parts with a JSON
/// header.
pub fn parse_header(token: &str) -> Result<Value, AttestError> {
    let bad = |reason: &str| AttestError::Evidence {
        field: "token".into(),
        reason: reason.into(),
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad("longer than 64 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact JWS (three dot-separated parts)"));
    };
    let raw = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| bad("header is not base64url"))?;
    serde_json::from_slice(&raw).map_err(|_| bad("header is not JSON"))
}

/// Verifies a Confidential Space token: RS256 signature by the JWKS key named by `kid`, `iss`,
/// `aud`, `exp`/`nbf` at `check.at`, and `dbgstat` (a debug image is refused unless
/// `allow_debug`).
///
/// # Errors
/// [`AttestError::Signature`] for an unknown `kid` or a bad signature; [`AttestError::Field`]
/// naming `iss`, `aud`, `exp`, `nbf` or `dbgstat`.
pub fn verify(
    token: &str,
    check: &TokenCheck<'_>,
    allow_debug: bool,
) -> Result<VerifiedEvidence, AttestError> {
    let header = parse_header(token)?;
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(AttestError::Field {
            field: "token.header.alg",
            reason: format!("`{alg}`, Confidential Space tokens are RS256"),
        });
    }
    let jwk = check.jwks.find(kid).ok_or_else(|| AttestError::Signature {
        what: "Confidential Space token",
        reason: format!("no key with kid `{kid}` in the JWKS given"),
    })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| AttestError::Signature {
        what: "Confidential Space token",
        reason: format!("JWKS key `{kid}`: {e}"),
    })?;
    let mut v = Validation::new(Algorithm::RS256);
    // Times and audience are checked below against `check.at`, not the system clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| AttestError::Signature {
            what: "Confidential Space token",
            reason: e.to_string(),
        })?;
    let c = data.claims;
    let field = |field: &'static str, reason: String| AttestError::Field { field, reason };
    let iss = c.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != check.issuer {
        return Err(field(
            "iss",
            format!("`{iss}`, expected `{}`", check.issuer),
        ));
    }
    let aud = c.get("aud").cloned().unwrap_or(Value::Null);
    let auds: Vec<&str> = match &aud {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !auds.iter().any(|a| check.audience.iter().any(|x| x == a)) {
        return Err(field(
            "aud",
            format!(
                "{aud} is not an accepted audience ({})",
                check.audience.join(", ")
            ),
        ));
    }
    let exp = c
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| field("exp", "missing".into()))?;
    if check.at > exp + check.leeway {
        return Err(field(
            "exp",
            format!("the token expired at {}", crate::amd::fmt_time(exp)),
        ));
    }
    if let Some(nbf) = c.get("nbf").and_then(Value::as_i64)
        && check.at + check.leeway < nbf
    {
        return Err(field(
            "nbf",
            format!(
                "the token is not valid before {}",
                crate::amd::fmt_time(nbf)
            ),
        ));
    }
    let s = |path: &[&str]| {
        let mut v = &c;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_string)
    };
    let dbgstat = s(&["dbgstat"]);
    let debug = dbgstat.as_deref() != Some(DBGSTAT_DISABLED);
    if debug && !allow_debug {
        return Err(field(
            "dbgstat",
            format!(
                "`{}`: the image is debuggable (expected `{DBGSTAT_DISABLED}`)",
                dbgstat.as_deref().unwrap_or("(missing)")
            ),
        ));
    }
    let nonces: Vec<String> = match c.get("eat_nonce") {
        Some(Value::String(n)) => vec![n.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let report_data = nonces
        .iter()
        .find(|n| n.len() == 64 && hex::decode(n).is_ok())
        .map(|n| n.to_lowercase())
        .or_else(|| nonces.first().map(hex::encode))
        .unwrap_or_default();
    let image_digest = s(&["submods", "container", "image_digest"]);
    let support_attributes = c
        .pointer("/submods/confidential_space/support_attributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let claims = Claims {
        platform: Platform::GcpCs,
        report_data,
        measurement: image_digest.clone(),
        host_data: None,
        debug,
        tcb_status: None,
        endorsement: vec![format!("JWKS key {kid}"), iss.to_string()],
        snp: None,
        tdx: None,
        vtpm: None,
        aci: None,
        cs: Some(CsClaims {
            iss: iss.to_string(),
            aud,
            exp,
            hwmodel: s(&["hwmodel"]),
            swname: s(&["swname"]),
            dbgstat,
            image_digest,
            support_attributes,
            token_claims: c.clone(),
        }),
    };
    Ok(VerifiedEvidence::new(
        claims,
        Sha384::digest(token.as_bytes()).into(),
    ))
}

/// Parses a JWKS document (RFC 7517 §5).
///
/// # Errors
/// [`AttestError::Evidence`] naming `jwks`.
pub fn parse_jwks(json: &[u8]) -> Result<JwkSet, AttestError> {
    serde_json::from_slice(json).map_err(|e| AttestError::Evidence {
        field: "jwks".into(),
        reason: e.to_string(),
    })
}

/// The claims and nonce a runtime asks the launcher for (`POST /v1/token` on
/// `/run/container_launcher/teeserver.sock`): `{"audience", "nonces", "token_type": "OIDC"}`.
pub fn token_request(audience: &str, report_data: &[u8; 64]) -> Value {
    json!({
        "audience": audience,
        "nonces": [hex::encode(&report_data[..crate::report_data::BOUND_PREFIX_LEN])],
        "token_type": "OIDC",
    })
}
