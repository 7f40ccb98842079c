//! `ccr policy check`, `fmt`, `to-rego` and `eval` as a policy author uses them.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::ccr;

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(ccr()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn check_reports_position_unknown_claims_and_contradictions() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"version\": \"1.0.0\",\n \"anyOf\": [\n  {\"claim\" \"x\"}]}\n",
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", "--policy", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bad.json:3:12: expected `:`"), "{out}");
    let p = d.path().join("p.json");
    std::fs::write(
        &p,
        r#"{"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": [
            {"claim": "x-ms-sevsnpvm-hostdta", "equals": "aa"},
            {"claim": "vmpl", "equals": 0}, {"claim": "vmpl", "equals": 1}]}]}"#,
    )
    .unwrap();
    let (code, out) = run(&["policy", "check", "--policy", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("did you mean `x-ms-sevsnpvm-hostdata`?"),
        "{out}"
    );
    assert!(out.contains("anyOf[0].allOf[2]: can never hold"), "{out}");
    assert!(out.contains("ok, 2 warning(s)"), "{out}");
    // Structure errors name the clause.
    std::fs::write(&p, r#"{"version": "1.0.0", "anyOf": []}"#).unwrap();
    let (code, out) = run(&["policy", "check", "--policy", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("anyOf") && out.contains("empty"), "{out}");
}

#[test]
fn to_rego_and_eval_agree() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.json");
    std::fs::write(
        &p,
        r#"{"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "snp"}, {"claim": "tcb.snp", "atLeast": 8}]}"#,
    )
    .unwrap();
    let (code, rego) = run(&["policy", "to-rego", "--policy", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    let r = d.path().join("p.rego");
    std::fs::write(&r, rego).unwrap();
    let (code, out) = run(&["policy", "check", "--policy", r.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for (claims, want) in [
        (r#"{"platform": "snp", "tcb.snp": 9}"#, 0),
        (r#"{"platform": "snp", "tcb.snp": 7}"#, 3),
    ] {
        let c = d.path().join("c.json");
        std::fs::write(&c, claims).unwrap();
        for policy in [&p, &r] {
            let (code, out) = run(&[
                "policy",
                "eval",
                "--policy",
                policy.to_str().unwrap(),
                "--claims",
                c.to_str().unwrap(),
            ]);
            assert_eq!(code, want, "{} on {claims}: {out}", policy.display());
        }
    }
    // fmt is stable.
    let (_, once) = run(&["policy", "fmt", "--policy", p.to_str().unwrap()]);
    std::fs::write(&p, &once).unwrap();
    let (_, twice) = run(&["policy", "fmt", "--policy", p.to_str().unwrap()]);
    assert_eq!(once, twice);
    assert!(once.starts_with("{\n  \"version\": \"1.0.0\""), "{once}");
}

#[test]
fn contract_check_validates_against_the_schemas_then_the_semantics() {
    let d = tempfile::tempdir().unwrap();
    let ex = common::examples().join("breast-cancer");
    let c = d.path().join("contract.json");
    let p = d.path().join("pipeline_config.json");
    std::fs::copy(ex.join("contract.template.json"), &c).unwrap();
    std::fs::copy(ex.join("pipeline_config.json"), &p).unwrap();
    let (cs, ps) = (c.to_str().unwrap(), p.to_str().unwrap());
    // The template passes the schema; its empty public keys fail the semantic check.
    let (code, out) = run(&["contract", "check", "--contract", cs, "--pipeline", ps]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("parties[0].publicKey"), "{out}");
    // Completed by the parties: keys and the pipeline digest.
    for party in ["hospital-a", "hospital-b", "research-lab"] {
        let k = d.path().join(format!("{party}.pem"));
        run(&["contract", "keygen", "--out", k.to_str().unwrap()]);
        let (code, out) = run(&[
            "contract",
            "set-party",
            "--contract",
            cs,
            "--party",
            party,
            "--key",
            k.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) = run(&["contract", "check", "--contract", cs, "--pipeline", ps]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("pipelineDigest"), "{out}");
    run(&[
        "contract",
        "set-pipeline",
        "--contract",
        cs,
        "--pipeline",
        ps,
    ]);
    let (code, out) = run(&["contract", "check", "--contract", cs, "--pipeline", ps]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signatures: ") && out.contains(": ok"),
        "{out}"
    );
    // A pipeline with a field ccr does not read: the schema names it.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["pipeline"][1]["config"]["learning_rate"] = serde_json::json!(0.1);
    std::fs::write(&p, v.to_string()).unwrap();
    let (code, out) = run(&["contract", "check", "--contract", cs, "--pipeline", ps]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("/pipeline/1/config") && out.contains("learning_rate"),
        "{out}"
    );
}

#[test]
fn rego_reads_the_contract_and_the_request_and_reports_its_reasons() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("p.rego");
    std::fs::write(
        &r,
        r#"package ccr
import rego.v1

default allow := false

allow if {
	input.claims.platform in {"snp", "tdx"}
	input.claims.debug == false
	input.request.run.epsilon != null
	input.request.run.epsilon <= 1.0
	input.contract.purpose == "TRAINING"
}

reasons contains "the run trains without DP" if input.request.run.epsilon == null
reasons contains sprintf("the run asks for epsilon %v, at most 1.0 per run", [input.request.run.epsilon]) if input.request.run.epsilon > 1.0
"#,
    )
    .unwrap();
    let claims = d.path().join("c.json");
    std::fs::write(&claims, r#"{"platform": "snp", "debug": false}"#).unwrap();
    let contract = common::examples().join("breast-cancer/contract.template.json");
    // The template has empty party keys: give the Rego a contract that parses.
    let (code, out) = run(&[
        "policy",
        "eval",
        "--policy",
        r.to_str().unwrap(),
        "--claims",
        claims.to_str().unwrap(),
        "--contract",
        contract.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("contract"), "{out}");
    let c = d.path().join("contract.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&contract).unwrap()).unwrap();
    for p in v["parties"].as_array_mut().unwrap() {
        p["publicKey"] = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    }
    std::fs::write(&c, v.to_string()).unwrap();
    for (run_plan, want, needle) in [
        (
            r#"{"id": "x", "epsilon": 0.5, "delta": 1e-5}"#,
            0,
            "Rego data.ccr.allow is true",
        ),
        (
            r#"{"id": "x", "epsilon": 3, "delta": 1e-5}"#,
            3,
            "asks for epsilon 3, at most 1.0 per run",
        ),
        (
            r#"{"id": "x", "epsilon": null, "delta": null}"#,
            3,
            "the run trains without DP",
        ),
    ] {
        let req = d.path().join("req.json");
        std::fs::write(
            &req,
            format!(r#"{{"resource": "r/k/d", "run": {run_plan}}}"#),
        )
        .unwrap();
        let (code, out) = run(&[
            "policy",
            "eval",
            "--policy",
            r.to_str().unwrap(),
            "--claims",
            claims.to_str().unwrap(),
            "--contract",
            c.to_str().unwrap(),
            "--request",
            req.to_str().unwrap(),
        ]);
        assert_eq!(code, want, "{out}");
        assert!(out.contains(needle), "{out}");
    }
}

#[test]
fn claims_of_the_wrong_shape_are_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.json");
    std::fs::write(
        &p,
        r#"{"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "snp"}]}"#,
    )
    .unwrap();
    let c = d.path().join("c.json");
    for (claims, needle) in [
        (r#"["platform", "snp"]"#, "expected a JSON object of claims"),
        (
            r#"{"platform": "snp", "tcb": {"snp": 8}}"#,
            "claim `tcb` is an object",
        ),
    ] {
        std::fs::write(&c, claims).unwrap();
        let (code, out) = run(&[
            "policy",
            "eval",
            "--policy",
            p.to_str().unwrap(),
            "--claims",
            c.to_str().unwrap(),
        ]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(needle), "{out}");
    }
    // `ccr verify`'s output is read through its policy_input.
    std::fs::write(
        &c,
        r#"{"verdict": "verified", "policy_input": {"platform": "snp"}}"#,
    )
    .unwrap();
    let (code, out) = run(&[
        "policy",
        "eval",
        "--policy",
        p.to_str().unwrap(),
        "--claims",
        c.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}
