//! Local stand-ins for GCP STS and Cloud KMS on one TLS server, that really verify what they
//! are sent:
//! - STS `POST /v1/token` (form-encoded, RFC 8693): verifies the Confidential Space token with
//!   the issuer's JWKS (ccr's own verifier, `ccr_attest::cs`), its audience, and the provider's
//!   attribute condition (the CEL subset ccr writes: `PATH == 'x'`, `'x' in PATH`, joined by
//!   `&&`), then issues a federated access token for the token's `assertion`;
//! - KMS `POST /v1/{key}:encrypt` (admin token) and `POST /v1/{key}:decrypt` (a federated
//!   token whose image digest the key's IAM policy admits): AES-256-GCM under the server's key,
//!   with the request's additional authenticated data.
//!
//! Errors are STS's `{"error", "error_description"}` and Google's `{"error": {"code",
//! "message", "status"}}`.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::CertificateDer;

use super::tls_server::{local_ca, localhost_cert, serve};
use serde_json::{Value, json};

pub struct KmsKey {
    /// Image digests whose federated identities may decrypt.
    pub decrypters: Vec<String>,
}

pub struct Config {
    pub jwks: jsonwebtoken::jwk::JwkSet,
    /// The workload identity pool provider's full resource name.
    pub provider: String,
    pub attribute_condition: String,
    pub keys: HashMap<String, KmsKey>,
    pub admin_token: String,
}

struct Inner {
    cfg: Config,
    aes: [u8; 32],
    tokens: Mutex<HashMap<String, Value>>,
}

pub struct Gcp {
    pub base: String,
    pub ca: CertificateDer<'static>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn gerr(status: StatusCode, st: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message.into(), "status": st}})),
    )
        .into_response()
}

fn oauth_err(code: &str, desc: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": desc.into()})),
    )
        .into_response()
}

fn path<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in p.strip_prefix("assertion.")?.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// The CEL subset: `PATH == 'lit'` and `'lit' in PATH`, joined by `&&`.
fn condition_holds(cond: &str, assertion: &Value) -> Result<bool, String> {
    for clause in cond.split("&&").map(str::trim) {
        let lit = |s: &str| {
            s.trim()
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .map(str::to_string)
        };
        let ok = if let Some((l, r)) = clause.split_once("==") {
            let want = lit(r).ok_or(format!("unsupported clause `{clause}`"))?;
            path(assertion, l.trim()).and_then(Value::as_str) == Some(want.as_str())
        } else if let Some((l, r)) = clause.split_once(" in ") {
            let want = lit(l).ok_or(format!("unsupported clause `{clause}`"))?;
            path(assertion, r.trim())
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(want.as_str())))
        } else {
            return Err(format!("unsupported clause `{clause}`"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn sts(State(st): State<Arc<Inner>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let g = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if g("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return oauth_err(
            "unsupported_grant_type",
            "grant_type must be token-exchange",
        );
    }
    if g("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
        return oauth_err("invalid_request", "subject_token_type must be ...:jwt");
    }
    if g("audience") != st.cfg.provider {
        return oauth_err(
            "invalid_target",
            format!(
                "The target service indicated by the \"audience\" parameters is invalid: {}",
                g("audience")
            ),
        );
    }
    let aud = vec!["https://sts.googleapis.com".to_string()];
    let check = ccr_attest::cs::TokenCheck {
        jwks: &st.cfg.jwks,
        audience: &aud,
        issuer: ccr_attest::cs::ISSUER,
        at: chrono::Utc::now().timestamp(),
        leeway: 0,
    };
    let v = match ccr_attest::cs::verify(g("subject_token"), &check, false) {
        Ok(v) => v,
        Err(e) => {
            return oauth_err(
                "invalid_grant",
                format!("The provided subject token is invalid: {e}"),
            );
        }
    };
    let assertion = v
        .claims()
        .cs
        .as_ref()
        .map(|c| c.token_claims.clone())
        .unwrap_or(Value::Null);
    match condition_holds(&st.cfg.attribute_condition, &assertion) {
        Ok(true) => {}
        Ok(false) => {
            return oauth_err(
                "unauthorized_client",
                "The given credential is rejected by the attribute condition.",
            );
        }
        Err(e) => return oauth_err("invalid_request", e),
    }
    let mut t = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut t);
    let token = format!("ya29.fed-{}", hex::encode(t));
    st.tokens.lock().unwrap().insert(token.clone(), assertion);
    Json(json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 3599}))
    .into_response()
}

async fn kms(
    State(st): State<Arc<Inner>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some((key, op)) = rest.rsplit_once(':') else {
        return gerr(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown method");
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let Some(k) = st.cfg.keys.get(key) else {
        return gerr(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("CryptoKey {key} not found."),
        );
    };
    let b64 = |f: &str| {
        STANDARD
            .decode(body[f].as_str().unwrap_or(""))
            .unwrap_or_default()
    };
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&st.aes).unwrap();
    let aad = b64("additionalAuthenticatedData");
    match op {
        "encrypt" => {
            if bearer != st.cfg.admin_token {
                return gerr(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                );
            }
            let mut nonce = [0u8; 12];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
            let ct = cipher
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: &b64("plaintext"),
                        aad: &aad,
                    },
                )
                .unwrap();
            Json(json!({"name": format!("{key}/cryptoKeyVersions/1"),
                "ciphertext": STANDARD.encode([nonce.as_slice(), &ct].concat())}))
            .into_response()
        }
        "decrypt" => {
            let Some(assertion) = st.tokens.lock().unwrap().get(&bearer).cloned() else {
                return gerr(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                );
            };
            let digest = path(&assertion, "assertion.submods.container.image_digest")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !k.decrypters.iter().any(|d| d == digest) {
                return gerr(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    format!(
                        "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource '{key}' (or it may not exist)."
                    ),
                );
            }
            let ct = b64("ciphertext");
            if ct.len() < 12 {
                return gerr(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Decryption failed: the ciphertext is invalid.",
                );
            }
            match cipher.decrypt(
                (&ct[..12]).into(),
                Payload {
                    msg: &ct[12..],
                    aad: &aad,
                },
            ) {
                Ok(pt) => Json(json!({"plaintext": STANDARD.encode(pt), "usedPrimary": true}))
                    .into_response(),
                Err(_) => gerr(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Decryption failed: the ciphertext is invalid.",
                ),
            }
        }
        _ => gerr(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown method"),
    }
}

pub fn start(cfg: Config) -> Gcp {
    let (ca, ca_key) = local_ca("ccr test GCP CA");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = localhost_cert(&leaf_key, &ca, &ca_key);
    let mut aes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut aes);
    let inner = Arc::new(Inner {
        cfg,
        aes,
        tokens: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/v1/token", post(sts))
        .route("/v1/{*rest}", post(kms))
        .with_state(inner);
    let (base, stop) = serve(|_| app, vec![leaf.der().clone()], leaf_key.serialize_der());
    Gcp {
        base,
        ca: ca.der().clone(),
        _stop: stop,
    }
}
