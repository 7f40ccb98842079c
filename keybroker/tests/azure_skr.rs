//! Azure Secure Key Release through ccr's real client code (IMDS token, MAA attestation, Key
//! Vault release, JWS verification, key unwrapping) against local stand-ins that verify what
//! they are sent (tests/support/azure.rs), over HTTPS on loopback.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ccr_keybroker::azure;
use ccr_keybroker::cloud_http::{CloudClient, RetryPolicy};
use serde_json::{Value, json};
use support::azure::{AkvKey, Azure, Config, start};

const DEK: [u8; 32] = [0x17; 32];

struct Env {
    _d: tempfile::TempDir,
    sim: ccr_attest::sim::SimAuthority,
    az: Azure,
    client: CloudClient,
    measurement: [u8; 48],
}

fn policy(maa: &str, measurement: &str) -> Value {
    json!({"version": "1.0.0", "anyOf": [{"authority": maa, "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sim"},
        {"claim": "x-ms-sevsnpvm-launchmeasurement", "equals": measurement},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false}]}]})
}

fn env(maa_ttl: i64, policy_measurement: Option<&str>) -> Env {
    let d = tempfile::tempdir().unwrap();
    let sim = ccr_attest::sim::SimAuthority::load_or_create(&d.path().join("sim")).unwrap();
    let measurement = [0x3cu8; 48];
    // The policy names the MAA authority, which is only known once the server runs: register
    // the key under a placeholder and let the server substitute its own base URL.
    let m = policy_measurement
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(measurement));
    let mut keys = HashMap::new();
    keys.insert(
        "dataset-a".to_string(),
        AkvKey {
            kty: "oct-HSM".into(),
            material: DEK.to_vec(),
            policy: policy("MAA", &m),
        },
    );
    let az = start(Config {
        sim_roots: ccr_attest::sim::load_roots(&d.path().join("sim")).unwrap(),
        maa_ttl,
        keys,
    });
    let client = CloudClient::new(
        "Azure",
        RetryPolicy {
            timeout: Duration::from_secs(20),
            ..RetryPolicy::default()
        },
        Some(std::slice::from_ref(&az.ca)),
    );
    Env {
        _d: d,
        sim,
        az,
        client,
        measurement,
    }
}

/// The runtime's side: transfer key, runtime data, report, MAA token.
fn attest(e: &Env) -> (rsa::RsaPrivateKey, String) {
    let transfer = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let (_jwks, rt) = azure::runtime_data(&transfer, "ccr-runtime");
    let report = e
        .sim
        .report(&azure::maa_report_data(&rt), &e.measurement, &[0; 32]);
    let dir = e.sim.dir();
    let chain = [
        std::fs::read_to_string(dir.join("vcek.pem")).unwrap(),
        std::fs::read_to_string(dir.join("ask.pem")).unwrap(),
        std::fs::read_to_string(dir.join("ark.pem")).unwrap(),
    ]
    .concat();
    let token = azure::maa_attest_snp(&e.client, &e.az.base, &report, &chain, &rt, None).unwrap();
    (transfer, token)
}

fn release(e: &Env, token: &str) -> Result<String, ccr_keybroker::BrokerError> {
    let bearer = azure::imds_token(&e.client, &e.az.base, azure::VAULT_RESOURCE, None)?;
    azure::akv_release(&e.client, &e.az.base, "dataset-a", "1", &bearer, token)
}

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

