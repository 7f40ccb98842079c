//! `LLM_Finetune` end to end with the real binaries on sim (issue 16): two providers' JSONL
//! (`examples/data/llm_provider_{a,b}.jsonl`: a code book the tiny base model cannot know),
//! LoRA and DP-LoRA on `tests/fixtures/llm/llama`, the adapter in PEFT's layout (loaded by
//! `peft` with `CCR_TORCH_PYTHON`), and bad inputs refused before any key is released.

mod common;

#[path = "../../images/tests/support/luks2.rs"]
mod luks2_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::{Value, json};

const PROVIDERS: &[Provider] = &[
    (
        "provider_a",
        "llm-provider-a",
        "provider-a",
        "llm_provider_a.jsonl",
    ),
    (
        "provider_b",
        "llm-provider-b",
        "provider-b",
        "llm_provider_b.jsonl",
    ),
];

fn base_model() -> PathBuf {
    repo_root().join("tests/fixtures/llm/llama")
}

fn llm_setup<'a>() -> Setup<'a> {
    Setup {
        scenario: "llm-finetune",
        providers: PROVIDERS,
        output_id: "llm-adapter",
        edit_pipeline: &|_| {},
        edit_contract: &|_| {},
        edit_contract_early: &|_| {},
    }
}

/// Runs ccr-init on the scenario with `model` as the base model folder.
fn run(w: &World, s: &Scenario, name: &str, model: &Path) -> (Output, PathBuf) {
    let out = w.work.join(name);
    let o = init_command(s, &w.broker.url, &w.broker.pin, &out)
        .arg("--base-model")
        .arg(model)
        .output()
        .unwrap();
    (o, out)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// ccr's logits for `ids` from a model folder.
fn ccr_logits(dir: &Path, ids: &[Vec<u32>]) -> Vec<f32> {
    let device = ccr_runtime::learn::device();
    let m = ccr_runtime::learn::llm::load(dir, &device).unwrap();
    m.forward(ids)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn lora_fine_tuning_learns_the_code_book_and_peft_loads_the_adapter() {
    let w = world();
    let mut setup = llm_setup();
    setup.edit_pipeline = &|p: &mut Value| {
        p["pipeline"][1]["config"]["save_merged"] = json!(true);
    };
    let s = setup_scenario(&w, &setup);
    let (o, out) = run(&w, &s, "lora-out", &base_model());
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let m = metrics(&dir);
    let (base, tuned) = (&m["base_model"]["test"], &m["test"]);
    println!(
        "LLM_Finetune LoRA: held-out loss {:.3} -> {:.3}, perplexity {:.2} -> {:.2}, exact match {:.3} -> {:.3}, {} s",
        num(&base["loss"]),
        num(&tuned["loss"]),
        num(&base["perplexity"]),
        num(&tuned["perplexity"]),
        num(&base["exact_match"]),
        num(&tuned["exact_match"]),
        m["seconds"]
    );
    assert_eq!(m["rows"]["total"], 320, "{m}");
    assert_eq!(m["records_per_dataset"]["provider_a"], 160);
    assert_eq!(m["rows"]["test"], 32);
    assert!(
        num(&tuned["loss"]) < 0.5 * num(&base["loss"]),
        "held-out loss {} -> {}",
        base["loss"],
        tuned["loss"]
    );
    assert!(
        num(&tuned["exact_match"]) >= 0.8 && num(&base["exact_match"]) <= 0.1,
        "held-out answers right: base {} -> {}",
        base["exact_match"],
        tuned["exact_match"]
    );
    assert!((num(&tuned["perplexity"]) - num(&tuned["loss"]).exp()).abs() < 1e-9);
    assert_eq!(m["lora"]["r"], 8);
    assert!(m["epochs"][0]["train_loss"].is_number(), "{m}");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "model.safetensors",
        "metrics.json",
        "run.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} is in the output");
    }
    let ac: Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(ac["peft_type"], "LORA");
    assert_eq!(ac["r"], 8);
    // ccr's logits of the merged weights (the base's config.json beside them).
    let merged = tempfile::tempdir().unwrap();
    std::fs::copy(
        base_model().join("config.json"),
        merged.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("model.safetensors"),
        merged.path().join("model.safetensors"),
    )
    .unwrap();
    let ids: Vec<Vec<u32>> = vec![
        vec![1, 5, 9, 200, 17, 3, 44, 100],
        vec![7, 7, 300, 2, 90, 11, 250, 5],
    ];
    let ours = ccr_logits(merged.path(), &ids);
    let plain = ccr_logits(&base_model(), &ids);
    let moved = ours
        .iter()
        .zip(&plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved > 0.1, "fine-tuning moved the logits by {moved}");
    match std::env::var("CCR_TORCH_PYTHON") {
        Ok(py) => {
            let theirs = python_json(
                &py,
                "tests/py/peft_logits.py",
                &[],
                &json!({"model": base_model(), "adapter": dir, "ids": ids}),
            );
            assert_eq!(theirs["adapted"], 14, "{}", theirs["adapted"]);
            let flat: Vec<f64> = theirs["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|b| b.as_array().unwrap().iter())
                .flat_map(|p| p.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect();
            let d = ours
                .iter()
                .zip(&flat)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            println!("peft (base + ccr's adapter) vs ccr (merged): max |diff| {d:.2e}");
            assert_eq!(flat.len(), ours.len());
            assert!(d < 1e-4, "max |diff| {d}");
        }
        Err(_) => eprintln!("peft part skipped: CCR_TORCH_PYTHON is not set"),
    }
}

#[test]
fn dp_lora_at_epsilon_8_improves_held_out_loss_and_charges_the_budget() {
    let w = world();
    let mut setup = llm_setup();
    setup.edit_pipeline = &|p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["is_private"] = json!(true);
        c["privacy_params"] = json!({"epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0});
        c["batch_size"] = json!(32);
        c["total_epochs"] = json!(15);
    };
    setup.edit_contract_early = &|c: &mut Value| {
        for p in c["constraints"][0]["privacy"].as_array_mut().unwrap() {
            p["dp_required"] = json!(true);
        }
    };
    let s = setup_scenario(&w, &setup);
    let (o, out) = run(&w, &s, "dp-out", &base_model());
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let m = metrics(&dir);
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let (base, tuned) = (
        num(&m["base_model"]["test"]["loss"]),
        num(&m["test"]["loss"]),
    );
    let eps = num(&run["dp_sgd"]["epsilon"]);
    println!(
        "LLM_Finetune DP-LoRA: held-out loss {base:.3} -> {tuned:.3}, exact match {}, epsilon {eps:.3}, {}",
        m["test"]["exact_match"], run["dp_sgd"]
    );
    assert!(eps <= 8.0 && eps > 7.0, "{}", run["dp_sgd"]);
    assert!(tuned < 0.8 * base, "held-out loss {base} -> {tuned}");
    // No statistic of the private training data outside DP.
    assert!(m["epochs"].as_array().unwrap().is_empty(), "{m}");
    assert!(!dir.join("loss_curve.svg").exists());
    assert_eq!(run["privacy"]["llm-provider-a"]["epsilon_planned"], 8.0);
    // The report says what DP does not cover.
    assert!(
        run["dp_sgd"]["not_covered"]
            .to_string()
            .contains("held-out metrics"),
        "{}",
        run["dp_sgd"]
    );
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
        assert!((num(&l["epsilon_spent"]) - eps).abs() < 1e-12, "{l}");
    }
}

/// An edit of a JSON document (a config or pipeline).
type Edit<'a> = &'a dyn Fn(&mut Value);

/// A copy of the base model with `config.json` edited.
fn edited_model(into: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let dir = into.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(base_model().join(f), dir.join(f)).unwrap();
    }
    let mut c: Value =
        serde_json::from_slice(&std::fs::read(base_model().join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&c).unwrap(),
    )
    .unwrap();
    dir
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The broker's `allow` decisions (attestations and releases).
fn allows(w: &World) -> usize {
    w.broker
        .audit()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "allow")
        .count()
}

#[test]
fn bad_base_models_are_refused_before_any_key_is_released() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, Edit<'_>, &str); 3] = [
        (
            "tensors",
            &|c| c["intermediate_size"] = json!(96),
            "model.layers.0.mlp.gate_proj.weight",
        ),
        ("arch", &|c| c["model_type"] = json!("falcon"), "falcon"),
        (
            "vocab",
            &|c| c["vocab_size"] = json!(300),
            "vocab_size is 300",
        ),
    ];
    for (name, edit, want) in cases {
        let model = edited_model(&tmp.path().join(name), edit);
        let config_digest = sha256_hex(&model.join("config.json"));
        // Each case its own scenario: the pipeline pins the edited config.json.
        let pin = Box::leak(Box::new(config_digest));
        let edit_pipeline = move |p: &mut Value| {
            p["pipeline"][1]["config"]["base_model"]["sha256"]["config.json"] = json!(pin.clone());
        };
        let mut setup = llm_setup();
        setup.scenario = Box::leak(format!("llm-finetune-{name}").into_boxed_str());
        setup.edit_pipeline = &edit_pipeline;
        let s = setup_with_examples(&w, &setup);
        let (o, out) = run(&w, &s, &format!("{name}-out"), &model);
        let log = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {log}");
        assert!(log.contains(want), "{name}: `{want}` is named:\n{log}");
        assert!(!out.exists(), "{name}: no output");
    }
    // A file that is not the pinned one: its digest is named.
    let mut setup = llm_setup();
    setup.scenario = "llm-finetune-digest";
    let s = setup_with_examples(&w, &setup);
    let model = edited_model(&tmp.path().join("digest"), |c| {
        c["rms_norm_eps"] = json!(1e-6)
    });
    let (o, _) = run(&w, &s, "digest-out", &model);
    let log = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{log}");
    assert!(
        log.contains("config.json: SHA-256") && log.contains("base_model.sha256"),
        "{log}"
    );
    assert_eq!(
        allows(&w),
        0,
        "nothing was attested or released: {}",
        w.broker.audit()
    );
}

