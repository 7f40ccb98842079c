//! Train_ML's full-batch solver (`learn::solver`, L-BFGS) gives scikit-learn's coefficients:
//! binary and multinomial `LogisticRegression(solver="lbfgs", C)` and `LinearRegression`, on the
//! same rows, within 1e-4 (tests/py/solver_check.py computes scikit-learn's, to tol 1e-10).

mod common;

use ccr_runtime::learn::solver::{SolverParams, least_squares, logistic};
use rand::{Rng, SeedableRng};
use serde_json::json;

#[test]
fn the_lbfgs_solver_gives_scikit_learns_coefficients() {
    if !common::python_with("sklearn, numpy") {
        return;
    }
    let (n, d) = (400, 6);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let x: Vec<f32> = (0..n * d).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
    let w_true = [1.5f32, -2.0, 0.5, 0.0, 1.0, -0.7];
    let score = |i: usize| -> f32 {
        x[i * d..(i + 1) * d]
            .iter()
            .zip(w_true)
            .map(|(a, b)| a * b)
            .sum::<f32>()
    };
    let binary: Vec<f32> = (0..n)
        .map(|i| f32::from(u8::from(score(i) + rng.gen_range(-1.5f32..1.5) > 0.3)))
        .collect();
    let three: Vec<f32> = (0..n)
        .map(|i| {
            let s = score(i) + rng.gen_range(-1.0f32..1.0);
            if s < -1.0 {
                0.0
            } else if s < 1.0 {
                1.0
            } else {
                2.0
            }
        })
        .collect();
    let value: Vec<f32> = (0..n)
        .map(|i| score(i) * 0.8 + 3.0 + rng.gen_range(-0.5f32..0.5))
        .collect();
    let cases = json!([
        {"kind": "logistic", "y": binary, "C": 1.0},
        {"kind": "logistic", "y": binary, "C": 0.05},
        {"kind": "logistic", "y": three, "C": 1.0},
        {"kind": "linear", "y": value, "C": 1.0},
    ]);
    let rows: Vec<&[f32]> = x.chunks(d).collect();
    let want = common::python_json(
        "python3",
        "tests/py/solver_check.py",
        &[],
        &json!({"x": rows, "cases": cases}),
    );
    let want = want.as_array().unwrap();
    let prm = |c: f64| SolverParams {
        c,
        max_iter: 10_000,
        tol: 1e-10,
    };
    let got = [
        logistic(&x, &binary, d, 2, &prm(1.0)).unwrap(),
        logistic(&x, &binary, d, 2, &prm(0.05)).unwrap(),
        logistic(&x, &three, d, 3, &prm(1.0)).unwrap(),
        least_squares(&x, &value, d, &prm(1.0)).unwrap(),
    ];
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let coef: Vec<f64> = w["coef"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let intercept: Vec<f64> = w["intercept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(g.weights.len(), coef.len(), "case {i}");
        for (a, b) in g
            .weights
            .iter()
            .zip(&coef)
            .chain(g.bias.iter().zip(&intercept))
        {
            assert!((a - b).abs() < 1e-4, "case {i}: ccr {a}, scikit-learn {b}");
        }
        println!(
            "case {i}: {} iterations, coefficients equal scikit-learn's within 1e-4",
            g.iterations
        );
    }
}
