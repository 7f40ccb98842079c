//! Output release with approval and the privacy ledger, end to end with the real binaries:
//! `ccr keybroker serve`, `ccr-init` (sim), `ccr keybroker run/approve/budget` and
//! `ccr model unseal --broker`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

fn ccr_err(env: &[(&str, String)], args: &[&str]) -> String {
    let out = Command::new(ccr())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(!out.status.success(), "ccr {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Party<'a> {
    id: &'a str,
    key: PathBuf,
}

impl Party<'_> {
    fn args<'b>(&'b self, cmd: &[&'b str]) -> Vec<&'b str> {
        let mut a = cmd.to_vec();
        a.extend(["--party", self.id, "--key", self.key.to_str().unwrap()]);
        a
    }
}

fn unseal_args<'a>(
    broker: &'a str,
    s: &'a Scenario,
    out: &'a Path,
    dest: &'a Path,
    key: &'a Path,
) -> Vec<&'a str> {
    vec![
        "model",
        "unseal",
        "--id",
        &s.output_id,
        "--broker",
        broker,
        "--party",
        "research-lab",
        "--signing-key",
        key.to_str().unwrap(),
        out.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]
}

fn run_id(out: &Path) -> String {
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    m["kid"]
        .as_str()
        .unwrap()
        .strip_prefix("runs/")
        .unwrap_or_else(|| panic!("kid {} is not runs/<id>", m["kid"]))
        .to_string()
}

