//! Local stand-ins for Azure's IMDS, Microsoft Azure Attestation and Key Vault, on one TLS
//! server, that really verify what they are sent:
//! - IMDS `GET /metadata/identity/oauth2/token` (needs `Metadata: true`) issues the bearer
//!   token Key Vault expects;
//! - MAA `POST /attest/SevSnpVm` verifies the SNP report against the sim chain (the VCEK from
//!   `VcekCertChain`), checks that SHA-256 of the runtime data is the first 32 bytes of
//!   REPORT_DATA, and issues an RS256 JWT with the report's claims (MAA's `x-ms-*` names) and
//!   `x-ms-runtime`;
//! - Key Vault `POST /keys/{name}/{version}/release` checks the bearer token, the MAA token's
//!   signature and expiry, evaluates the key's release policy on its claims (authority = this
//!   MAA), wraps the key to the runtime's RSA key (CKM_RSA_AES_KEY_WRAP) and answers a JWS
//!   signed by a certificate for `localhost` with its x5c chain.
//!
//! Error bodies are Azure's `{"error": {"code", "message"}}`.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use rustls::pki_types::CertificateDer;

use super::tls_server::{local_ca, localhost_cert, serve};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub struct AkvKey {
    pub kty: String,
    pub material: Vec<u8>,
    pub policy: Value,
}

pub struct Config {
    pub sim_roots: ccr_attest::snp::SnpRoots,
    /// Seconds MAA tokens live (negative: already expired).
    pub maa_ttl: i64,
    pub keys: HashMap<String, AkvKey>,
}

struct Inner {
    cfg: Mutex<Config>,
    base: String,
    maa_key: rsa::RsaPrivateKey,
    bearer: String,
    sign_key: rsa::RsaPrivateKey,
    x5c: Vec<String>,
}

pub struct Azure {
    pub base: String,
    pub ca: CertificateDer<'static>,
    pub bearer: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

async fn imds(
    State(st): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})),
        )
            .into_response();
    }
    if q.get("api-version").map(String::as_str) != Some("2018-02-01") {
        return err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unsupported api-version",
        );
    }
    Json(
        json!({"access_token": st.bearer, "expires_in": "3599", "token_type": "Bearer",
        "resource": q.get("resource").cloned().unwrap_or_default()}),
    )
    .into_response()
}

async fn maa(
    State(st): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if q.get("api-version").map(String::as_str) != Some("2022-08-01") {
        return err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unsupported api-version",
        );
    }
    let r = (|| {
        let b64 = |v: &Value| -> Result<Vec<u8>, String> {
            URL_SAFE_NO_PAD
                .decode(v.as_str().ok_or("not a string")?)
                .map_err(|e| e.to_string())
        };
        let inner: Value =
            serde_json::from_slice(&b64(&body["report"])?).map_err(|e| e.to_string())?;
        let report = b64(&inner["SnpReport"])?;
        let chain = String::from_utf8(b64(&inner["VcekCertChain"])?).map_err(|e| e.to_string())?;
        let vcek = ccr_attest::amd::AmdCert::pem_bundle(chain.as_bytes(), "VcekCertChain")
            .map_err(|e| e.to_string())?;
        let vcek = vcek.first().ok_or("empty VcekCertChain")?;
        let rep = ccr_attest::snp::SnpReport::parse(&report).map_err(|e| e.to_string())?;
        let v = ccr_attest::snp::verify_report(
            &st.cfg.lock().unwrap().sim_roots,
            &rep,
            vcek.der(),
            ccr_attest::Platform::Sim,
            None,
        )
        .map_err(|e| e.to_string())?;
        let runtime = b64(&body["runtimeData"]["data"])?;
        if rep.parsed().report_data[..32] != Sha256::digest(&runtime)[..] {
            return Err("runtimeData does not match the report's REPORT_DATA".to_string());
        }
        let runtime: Value = serde_json::from_slice(&runtime).map_err(|e| e.to_string())?;
        Ok((v.claims().to_policy_input(), runtime))
    })();
    let (mut claims, runtime) = match r {
        Ok(x) => x,
        Err(e) => return err(StatusCode::BAD_REQUEST, "InvalidParameter", e),
    };
    let now = chrono::Utc::now().timestamp();
    claims["iss"] = st.base.clone().into();
    claims["iat"] = now.into();
    claims["nbf"] = now.into();
    claims["exp"] = (now + st.cfg.lock().unwrap().maa_ttl).into();
    claims["x-ms-ver"] = "1.0".into();
    claims["x-ms-runtime"] = runtime;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.jku = Some(format!("{}/certs", st.base));
    let der = st.maa_key.to_pkcs1_der().unwrap();
    let token = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .unwrap();
    Json(json!({"token": token})).into_response()
}

