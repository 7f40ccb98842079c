//! Step 6 for `LLM_Finetune`: the providers' text records (JSONL or CSV) tokenized with the
//! base model's tokenizer, their union split into training and held-out sequences (the split
//! before packing, so that no sequence mixes the two), the model fine-tuned (LoRA, DP-LoRA or
//! in full: [`crate::learn::llm`]), the held-out loss, perplexity, token accuracy and exact
//! match of the base model and of the fine-tuned one, and the output files: the adapter in
//! PEFT's layout (`adapter_config.json`, `adapter_model.safetensors`), the merged weights
//! (`model.safetensors`) when asked or after full fine-tuning (the loss chart is drawn from
//! `metrics.json` at seal time, without DP).

use std::time::Instant;

use ccr_policy::contract::OutputFormat;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tracing::info;

use super::JobError;
use super::decrypt::TextFile;
use super::train::TrainOutput;
use crate::init::Abort;
use crate::learn::dp::sgd::DpRng;
use crate::learn::dp::{DpSpent, plan_dp};
use crate::learn::llm::data::{self, Record};
use crate::learn::llm::lora::LoraConfig;
use crate::learn::llm::train::{Example, FitConfig, evaluate, fit, freeze};
use crate::learn::llm::{self, BaseModel, CausalLm, LlmConfig, LlmError, dp};
use crate::learn::{EpochLog, TrainError};
use crate::pipeline::{FinetuneConfig, FinetuneMethod, TrainConfig};

/// What the fine-tuning step reads besides the text datasets.
pub struct FinetuneInputs<'a> {
    /// `LLM_Finetune`'s config.
    pub config: &'a FinetuneConfig,
    /// Its fields shared with every train step (epochs, batch size, DP).
    pub train: &'a TrainConfig,
    /// The base model and tokenizer, read and checked at start (or out of its LUKS2 image).
    pub base: BaseModel,
    /// The model files the output may carry.
    pub formats: &'a [OutputFormat],
    /// A noise multiplier the contract fixes for a joined dataset (a floor).
    pub contract_noise: Option<f64>,
    /// Set by SIGTERM: training stops after the current epoch.
    pub abort: &'a Abort,
}

fn train_err(e: LlmError) -> JobError {
    JobError::Train(TrainError::Data(e.to_string()))
}

/// The most tokens per sequence: `max_seq_len`, or 512 capped by the model's positions.
pub fn max_seq_len(fc: &FinetuneConfig, model: &LlmConfig) -> usize {
    fc.max_seq_len
        .unwrap_or(512)
        .min(model.max_positions().max(2))
}

/// The adapters' settings: the pipeline's `lora`, with PEFT's default targets for the
/// architecture when it names none.
pub fn lora_config(fc: &FinetuneConfig, model: &LlmConfig) -> LoraConfig {
    let default: &[&str] = match model {
        LlmConfig::Llama(_) => &["q_proj", "v_proj"],
        LlmConfig::Gpt2(_) => &["c_attn"],
    };
    LoraConfig {
        r: fc.lora.r,
        alpha: fc.lora.lora_alpha,
        dropout: fc.lora.lora_dropout,
        target_modules: fc
            .lora
            .target_modules
            .clone()
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect()),
    }
}

/// Checks the pipeline against the base model, before any key is released: `max_seq_len`
/// within the model's positions, LoRA's targets among its projections.
///
/// # Errors
/// [`LlmError::Config`] naming the field.
pub fn check_against_model(fc: &FinetuneConfig, model: &LlmConfig) -> Result<(), LlmError> {
    if let Some(n) = fc.max_seq_len
        && n > model.max_positions()
    {
        return Err(LlmError::Config {
            field: "max_seq_len".into(),
            reason: format!(
                "{n} tokens; the base model takes at most {} positions",
                model.max_positions()
            ),
        });
    }
    if fc.method == FinetuneMethod::Lora {
        llm::lora::check_targets(model, &lora_config(fc, model).target_modules)?;
    }
    Ok(())
}

/// Each dataset's records: JSONL, or CSV when the file name ends in `.csv`.
fn records(t: &TextFile, fc: &FinetuneConfig) -> Result<Vec<Record>, LlmError> {
    let read = if t.file.to_ascii_lowercase().ends_with(".csv") {
        data::read_csv
    } else {
        data::read_jsonl
    };
    read(
        &t.dataset,
        &t.bytes,
        &fc.text_field,
        &fc.prompt_field,
        &fc.completion_field,
    )
}

