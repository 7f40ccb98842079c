//! The KBS protocol against the real broker on loopback: handshake, replay, problem codes.

mod support;

use std::path::Path;

use ccr_attest::attester::{Attester, SimAttester};
use ccr_attest::report_data::kbs_report_data;
use ccr_attest::sim::SimAuthority;
use ccr_keybroker::{BrokerError, KbsClient, RuntimeKey};
use serde_json::{Value, json};
use support::broker::Running;

fn start(dir: &Path, sim: &SimAuthority) -> Running {
    let mut trust = ccr_attest::evidence::Trust::new();
    trust.sim_roots = Some(sim.roots().unwrap());
    support::broker::start(dir, trust)
}

/// A signed contract whose policy names sim with `measurement`.
fn contract(host_measurement: &str) -> (Value, [u8; 32]) {
    support::broker::contract(json!({"version": "1.0.0", "allOf": [
        {"claim": "platform", "equals": "sim"},
        {"claim": "measurement", "equals": host_measurement}
    ]}))
}

/// A full handshake (auth naming pipeline `sha256:<pipeline_byte x 32>`, attest); returns the
/// session's runtime key.
fn attested(cl: &mut KbsClient, att: &SimAttester, pipeline_byte: &str) -> RuntimeKey {
    let rk = RuntimeKey::generate();
    let ch = cl
        .auth(
            "sim",
            json!({"pipeline-digest": format!("sha256:{}", pipeline_byte.repeat(32))}),
        )
        .unwrap();
    let ev = att
        .evidence(&kbs_report_data(&ch.nonce, &rk.tee_pubkey_json(), ""))
        .unwrap();
    cl.attest(&ch.nonce, &rk, ev).unwrap();
    rk
}

fn setup() -> (tempfile::TempDir, SimAuthority, Running) {
    let d = tempfile::tempdir().unwrap();
    let sim = SimAuthority::load_or_create(&d.path().join("sim")).unwrap();
    let r = start(&d.path().join("store"), &sim);
    (d, sim, r)
}

#[test]
fn handshake_releases_the_key_wrapped_to_the_runtime_key() {
    let (_d, sim, r) = setup();
    let m = [9u8; 48];
    let (c, digest) = contract(&hex::encode(m));
    let mut cl = KbsClient::new(&r.url, r.pin);
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c, None)
        .unwrap();
    let att = SimAttester::new(sim, m, digest);
    let rk = attested(&mut cl, &att, "00");
    assert_eq!(&cl.get_resource("r/k/d1", &rk).unwrap()[..], &[5u8; 32]);
    // Unknown resource: 404.
    assert!(matches!(
        cl.get_resource("r/k/nope", &rk),
        Err(BrokerError::NotFound(_))
    ));
}

#[test]
fn replayed_nonce_is_refused() {
    let (_d, sim, r) = setup();
    let m = [9u8; 48];
    let (_c, digest) = contract(&hex::encode(m));
    let att = SimAttester::new(sim, m, digest);
    let rk = RuntimeKey::generate();
    let mut cl = KbsClient::new(&r.url, r.pin);
    let ch = cl
        .auth(
            "sim",
            json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32))}),
        )
        .unwrap();
    let ev = att
        .evidence(&kbs_report_data(&ch.nonce, &rk.tee_pubkey_json(), ""))
        .unwrap();
    cl.attest(&ch.nonce, &rk, ev.clone()).unwrap();
    // The same attestation again in the same session: the nonce is spent.
    let e = cl.attest(&ch.nonce, &rk, ev).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Unauthorized(m) if m.contains("nonce")),
        "{e}"
    );
}

#[test]
fn evidence_binding_another_runtime_key_is_refused() {
    let (_d, sim, r) = setup();
    let m = [9u8; 48];
    let (_c, digest) = contract(&hex::encode(m));
    let att = SimAttester::new(sim, m, digest);
    let rk = RuntimeKey::generate();
    let other = RuntimeKey::generate();
    let mut cl = KbsClient::new(&r.url, r.pin);
    let ch = cl
        .auth(
            "sim",
            json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32))}),
        )
        .unwrap();
    let ev = att
        .evidence(&kbs_report_data(&ch.nonce, &other.tee_pubkey_json(), ""))
        .unwrap();
    let e = cl.attest(&ch.nonce, &rk, ev).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Unauthorized(m) if m.contains("report_data")),
        "{e}"
    );
}

#[test]
fn resource_before_attestation_is_401_and_policy_deny_is_403() {
    let (_d, sim, r) = setup();
    let (c, digest) = contract(&"11".repeat(48));
    let mut cl = KbsClient::new(&r.url, r.pin);
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c, None)
        .unwrap();
    let rk = RuntimeKey::generate();
    cl.auth(
        "sim",
        json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32))}),
    )
    .unwrap();
    assert!(matches!(
        cl.get_resource("r/k/d1", &rk),
        Err(BrokerError::Unauthorized(_))
    ));
    let att = SimAttester::new(sim, [9u8; 48], digest);
    let ch = cl
        .auth(
            "sim",
            json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32))}),
        )
        .unwrap();
    let ev = att
        .evidence(&kbs_report_data(&ch.nonce, &rk.tee_pubkey_json(), ""))
        .unwrap();
    cl.attest(&ch.nonce, &rk, ev).unwrap();
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Denied(m) if m.contains("allOf[1]: claim `measurement`")),
        "{e}"
    );
    let log = cl.audit_log(&r.token).unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|row| row["decision"] == "deny" && row["resource"] == "r/k/d1")
    );
}

#[test]
fn admin_endpoints_need_the_token_and_a_signed_contract() {
    let (_d, _sim, r) = setup();
    let (mut c, _) = contract(&"11".repeat(48));
    let mut cl = KbsClient::new(&r.url, r.pin);
    assert!(matches!(
        cl.put_resource("wrong", "r/k/d1", &[5u8; 32], &c, None),
        Err(BrokerError::Unauthorized(_))
    ));
    c["signatures"] = json!([]);
    let e = cl
        .put_resource(&r.token, "r/k/d1", &[5u8; 32], &c, None)
        .unwrap_err();
    assert!(e.to_string().contains("has not signed"), "{e}");
}

#[test]
fn host_data_of_another_contract_is_denied() {
    let (_d, sim, r) = setup();
    let m = [9u8; 48];
    let (c, _digest) = contract(&hex::encode(m));
    let mut cl = KbsClient::new(&r.url, r.pin);
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c, None)
        .unwrap();
    let att = SimAttester::new(sim, m, [0u8; 32]);
    let rk = attested(&mut cl, &att, "00");
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Denied(m) if m.contains("host_data")),
        "{e}"
    );
}

#[test]
fn session_naming_another_pipeline_is_denied() {
    let (_d, sim, r) = setup();
    let m = [9u8; 48];
    let (c, digest) = contract(&hex::encode(m));
    let mut cl = KbsClient::new(&r.url, r.pin);
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c, None)
        .unwrap();
    let att = SimAttester::new(sim, m, digest);
    let rk = attested(&mut cl, &att, "11");
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Denied(m) if m.contains("pipeline-digest")),
        "{e}"
    );
}
