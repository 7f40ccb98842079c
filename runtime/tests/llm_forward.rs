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

/// Every adapter's `B` set to random values so that the adapters change the logits.
fn randomize_b(m: &mut llm::CausalLm, seed: u64) {
    use burn::module::Param;
    use burn::tensor::{Tensor, TensorData};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let device = ccr_runtime::learn::device();
    let mut set = |p: &mut llm::lora::Proj| {
        if let Some(l) = &mut p.lora {
            let [r, out] = l.b.val().dims();
            let v: Vec<f32> = (0..r * out).map(|_| rng.gen_range(-0.5..0.5)).collect();
            l.b = Param::from_tensor(Tensor::from_data(TensorData::new(v, [r, out]), &device));
        }
    };
    for p in m.projections_mut() {
        set(p);
    }
}

#[test]
fn lora_dropout_acts_only_while_training_and_one_seed_gives_one_mask() {
    use rand::SeedableRng;
    let device = ccr_runtime::learn::device();
    let mut m = llm::load(&fixture("llama"), &device).unwrap();
    let cfg = llm::lora::LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.5,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    m.attach_lora(&cfg, &mut rng, &device).unwrap();
    randomize_b(&mut m, 3);
    let ids: Vec<Vec<u32>> = IDS.iter().map(|r| r.to_vec()).collect();
    let logits = |m: &llm::CausalLm| {
        m.forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let eval = logits(&m);
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    m.set_dropout_seed(Some(1));
    let one = logits(&m);
    assert_eq!(one, logits(&m), "the same seed gives the same masks");
    m.set_dropout_seed(Some(2));
    let two = logits(&m);
    assert!(
        diff(&one, &eval) > 1e-3,
        "dropout changes the adapted logits"
    );
    assert!(diff(&one, &two) > 1e-3, "another seed, other masks");
    m.set_dropout_seed(None);
    assert_eq!(logits(&m), eval, "no dropout outside training");
    // The held-out evaluation never drops, whatever seed the model carries.
    m.set_dropout_seed(Some(1));
    let ex = vec![llm::train::Example {
        ids: IDS[0].to_vec(),
        prompt_len: 0,
    }];
    let a = llm::train::evaluate(&m, &ex, 1).unwrap();
    m.set_dropout_seed(None);
    assert_eq!(a, llm::train::evaluate(&m, &ex, 1).unwrap());
}

#[test]
fn a_lora_adapter_saved_in_peft_layout_gives_ccr_logits_in_peft() {
    use rand::SeedableRng;
    let device = ccr_runtime::learn::device();
    let torch = std::env::var("CCR_TORCH_PYTHON").ok();
    for (name, targets, want) in [
        ("llama", vec!["q_proj", "v_proj", "down_proj"], 6),
        ("gpt2", vec!["c_attn", "c_proj"], 6),
    ] {
        let dir = fixture(name);
        let cfg = llm::lora::LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.05,
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
        };
        let mut m = llm::load(&dir, &device).unwrap();
        let ids: Vec<Vec<u32>> = IDS.iter().map(|r| r.to_vec()).collect();
        let base = m
            .forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(
            m.attach_lora(&cfg, &mut rng, &device).unwrap(),
            want,
            "{name}"
        );
        // PEFT's initialisation (B = 0) leaves the model as it was.
        let fresh = m
            .forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(fresh, base, "{name}: a fresh adapter changes nothing");
        randomize_b(&mut m, 11);
        let ours = m
            .forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let moved = ours
            .iter()
            .zip(&base)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 0.1,
            "{name}: the adapters move the logits by {moved}"
        );
        let out = tempfile::tempdir().unwrap();
        llm::lora::save_peft(m.projections().into_iter(), &m.config, &cfg, out.path()).unwrap();
        let ac: Value =
            serde_json::from_slice(&std::fs::read(out.path().join("adapter_config.json")).unwrap())
                .unwrap();
        assert_eq!(ac["peft_type"], "LORA");
        assert_eq!(ac["r"], 4);
        if let Some(py) = &torch {
            let theirs = python_json(
                py,
                "tests/py/peft_logits.py",
                &[],
                &json!({"model": dir, "adapter": out.path(), "ids": IDS}),
            );
            assert_eq!(theirs["adapted"], want, "{name}: modules PEFT adapted");
            let d = max_diff(&ours, &theirs);
            println!(
                "{name}: max |ccr - peft| = {d:.2e} (adapters moved the logits by {moved:.2})"
            );
            assert!(d < 1e-4, "{name}: {d}");
        }
    }
    // A target no projection has is refused, naming it.
    let mut m = llm::load(&fixture("llama"), &device).unwrap();
    let bad = llm::lora::LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["c_attn".into()],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let e = m
        .attach_lora(&bad, &mut rng, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("c_attn") && e.contains("target_modules"), "{e}");
}