#[test]
fn the_key_is_released_verified_and_unwrapped() {
    let e = env(600, None);
    let (transfer, token) = attest(&e);
    let jws = release(&e, &token).unwrap();
    let payload = azure::verify_release_jws(
        &jws,
        Some(std::slice::from_ref(&e.az.ca)),
        "localhost",
        now(),
    )
    .unwrap();
    let (kty, hsm) = azure::released_key(&payload).unwrap();
    assert_eq!(kty, "oct-HSM");
    let dek = ccr_keybroker::akv::unwrap_key_hsm(&hsm, &transfer).unwrap();
    assert_eq!(&dek[..], &DEK);

    // The same JWS: another host name, no trusted root, a tampered payload.
    let err = |r: Result<Value, ccr_keybroker::BrokerError>| r.unwrap_err().to_string();
    let e1 = err(azure::verify_release_jws(
        &jws,
        Some(std::slice::from_ref(&e.az.ca)),
        "myvault.vault.azure.net",
        now(),
    ));
    assert!(e1.contains("is not for myvault.vault.azure.net"), "{e1}");
    let e2 = err(azure::verify_release_jws(
        &jws,
        Some(&[]),
        "localhost",
        now(),
    ));
    assert!(e2.contains("does not chain to a trusted root"), "{e2}");
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut p: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    p["response"]["key"]["key"]["kty"] = "RSA-HSM".into();
    parts[1] = b64.encode(p.to_string());
    let e3 = err(azure::verify_release_jws(
        &parts.join("."),
        Some(std::slice::from_ref(&e.az.ca)),
        "localhost",
        now(),
    ));
    assert_eq!(e3, "crypto: release JWS signature does not verify");
    // A key wrapped to another runtime key does not unwrap with ours.
    let other = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let e4 = ccr_keybroker::akv::unwrap_key_hsm(&hsm, &other)
        .unwrap_err()
        .to_string();
    assert!(
        e4.contains("does not decrypt with the runtime's transfer key"),
        "{e4}"
    );
}

#[test]
fn a_policy_mismatch_is_denied_by_key_vault() {
    let e = env(600, Some(&"00".repeat(48)));
    let (_t, token) = attest(&e);
    let err = release(&e, &token).unwrap_err().to_string();
    assert!(
        err.starts_with("Azure: 403 Forbidden: Target environment attestation statement does not satisfy the key's release policy"),
        "{err}"
    );
    assert!(err.contains("x-ms-sevsnpvm-launchmeasurement"), "{err}");
}

#[test]
fn an_expired_maa_token_is_refused() {
    let e = env(-120, None);
    let (_t, token) = attest(&e);
    let err = release(&e, &token).unwrap_err().to_string();
    assert!(
        err.contains("403 Forbidden: Target environment attestation statement cannot be verified: ExpiredSignature"),
        "{err}"
    );
}

#[test]
fn maa_refuses_a_report_that_does_not_bind_the_runtime_data() {
    let e = env(600, None);
    let transfer = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let (_j, rt) = azure::runtime_data(&transfer, "k");
    let report = e.sim.report(&[0u8; 64], &e.measurement, &[0; 32]);
    let chain = std::fs::read_to_string(e.sim.dir().join("vcek.pem")).unwrap();
    let err = azure::maa_attest_snp(&e.client, &e.az.base, &report, &chain, &rt, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("400 InvalidParameter: runtimeData does not match"),
        "{err}"
    );
}

#[test]
fn key_vault_without_a_bearer_token_is_unauthorized() {
    let e = env(600, None);
    let (_t, token) = attest(&e);
    let err = azure::akv_release(&e.client, &e.az.base, "dataset-a", "1", "wrong", &token)
        .unwrap_err()
        .to_string();
    assert!(err.contains("401 Unauthorized"), "{err}");
}

#[test]
fn an_rsa_hsm_key_gives_the_dek_importkey_derives() {
    let e = env(600, None);
    let bearer = azure::imds_token(&e.client, &e.az.base, azure::VAULT_RESOURCE, None).unwrap();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pol = policy(&e.az.base, &hex::encode(e.measurement));
    azure::akv_import_rsa(&e.client, &e.az.base, "rsa-key", &bearer, &rsa_key, &pol).unwrap();
    let (transfer, token) = attest(&e);
    let jws = azure::akv_release(&e.client, &e.az.base, "rsa-key", "1", &bearer, &token).unwrap();
    let payload = azure::verify_release_jws(
        &jws,
        Some(std::slice::from_ref(&e.az.ca)),
        "localhost",
        now(),
    )
    .unwrap();
    let (kty, hsm) = azure::released_key(&payload).unwrap();
    assert_eq!(kty, "RSA-HSM");
    let released = ccr_keybroker::akv::unwrap_key_hsm(&hsm, &transfer).unwrap();
    let salt = [7u8; 32];
    let ours = ccr_keybroker::akv::dek_from_rsa_private_key(&released, &salt, b"rsa-key").unwrap();
    // The provider derives the same DEK from the key it imported.
    use rsa::pkcs8::EncodePrivateKey;
    let theirs = ccr_keybroker::akv::dek_from_rsa_private_key(
        rsa_key.to_pkcs8_der().unwrap().as_bytes(),
        &salt,
        b"rsa-key",
    )
    .unwrap();
    assert_eq!(*ours, *theirs);
}