/// The union of the datasets' examples, shuffled by `seed` and split: `(train, held out)`.
fn split(mut all: Vec<Example>, test_share: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    all.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let n = all.len();
    let test = ((n as f64 * test_share).round() as usize).clamp(1, n.saturating_sub(1));
    let train = all.split_off(test);
    (train, all)
}

/// The datasets' records as examples, in the pipeline's order, and each dataset's record count.
fn tokenized(
    texts: &[TextFile],
    tokenizer: &llm::TextTokenizer,
    fc: &FinetuneConfig,
    max_len: usize,
) -> Result<(Vec<Example>, serde_json::Map<String, Value>), JobError> {
    let mut all = Vec::new();
    let mut per_dataset = serde_json::Map::new();
    for t in texts {
        let recs = records(t, fc).map_err(train_err)?;
        let ex = tokenizer
            .examples(&t.dataset, &recs, max_len, fc.truncation)
            .map_err(train_err)?;
        info!(dataset = %t.dataset, records = recs.len(), "text records tokenized");
        per_dataset.insert(t.dataset.clone(), json!(recs.len()));
        all.extend(ex);
    }
    if all.len() < 2 {
        return Err(JobError::Train(TrainError::Data(format!(
            "{} record(s) in all: at least 2 are needed (one to train on, one held out)",
            all.len()
        ))));
    }
    Ok((all, per_dataset))
}

/// What training gave: the model, the per-epoch log (empty under DP) and what DP spent.
struct Tuned {
    model: CausalLm,
    epochs: Vec<EpochLog>,
    dp: Option<DpSpent>,
}

/// Trains `model` on `train`: DP-LoRA under `is_private`, else AdamW with the loss logged per
/// epoch; stops after the epoch in which termination is requested.
fn tune(model: CausalLm, train: &[Example], inp: &FinetuneInputs<'_>) -> Result<Tuned, JobError> {
    let (tc, abort) = (inp.train, inp.abort);
    if tc.is_private {
        let plan = plan_dp(tc, train.len(), inp.contract_noise)?;
        plan.log("DP-LoRA plan");
        let cfg = dp::DpFitConfig {
            epochs: tc.total_epochs,
            lr: tc.optimizer.params.lr,
            plan,
        };
        let mut on_epoch = |e: usize| {
            info!(epoch = e + 1, "DP-LoRA epoch done");
            !abort.requested()
        };
        // The per-epoch loss of the private batches is not DP: it is dropped here.
        let (model, _private_log, spent) =
            dp::fit_dp(model, train, &cfg, &mut DpRng::from_os(), &mut on_epoch)
                .map_err(train_err)?;
        info!(
            epsilon = spent.epsilon,
            delta = spent.delta,
            steps = spent.steps,
            "DP-LoRA done: privacy spent"
        );
        return Ok(Tuned {
            model,
            epochs: Vec::new(),
            dp: Some(spent),
        });
    }
    let cfg = FitConfig {
        epochs: tc.total_epochs,
        batch_size: tc.batch_size,
        lr: tc.optimizer.params.lr,
        weight_decay: tc.optimizer.params.weight_decay,
        seed: inp.config.seed,
    };
    let mut epochs = Vec::new();
    let mut on_epoch = |e: usize, loss: f64| {
        info!(epoch = e + 1, train_loss = loss, "epoch done");
        epochs.push(EpochLog {
            epoch: e + 1,
            train_loss: Some(loss),
            epsilon: None,
            val_metric: None,
        });
        !abort.requested()
    };
    let (model, _log) = fit(model, train, &cfg, &mut on_epoch).map_err(train_err)?;
    Ok(Tuned {
        model,
        epochs,
        dp: None,
    })
}

/// The output files: the adapter (LoRA), the merged weights (`save_merged`, or after full
/// fine-tuning), the loss curve (without DP).
fn output_files(
    t: &Tuned,
    fc: &FinetuneConfig,
    lora: &LoraConfig,
) -> Result<Vec<(String, Vec<u8>)>, JobError> {
    let mut files = Vec::new();
    if fc.method == FinetuneMethod::Lora {
        files.extend(
            llm::lora::peft_files(t.model.projections().into_iter(), &t.model.config, lora)
                .map_err(train_err)?,
        );
    }
    if fc.save_merged || fc.method == FinetuneMethod::Full {
        files.push((
            "model.safetensors".into(),
            llm::merged::merged_safetensors(&t.model).map_err(train_err)?,
        ));
    }
    Ok(files)
}

