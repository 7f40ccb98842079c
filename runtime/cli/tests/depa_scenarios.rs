//! DEPA-Training's scenarios as DEPA publishes them (`../shared/depa/{covid,mnist,cifar10}`),
//! their config files unchanged: DEPA's own `policy.rego` allows each through regorus (and an
//! epsilon above the contract's threshold makes both it and ccr deny), and each runs end to end
//! with `ccr scenario run` on synthetic data made in its preprocess scripts' layouts
//! (`tests/fixtures/depa/make_data.py`) and the base model its `save_base_model.py` makes
//! (`tests/fixtures/depa/`).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn depa() -> Option<PathBuf> {
    let p = repo_root().join("../shared/depa");
    if p.join("covid").exists() {
        Some(p)
    } else {
        println!("skipped: ../shared/depa is absent");
        None
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// DEPA's contract template with the fields ccr adds, so that ccr reads it.
fn as_ccr_contract(mut c: Value) -> ccr_policy::Contract {
    c["tdc"] = json!("tdc");
    c["parties"] = json!([]);
    c["pipelineDigest"] = json!(format!("sha256:{}", "0".repeat(64)));
    c["output"] = json!({"id": "o", "key": {"type": "ccr", "properties": {"kid": "ccr/output/o", "authority": {"endpoint": "local"}, "endpoint": ""}}});
    c["releasePolicy"] =
        json!({"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "snp"}]});
    serde_json::from_value(c).unwrap()
}

#[test]
fn depas_policy_rego_allows_each_scenario_and_an_epsilon_over_the_threshold_is_denied_by_it_and_by_ccr()
 {
    let Some(depa) = depa() else { return };
    let rego = std::fs::read_to_string(depa.join("common/policy.rego")).unwrap();
    for s in ["covid", "mnist", "cifar10"] {
        let contract = read(&depa.join(s).join("contract/contract.json"));
        let pipeline = read(&depa.join(s).join("config/pipeline_config.json"));
        assert!(
            ccr_policy::depa::allowed(&rego, &contract, &pipeline).unwrap(),
            "{s}: DEPA's policy.rego denies its own scenario"
        );
    }
    // covid's pipeline asks epsilon 1.0 of a 1.5 threshold; 2.0 is over it.
    let contract = read(&depa.join("covid/contract/contract.json"));
    let mut pipeline = read(&depa.join("covid/config/pipeline_config.json"));
    pipeline["pipeline"][1]["config"]["privacy_params"]["epsilon"] = json!(2.0);
    assert!(!ccr_policy::depa::allowed(&rego, &contract, &pipeline).unwrap());
    let p = ccr_runtime::pipeline::Pipeline::from_value(&pipeline).unwrap();
    let e = ccr_runtime::job::inputs::check_privacy_plan(&as_ccr_contract(contract.clone()), &p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("epsilon 2") && e.contains("epsilon_threshold 1.5"),
        "{e}"
    );
    // At the threshold both allow.
    pipeline["pipeline"][1]["config"]["privacy_params"]["epsilon"] = json!(1.5);
    assert!(ccr_policy::depa::allowed(&rego, &contract, &pipeline).unwrap());
    let p = ccr_runtime::pipeline::Pipeline::from_value(&pipeline).unwrap();
    ccr_runtime::job::inputs::check_privacy_plan(&as_ccr_contract(contract), &p).unwrap();
}

/// Runs `ccr scenario run` and returns the work folder's unsealed metrics and run report.
fn run_scenario(
    depa: &Path,
    s: &str,
    data: &[(&str, PathBuf)],
    base: &str,
    work: &Path,
) -> (Value, Value) {
    let mut cmd = Command::new(ccr());
    cmd.args(["scenario", "run"]).arg(depa.join(s));
    for (name, p) in data {
        cmd.arg("--data").arg(format!("{name}={}", p.display()));
    }
    let base = repo_root().join("tests/fixtures/depa").join(s).join(base);
    cmd.arg("--base-model").arg(&base).arg("--work").arg(work);
    cmd.arg("--init").arg(ccr_init());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.join("ccr-init.log")).unwrap_or_default()
    );
    assert!(stdout.contains("[ccr] ccr-init --platform sim"), "{stdout}");
    let unsealed = work.join("unsealed");
    (
        read(&unsealed.join("metrics.json")),
        read(&unsealed.join("run.json")),
    )
}

#[test]
fn depas_scenarios_run_end_to_end_with_ccr_scenario_run() {
    let Some(depa) = depa() else { return };
    if !python_with("numpy, h5py, safetensors") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let made = Command::new("python3")
        .arg(repo_root().join("tests/fixtures/depa/make_data.py"))
        .arg(&data)
        .arg("1000")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    // mnist: one step, HDF5, ONNX base model (opset 11), focal loss by expression, CyclicLR.
    let (m, _) = run_scenario(
        &depa,
        "mnist",
        &[("mnist", data.join("mnist"))],
        "model.onnx",
        &tmp.path().join("mnist"),
    );
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    // Ten classes: chance is 0.1; the test asks three times that.
    assert!(acc > 0.3, "mnist held-out accuracy {acc}");
    println!("mnist: held-out accuracy {acc:.4} (n {})", m["test"]["n"]);
    assert!(
        m["test"]["classification_report"].is_object() && m["test"]["confusion_matrix"].is_array()
    );

    // cifar10: one step, safetensors data, safetensors state_dict of its model_config graph.
    let (m, _) = run_scenario(
        &depa,
        "cifar10",
        &[("cifar10", data.join("cifar10"))],
        "model.safetensors",
        &tmp.path().join("cifar10"),
    );
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.3, "cifar10 held-out accuracy {acc}");
    println!("cifar10: held-out accuracy {acc:.4} (n {})", m["test"]["n"]);

    // covid: three providers, SparkJoin, DP-SGD on the ONNX base model with BCELoss.
    let covid = data.join("covid");
    let (m, run) = run_scenario(
        &depa,
        "covid",
        &[
            ("icmr", covid.join("icmr")),
            ("cowin", covid.join("cowin")),
            ("index", covid.join("index")),
        ],
        "model.onnx",
        &tmp.path().join("covid"),
    );
    let spent = run["dp_sgd"]["epsilon"]
        .as_f64()
        .unwrap_or_else(|| panic!("no DP-SGD in {run}"));
    // The pipeline plans 1.0 of each dataset's 1.5 (the contract's noise multiplier 2.0 is a
    // floor, so one epoch spends less).
    assert!(spent > 0.0 && spent <= 1.0, "covid spent epsilon {spent}");
    for (id, p) in run["privacy"].as_object().unwrap() {
        assert_eq!(p["epsilon_spent"].as_f64(), Some(spent), "{id}");
        assert_eq!(p["epsilon_planned"].as_f64(), Some(1.0), "{id}");
    }
    assert!(run["dp_sgd"]["noise_multiplier"].as_f64().unwrap() >= 2.0);
    for k in ["accuracy", "roc_auc", "f1_score"] {
        assert!(m["test"][k].as_f64().is_some(), "covid metric {k}: {m}");
    }
    println!(
        "covid: epsilon spent {spent:.4} of 1.0 planned (threshold 1.5); held-out accuracy {:.4}, roc_auc {:.4}",
        m["test"]["accuracy"].as_f64().unwrap_or(0.0),
        m["test"]["roc_auc"].as_f64().unwrap_or(0.0)
    );
}
