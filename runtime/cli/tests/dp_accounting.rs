//! The RDP accountant against Google's `dp-accounting` (pip), both run on the same settings.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn dp_accounting_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dp_accounting"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CCR_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "CCR_REQUIRE_PYTHON=1 but dp_accounting is not importable (pip install -r tests/requirements.txt)"
        );
        println!(
            "skipped: python3 -c 'import dp_accounting' failed (pip install -r tests/requirements.txt)"
        );
    }
    ok
}

fn python_epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Value {
    let o = Command::new("python3")
        .arg(repo_root().join("tests/py/dp_epsilon.py"))
        .args([
            q.to_string(),
            sigma.to_string(),
            steps.to_string(),
            delta.to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn ccr_json(args: &[&str]) -> Value {
    serde_json::from_str(&ccr_ok(&[], args)).unwrap()
}

/// (q, σ, steps): the three settings. Steps are epochs × rows / batch, rounded up.
const SETTINGS: [(f64, f64, u64); 3] = [
    (256.0 / 60000.0, 1.1, 14063), // 60 epochs of 60000 rows, batch 256
    (0.01, 1.0, 1000),
    (64.0 / 548.0, 1.0, 172), // 20 epochs of 548 rows, batch 64
];

#[test]
fn epsilon_agrees_with_dp_accounting_within_one_percent() {
    if !dp_accounting_ready() {
        return;
    }
    for (q, sigma, steps) in SETTINGS {
        let ours = ccr_json(&[
            "dp",
            "epsilon",
            "--sampling-rate",
            &q.to_string(),
            "--noise-multiplier",
            &sigma.to_string(),
            "--steps",
            &steps.to_string(),
            "--delta",
            "1e-5",
        ]);
        let theirs = python_epsilon(q, sigma, steps, 1e-5);
        let (a, b) = (
            ours["epsilon"].as_f64().unwrap(),
            theirs["epsilon"].as_f64().unwrap(),
        );
        let rel = (a - b).abs() / b;
        println!(
            "q={q:.6} sigma={sigma} steps={steps}: ccr {a:.6} (order {}), dp-accounting {b:.6} (order {}), relative difference {rel:.2e}",
            ours["order"], theirs["order"]
        );
        assert!(rel < 0.01, "q={q} sigma={sigma} steps={steps}: {a} vs {b}");
    }
}

#[test]
fn the_noise_multiplier_found_meets_the_target_in_dp_accounting() {
    if !dp_accounting_ready() {
        return;
    }
    for (q, _, steps) in SETTINGS {
        let found = ccr_json(&[
            "dp",
            "noise-multiplier",
            "--target-epsilon",
            "3",
            "--sampling-rate",
            &q.to_string(),
            "--steps",
            &steps.to_string(),
            "--delta",
            "1e-5",
        ]);
        let sigma = found["noise_multiplier"].as_f64().unwrap();
        let theirs = python_epsilon(q, sigma, steps, 1e-5)["epsilon"]
            .as_f64()
            .unwrap();
        println!("q={q:.6} steps={steps}: sigma {sigma:.6}, dp-accounting epsilon {theirs:.6}");
        assert!(
            theirs <= 3.0 + 1e-9 && theirs > 2.98,
            "sigma {sigma}: epsilon {theirs}"
        );
    }
}
