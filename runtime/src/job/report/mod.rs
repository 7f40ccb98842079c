//! The run report (`run.json`, `ccr-run/1`): what ran, on which evidence, under which contract
//! and pipeline, on which datasets, what DP spent and what it does not cover, the held-out
//! metrics, the output approvers and the step timings. It is sealed with the output and signed
//! with the runtime key (`run.jws`).

pub mod charts;
pub mod page;

use std::collections::BTreeMap;

use ccr_attest::Platform;
use ccr_keybroker::RuntimeKey;
use ccr_keybroker::release::Released;
use ccr_keybroker::runs::RunPlan;
use serde_json::{Value, json};

use super::inputs::Inputs;
use super::train::TrainOutput;

/// What the report is made of.
pub struct RunFacts<'a> {
    /// What the start step read: the verified contract, the pipeline and its JSON.
    pub inputs: &'a Inputs,
    /// The run plan (id, planned epsilon and delta).
    pub plan: &'a RunPlan,
    /// The platform the run attested on, and its runtime key.
    pub attested: (Platform, &'a RuntimeKey),
    /// The released keys (their evidence digest: SHA-256 of the evidence the last ccr broker
    /// verified, hex; empty without a ccr broker).
    pub released: &'a Released,
    /// What training gave.
    pub trained: &'a TrainOutput,
    /// When the run started (RFC 3339).
    pub started: chrono::DateTime<chrono::Utc>,
    /// Milliseconds per step.
    pub timings: &'a BTreeMap<&'static str, u128>,
}

/// `run.json`'s content.
pub fn run_report(f: &RunFacts<'_>) -> Value {
    let (vc, pipeline) = (&f.inputs.contract, &f.inputs.pipeline);
    let contract = vc.contract();
    let (platform, runtime_key) = f.attested;
    let plan = f.plan;
    let dp_spent = &f.trained.dp;
    let trees = pipeline.train.model_config.name == crate::pipeline::ModelName::XgBoost;
    let datasets = &pipeline.join.config().datasets;
    let privacy: serde_json::Map<String, Value> = datasets
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                json!({
                    "dp": plan.epsilon.is_some(),
                    "epsilon_planned": plan.epsilon,
                    "delta": plan.delta,
                    "epsilon_spent": dp_spent.as_ref().map(|s| s.epsilon),
                    // The contract's total for the dataset (constraints[].privacy[]).
                    "epsilon_threshold": contract.privacy_for(&d.id).map(|p| p.epsilon_threshold),
                }),
            )
        })
        .collect();
    json!({
        "format": "ccr-run/1",
        "ccr_version": env!("CARGO_PKG_VERSION"),
        "run_id": plan.id,
        "runtime_key": runtime_key.tee_pubkey_json(),
        "contract_id": contract.id,
        "contract_digest": hex::encode(vc.digest()),
        "pipeline_digest": ccr_policy::pipeline_digest(&f.inputs.pipeline_json),
        "platform": platform.as_str(),
        "evidence_digest": f.released.evidence_digest,
        // Who released which key; for a threshold key, each share's outcome.
        "key_release": f.released.sources,
        "datasets": datasets.iter().map(|d| json!({"id": d.id, "name": d.name})).collect::<Vec<_>>(),
        "rows": f.trained.metrics["rows"],
        "privacy": privacy,
        "dp_sgd": dp_spent.as_ref().filter(|_| !trees).map(|s| json!({
            "accountant": "rdp",
            "epsilon": s.epsilon,
            "delta": s.delta,
            "order": s.order,
            "steps": s.steps,
            "noise_multiplier": s.plan.noise_multiplier,
            "sampling_rate": s.plan.sampling_rate,
            "max_grad_norm": s.plan.max_grad_norm,
            "target_epsilon": s.plan.target_epsilon,
            // Released without DP: the scaler's per-feature offset and scale (fitted on the
            // training split, inside the model) and the held-out metrics. The training loss and
            // validation metric are not reported for DP runs.
            "not_covered": if pipeline.finetune.is_some() {
                // DP-LoRA: the held-out loss, perplexity, token accuracy and exact match, of the
                // base model and the fine-tuned one; the record counts per dataset.
                json!(["held-out metrics (base model and fine-tuned)", "record counts per dataset"])
            } else {
                json!(["scaler.offset and scaler.scale in the model", "held-out metrics"])
            },
        })),
        "dp_trees": dp_spent.as_ref().filter(|_| trees).map(|s| json!({
            "algorithm": "DP-TR Newton (Maddock et al., CCS 2022)",
            "accountant": "rdp",
            "epsilon": s.epsilon,
            "delta": s.delta,
            "order": s.order,
            "trees": s.steps,
            "noise_multiplier": s.plan.noise_multiplier,
            "sampling_rate": s.plan.sampling_rate,
            "sensitivity": s.plan.max_grad_norm,
            "target_epsilon": s.plan.target_epsilon,
            // As DEPA's Train_XGB computes its feature_min/feature_max from the training rows.
            "not_covered": ["feature bounds (training split's min and max) in the model", "categories of text columns", "held-out and eval_metric metrics"],
        })),
        // The held-out metrics (the numbers only; no per-row predictions).
        "metrics": f.trained.metrics.get("test").cloned().unwrap_or(Value::Null),
        "output_approvers": contract.output.approvers,
        "started": f.started.to_rfc3339(),
        "finished": chrono::Utc::now().to_rfc3339(),
        "timings_ms": f.timings,
    })
}