/// A fixed mapping the base model cannot know: key tokens 50..70 to a permutation of 100..120,
/// asked after three random filler tokens: `[f, f, f, key, SEP] → [value]`.
fn mapping_examples(fillers: std::ops::Range<u64>) -> Vec<llm::train::Example> {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut perm: Vec<u32> = (100..120).collect();
    perm.shuffle(&mut rand::rngs::StdRng::seed_from_u64(99));
    let mut out = Vec::new();
    for s in fillers {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + s);
        for (k, v) in (50u32..70).zip(&perm) {
            let f: Vec<u32> = (0..3).map(|_| rng.gen_range(200..380)).collect();
            out.push(llm::train::Example {
                ids: vec![f[0], f[1], f[2], k, 10, *v],
                prompt_len: 5,
            });
        }
    }
    out
}

/// The share of examples whose completion's first token is the model's top prediction.
fn answer_accuracy(m: &llm::CausalLm, examples: &[llm::train::Example]) -> f64 {
    use burn::module::Module;
    let m = m.clone().no_grad();
    let ids: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| e.ids[..e.prompt_len].to_vec())
        .collect();
    let logits = m.forward(&ids).unwrap();
    let [b, t, v] = logits.dims();
    let flat = logits.into_data().try_to_vec::<f32>().unwrap();
    let mut right = 0;
    for (i, e) in examples.iter().enumerate() {
        let row = &flat[(i * t + t - 1) * v..(i * t + t) * v];
        let best = (0..v).max_by(|&a, &c| row[a].total_cmp(&row[c])).unwrap();
        right += usize::from(best as u32 == e.ids[e.prompt_len]);
    }
    right as f64 / b as f64
}