#[test]
fn bad_records_are_named_and_nothing_is_written() {
    let w = world();
    let cases: [(&str, Edit<'_>, &[&str]); 2] = [
        (
            "fields",
            &|p| {
                let c = &mut p["pipeline"][1]["config"];
                c["text_field"] = json!("body");
                c["prompt_field"] = json!("question");
                c["completion_field"] = json!("reply");
            },
            &[
                "dataset `provider_a` line 1",
                "no `body` field, nor `question` and `reply`",
            ],
        ),
        (
            "length",
            &|p| {
                let c = &mut p["pipeline"][1]["config"];
                c["max_seq_len"] = json!(8);
                c["truncation"] = json!(false);
            },
            &[
                "dataset `provider_a` record 1",
                "over max_seq_len 8 (truncation is off)",
            ],
        ),
    ];
    for (name, edit, wants) in cases {
        let mut setup = llm_setup();
        setup.scenario = Box::leak(format!("llm-finetune-{name}").into_boxed_str());
        setup.edit_pipeline = edit;
        let s = setup_with_examples(&w, &setup);
        let (o, out) = run(&w, &s, &format!("{name}-out"), &base_model());
        let log = stderr(&o);
        assert_eq!(o.status.code(), Some(6), "{name}: {log}");
        for want in wants {
            assert!(log.contains(want), "{name}: `{want}` is named:\n{log}");
        }
        assert!(!out.exists(), "{name}: no output");
        // The record's text never reaches the log.
        assert!(
            !log.contains("what is the code of"),
            "{name}: data in the log"
        );
    }
}

/// Sets up a scenario named `setup.scenario` from the `llm-finetune` example's files.
fn setup_with_examples(w: &World, setup: &Setup<'_>) -> Scenario {
    let example = examples().join(setup.scenario);
    if !example.exists() {
        // A copy of the example under the case's name (the harness reads examples/<name>/).
        let src = examples().join("llm-finetune");
        let tmp = w.work.join("examples").join(setup.scenario);
        std::fs::create_dir_all(&tmp).unwrap();
        for f in ["contract.template.json", "pipeline_config.json"] {
            std::fs::copy(src.join(f), tmp.join(f)).unwrap();
        }
        return setup_from(&w.work, &w.sim, &w.broker, setup, &tmp);
    }
    setup_scenario(w, setup)
}

/// The base model folder in DEPA's `model.img` (LUKS2 with generatefs.sh's parameters, ext4
/// inside, its files at the root), pinned in the contract's `baseModelImage`, its key file at
/// the ccr broker: the files are read from the image once its key is released and checked
/// against the pipeline's digests; training runs as from the folder.
#[test]
fn the_base_model_folder_from_a_luks2_model_img() {
    if luks2_support::tools().is_none() {
        return;
    }
    use sha2::Digest;
    let w = world();
    let dir = w.work.join("model-img");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("model.keyfile");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    let img = dir.join("model.img");
    luks2_support::make_image(&img, &base_model(), 16, &key, &luks2_support::DEPA);
    let bytes = std::fs::read(&img).unwrap();
    let (sha, size) = (hex::encode(sha2::Sha256::digest(&bytes)), bytes.len());
    let contract = |c: &mut Value| {
        c["baseModelImage"] = json!({"url": "https://storage.invalid/model/model.img",
            "imageSha256": sha, "imageSize": size,
            "key": {"type": "ccr", "properties": {"kid": "ccr/model/llm-base",
                "authority": {"endpoint": "local"}, "endpoint": "", "image_format": "luks2"}}});
    };
    let mut setup = llm_setup();
    setup.edit_contract_early = &contract;
    setup.edit_pipeline = &|p: &mut Value| p["pipeline"][1]["config"]["total_epochs"] = json!(2);
    let s = setup_scenario(&w, &setup);
    ccr_ok(
        &w.broker.env(),
        &[
            "keys",
            "put",
            "--kid",
            "ccr/model/llm-base",
            "--key",
            key.to_str().unwrap(),
            "--contract",
            s.contract.to_str().unwrap(),
        ],
    );
    let out = w.work.join("img-out");
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
    assert!(
        log.contains("base model read and checked (LLM_Finetune)"),
        "{log}"
    );
    let m = metrics(&unseal(&s, &out));
    assert!(
        num(&m["test"]["loss"]) < num(&m["base_model"]["test"]["loss"]),
        "{m}"
    );
}

/// `method: full` trains every weight of a small model: the output is the whole model
/// (`model.safetensors`, the base's tensor names), no adapter; ccr reads it back as a plain
/// model, and it moved every kind of weight (embeddings and norms too, which LoRA leaves).
#[test]
fn full_fine_tuning_writes_the_whole_model() {
    let w = world();
    let mut setup = llm_setup();
    setup.edit_pipeline = &|p: &mut Value| {
        let c = &mut p["pipeline"][1]["config"];
        c["method"] = json!("full");
        c["total_epochs"] = json!(4);
        c["optimizer"]["params"]["lr"] = json!(0.001);
    };
    let s = setup_scenario(&w, &setup);
    let (o, out) = run(&w, &s, "full-out", &base_model());
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let m = metrics(&dir);
    let (base, tuned) = (
        num(&m["base_model"]["test"]["loss"]),
        num(&m["test"]["loss"]),
    );
    println!("LLM_Finetune full: held-out loss {base:.3} -> {tuned:.3}");
    assert!(tuned < 0.5 * base, "held-out loss {base} -> {tuned}");
    assert!(m.get("lora").is_none(), "{m}");
    assert!(!dir.join("adapter_model.safetensors").exists());
    let read = |p: &Path| -> Vec<(String, Vec<f32>)> {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let f = t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (n, f)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (before, after) = (
        read(&base_model().join("model.safetensors")),
        read(&dir.join("model.safetensors")),
    );
    assert_eq!(
        before.iter().map(|t| &t.0).collect::<Vec<_>>(),
        after.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert!(a != b, "`{name}` was trained");
    }
}