fn flatten(prefix: &str, v: &Value, out: &mut serde_json::Map<String, Value>) {
    if let Value::Object(o) = v {
        for (k, x) in o {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            flatten(&key, x, out);
        }
    }
    if !prefix.is_empty() {
        out.insert(prefix.to_string(), v.clone());
    }
}

/// Key Vault's checks on every request: api-version 7.4 and the bearer token.
fn akv_request_refused(
    st: &Inner,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    if q.get("api-version").map(String::as_str) != Some("7.4") {
        return Some(err(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The specified version is not supported",
        ));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.bearer) {
        return Some(err(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    }
    None
}

async fn import(
    State(st): State<Arc<Inner>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = akv_request_refused(&st, &q, &headers) {
        return refused;
    }
    let kty = body["key"]["kty"].as_str().unwrap_or("").to_string();
    let big = |f: &str| {
        rsa::BigUint::from_bytes_be(
            &URL_SAFE_NO_PAD
                .decode(body["key"][f].as_str().unwrap_or(""))
                .unwrap_or_default(),
        )
    };
    let material = match kty.as_str() {
        "oct-HSM" => {
            let k = URL_SAFE_NO_PAD
                .decode(body["key"]["k"].as_str().unwrap_or(""))
                .unwrap_or_default();
            if k.len() != 32 {
                return err(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "only 256-bit oct-HSM keys are supported here",
                );
            }
            k
        }
        // The released target of an RSA-HSM key is its PKCS#8 private key.
        "RSA-HSM" => match rsa::RsaPrivateKey::from_components(
            big("n"),
            big("e"),
            big("d"),
            vec![big("p"), big("q")],
        ) {
            Ok(k) => k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            Err(e) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("invalid RSA key: {e}"),
                );
            }
        },
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                format!("unsupported kty {other}"),
            );
        }
    };
    if body["attributes"]["exportable"] != json!(true) {
        return err(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "AKV.SKR.1001: exportable keys must have a release policy and exportable=true",
        );
    }
    let policy: Value = match URL_SAFE_NO_PAD
        .decode(body["release_policy"]["data"].as_str().unwrap_or(""))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(p) => p,
        None => {
            return err(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "AKV.SKR.1002: the release policy is not valid JSON",
            );
        }
    };
    if ccr_policy::ReleasePolicy::from_json(policy.to_string().as_bytes()).is_err() {
        return err(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "AKV.SKR.1003: the release policy is not valid",
        );
    }
    st.cfg.lock().unwrap().keys.insert(
        name.clone(),
        AkvKey {
            kty: kty.clone(),
            material,
            policy,
        },
    );
    Json(
        json!({"key": {"kid": format!("{}/keys/{name}/1", st.base), "kty": kty},
        "attributes": {"enabled": true, "exportable": true}}),
    )
    .into_response()
}