#[test]
fn lora_fine_tuning_learns_a_mapping_the_base_model_does_not_know() {
    use rand::SeedableRng;
    let device = ccr_runtime::learn::device();
    let train = mapping_examples(0..16);
    let held_out = mapping_examples(100..104);
    let base = llm::train::freeze(llm::load(&fixture("llama"), &device).unwrap());
    let mut m = base.clone();
    let cfg = llm::lora::LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: llm::lora::LLAMA_PROJECTIONS.map(String::from).to_vec(),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    assert_eq!(m.attach_lora(&cfg, &mut rng, &device).unwrap(), 14);
    let before = llm::train::eval_loss(&m, &held_out, 32).unwrap();
    let acc_before = answer_accuracy(&m, &held_out);
    let fit = llm::train::FitConfig {
        epochs: 12,
        batch_size: 16,
        lr: 1e-2,
        weight_decay: 0.0,
        seed: 5,
    };
    let (m, log) = llm::train::fit(m, &train, &fit, &mut |_, _| true).unwrap();
    let after = llm::train::eval_loss(&m, &held_out, 32).unwrap();
    let acc_after = answer_accuracy(&m, &held_out);
    println!(
        "held-out loss {before:.3} -> {after:.3}, answers right {acc_before:.3} -> {acc_after:.3}, train loss by epoch {:?}",
        log.train_loss
            .iter()
            .map(|l| (l * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    assert!(after < before * 0.5, "held-out loss {before} -> {after}");
    assert!(
        acc_after >= 0.8 && acc_before <= 0.2,
        "accuracy {acc_before} -> {acc_after}"
    );
    // Only the adapters moved: the base weights are as loaded.
    let w = |m: &llm::CausalLm| match &m.blocks {
        llm::model::Blocks::Llama(ls) => ls[0]
            .q
            .base
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(w(&m), w(&base));
}

/// A LoRA model on the tiny Llama with every adapter's B random (so both A and B have
/// gradients).
fn dp_model(seed: u64) -> llm::CausalLm {
    use rand::SeedableRng;
    let device = ccr_runtime::learn::device();
    let mut m = llm::train::freeze(llm::load(&fixture("llama"), &device).unwrap());
    let cfg = llm::lora::LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    m.attach_lora(&cfg, &mut rng, &device).unwrap();
    randomize_b(&mut m, seed + 1);
    m
}

#[test]
fn dp_lora_per_example_norms_equal_one_backward_pass_per_example() {
    use burn::optim::GradientsParams;
    let m = dp_model(21);
    // Short sequences take the ghost-norm identity, long ones the per-example product.
    let short = mapping_examples(0..1)[..4].to_vec();
    let long: Vec<llm::train::Example> = (0..3u32)
        .map(|i| llm::train::Example {
            ids: (0..40).map(|j| (i * 37 + j * 11) % 380).collect(),
            prompt_len: 10,
        })
        .collect();
    for examples in [short, long] {
        let fast = llm::dp::example_grad_norms(&m, &examples).unwrap();
        for (e, f) in examples.iter().zip(&fast) {
            let one = llm::dp::example_grad_norms(&m, std::slice::from_ref(e)).unwrap()[0];
            // Brute force: the example's own loss, backward, the adapters' gradients.
            let loss = llm::train::eval_loss_tracked(&m, e).unwrap();
            let g = GradientsParams::from_grads(loss.backward(), &m);
            let mut sq = 0.0;
            for p in m.projections() {
                if let Some(l) = &p.lora {
                    for id in [l.a.id, l.b.id] {
                        let t = g.get::<2>(id).unwrap();
                        sq += t
                            .into_data()
                            .try_to_vec::<f32>()
                            .unwrap()
                            .iter()
                            .map(|x| f64::from(*x).powi(2))
                            .sum::<f64>();
                    }
                }
            }
            let brute = sq.sqrt();
            assert!(
                (f - brute).abs() <= 1e-3 * brute.max(1e-3)
                    && (one - brute).abs() <= 1e-3 * brute.max(1e-3),
                "batched {f}, alone {one}, brute force {brute}"
            );
        }
    }
}

#[test]
fn dp_lora_at_epsilon_8_still_improves_held_out_loss() {
    let train = mapping_examples(0..16);
    let held_out = mapping_examples(100..104);
    let device = ccr_runtime::learn::device();
    let mut m = llm::train::freeze(llm::load(&fixture("llama"), &device).unwrap());
    let cfg = llm::lora::LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: llm::lora::LLAMA_PROJECTIONS.map(String::from).to_vec(),
    };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    m.attach_lora(&cfg, &mut rng, &device).unwrap();
    let before = llm::train::eval_loss(&m, &held_out, 32).unwrap();
    // The plan as the job makes it from a pipeline's fields.
    let tc: ccr_runtime::pipeline::TrainConfig = serde_json::from_value(json!({
        "dataset_config": {}, "total_epochs": 15, "batch_size": 32, "is_private": true,
        "privacy_params": {"epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0}
    }))
    .unwrap();
    let plan = ccr_runtime::learn::dp::plan_dp(&tc, train.len(), None).unwrap();
    let dp = llm::dp::DpFitConfig {
        epochs: 15,
        lr: 1e-2,
        plan,
    };
    let mut dprng = ccr_runtime::learn::dp::sgd::DpRng::for_tests(17);
    let (m, log, spent) = llm::dp::fit_dp(m, &train, &dp, &mut dprng, &mut |_| true).unwrap();
    let after = llm::train::eval_loss(&m, &held_out, 32).unwrap();
    let acc = answer_accuracy(&m, &held_out);
    println!(
        "DP-LoRA: held-out loss {before:.3} -> {after:.3}, answers right {acc:.3}, epsilon {:.3} (sigma {:.3}, q {:.3}, {} steps), train loss {:?}",
        spent.epsilon,
        spent.plan.noise_multiplier,
        spent.plan.sampling_rate,
        spent.steps,
        log.train_loss
            .iter()
            .map(|l| (l * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    assert!(spent.epsilon <= 8.0 && spent.epsilon > 7.0, "{spent:?}");
    assert!(after < before * 0.8, "held-out loss {before} -> {after}");
}

#[test]
fn text_datasets_tokenize_as_hugging_face_does_and_bad_records_are_named() {
    use llm::data::{Record, TextTokenizer, read_jsonl};
    let tj = std::fs::read(fixture("llama").join("tokenizer.json")).unwrap();
    let tok = TextTokenizer::from_json(&tj, 384, Some(0)).unwrap();
    let texts = [
        "question: what colour is the sky? answer: blue",
        "Übermäßig ☃ unseen words",
    ];
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    for (t, i) in texts.iter().zip(&ids) {
        assert_eq!(tok.decode(i).unwrap(), *t, "byte-level BPE round trip");
    }
    if let Ok(py) = std::env::var("CCR_TORCH_PYTHON") {
        let theirs = python_json(
            &py,
            "tests/py/tokenize_ids.py",
            &[],
            &json!({"tokenizer": fixture("llama").join("tokenizer.json"), "texts": texts}),
        );
        assert_eq!(
            theirs["ids"],
            json!(ids),
            "the same ids as Python's tokenizers"
        );
    }
    let jsonl = b"{\"prompt\": \"question: what colour is the sky? answer:\", \"completion\": \" blue\"}\n\n{\"text\": \"the quick brown fox\"}\n";
    let recs = read_jsonl("a", jsonl, "text", "prompt", "completion").unwrap();
    assert_eq!(recs.len(), 2);
    assert!(matches!(&recs[1], Record::Text(t) if t == "the quick brown fox"));
    let ex = tok.examples("a", &recs, 64, false).unwrap();
    let p = tok
        .encode("question: what colour is the sky? answer:")
        .unwrap();
    assert_eq!(ex[0].prompt_len, p.len());
    assert_eq!(&ex[0].ids[..p.len()], &p[..]);
    assert_eq!(
        *ex[0].ids.last().unwrap(),
        0,
        "closed by the end-of-sequence token"
    );
    assert_eq!(ex[1].prompt_len, 0);
    // Over the limit: refused with truncation off, cut with it on.
    let e = tok.examples("a", &recs, 4, false).unwrap_err().to_string();
    assert!(
        e.contains("dataset `a` record 1") && e.contains("max_seq_len 4"),
        "{e}"
    );
    let cut = tok.examples("a", &recs[1..], 4, true).unwrap();
    assert_eq!(cut[0].ids.len(), 4);
    // Records without the named fields, named by line (values never quoted).
    for (bad, want) in [
        (
            &b"{\"prompt\": \"secret\"}"[..],
            "line 1: `prompt` without `completion`",
        ),
        (b"{\"txt\": \"secret\"}", "line 1: no `text` field"),
        (b"[1, 2]", "line 1: not a JSON object"),
        (b"{\"text\": 5}", "line 1: field `text` is not a string"),
    ] {
        let e = read_jsonl("b", bad, "text", "prompt", "completion")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataset `b`") && e.contains(want) && !e.contains("secret"),
            "{e}"
        );
    }
    // A tokenizer with more tokens than the model's vocabulary.
    let e = TextTokenizer::from_json(&tj, 300, Some(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("384 tokens") && e.contains("vocab_size is 300"),
        "{e}"
    );
}

#[test]
fn merged_weights_load_as_a_plain_model_with_the_adapted_logits() {
    use rand::SeedableRng;
    let device = ccr_runtime::learn::device();
    let torch = std::env::var("CCR_TORCH_PYTHON").ok();
    let numpy = python_with("numpy, safetensors");
    for (name, targets) in [
        ("llama", vec!["q_proj", "o_proj", "up_proj"]),
        ("gpt2", vec!["c_attn", "c_fc"]),
    ] {
        let dir = fixture(name);
        let mut m = llm::load(&dir, &device).unwrap();
        let cfg = llm::lora::LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        m.attach_lora(&cfg, &mut rng, &device).unwrap();
        randomize_b(&mut m, 6);
        let ids: Vec<Vec<u32>> = IDS.iter().map(|r| r.to_vec()).collect();
        let adapted = m
            .forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        llm::merged::save_merged(&m, out.path()).unwrap();
        std::fs::copy(dir.join("config.json"), out.path().join("config.json")).unwrap();
        // ccr reads it back as a plain model with the adapted logits.
        let plain = llm::load(out.path(), &device).unwrap();
        let again = plain
            .forward(&ids)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let d = adapted
            .iter()
            .zip(&again)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "{name}: merged vs adapted {d}");
        let input = json!({"model": out.path(), "ids": IDS});
        if numpy {
            let d = max_diff(
                &adapted,
                &python_json("python3", "tests/py/llm_reference.py", &[], &input),
            );
            println!("{name}: merged weights, max |ccr adapted - numpy| = {d:.2e}");
            assert!(d < 1e-4, "{name}: {d}");
        }
        if let Some(py) = &torch {
            let d = max_diff(
                &adapted,
                &python_json(py, "tests/py/llm_transformers.py", &[], &input),
            );
            println!("{name}: merged weights, max |ccr adapted - transformers| = {d:.2e}");
            assert!(d < 1e-4, "{name}: {d}");
        }
    }
}
