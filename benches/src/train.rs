//! Training throughput of ccr's trainer (Burn, ndarray backend, CPU), without DP and with
//! DP-SGD, in samples per second; `benches/train.sh` runs it beside PyTorch and Opacus on the
//! same data, model and batch size.
//!
//! `cargo run --release -p ccr-benches --bin train [EPOCHS] [BATCH] [HIDDEN]`
//!
//! Data: the three digits clinics of `examples/data` (1797 rows, 64 features, 10 classes), the
//! 90% stratified training split (1617 rows), standard scaling; the scaled training rows and
//! labels are written to `target/bench-train-x.f32` and `target/bench-train-y.i64` (little
//! endian) for the PyTorch side to read the same data. Model: MLP 64 → HIDDEN → 10 with ReLU, Adam
//! (lr 1e-3). DP: Poisson sampling at q = BATCH / 1797, per-sample clipping to 1.0, noise
//! multiplier 1.0 (fixed, so the work per step does not depend on a budget search).
//! Samples/s = epochs × 1797 / training seconds (data preparation excluded; DP's expected
//! batch is BATCH, so the count is the same).

use std::time::Instant;

use ccr_runtime::learn::{self as train, dp::DpPlan};
use ccr_runtime::pipeline::Pipeline;
use ccr_runtime::pipeline::ScalerKind;
use serde_json::json;

// The trainer fits the same standard scaler on the same rows, so both sides see these numbers.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let epochs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let hidden: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(128);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pv: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("examples/digits/pipeline_config.json")).expect("pipeline"),
    )
    .expect("json");
    let c = &mut pv["pipeline"][1]["config"];
    c["model_config"] = json!({"name": "MLP", "hidden_layers": [hidden], "activation": "relu"});
    c["optimizer"] = json!({"name": "Adam", "params": {"lr": 0.001}});
    c["dataset_config"]["splits"] =
        json!({"train": 0.9, "val": 0.0, "test": 0.1, "random_state": 0, "stratify": true});
    c["dataset_config"]["preprocessing"] = json!({"scaler": "standard"});
    c["total_epochs"] = json!(epochs);
    c["batch_size"] = json!(batch);
    let pipeline = Pipeline::from_value(&pv).expect("pipeline config");
    let jc = pipeline.join.config();
    let tables = jc
        .datasets
        .iter()
        .map(|d| {
            let bytes = std::fs::read(root.join("examples/data").join(&d.file)).expect("csv");
            (
                d.name.clone(),
                ccr_runtime::tabular::read::read(&d.name, &d.file, &bytes, &[]).expect("csv"),
            )
        })
        .collect();
    let table = ccr_runtime::tabular::run(&pipeline.join, tables).expect("union");
    let tc = &pipeline.train;
    let (p, sp, _) =
        train::features::prepare(&table, tc, &["sample_id".to_string()]).expect("prepare");
    let n = sp.train.len();
    let scaler = train::Scaler::fit(ScalerKind::Standard, &p, &sp.train);
    let xs = scaler.transform(&p, &sp.train);
    let target = root.join("target");
    std::fs::write(
        target.join("bench-train-x.f32"),
        xs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .expect("write x");
    std::fs::write(
        target.join("bench-train-y.i64"),
        sp.train
            .iter()
            .flat_map(|&i| (p.y[i] as i64).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("write y");
    println!("| mode | rows | epochs | batch | hidden | seconds | samples/s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for dp in [false, true] {
        let plan = dp.then(|| DpPlan {
            max_grad_norm: 1.0,
            noise_multiplier: 1.0,
            sampling_rate: batch as f64 / n as f64,
            steps_per_epoch: (n as f64 / batch as f64).round() as u64,
            max_steps: u64::MAX,
            target_epsilon: f64::INFINITY,
            delta: 1e-5,
        });
        let t = Instant::now();
        let trained = train::train(&p, &sp, tc, plan.as_ref(), None, |_| true)
            .expect("train")
            .expect("not aborted");
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(&trained.epochs);
        println!(
            "| ccr {} | {n} | {epochs} | {batch} | {hidden} | {s:.2} | {:.0} |",
            if dp { "DP-SGD" } else { "no DP" },
            (epochs * n) as f64 / s
        );
    }
}
