//! The cloud HTTPS client against a scripted TLS server on loopback: retries on 503 and 429
//! (honouring Retry-After), no retry on a denial, a deadline against a stalled server, and the
//! services' error shapes in the error text.

mod support;

use std::time::{Duration, Instant};

use ccr_keybroker::cloud_http::{CloudClient, CloudError, RetryPolicy};
use serde_json::json;
use support::tls_server::{Reply, start};

fn client(s: &support::tls_server::Server, timeout: Duration) -> CloudClient {
    CloudClient::new(
        "Azure Key Vault",
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            timeout,
        },
        Some(std::slice::from_ref(&s.ca)),
    )
}

#[test]
fn a_503_then_200_is_retried_and_succeeds() {
    let s = start(vec![
        Reply::json(
            503,
            json!({"error": {"code": "ServiceUnavailable", "message": "busy"}}),
        ),
        Reply::json(200, json!({"value": "ok"})),
    ]);
    let v = client(&s, Duration::from_secs(10))
        .call(
            "POST",
            &format!("{}/keys/k/1/release?api-version=7.4", s.base),
            &[("Authorization", "Bearer t")],
            Some(&json!({"target": "x"})),
            None,
        )
        .unwrap();
    assert_eq!(v["value"], "ok");
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].uri, "/keys/k/1/release?api-version=7.4");
    assert!(seen[1].body.contains("\"target\""));
}

#[test]
fn retry_after_is_honoured() {
    let s = start(vec![
        Reply::json(
            429,
            json!({"error": {"code": "Throttled", "message": "slow down"}}),
        )
        .header("retry-after", "1"),
        Reply::json(200, json!({"ok": true})),
    ]);
    let t = Instant::now();
    client(&s, Duration::from_secs(10))
        .call("GET", &format!("{}/x", s.base), &[], None, None)
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_denial_is_not_retried_and_names_the_service_and_code() {
    let s = start(vec![Reply::json(
        403,
        json!({"error": {"code": "Forbidden", "message": "Target environment attestation statement cannot be verified."}}),
    )]);
    let e = client(&s, Duration::from_secs(10))
        .call(
            "POST",
            &format!("{}/keys/k/1/release", s.base),
            &[],
            Some(&json!({})),
            None,
        )
        .unwrap_err();
    assert!(matches!(e, CloudError::Denied { status: 403, .. }));
    assert_eq!(
        e.to_string(),
        "Azure Key Vault: 403 Forbidden: Target environment attestation statement cannot be verified."
    );
    assert_eq!(s.seen.lock().unwrap().len(), 1);
    // GCP's and OAuth's shapes.
    let s = start(vec![Reply::json(
        403,
        json!({"error": {"code": 403, "message": "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied", "status": "PERMISSION_DENIED"}}),
    )]);
    let e = client(&s, Duration::from_secs(10))
        .call(
            "POST",
            &format!("{}/v1/k:decrypt", s.base),
            &[],
            Some(&json!({})),
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("PERMISSION_DENIED"), "{e}");
    let s = start(vec![Reply::json(
        400,
        json!({"error": "invalid_grant", "error_description": "The audience in ID Token does not match the expected audience."}),
    )]);
    let e = client(&s, Duration::from_secs(10))
        .call(
            "POST",
            &format!("{}/v1/token", s.base),
            &[],
            None,
            Some(&[(
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            )]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("invalid_grant: The audience"), "{e}");
}

#[test]
fn a_stalled_server_fails_within_the_deadline() {
    let s = start(vec![
        Reply::json(200, json!({})).delayed(Duration::from_secs(30)),
    ]);
    let t = Instant::now();
    let e = client(&s, Duration::from_secs(2))
        .call(
            "GET",
            &format!("{}/metadata/identity/oauth2/token", s.base),
            &[],
            None,
            None,
        )
        .unwrap_err();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(4), "gave up after {took:?}");
    assert!(matches!(e, CloudError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("deadline"), "{e}");
}

#[test]
fn persistent_5xx_gives_up_after_the_attempts() {
    let s = start(vec![Reply::json(
        500,
        json!({"error": {"code": "InternalError", "message": "boom"}}),
    )]);
    let e = client(&s, Duration::from_secs(10))
        .call("GET", &format!("{}/x", s.base), &[], None, None)
        .unwrap_err();
    assert!(
        e.to_string().contains("after 4 attempt(s)")
            && e.to_string().contains("500 InternalError boom"),
        "{e}"
    );
    assert_eq!(s.seen.lock().unwrap().len(), 4);
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let s = start(vec![Reply::json(200, json!({}))]);
    let other = start(vec![Reply::json(200, json!({}))]);
    let c = CloudClient::new(
        "GCP STS",
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        Some(std::slice::from_ref(&other.ca)),
    );
    let e = c
        .call("GET", &format!("{}/x", s.base), &[], None, None)
        .unwrap_err();
    assert!(e.to_string().contains("GCP STS: unreachable"), "{e}");
}

#[test]
fn maa_tdx_attestation_sends_the_quote_and_runtime_data_in_maas_shape() {
    let s = start(vec![Reply::json(200, json!({"token": "eyJ.maa.token"}))]);
    let quote = [4u8, 0, 2, 0, 0x81, 0, 0, 0, 9, 9];
    let rt = br#"{"keys":[]}"#;
    let t = ccr_keybroker::azure::maa_attest_tdx(
        &client(&s, Duration::from_secs(10)),
        &s.base,
        &quote,
        rt,
    )
    .unwrap();
    assert_eq!(t, "eyJ.maa.token");
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/attest/TdxVm?api-version=2023-04-01-preview");
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(b64.decode(body["quote"].as_str().unwrap()).unwrap(), quote);
    assert_eq!(
        b64.decode(body["runtimeData"]["data"].as_str().unwrap())
            .unwrap(),
        rt
    );
    assert_eq!(body["runtimeData"]["dataType"], "JSON");
}
