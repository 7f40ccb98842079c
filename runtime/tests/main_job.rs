//! The main job end to end: real binaries, a real broker on loopback, the example data.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

#[test]
fn breast_cancer_keyed_join_trains_and_python_reproduces_the_predictions() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_pipeline =
        &|p: &mut Value| p["pipeline"][1]["config"]["export_test_predictions"] = json!(true);
    let s = setup_scenario(&w, &setup);
    let out = w.work.join("bc-out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let first: Value = serde_json::from_str(stderr(&o).lines().next().unwrap()).unwrap();
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("PLATFORM IS SIM"),
        "first line: {first}"
    );
    assert_eq!(last_log_line(&o)["message"], "training complete");
    let dir = unseal(&s, &out);
    let m = metrics(&dir);
    assert_eq!(m["rows"]["total"], 548, "inner join of the two hospitals");
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    let auc = m["test"]["roc_auc"]
        .as_f64()
        .unwrap_or_else(|| panic!("no roc_auc: {}", m["test"]));
    assert!(acc >= 0.93, "accuracy {acc}");
    assert!(auc >= 0.97, "ROC AUC {auc}");
    let f1 = m["test"]["f1"].as_f64().unwrap();
    assert!((0.93..=1.0).contains(&f1), "F1 {f1}");
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["platform"], "sim");
    assert_eq!(run["evidence_digest"].as_str().unwrap().len(), 96);
    if python_ready() {
        let py = Command::new("python3")
            .arg(repo_root().join("tests/py/check_model.py"))
            .arg(&dir)
            .arg(examples().join("data"))
            .arg("bc")
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "python check failed:\n{}\n{}",
            String::from_utf8_lossy(&py.stdout),
            String::from_utf8_lossy(&py.stderr)
        );
        println!("{}", String::from_utf8_lossy(&py.stdout));
    }
    // The audit log records the attestation and each release.
    let audit = w.broker.audit();
    let allows = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "allow")
        .count();
    assert_eq!(allows, 4, "attest + 2 datasets + output: {audit}");
}

#[test]
fn digits_union_trains_a_cnn() {
    let w = world();
    let mut setup = Setup::digits();
    setup.edit_pipeline =
        &|p: &mut Value| p["pipeline"][1]["config"]["export_test_predictions"] = json!(true);
    let s = setup_scenario(&w, &setup);
    let out = w.work.join("digits-out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let m = metrics(&dir);
    assert_eq!(m["rows"]["total"], 1797);
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    println!("digits CNN without DP: held-out accuracy {acc:.4} (seed 0)");
    assert!(acc >= 0.97, "accuracy {acc}");
    if python_ready() {
        let py = Command::new("python3")
            .arg(repo_root().join("tests/py/check_model.py"))
            .arg(&dir)
            .arg(examples().join("data"))
            .arg("digits")
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "python check failed:\n{}",
            String::from_utf8_lossy(&py.stderr)
        );
    }
}

#[test]
fn policy_the_sim_measurement_does_not_meet_denies_the_key_and_writes_nothing() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_contract = &|c: &mut Value| {
        c["releasePolicy"]["anyOf"][0]["allOf"][1]["equals"] = json!("00".repeat(48));
    };
    let s = setup_scenario(&w, &setup);
    let out = w.work.join("denied-out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(
        log.contains("claim `measurement`"),
        "the policy's reason is in the runtime log:\n{log}"
    );
    assert!(!out.exists(), "no output on deny");
    let audit = w.broker.audit();
    let deny = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["decision"] == "deny")
        .expect("a deny row in the audit log");
    assert!(
        deny["reason"]
            .as_str()
            .unwrap()
            .contains("anyOf[0].allOf[1]: claim `measurement`"),
        "{deny}"
    );
}

/// Sets up breast cancer once and runs ccr-init after `damage`, expecting failure.
fn expect_failure(damage: &dyn Fn(&Scenario, &World), code: i32, needle: &str) {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    damage(&s, &w);
    let out = w.work.join("out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    let log = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "expected exit {code}:\n{log}");
    assert!(
        log.contains(needle),
        "expected `{needle}` in the error:\n{log}"
    );
    assert!(!out.exists(), "no output may be written");
    let leftovers: Vec<_> = std::fs::read_dir(&w.work)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("out"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no half-written output: {leftovers:?}"
    );
}

fn ct(s: &Scenario, name: &str, file: &str) -> std::path::PathBuf {
    s.images.join(name).join("data").join(file)
}

#[test]
fn flipped_ciphertext_byte_names_file_and_segment() {
    expect_failure(
        &|s, _| {
            let p = ct(s, "hospital_b", "breast_cancer_hospital_b.csv");
            let mut b = std::fs::read(&p).unwrap();
            b[100] ^= 0x01;
            std::fs::write(&p, b).unwrap();
        },
        5,
        "breast_cancer_hospital_b.csv: segment 0 failed authentication",
    );
}

#[test]
fn flipped_byte_with_consistent_manifest_fails_authentication_of_segment_0() {
    expect_failure(
        &|s, _| {
            let p = ct(s, "hospital_b", "breast_cancer_hospital_b.csv");
            let mut b = std::fs::read(&p).unwrap();
            b[100] ^= 0x01;
            std::fs::write(&p, &b).unwrap();
            let m = s.images.join("hospital_b/manifest.json");
            let mut v: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
            use sha2::Digest;
            v["files"][0]["ciphertext_sha256"] = json!(hex::encode(sha2::Sha256::digest(&b)));
            std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        5,
        "breast_cancer_hospital_b.csv: segment 0 failed authentication",
    );
}

#[test]
fn wrong_key_at_the_broker_fails_decryption() {
    expect_failure(
        &|s, w| {
            let other = s.dir.join("other.dek");
            ccr_ok(&[], &["keys", "generate", other.to_str().unwrap()]);
            ccr_ok(
                &w.broker.env(),
                &[
                    "keys",
                    "put",
                    "--kid",
                    "ccr/dataset/bc-hospital-a",
                    "--key",
                    other.to_str().unwrap(),
                    "--contract",
                    s.contract.to_str().unwrap(),
                ],
            );
        },
        5,
        "segment 0 failed authentication",
    );
}

#[test]
fn truncated_ciphertext_is_refused() {
    expect_failure(
        &|s, _| {
            let p = ct(s, "hospital_a", "breast_cancer_hospital_a.csv");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 20]).unwrap();
        },
        5,
        "ciphertext size differs",
    );
}

