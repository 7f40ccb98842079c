//! The training step end to end with the real binaries: DP-SGD within the budget, the exported
//! formats (PyTorch, ONNX, XGBoost JSON) and what the contract allows of them, base models.

mod common;

#[path = "../../images/tests/support/luks2.rs"]
mod luks2_support;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

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
        // XGBoost's JSON model: one tree per round, or one per class per round.
        let l = &model["learner"];
        assert_eq!(l["attributes"]["ccr_format"], "ccr-xgb/2");
        let trees = l["gradient_booster"]["model"]["trees"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(trees, if name == "bc" { 60 } else { 600 });
        assert!(!dir.join("model.safetensors").exists());
    }
}

#[test]
fn train_xgb_without_is_private_is_refused_when_a_dataset_requires_dp() {
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
    if luks2_support::tools().is_some() {
        base_model_in_a_luks2_image(&w, &base, &digest, l1);
    }
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

/// Round 2 again with the base model in DEPA's `model.img` (LUKS2 made with generatefs.sh's
/// parameters, ext4 inside), pinned in the contract's `baseModelImage`, its key file at the ccr
/// broker: the model read is the one the pipeline pins, and training starts from it (a first
/// epoch far below the fresh model's `l1`); a flipped byte of the image is refused.
fn base_model_in_a_luks2_image(w: &World, base: &Path, digest: &str, l1: f64) {
    use sha2::Digest;
    let dir = w.work.join("model-img");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(base, src.join("model.safetensors")).unwrap();
    let key = dir.join("model.keyfile");
    std::fs::write(&key, [0x3cu8; 32]).unwrap();
    let img = dir.join("model.img");
    luks2_support::make_image(&img, &src, 16, &key, &luks2_support::DEPA);
    let bytes = std::fs::read(&img).unwrap();
    let (sha, size) = (hex::encode(sha2::Sha256::digest(&bytes)), bytes.len());
    let edit = |p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["model_config"] = json!({"name": "MLP", "hidden_layers": [16], "model_format": "Safetensors",
            "model_path": "/mnt/remote/model/model.safetensors", "model_sha256": digest});
        c["total_epochs"] = json!(1);
    };
    let contract = |c: &mut Value| {
        c["baseModelImage"] = json!({"url": "https://storage.invalid/model/model.img",
            "imageSha256": sha, "imageSize": size,
            "key": {"type": "ccr", "properties": {"kid": "ccr/model/bc-base",
                "authority": {"endpoint": "local"}, "endpoint": "", "image_format": "luks2"}}});
    };
    let mut cont = Setup::breast_cancer();
    cont.edit_pipeline = &edit;
    cont.edit_contract_early = &contract;
    let s = setup(&dir, &w.sim, &w.broker, &cont);
    ccr_ok(
        &w.broker.env(),
        &[
            "keys",
            "put",
            "--kid",
            "ccr/model/bc-base",
            "--key",
            key.to_str().unwrap(),
            "--contract",
            s.contract.to_str().unwrap(),
        ],
    );
    let out = dir.join("round2-img");
    let o = init_command(&s, &w.broker.url, &w.broker.pin, &out)
        .arg("--base-model-image")
        .arg(&img)
        .output()
        .unwrap();
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("LUKS2 image matches the contract's imageSha256"),
        "{log}"
    );
    let read = log
        .lines()
        .find(|l| l.contains("base model read"))
        .unwrap_or_default();
    assert!(
        read.contains(digest) && read.contains("model.img/model.safetensors"),
        "{read}"
    );
    let l3 = metrics(&unseal(&s, &out))["epochs"][0]["train_loss"]
        .as_f64()
        .unwrap();
    println!("first-epoch training loss from model.img: {l3:.4}");
    assert!(l3 < l1 * 0.6, "fresh {l1}, from model.img {l3}");
    // One flipped byte in the image's data segment: refused by the pin, nothing written.
    let mut bad = bytes;
    bad[(16 << 20) + 4096 * 20 + 3] ^= 0x80;
    std::fs::write(&img, &bad).unwrap();
    let out2 = dir.join("round2-img-bad");
    let o = init_command(&s, &w.broker.url, &w.broker.pin, &out2)
        .arg("--base-model-image")
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = last_log_line(&o)["error"].as_str().unwrap().to_string();
    assert!(
        err.starts_with("base model image: ") && err.contains("image pin: the image's SHA-256"),
        "{err}"
    );
    assert!(!out2.exists());
}
