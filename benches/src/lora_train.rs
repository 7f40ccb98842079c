//! LoRA training throughput on the CPU (issue 16's benchmark): a Llama-shaped model made from a
//! folder (`config.json`, `model.safetensors`), LoRA on every projection, AdamW, synthetic
//! token sequences. Prints tokens per second (tokens in the batches / wall time, after one
//! warm-up step). `benches/py/lora_train_peft.py` does the same with PyTorch + PEFT.
//! Usage: lora-train MODEL_DIR [BATCH] [SEQ_LEN] [STEPS] [RANK]

use std::time::Instant;

use ccr_runtime::learn::llm::{self, lora::LoraConfig, train};
use rand::{Rng, SeedableRng};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(a.first().expect("MODEL_DIR"));
    let arg = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, seq, steps, r) = (arg(1, 8), arg(2, 128), arg(3, 10), arg(4, 8));
    let device = ccr_runtime::learn::device();
    let mut m = train::freeze(llm::load(&dir, &device).expect("model"));
    let cfg = LoraConfig {
        r,
        alpha: 2.0 * r as f64,
        dropout: 0.0,
        target_modules: llm::lora::LLAMA_PROJECTIONS.map(String::from).to_vec(),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    m.attach_lora(&cfg, &mut rng, &device).expect("lora");
    let vocab = m.config.vocab() as u32;
    let examples: Vec<train::Example> = (0..batch * (steps + 1))
        .map(|_| train::Example {
            ids: (0..seq + 1).map(|_| rng.gen_range(0..vocab)).collect(),
            prompt_len: 0,
        })
        .collect();
    let fit = |m, ex: &[train::Example]| {
        train::fit(
            m,
            ex,
            &train::FitConfig {
                epochs: 1,
                batch_size: batch,
                lr: 1e-4,
                weight_decay: 0.0,
                seed: 1,
            },
            &mut |_, _| true,
        )
        .expect("fit")
        .0
    };
    let m = fit(m, &examples[..batch]);
    let t = Instant::now();
    let _ = fit(m, &examples[batch..]);
    let s = t.elapsed().as_secs_f64();
    let tokens = (batch * seq * steps) as f64;
    println!(
        "ccr LoRA train: batch {batch} x {seq} tokens, {steps} steps, r {r}: {:.0} tokens/s ({s:.2} s)",
        tokens / s
    );
}