#[test]
fn file_swapped_between_datasets_is_refused() {
    expect_failure(
        &|s, _| {
            // hospital_b's image now holds hospital_a's image (manifest and all).
            let b = s.images.join("hospital_b");
            std::fs::remove_dir_all(&b).unwrap();
            copy_dir(&s.images.join("hospital_a"), &b);
        },
        5,
        "image is for dataset `bc-hospital-a`, expected `bc-hospital-b`",
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn malformed_manifest_is_refused_with_its_field() {
    expect_failure(
        &|s, _| {
            let m = s.images.join("hospital_a/manifest.json");
            let t = std::fs::read_to_string(&m)
                .unwrap()
                .replace("\"segment_size\": 1048576", "\"segment_size\": 4096");
            std::fs::write(&m, t).unwrap();
        },
        5,
        "manifest field `segment_size`",
    );
}

#[test]
fn unsigned_contract_is_refused() {
    expect_failure(
        &|s, _| {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(&s.contract).unwrap()).unwrap();
            v["signatures"].as_array_mut().unwrap().pop();
            std::fs::write(&s.contract, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        2,
        "has not signed",
    );
}

#[test]
fn tampered_contract_signature_is_refused() {
    expect_failure(
        &|s, _| {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(&s.contract).unwrap()).unwrap();
            v["purpose"] = json!("MARKETING");
            std::fs::write(&s.contract, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        2,
        "signature does not verify",
    );
}

#[test]
fn malformed_contract_names_the_field() {
    expect_failure(
        &|s, _| {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(&s.contract).unwrap()).unwrap();
            v["datasets"][0]["kid"] = json!("misplaced");
            std::fs::write(&s.contract, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        2,
        "datasets[0]",
    );
}

#[test]
fn expired_contract_is_refused() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_contract = &|c: &mut Value| {
        c["startTime"] = json!("2020-01-01T00:00:00Z");
        c["expiryTime"] = json!("2021-01-01T00:00:00Z");
    };
    // Keys cannot be registered under an expired contract either.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| setup_scenario(&w, &setup)));
    let msg = r
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        msg.contains("expired"),
        "registration under an expired contract must fail: {msg}"
    );
}

#[test]
fn pipeline_changed_after_signing_is_refused() {
    expect_failure(
        &|s, _| {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(&s.pipeline).unwrap()).unwrap();
            v["pipeline"][1]["config"]["total_epochs"] = json!(61);
            std::fs::write(&s.pipeline, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        2,
        "differs from the contract's pipelineDigest",
    );
}

#[test]
fn broker_that_is_down_is_an_error_after_bounded_retries() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = w.work.join("out");
    let o = run_init(
        &s,
        &format!("https://127.0.0.1:{port}"),
        &w.broker.pin,
        &out,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn broker_answering_garbage_is_an_error() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().take(6).flatten() {
            use std::io::Write;
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\nthis is not TLS at all\n");
        }
    });
    let out = w.work.join("out");
    let o = run_init(
        &s,
        &format!("https://127.0.0.1:{port}"),
        &w.broker.pin,
        &out,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn wrong_certificate_pin_is_refused() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let out = w.work.join("out");
    let o = run_init(&s, &w.broker.url, &"ab".repeat(32), &out);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("not the pinned"), "{}", stderr(&o));
}

#[test]
fn report_from_another_sim_chain_fails_verification() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    // ccr-init signs with a different sim chain than the one the broker trusts.
    let other = w.work.join("other-sim");
    ccr_ok(&[], &["sim", "init", "--state", other.to_str().unwrap()]);
    let s2 = Scenario { sim: other, ..s };
    let out = w.work.join("out");
    let o = run_init(&s2, &w.broker.url, &w.broker.pin, &out);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("certificate chain does not verify"),
        "{}",
        stderr(&o)
    );
    let audit = w.broker.audit();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["decision"] == "deny" && r["resource"] == "attest")
    );
}

#[test]
fn auto_platform_never_falls_back_to_sim() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let out = w.work.join("out");
    let o = job_command(&s, &w.broker.url, &w.broker.pin, &out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn no_plaintext_lands_in_the_output_or_work_folders() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let out = w.work.join("bc-out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    // Distinctive plaintext: every data row of both hospitals' files (minus the header).
    let mut needles: Vec<String> = Vec::new();
    for f in [
        "breast_cancer_hospital_a.csv",
        "breast_cancer_hospital_b.csv",
    ] {
        let t = std::fs::read_to_string(examples().join("data").join(f)).unwrap();
        needles.extend(t.lines().skip(1).map(str::to_string));
        // Identifiers too: patient ids never leave in clear.
        needles.extend(
            t.lines()
                .skip(1)
                .filter_map(|l| l.split(',').next())
                .map(str::to_string),
        );
    }
    let mut files = Vec::new();
    walk(&w.work, &mut files);
    assert!(files.len() > 10, "walked the work folder: {files:?}");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "plaintext `{n}` found in {}",
                f.display()
            );
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