async fn release(
    State(st): State<Arc<Inner>>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = akv_request_refused(&st, &q, &headers) {
        return refused;
    }
    let cfg = st.cfg.lock().unwrap();
    let Some(key) = cfg.keys.get(&name) else {
        return err(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!("A key with (name/id) {name}/{version} was not found in this key vault."),
        );
    };
    let target = body["target"].as_str().unwrap_or("");
    let p = st.maa_key.to_public_key();
    let dk = jsonwebtoken::DecodingKey::from_rsa_raw_components(
        &p.n().to_bytes_be(),
        &p.e().to_bytes_be(),
    );
    let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    val.leeway = 0;
    val.validate_aud = false;
    let claims = match jsonwebtoken::decode::<Value>(target, &dk, &val) {
        Ok(d) => d.claims,
        Err(e) => {
            return err(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("Target environment attestation statement cannot be verified: {e}"),
            );
        }
    };
    let mut flat = serde_json::Map::new();
    flatten("", &claims, &mut flat);
    let policy = ccr_policy::ReleasePolicy::from_json(key.policy.to_string().as_bytes()).unwrap();
    if let ccr_policy::Decision::Deny(r) = policy.evaluate(&Value::Object(flat), &st.base) {
        return err(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Target environment attestation statement does not satisfy the key's release policy: {}",
                r.join("; ")
            ),
        );
    }
    // Wrap to the first RSA key of the runtime data: RSA-OAEP-SHA1 of a fresh AES key, then
    // AES key wrap with padding of the key material (CKM_RSA_AES_KEY_WRAP).
    let jwk = &claims["x-ms-runtime"]["keys"][0];
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let e = URL_SAFE_NO_PAD
        .decode(jwk["e"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let Ok(runtime_key) = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    ) else {
        return err(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "x-ms-runtime has no RSA key",
        );
    };
    let mut aes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut aes);
    let mut ct = runtime_key
        .encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<sha1::Sha1>(), &aes)
        .unwrap();
    ct.extend(
        aes_kw::KekAes256::from(aes)
            .wrap_with_padding_vec(&key.material)
            .unwrap(),
    );
    let blob = json!({"schema_version": "1.0.0",
        "header": {"kid": jwk["kid"], "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": URL_SAFE_NO_PAD.encode(&ct), "generator": "ccr local Key Vault"});
    let payload = json!({
        "request": {"api-version": "7.4", "enc": "CKM_RSA_AES_KEY_WRAP", "kid": format!("{}/keys/{name}/{version}", st.base)},
        "response": {"key": {
            "attributes": {"enabled": true, "exportable": true},
            "key": {"kid": format!("{}/keys/{name}/{version}", st.base), "kty": key.kty,
                    "key_ops": ["encrypt", "decrypt"], "key_hsm": URL_SAFE_NO_PAD.encode(blob.to_string())},
            "release_policy": {"contentType": "application/json; charset=utf-8",
                               "data": URL_SAFE_NO_PAD.encode(key.policy.to_string())}
        }}
    });
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "x5c": st.x5c}).to_string());
    let pl = URL_SAFE_NO_PAD.encode(payload.to_string());
    use rsa::signature::{SignatureEncoding, Signer};
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(st.sign_key.clone());
    let sig = signer.sign(format!("{h}.{pl}").as_bytes()).to_bytes();
    Json(json!({"value": format!("{h}.{pl}.{}", URL_SAFE_NO_PAD.encode(sig))})).into_response()
}

pub fn start(cfg: Config) -> Azure {
    // The TLS and JWS-signing certificates: a local CA and an RSA leaf for localhost.
    let (ca, ca_key) = local_ca("ccr test Azure CA");
    let sign_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pk8 = sign_key.to_pkcs8_der().unwrap().as_bytes().to_vec();
    let leaf_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(pk8.clone()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let leaf = localhost_cert(&leaf_key, &ca, &ca_key);
    let mut bearer = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bearer);
    let bearer = hex::encode(bearer);
    let x5c = vec![STANDARD.encode(leaf.der()), STANDARD.encode(ca.der())];
    let token = bearer.clone();
    let (base, stop) = serve(
        move |base| {
            let mut cfg = cfg;
            // Release policies name their MAA authority; "MAA" stands for this server.
            for k in cfg.keys.values_mut() {
                let text = k
                    .policy
                    .to_string()
                    .replace("\"MAA\"", &format!("\"{base}\""));
                k.policy = serde_json::from_str(&text).unwrap();
            }
            let inner = Arc::new(Inner {
                cfg: Mutex::new(cfg),
                base: base.to_string(),
                maa_key: rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap(),
                bearer: token,
                sign_key,
                x5c,
            });
            Router::new()
                .route("/metadata/identity/oauth2/token", get(imds))
                .route("/attest/SevSnpVm", post(maa))
                .route("/keys/{name}", axum::routing::put(import))
                .route("/keys/{name}/{version}/release", post(release))
                .with_state(inner)
        },
        vec![leaf.der().clone(), ca.der().clone()],
        pk8,
    );
    Azure {
        base,
        ca: ca.der().clone(),
        bearer,
        _stop: stop,
    }
}
