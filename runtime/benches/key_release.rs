//! Key release wall time: hospital A's key held whole at one service (the ccr broker, the Key
//! Vault stand-in, the Cloud KMS stand-in) against the same key split 2-of-3 across all three
//! (issue 17), everything else equal (hospital B's key and the output key at the ccr broker).
//! Each round runs ccr-init's whole breast-cancer job once per layout, in turn, and reads the
//! seconds of its `release` step from the `step finished` log line.
//!
//! `benches/key_release.sh [ROUNDS]` builds the binaries and runs it (figures in BENCHMARKS.md).

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../../keybroker/tests/support/mod.rs"]
mod support;

#[path = "../tests/clouds/mod.rs"]
mod clouds;

use clouds::{AKey, IMAGE, a_key_layout, clouds, run};
use common::{Broker, World, stderr, world};
use serde_json::Value;

/// The `seconds` of the `release` step in ccr-init's log.
fn release_seconds(log: &str) -> Option<f64> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "step finished" && v["step"] == "release")
        .and_then(|v| v["seconds"].as_f64())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let w = world();
    let c = clouds(&w.work, &w.sim, vec![IMAGE.into()]);
    let layouts = [
        ("whole at the ccr broker", "r-broker", AKey::Broker),
        ("whole in Key Vault", "r-vault", AKey::Vault),
        ("whole in Cloud KMS", "r-kms", AKey::Kms),
        ("2-of-3 across the three", "r-2of3", AKey::TwoOfThree),
    ];
    // A broker each (a kid is registered under one contract at a time), all accepting the one
    // sim chain the cloud stand-ins trust.
    let worlds: Vec<World> = layouts
        .iter()
        .map(|_| {
            let tmp = tempfile::tempdir().unwrap();
            let work = tmp.path().to_path_buf();
            let broker = Broker::start(&work.join("broker"), Some(&w.sim));
            World {
                _tmp: tmp,
                work,
                sim: w.sim.clone(),
                broker,
            }
        })
        .collect();
    let scenarios: Vec<_> = layouts
        .iter()
        .zip(&worlds)
        .map(|((_, case, at), lw)| a_key_layout(lw, &c, case, *at))
        .collect();
    let mut seconds = vec![Vec::with_capacity(rounds); layouts.len()];
    // One warm-up run each (first-use costs: page cache, the broker's database), then rounds
    // that take the layouts in turn, so that drift in the machine's load hits all alike.
    for round in 0..=rounds {
        for (j, s) in scenarios.iter().enumerate() {
            let lw = &worlds[j];
            let out = lw.work.join(format!("{}-out-{round}", layouts[j].1));
            let o = run(s, &c, &lw.broker, &out);
            let log = stderr(&o);
            assert!(o.status.success(), "{}: {log}", layouts[j].0);
            let t = release_seconds(&log).expect("a `step finished` line for release");
            if round > 0 {
                seconds[j].push(t);
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    println!("key release step of ccr-init (seconds), {rounds} rounds, breast cancer:");
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "hospital A's key", "median", "p10", "p90"
    );
    let mut medians = Vec::new();
    for (j, (name, _, _)) in layouts.iter().enumerate() {
        let mut v = seconds[j].clone();
        v.sort_by(f64::total_cmp);
        let m = quantile(&v, 0.5);
        medians.push(m);
        println!(
            "{name:<28} {:>9.4} {:>9.4} {:>9.4}",
            m,
            quantile(&v, 0.1),
            quantile(&v, 0.9)
        );
    }
    let t = medians[3];
    for (j, (name, _, _)) in layouts.iter().take(3).enumerate() {
        println!("2-of-3 / {name}: {:.2}x", t / medians[j]);
    }
}