#[test]
fn output_key_goes_to_the_consumer_only_after_every_approver_approves() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let sim = work.join("sim");
    ccr_ok(&[], &["sim", "init", "--state", sim.to_str().unwrap()]);
    let broker = Broker::start(&work.join("broker"), Some(&sim));
    let env = broker.env();
    let mut setup = Setup::breast_cancer();
    setup.edit_contract_early =
        &|c: &mut Value| c["output"]["approvers"] = json!(["hospital-a", "hospital-b"]);
    let s = common::setup(work, &sim, &broker, &setup);
    let a = Party {
        id: "hospital-a",
        key: s.keys.join("hospital-a.sign.pem"),
    };
    let b = Party {
        id: "hospital-b",
        key: s.keys.join("hospital-b.sign.pem"),
    };
    let tdc_key = s.keys.join("research-lab.sign.pem");

    // Run 1: trained and sealed with an output key made in the CCR and escrowed.
    let out = work.join("out-1");
    let o = run_init(&s, &broker.url, &broker.pin, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = run_id(&out);
    // The consumer's own output key (registered by the setup) does not open it.
    let e = ccr_err(
        &[],
        &[
            "model",
            "unseal",
            "--id",
            &s.output_id,
            "--key",
            s.keys.join("bc-model.dek").to_str().unwrap(),
            out.to_str().unwrap(),
            work.join("nope").to_str().unwrap(),
        ],
    );
    assert!(e.contains("error"), "{e}");
    let dest = work.join("out-1.unsealed");
    let e = ccr_err(&env, &unseal_args(&broker.url, &s, &out, &dest, &tdc_key));
    assert!(
        e.contains("waiting for approval from hospital-a, hospital-b"),
        "{e}"
    );
    assert!(!dest.exists());

    // A provider sees the report: metrics, privacy, evidence digest.
    let shown: Value =
        serde_json::from_str(&ccr_ok(&env, &a.args(&["keybroker", "run", &run]))).unwrap();
    assert_eq!(shown["report"]["run_id"], run.as_str());
    assert!(shown["report"]["metrics"]["accuracy"].as_f64().unwrap() > 0.9);
    assert_eq!(
        shown["report"]["privacy"]["bc-hospital-a"]["epsilon_spent"],
        Value::Null
    );
    assert_eq!(shown["evidence_digest"].as_str().unwrap().len(), 96);
    assert_eq!(shown["pending"], json!(["hospital-a", "hospital-b"]));

    // Not a party; a party's name with another key: refused, and recorded.
    let mallory = work.join("mallory.pem");
    ccr_ok(
        &[],
        &["contract", "keygen", "--out", mallory.to_str().unwrap()],
    );
    let m = Party {
        id: "mallory",
        key: mallory.clone(),
    };
    let e = ccr_err(&env, &m.args(&["keybroker", "approve", &run]));
    assert!(e.contains("`mallory` is not a party"), "{e}");
    let forged = Party {
        id: "hospital-b",
        key: mallory,
    };
    let e = ccr_err(&env, &forged.args(&["keybroker", "approve", &run]));
    assert!(e.contains("signed as hospital-b"), "{e}");
    // A stale review is refused before anything is signed.
    let e = ccr_err(
        &env,
        &a.args(&[
            "keybroker",
            "approve",
            &run,
            "--report-digest",
            &"0".repeat(64),
        ]),
    );
    assert!(e.contains("review it again"), "{e}");

    ccr_ok(
        &env,
        &a.args(&[
            "keybroker",
            "approve",
            &run,
            "--reason",
            "aggregate metrics only",
        ]),
    );
    let e = ccr_err(&env, &unseal_args(&broker.url, &s, &out, &dest, &tdc_key));
    assert!(e.contains("waiting for approval from hospital-b"), "{e}");
    ccr_ok(&env, &b.args(&["keybroker", "approve", &run]));
    ccr_ok(&env, &unseal_args(&broker.url, &s, &out, &dest, &tdc_key));
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(dest.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["test"]["accuracy"].as_f64().unwrap() > 0.9);
    // run.jws is run.json signed with the runtime key named in it.
    let run_json = std::fs::read(dest.join("run.json")).unwrap();
    let jws = std::fs::read_to_string(dest.join("run.jws")).unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(b64.decode(parts[1]).unwrap(), run_json);
    let report: Value = serde_json::from_slice(&run_json).unwrap();
    let key = ccr_policy::sign::PublicKey::from_jwk(&report["runtime_key"]).unwrap();
    ccr_policy::sign::verify_compact(&key, "ccr-run+jws", &jws).unwrap();

    // Run 2: one provider refuses; the refusal is recorded and the output stays sealed.
    let out2 = work.join("out-2");
    let o = run_init(&s, &broker.url, &broker.pin, &out2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run2 = run_id(&out2);
    assert_ne!(run, run2);
    ccr_ok(&env, &a.args(&["keybroker", "approve", &run2]));
    ccr_ok(
        &env,
        &b.args(&["keybroker", "approve", &run2, "--deny", "too many epochs"]),
    );
    let e = ccr_err(
        &env,
        &unseal_args(
            &broker.url,
            &s,
            &out2,
            &work.join("out-2.unsealed"),
            &tdc_key,
        ),
    );
    assert!(
        e.contains("output denied by hospital-b: too many epochs"),
        "{e}"
    );

    let audit = broker.audit();
    let rows: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["resource"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect();
    for needle in [
        format!("runs/{run} deny `mallory` is not a party"),
        format!("runs/{run} approve output approved by hospital-a: aggregate metrics only"),
        format!("runs/{run} allow output key released to the data consumer"),
        format!("runs/{run2} deny output denied by hospital-b: too many epochs"),
        format!("runs/{run2}/report report signed report recorded"),
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(&needle)),
            "{needle} not in {rows:#?}"
        );
    }
    // The output key was never released to a runtime.
    assert!(
        !rows
            .iter()
            .any(|r| r.starts_with("ccr/output/bc-model allow")),
        "{rows:#?}"
    );

    // The ledger: two runs read each dataset without DP; nothing spent of the 7.5.
    let budget: Value = serde_json::from_str(&ccr_ok(
        &[],
        &[
            "keybroker",
            "budget",
            "--store",
            broker.store.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let lines = budget.as_array().unwrap();
    assert_eq!(lines.len(), 2, "{budget}");
    for l in lines {
        assert_eq!(l["epsilon_total"], 7.5);
        assert_eq!(l["epsilon_remaining"], 7.5);
        assert_eq!(l["non_private_runs"], 2);
    }
    let table = ccr_ok(
        &[],
        &[
            "keybroker",
            "budget",
            "--store",
            broker.store.to_str().unwrap(),
        ],
    );
    assert!(
        table.contains("bc-hospital-a") && table.contains("7.5000"),
        "{table}"
    );
}