/// Fine-tunes the base model on the union of the text datasets.
///
/// # Errors
/// [`JobError::Train`] naming the dataset, record and field for bad records (a missing field,
/// a sequence over `max_seq_len` with truncation off), too few records, or a privacy plan the
/// accountant refuses; [`JobError::Config`] for a format the contract does not allow;
/// [`JobError::Aborted`].
pub fn finetune(texts: Vec<TextFile>, inp: FinetuneInputs<'_>) -> Result<TrainOutput, JobError> {
    let fc = inp.config;
    if !inp.formats.contains(&OutputFormat::Safetensors) {
        return Err(JobError::Config(
            "LLM_Finetune writes safetensors (the adapter or the merged weights), and the contract's allowedModelFormats does not list Safetensors".into(),
        ));
    }
    let max_len = max_seq_len(fc, &inp.base.model.config);
    let (all, per_dataset) = tokenized(&texts, &inp.base.tokenizer, fc, max_len)?;
    drop(texts);
    let records_total = all.len();
    let (mut train, mut test) = split(all, fc.test_split, fc.seed);
    let (train_records, test_records) = (train.len(), test.len());
    if fc.packing {
        train = data::pack(train, max_len);
        test = data::pack(test, max_len);
    }
    info!(
        train_records,
        test_records,
        train_sequences = train.len(),
        test_sequences = test.len(),
        train_tokens = train.iter().map(|e| e.ids.len()).sum::<usize>(),
        max_seq_len = max_len,
        "text split"
    );
    let config = inp.base.model.config.clone();
    let lora = lora_config(fc, &config);
    let model = match fc.method {
        FinetuneMethod::Lora => {
            let device = crate::learn::device();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(fc.seed);
            let mut m = freeze(inp.base.model.clone());
            let n = m.attach_lora(&lora, &mut rng, &device).map_err(train_err)?;
            info!(adapters = n, r = lora.r, alpha = lora.alpha, dropout = lora.dropout, targets = ?lora.target_modules, "LoRA adapters attached");
            m
        }
        FinetuneMethod::Full => inp.base.model.clone(),
    };
    let eval_batch = inp.train.batch_size.max(8);
    // With B = 0 the adapters leave the base model's outputs as they are.
    let before = evaluate(&model, &test, eval_batch).map_err(train_err)?;
    info!(
        loss = before.loss,
        perplexity = before.perplexity,
        "held-out, base model"
    );
    let t0 = Instant::now();
    let tuned = tune(model, &train, &inp)?;
    if inp.abort.requested() {
        return Err(JobError::Aborted { step: "train" });
    }
    let seconds = t0.elapsed().as_secs_f64();
    let after = evaluate(&tuned.model, &test, eval_batch).map_err(train_err)?;
    info!(
        loss = after.loss,
        perplexity = after.perplexity,
        token_accuracy = after.token_accuracy,
        exact_match = after.exact_match,
        seconds,
        "held-out, fine-tuned"
    );
    let files = output_files(&tuned, fc, &lora)?;
    let mut metrics = json!({
        "format": "ccr-metrics/1",
        "task": "causal_lm",
        "model": config.model_type(),
        "method": fc.method,
        "rows": {"total": records_total, "train": train_records, "val": 0, "test": test_records},
        "records_per_dataset": Value::Object(per_dataset),
        "sequences": {"train": train.len(), "test": test.len(), "max_seq_len": max_len, "packing": fc.packing},
        "base_model": {"test": before},
        "test": after,
        "epochs": tuned.epochs,
        "seconds": seconds,
    });
    if fc.method == FinetuneMethod::Lora {
        let trainable: usize = tuned
            .model
            .projections()
            .iter()
            .filter_map(|p| p.lora.as_ref())
            .map(|l| {
                l.a.val().dims()[0] * l.a.val().dims()[1]
                    + l.b.val().dims()[0] * l.b.val().dims()[1]
            })
            .sum();
        metrics["lora"] = json!({
            "r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
            "target_modules": lora.target_modules, "trainable_parameters": trainable,
        });
    }
    if let Some(s) = &tuned.dp {
        metrics["dp_sgd"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    Ok(TrainOutput {
        metrics,
        files,
        dp: tuned.dp,
    })
}
