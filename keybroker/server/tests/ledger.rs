//! The privacy budget ledger, run reports and output approval against the real broker on
//! loopback.

mod support;

use std::path::Path;
use std::sync::{Arc, Barrier};

use ccr_attest::attester::{Attester, SimAttester};
use ccr_attest::report_data::kbs_report_data;
use ccr_attest::sim::SimAuthority;
use ccr_keybroker::runs::{PartyRequest, RunPlan};
use ccr_keybroker::{BrokerError, KbsClient, RuntimeKey};
use ccr_keybroker_server::store::Store;
use ccr_policy::sign::PrivateKey;
use serde_json::{Value, json};
use support::broker::{Running, Signed};

const M: [u8; 48] = [9u8; 48];

fn start(dir: &Path, sim: &SimAuthority) -> Running {
    let mut trust = ccr_attest::evidence::Trust::new();
    trust.sim_roots = Some(sim.roots().unwrap());
    support::broker::start(dir, trust)
}

fn signed(edit: impl FnOnce(&mut Value)) -> Signed {
    support::broker::contract_with(
        json!({"version": "1.0.0", "allOf": [
            {"claim": "platform", "equals": "sim"},
            {"claim": "measurement", "equals": hex::encode(M)}
        ]}),
        edit,
    )
}

/// A handshake for a run with `plan`; returns the runtime key.
fn attested(cl: &mut KbsClient, att: &SimAttester, plan: &RunPlan) -> RuntimeKey {
    let rk = RuntimeKey::generate();
    let ch = cl
        .auth(
            "sim",
            json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32)), "run": plan}),
        )
        .unwrap();
    let ev = att
        .evidence(&kbs_report_data(&ch.nonce, &rk.tee_pubkey_json(), ""))
        .unwrap();
    cl.attest(&ch.nonce, &rk, ev).unwrap();
    rk
}

/// A broker on a fresh store (`<tmp>/store`) trusting a fresh sim chain, a contract made with
/// `edit`, and a client.
fn setup(
    edit: impl FnOnce(&mut Value),
) -> (tempfile::TempDir, SimAuthority, Running, Signed, KbsClient) {
    let d = tempfile::tempdir().unwrap();
    let sim = SimAuthority::load_or_create(&d.path().join("sim")).unwrap();
    let r = start(&d.path().join("store"), &sim);
    let c = signed(edit);
    let cl = KbsClient::new(&r.url, r.pin);
    (d, sim, r, c, cl)
}

fn budget_of(store: &Path) -> (f64, f64, u64) {
    let s = Store::open(store).unwrap();
    let l = s
        .budget_report()
        .unwrap()
        .into_iter()
        .find(|l| l.dataset == "d1")
        .unwrap();
    (
        l.epsilon_spent + l.epsilon_reserved,
        l.epsilon_remaining,
        l.private_runs,
    )
}

#[test]
fn twenty_runs_racing_for_a_budget_that_fits_three_get_exactly_three_keys() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let sim = SimAuthority::load_or_create(&d.path().join("sim")).unwrap();
    let r = start(&store, &sim);
    let c = signed(|c| {
        c["constraints"] = json!([{"privacy": [
            {"dataset": "d1", "epsilon_threshold": 3.0, "delta": 1e-5, "dp_required": true}]}]);
    });
    KbsClient::new(&r.url, r.pin)
        .put_resource(&r.token, "r/k/d1", &[5u8; 32], &c.value, None)
        .unwrap();
    let att = Arc::new(SimAttester::new(
        SimAuthority::load_or_create(&d.path().join("sim")).unwrap(),
        M,
        c.digest,
    ));
    // Every run attests first, then all ask for the key at once.
    let gate = Arc::new(Barrier::new(20));
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let (att, gate, url, pin) = (att.clone(), gate.clone(), r.url.clone(), r.pin);
                s.spawn(move || {
                    let mut cl = KbsClient::new(&url, pin);
                    let plan = RunPlan::new(Some(1.0), Some(1e-5));
                    let rk = attested(&mut cl, &att, &plan);
                    gate.wait();
                    match cl.get_resource("r/k/d1", &rk) {
                        Ok(k) => {
                            assert_eq!(&k[..], &[5u8; 32]);
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 3, "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            e.contains("asks for epsilon 1") && e.contains("0.000000 of 3 remains"),
            "{e}"
        );
    }
    assert_eq!(budget_of(&store), (3.0, 0.0, 3));
    let audit = KbsClient::new(&r.url, r.pin).audit_log(&r.token).unwrap();
    let denials = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resource"] == "r/k/d1" && a["decision"] == "deny")
        .count();
    assert_eq!(denials, 17);

    // A restart keeps the ledger: the next run is refused, the sums are the same.
    drop(r);
    let r = start(&store, &sim);
    let mut cl = KbsClient::new(&r.url, r.pin);
    let rk = attested(&mut cl, &att, &RunPlan::new(Some(0.5), Some(1e-5)));
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err();
    assert!(
        matches!(&e, BrokerError::Denied(m) if m.contains("asks for epsilon 0.5")),
        "{e}"
    );
    assert_eq!(budget_of(&store), (3.0, 0.0, 3));
}

#[test]
fn dp_required_max_runs_and_malformed_plans_are_refused() {
    let (_d, sim, r, c, mut cl) = setup(|c| {
        c["maxRuns"] = json!(2);
        c["constraints"] = json!([{"privacy": [
            {"dataset": "d1", "epsilon_threshold": 10.0, "delta": 1e-5, "dp_required": true}]}]);
    });
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c.value, None)
        .unwrap();
    let att = SimAttester::new(sim, M, c.digest);
    let rk = attested(&mut cl, &att, &RunPlan::new(None, None));
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err().to_string();
    assert!(e.contains("requires DP"), "{e}");
    for _ in 0..2 {
        let rk = attested(&mut cl, &att, &RunPlan::new(Some(1.0), Some(1e-5)));
        cl.get_resource("r/k/d1", &rk).unwrap();
    }
    let rk = attested(&mut cl, &att, &RunPlan::new(Some(1.0), Some(1e-5)));
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err().to_string();
    assert!(e.contains("maxRuns 2 reached"), "{e}");
    let e = cl
        .auth(
            "sim",
            json!({"run": {"id": "1", "epsilon": 1, "delta": 1e-5}}),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("extra-params.run.id"), "{e}");
}

