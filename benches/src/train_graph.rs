//! Training throughput of a DEPA model graph: cifar10's `model_config.json` (Conv 3→6 5×5,
//! MaxPool, Conv 6→16 5×5, MaxPool, Linear 400→120→84→10), on ccr's trainer (Burn, ndarray
//! backend, CPU), without DP and with DP-SGD, in samples per second;
//! `benches/train_graph.sh` runs it beside PyTorch and Opacus on the same data, model and
//! batch size.
//!
//! `cargo run --release -p ccr-benches --bin train-graph [EPOCHS] [BATCH] [N]`
//!
//! Data: N synthetic 3×32×32 images in 10 classes (a coloured square per class on noise),
//! written to `target/bench-graph-x.f32` and `target/bench-graph-y.i64` for the PyTorch side.
//! Optimizer: Adam, lr 1e-4 (cifar10's pipeline), cross-entropy. DP: Poisson sampling at
//! q = BATCH / N, per-sample clipping to 1.0, noise multiplier 1.0 (fixed). Samples/s =
//! epochs × N / training seconds.

use std::time::Instant;

use ccr_runtime::learn::{self as train, dp::DpPlan};
use ccr_runtime::pipeline::TrainConfig;
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let epochs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let graph: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("../shared/depa/cifar10/config/model_config.json"))
            .expect("../shared/depa/cifar10/config/model_config.json"),
    )
    .expect("json");
    let tc: TrainConfig = serde_json::from_value(json!({
        "dataset_config": {"type": "serialized", "format": "safetensors",
                           "splits": {"train": 1.0, "val": 0.0, "test": 1e-9, "random_state": 0}},
        "model_config": graph,
        "optimizer": {"name": "Adam", "params": {"lr": 0.0001}},
        "loss_config": {"class": "nn.CrossEntropyLoss"},
        "total_epochs": epochs, "batch_size": batch,
    }))
    .expect("train config");
    // Deterministic synthetic images: noise, and a square whose place and colour are the class.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32
    };
    let d = 3 * 32 * 32;
    let mut x = vec![0f32; n * d];
    let mut y = vec![0f32; n];
    for i in 0..n {
        let k = i % 10;
        y[i] = k as f32;
        for v in &mut x[i * d..(i + 1) * d] {
            *v = rnd() * 0.3;
        }
        let (r0, c0) = ((k / 4) * 8 + 1, (k % 4) * 8 + 1);
        for ch in 0..3 {
            for r in r0..r0 + 8 {
                for c in c0..c0 + 8 {
                    x[i * d + ch * 1024 + r * 32 + c] = 0.5 + 0.5 * ((k >> ch) & 1) as f32;
                }
            }
        }
    }
    let target = root.join("target");
    std::fs::write(
        target.join("bench-graph-x.f32"),
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .expect("write x");
    std::fs::write(
        target.join("bench-graph-y.i64"),
        y.iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("write y");
    let p = train::Prepared {
        features: Vec::new(),
        x,
        y,
        classes: (0..10).map(|k| k.to_string()).collect(),
        ids: (0..n).map(|i| i.to_string()).collect(),
        sample_shape: vec![3, 32, 32],
    };
    let sp = train::Split {
        train: (0..n).collect(),
        val: Vec::new(),
        test: Vec::new(),
    };
    println!("| mode | images | epochs | batch | seconds | samples/s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
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
        let trained = train::train(&p, &sp, &tc, plan.as_ref(), None, |_| true)
            .expect("train")
            .expect("not aborted");
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(&trained.epochs);
        println!(
            "| ccr {} | {n} | {epochs} | {batch} | {s:.2} | {:.0} |",
            if dp { "DP-SGD" } else { "no DP" },
            (epochs * n) as f64 / s
        );
    }
}
