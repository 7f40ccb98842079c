//! LLM_Finetune's decoders (issue 16): ccr's forward pass on the tiny Llama, Qwen2 and GPT-2
//! fixtures (`tests/py/make_llm_fixtures.py`, made with transformers) gives the logits of the
//! NumPy reference (`tests/py/llm_reference.py`, needs numpy and safetensors) and, with
//! `CCR_TORCH_PYTHON` set to a Python with torch and transformers, those of `transformers`,
//! within 1e-4; configs and weights ccr cannot run are clear errors.

mod common;

use std::path::PathBuf;

use ccr_runtime::learn::llm::{self, LlmError};
use common::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/llm").join(name)
}

const IDS: [[u32; 8]; 2] = [
    [1, 5, 9, 200, 17, 3, 44, 100],
    [7, 7, 300, 2, 90, 11, 250, 5],
];

fn ccr_logits(dir: &std::path::Path) -> Vec<f32> {
    let device = ccr_runtime::learn::device();
    let m = llm::load(dir, &device).unwrap();
    let ids: Vec<Vec<u32>> = IDS.iter().map(|r| r.to_vec()).collect();
    let out = m.forward(&ids).unwrap();
    assert_eq!(out.dims(), [2, 8, 384]);
    out.into_data().try_to_vec::<f32>().unwrap()
}

fn max_diff(ours: &[f32], theirs: &Value) -> f64 {
    let flat: Vec<f64> = theirs["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b.as_array().unwrap().iter())
        .flat_map(|p| p.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(flat.len(), ours.len());
    ours.iter()
        .zip(&flat)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn logits_match_the_numpy_reference_and_transformers() {
    let torch = std::env::var("CCR_TORCH_PYTHON").ok();
    let numpy = python_with("numpy, safetensors");
    for name in ["llama", "qwen2", "gpt2"] {
        let dir = fixture(name);
        let ours = ccr_logits(&dir);
        assert!(ours.iter().all(|x| x.is_finite()));
        let input = json!({"model": dir, "ids": IDS});
        if numpy {
            let d = max_diff(
                &ours,
                &python_json("python3", "tests/py/llm_reference.py", &[], &input),
            );
            println!("{name}: max |ccr - numpy| = {d:.2e}");
            assert!(d < 1e-4, "{name}: {d}");
        }
        if let Some(py) = &torch {
            let d = max_diff(
                &ours,
                &python_json(py, "tests/py/llm_transformers.py", &[], &input),
            );
            println!("{name}: max |ccr - transformers| = {d:.2e}");
            assert!(d < 1e-4, "{name}: {d}");
        }
    }
}

/// A copy of a fixture with `config.json` edited.
fn edited(name: &str, edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture(name).join(f), t.path().join(f)).unwrap();
    }
    let p = t.path().join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&p, c.to_string()).unwrap();
    t
}

fn load_err(dir: &std::path::Path) -> String {
    let device = ccr_runtime::learn::device();
    match llm::load(dir, &device) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn configs_and_weights_ccr_cannot_run_are_named() {
    let t = edited("llama", |c| c["model_type"] = json!("falcon"));
    let e = load_err(t.path());
    assert!(e.contains("model_type") && e.contains("falcon"), "{e}");
    // Tensors that do not match the config: both shapes named.
    let t = edited("llama", |c| c["intermediate_size"] = json!(96));
    let e = load_err(t.path());
    assert!(
        e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[128, 64]")
            && e.contains("[96, 64]"),
        "{e}"
    );
    let t = edited("gpt2", |c| c["n_layer"] = json!(3));
    let e = load_err(t.path());
    assert!(
        e.contains("transformer.h.2.") && e.contains("not in the model"),
        "{e}"
    );
    let t = edited("llama", |c| c["num_key_value_heads"] = json!(3));
    let e = load_err(t.path());
    assert!(e.contains("num_key_value_heads"), "{e}");
    let t = edited("llama", |c| {
        c["rope_parameters"] = json!({"rope_type": "yarn", "factor": 4.0})
    });
    let e = load_err(t.path());
    assert!(e.contains("yarn"), "{e}");
    // Token ids outside the vocabulary or past the positions.
    let device = ccr_runtime::learn::device();
    let m = llm::load(&fixture("gpt2"), &device).unwrap();
    let e = m.forward(&[vec![1, 384]]).unwrap_err();
    assert!(
        matches!(e, LlmError::Input(_)) && e.to_string().contains("384"),
        "{e}"
    );
    let e = m.forward(&[vec![1; 129]]).unwrap_err();
    assert!(e.to_string().contains("at most 128"), "{e}");
}
