//! The main job end to end: real binaries, a real broker on loopback, the example data.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

struct World {
    _tmp: tempfile::TempDir,
    work: std::path::PathBuf,
    sim: std::path::PathBuf,
    broker: Broker,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let sim = work.join("sim");
    ccr_ok(&[], &["sim", "init", "--state", sim.to_str().unwrap()]);
    let broker = Broker::start(&work.join("broker"), Some(&sim));
    World {
        _tmp: tmp,
        work,
        sim,
        broker,
    }
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

fn setup_scenario(w: &World, s: &Setup<'_>) -> Scenario {
    setup(&w.work, &w.sim, &w.broker, s)
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
    let o = Command::new(ccr_init())
        .arg("--contract")
        .arg(&s.contract)
        .arg("--pipeline")
        .arg(&s.pipeline)
        .arg("--datasets")
        .arg(&s.images)
        .arg("--out")
        .arg(&out)
        .args(["--broker", &w.broker.url, "--broker-pin", &w.broker.pin])
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

fn dp_run(setup: &mut Setup<'_>, w: &World, name: &str) -> (Value, Value) {
    let s = setup_scenario(w, setup);
    let out = w.work.join(name);
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    (metrics(&dir), run)
}

#[test]
fn breast_cancer_with_dp_sgd_stays_within_epsilon_and_reports_it() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_pipeline = &|p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["is_private"] = json!(true);
        c["privacy_params"] = json!({"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0});
        c["optimizer"] = json!({"name": "SGD", "params": {"lr": 0.5}});
        c["batch_size"] = json!(64);
        c["total_epochs"] = json!(30);
    };
    setup.edit_contract_early = &|c: &mut Value| {
        for p in c["constraints"][0]["privacy"].as_array_mut().unwrap() {
            p["epsilon_threshold"] = json!(3.0);
            p["dp_required"] = json!(true);
        }
    };
    let (m, run) = dp_run(&mut setup, &w, "bc-dp");
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    let dp = &run["dp_sgd"];
    let eps = dp["epsilon"].as_f64().unwrap();
    println!("breast cancer DP-SGD: accuracy {acc:.4}, epsilon {eps:.4}, {dp}");
    assert!(eps <= 3.0 && eps > 2.5, "{dp}");
    assert_eq!(
        run["privacy"]["bc-hospital-a"]["epsilon_spent"],
        dp["epsilon"]
    );
    assert_eq!(run["privacy"]["bc-hospital-a"]["epsilon_planned"], 3.0);
    assert!(acc >= 0.90, "accuracy {acc}");
    // No statistic of the private data outside DP: no training loss per epoch, only epsilon.
    let epochs = m["epochs"].as_array().unwrap();
    assert!(
        epochs
            .iter()
            .all(|e| e.get("train_loss").is_none() && e["epsilon"].is_number()),
        "{}",
        m["epochs"]
    );
    // The broker's ledger took the run's report: 3.0 planned, eps spent.
    let budget: Value = serde_json::from_str(&ccr_ok(
        &[],
        &[
            "keybroker",
            "budget",
            "--store",
            w.broker.store.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    for l in budget.as_array().unwrap() {
        assert!(
            (l["epsilon_spent"].as_f64().unwrap() - eps).abs() < 1e-12,
            "{l}"
        );
        assert_eq!(l["private_runs"], 1);
    }
}

#[test]
fn digits_cnn_with_dp_sgd_stays_within_epsilon() {
    let w = world();
    let mut setup = Setup::digits();
    setup.edit_pipeline = &|p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["is_private"] = json!(true);
        c["privacy_params"] = json!({"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0});
        // DP-SGD prefers a small model: the convolution straight into the output layer.
        c["model_config"]["hidden_layers"] = json!([]);
        c["dataset_config"]["preprocessing"]["scaler"] = json!("standard");
        c["optimizer"] = json!({"name": "Adam", "params": {"lr": 0.01}});
        c["batch_size"] = json!(128);
        c["total_epochs"] = json!(40);
    };
    setup.edit_contract_early = &|c: &mut Value| {
        for p in c["constraints"][0]["privacy"].as_array_mut().unwrap() {
            p["dp_required"] = json!(true);
        }
    };
    let (m, run) = dp_run(&mut setup, &w, "digits-dp");
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    let dp = &run["dp_sgd"];
    let eps = dp["epsilon"].as_f64().unwrap();
    println!("digits CNN DP-SGD: accuracy {acc:.4}, epsilon {eps:.4}, {dp}");
    assert!(eps <= 3.0, "{dp}");
    assert!(acc >= 0.85, "accuracy {acc}");
}

/// The Python with PyTorch (`CCR_TORCH_PYTHON`, default `python3`), if it imports torch.
fn torch_python() -> Option<String> {
    let py = std::env::var("CCR_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import torch, safetensors, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "skipped the PyTorch part: {py} cannot import torch, safetensors, onnxruntime (set CCR_TORCH_PYTHON to a Python that can; torch is not in tests/requirements.txt: its wheels are gigabytes)"
        );
    }
    ok.then_some(py)
}

#[test]
fn the_models_load_in_pytorch_and_run_in_onnxruntime_with_the_runtime_outputs() {
    let w = world();
    // Breast cancer MLP and the digits CNN, both exported as safetensors and ONNX.
    let mut bc = Setup::breast_cancer();
    bc.edit_pipeline = &|p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["export_test_predictions"] = json!(true);
        c["model_config"] = json!({"name": "MLP", "hidden_layers": [16], "activation": "tanh"});
    };
    let mut digits = Setup::digits();
    digits.edit_pipeline =
        &|p: &mut Value| p["pipeline"][1]["config"]["export_test_predictions"] = json!(true);
    for (setup, name) in [(&bc, "bc"), (&digits, "digits")] {
        let s = setup_scenario(&w, setup);
        let out = w.work.join(format!("{name}-formats"));
        let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
        assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
        let dir = unseal(&s, &out);
        assert!(dir.join("model.onnx").is_file() && dir.join("model.safetensors").is_file());
        if python_ready() {
            let py = Command::new("python3")
                .arg(repo_root().join("tests/py/check_model.py"))
                .args([dir.as_os_str(), examples().join("data").as_os_str()])
                .arg(name)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&py.stdout);
            assert!(
                py.status.success(),
                "{out}\n{}",
                String::from_utf8_lossy(&py.stderr)
            );
            assert!(
                out.contains("model.onnx gives the runtime's outputs"),
                "{out}"
            );
            println!("{name}: {out}");
        }
        if let Some(py) = torch_python() {
            let t = Command::new(py)
                .arg(repo_root().join("tests/py/torch_load.py"))
                .args([dir.as_os_str(), examples().join("data").as_os_str()])
                .arg(name)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&t.stdout);
            assert!(
                t.status.success(),
                "{out}\n{}",
                String::from_utf8_lossy(&t.stderr)
            );
            println!("{name}: {out}");
        }
    }
}

#[test]
fn allowed_model_formats_limit_what_the_output_carries() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_contract_early = &|c: &mut Value| c["allowedModelFormats"] = json!(["ONNX"]);
    let s = setup_scenario(&w, &setup);
    let out = w.work.join("onnx-only");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    assert!(dir.join("model.onnx").is_file());
    assert!(!dir.join("model.safetensors").exists());
}

fn xgb(p: &mut Value, objective: &str) {
    p["pipeline"][1]["name"] = json!("Train_XGB");
    let c = &mut p["pipeline"][1]["config"];
    c["model_config"] = json!({"name": "XGBoost", "n_estimators": 60, "max_depth": 4,
        "learning_rate": 0.3, "l2_regularization": 1.0, "min_child_weight": 1.0,
        "objective": objective, "subsample": 1.0, "seed": 0});
    c["metrics"] = json!(["accuracy"]);
}

#[test]
fn train_xgb_boosts_trees_for_binary_and_multiclass_labels() {
    let w = world();
    let mut bc = Setup::breast_cancer();
    bc.edit_pipeline = &|p: &mut Value| xgb(p, "binary:logistic");
    let mut digits = Setup::digits();
    digits.edit_pipeline = &|p: &mut Value| xgb(p, "multi:softprob");
    for (setup, name, floor) in [(&bc, "bc", 0.93), (&digits, "digits", 0.90)] {
        let s = setup_scenario(&w, setup);
        let out = w.work.join(format!("{name}-xgb"));
        let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
        assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
        let dir = unseal(&s, &out);
        let m = metrics(&dir);
        let acc = m["test"]["accuracy"].as_f64().unwrap();
        println!("{name} Train_XGB: held-out accuracy {acc:.4}");
        assert!(acc >= floor, "{name}: accuracy {acc}");
        let model: Value =
            serde_json::from_slice(&std::fs::read(dir.join("model.xgb.json")).unwrap()).unwrap();
        assert_eq!(model["format"], "ccr-xgb/1");
        let boosters = model["boosters"].as_array().unwrap().len();
        assert_eq!(boosters, if name == "bc" { 1 } else { 10 });
        assert!(!dir.join("model.safetensors").exists());
    }
}

#[test]
fn train_xgb_is_refused_when_a_dataset_requires_dp() {
    let w = world();
    let mut setup = Setup::breast_cancer();
    setup.edit_pipeline = &|p: &mut Value| xgb(p, "binary:logistic");
    setup.edit_contract_early =
        &|c: &mut Value| c["constraints"][0]["privacy"][0]["dp_required"] = json!(true);
    let s = setup_scenario(&w, &setup);
    let out = w.work.join("xgb-dp");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("requires DP"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn a_base_model_in_safetensors_is_where_training_starts() {
    let w = world();
    let mlp = |p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["model_config"] = json!({"name": "MLP", "hidden_layers": [16]});
        c["total_epochs"] = json!(1);
    };
    // Round 1: a fresh MLP, one epoch.
    let mut fresh = Setup::breast_cancer();
    fresh.edit_pipeline = &mlp;
    let s = setup_scenario(&w, &fresh);
    let out = w.work.join("round1");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let round1 = unseal(&s, &out);
    let first_loss = |dir: &Path| metrics(dir)["epochs"][0]["train_loss"].as_f64().unwrap();
    // Train it further: round 1's model is round 2's base.
    let base = w.work.join("base.safetensors");
    std::fs::copy(round1.join("model.safetensors"), &base).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&base).unwrap()))
    };
    let edit = |p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["model_config"] = json!({"name": "MLP", "hidden_layers": [16], "model_format": "Safetensors",
            "model_path": base, "model_sha256": digest});
        c["total_epochs"] = json!(1);
    };
    let mut cont = Setup::breast_cancer();
    cont.edit_pipeline = &edit;
    let second = w.work.join("second");
    std::fs::create_dir_all(&second).unwrap();
    let s2 = setup(&second, &w.sim, &w.broker, &cont);
    let out2 = second.join("round2");
    let o = run_init(&s2, &w.broker.url, &w.broker.pin, &out2);
    assert!(o.status.success(), "{}", stderr(&o));
    let round2 = unseal(&s2, &out2);
    let (l1, l2) = (first_loss(&round1), first_loss(&round2));
    println!("first-epoch training loss: fresh {l1:.4}, from the base model {l2:.4}");
    assert!(l2 < l1 * 0.6, "fresh {l1}, continued {l2}");
    // Another file than the one the pipeline pins is refused before anything runs.
    std::fs::write(&base, b"not the model").unwrap();
    let out3 = second.join("round3");
    let mut c = init_command(&s2, &w.broker.url, &w.broker.pin, &out3);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not the pipeline's model_config.model_sha256"),
        "{}",
        stderr(&o)
    );
    assert!(!out3.exists());
}