fn party(
    cl: &mut KbsClient,
    run: &str,
    who: &str,
    key: &PrivateKey,
    action: &str,
    extra: Value,
) -> Result<Value, BrokerError> {
    let mut req = PartyRequest {
        run: run.into(),
        action: action.into(),
        iat: chrono::Utc::now().timestamp(),
        report_digest: None,
        reason: None,
        tee_pubkey: None,
    };
    if let Some(d) = extra.get("report_digest").and_then(Value::as_str) {
        req.report_digest = Some(d.into());
    }
    if let Some(t) = extra.get("tee-pubkey") {
        req.tee_pubkey = Some(t.clone());
    }
    req.reason = extra
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    cl.party_request(run, &req.sign(who, key))
}

#[test]
fn signed_reports_update_the_ledger_and_the_output_key_waits_for_the_approvers() {
    let (d, sim, r, c, mut cl) = setup(|c| {
        c["output"]["approvers"] = json!(["tdp"]);
        c["constraints"] = json!([{"privacy": [
            {"dataset": "d1", "epsilon_threshold": 2.0, "delta": 1e-5}]}]);
    });
    let store = d.path().join("store");
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c.value, None)
        .unwrap();
    cl.put_resource(&r.token, "r/k/o", &[6u8; 32], &c.value, None)
        .unwrap();
    let att = SimAttester::new(sim, M, c.digest);
    let plan = RunPlan::new(Some(1.5), Some(1e-5));
    let rk = attested(&mut cl, &att, &plan);
    cl.get_resource("r/k/d1", &rk).unwrap();
    // With approvers, the output key never goes to a runtime.
    let e = cl.get_resource("r/k/o", &rk).unwrap_err().to_string();
    assert!(e.contains("output approvers (tdp)"), "{e}");

    let report = json!({"run_id": plan.id, "privacy": {"d1": {"epsilon_spent": 0.75}}, "metrics": {"accuracy": 0.9}});
    let bytes = serde_json::to_vec(&report).unwrap();
    // Signed by another key: refused. Without the escrowed key: refused.
    let e = cl
        .post_report(
            &plan.id,
            &RuntimeKey::generate().sign_report(&bytes),
            Some(&[7u8; 32]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("runtime key"), "{e}");
    let e = cl
        .post_report(&plan.id, &rk.sign_report(&bytes), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must escrow its output key"), "{e}");
    let ans = cl
        .post_report(&plan.id, &rk.sign_report(&bytes), Some(&[7u8; 32]))
        .unwrap();
    let digest = ans["report_digest"].as_str().unwrap().to_string();
    assert!(matches!(
        cl.post_report(&plan.id, &rk.sign_report(&bytes), Some(&[7u8; 32])),
        Err(BrokerError::Conflict(_))
    ));
    // The reported epsilon replaced the plan.
    assert_eq!(budget_of(&store), (0.75, 1.25, 1));

    let tdc_key = RuntimeKey::generate();
    let want = json!({"tee-pubkey": tdc_key.tee_pubkey_json()});
    let e = party(&mut cl, &plan.id, "tdc", &c.tdc, "output-key", want.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("waiting for approval from tdp"), "{e}");
    // A non-party, a party key signing as another, a non-approver, a stale digest: refused.
    let mallory = PrivateKey::generate("ed25519").unwrap();
    for (who, key, needle) in [
        ("mallory", &mallory, "`mallory` is not a party"),
        ("tdp", &mallory, "signed as tdp"),
        ("tdc", &c.tdc, "not an output approver"),
    ] {
        let approve = json!({"report_digest": digest});
        let e = party(&mut cl, &plan.id, who, key, "approve", approve)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{who}: {e}");
    }
    let e = party(
        &mut cl,
        &plan.id,
        "tdp",
        &c.tdp,
        "approve",
        json!({"report_digest": "00"}),
    )
    .unwrap_err();
    assert!(matches!(e, BrokerError::Conflict(_)), "{e}");
    // The provider sees the report, then approves it.
    let shown = party(&mut cl, &plan.id, "tdp", &c.tdp, "show", json!({})).unwrap();
    assert_eq!(shown["report"], report);
    assert_eq!(shown["pending"], json!(["tdp"]));
    party(
        &mut cl,
        &plan.id,
        "tdp",
        &c.tdp,
        "approve",
        json!({"report_digest": digest, "reason": "metrics only"}),
    )
    .unwrap();
    // Only the consumer gets the key.
    let e = party(&mut cl, &plan.id, "tdp", &c.tdp, "output-key", want.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("only the data consumer"), "{e}");
    let resp: kbs_types::Response = serde_json::from_value(
        party(&mut cl, &plan.id, "tdc", &c.tdc, "output-key", want).unwrap(),
    )
    .unwrap();
    assert_eq!(&tdc_key.unwrap(&resp).unwrap()[..], &[7u8; 32]);

    let audit = cl.audit_log(&r.token).unwrap();
    let reasons: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resource"] == format!("runs/{}", plan.id))
        .map(|a| {
            format!(
                "{} {}",
                a["decision"].as_str().unwrap(),
                a["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("deny `mallory` is not a party")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("approve output approved by tdp: metrics only")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("allow output key released")),
        "{reasons:?}"
    );
}

#[test]
fn a_denial_blocks_the_output_key_and_is_recorded() {
    let (_d, sim, r, c, mut cl) = setup(|c| c["output"]["approvers"] = json!(["tdp"]));
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c.value, None)
        .unwrap();
    let att = SimAttester::new(sim, M, c.digest);
    let plan = RunPlan::new(None, None);
    let rk = attested(&mut cl, &att, &plan);
    cl.get_resource("r/k/d1", &rk).unwrap();
    let bytes = serde_json::to_vec(&json!({"run_id": plan.id})).unwrap();
    let digest = cl
        .post_report(&plan.id, &rk.sign_report(&bytes), Some(&[7u8; 32]))
        .unwrap()["report_digest"]
        .clone();
    party(
        &mut cl,
        &plan.id,
        "tdp",
        &c.tdp,
        "deny",
        json!({"report_digest": digest, "reason": "accuracy reveals too much"}),
    )
    .unwrap();
    let e = party(
        &mut cl,
        &plan.id,
        "tdp",
        &c.tdp,
        "approve",
        json!({"report_digest": digest}),
    )
    .unwrap_err();
    assert!(
        matches!(e, BrokerError::Conflict(_)),
        "a decision stands: {e}"
    );
    let want = json!({"tee-pubkey": RuntimeKey::generate().tee_pubkey_json()});
    let e = party(&mut cl, &plan.id, "tdc", &c.tdc, "output-key", want)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("output denied by tdp: accuracy reveals too much"),
        "{e}"
    );
}

#[test]
fn a_rego_release_policy_reads_claims_contract_and_request() {
    let (_d, sim, r, c, mut cl) = setup(|_| {});
    let rego = format!(
        r#"package ccr
import rego.v1
default allow := false
allow if {{
	input.authority == "local"
	input.claims.platform == "sim"
	input.claims.measurement == "{m}"
	input.contract.id == "c1"
	input.request.resource == "r/k/d1"
	is_number(input.request.run.epsilon) # Rego orders null before numbers: null <= 2 holds
	input.request.run.epsilon <= 2
}}
reasons contains "runs without DP are not allowed" if input.request.run.epsilon == null
"#,
        m = hex::encode(M)
    );
    let e = cl
        .put_resource(
            &r.token,
            "r/k/d1",
            &[5u8; 32],
            &c.value,
            Some(&json!("package ccr\nallow if {")),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy: Rego"), "{e}");
    cl.put_resource(&r.token, "r/k/d1", &[5u8; 32], &c.value, Some(&json!(rego)))
        .unwrap();
    let att = SimAttester::new(sim, M, c.digest);
    let rk = attested(&mut cl, &att, &RunPlan::new(None, None));
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err().to_string();
    assert!(e.contains("runs without DP are not allowed"), "{e}");
    let rk = attested(&mut cl, &att, &RunPlan::new(Some(3.0), Some(1e-5)));
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err().to_string();
    assert!(e.contains("Rego data.ccr.allow is not true"), "{e}");
    let rk = attested(&mut cl, &att, &RunPlan::new(Some(1.0), Some(1e-5)));
    assert_eq!(&cl.get_resource("r/k/d1", &rk).unwrap()[..], &[5u8; 32]);
}
