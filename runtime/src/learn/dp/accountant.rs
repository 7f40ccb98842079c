//! The privacy accountant: Rényi DP of the Poisson-sampled Gaussian mechanism, converted to
//! (epsilon, delta), and the noise multiplier that reaches a target epsilon.
//!
//! # What it computes
//! DP-SGD with Poisson sampling rate `q`, noise multiplier `σ` (noise standard deviation over
//! the clipping norm) and `steps` steps is, at each RDP order `α`, `steps × ε_α(q, σ)`-RDP,
//! where `ε_α = log(A_α) / (α − 1)` (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy
//! of the Sampled Gaussian Mechanism", §3):
//! - integer `α`: `A_α = Σ_{i=0..α} C(α, i) q^i (1−q)^(α−i) exp((i² − i) / (2σ²))` (their
//!   Theorem 5, the binomial expansion);
//! - fractional `α`: the two-sided series of §3.3 with `z₀ = σ² log(1/q − 1) + 1/2`, whose
//!   terms carry `erfc`, summed until both halves fall 30 nats below the total;
//! - `q = 1`: `α / (2σ²)`; `q = 0`: 0; `σ = 0`: ∞.
//!
//! Every sum is kept in log space. The conversion to (ε, δ) is the improved bound of Balle et
//! al. 2020 ("Hypothesis testing interpretations and Rényi DP", Proposition 12) and Canonne,
//! Kamath, Steinke 2020 (eq. 20): `ε = min_α ( rdp_α + log1p(−1/α) − log(δ α) / (α − 1) )`
//! over orders `α > 1.01`, 0 where `δ² + expm1(−rdp_α) > 0` (the KL bound), never negative —
//! the same as Google's `dp-accounting` (`RdpAccountant`) and Opacus's RDP accountant, which the
//! tests compare against.
//!
//! Orders: [`DEFAULT_ORDERS`], `1.1, 1.2, …, 10.9`, `11, …, 63`, `128, 256, 512, 1024` (as
//! `dp-accounting` uses).

/// The RDP orders the accountant optimises over (156 orders).
pub const DEFAULT_ORDERS: &[f64] = &{
    let mut o = [0.0; 99 + 53 + 4];
    let mut i = 0;
    while i < 99 {
        o[i] = 1.0 + (i as f64 + 1.0) / 10.0;
        i += 1;
    }
    let mut k = 0;
    while k < 53 {
        o[99 + k] = 11.0 + k as f64;
        k += 1;
    }
    o[152] = 128.0;
    o[153] = 256.0;
    o[154] = 512.0;
    o[155] = 1024.0;
    o
};

/// An accountant error: parameters out of range, each named.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DpError {
    /// A parameter is out of its range.
    #[error("{name} = {value}: {reason}")]
    Parameter {
        /// `sampling rate`, `noise multiplier`, `delta`, `steps`, `target epsilon`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The range it must be in.
        reason: &'static str,
    },
    /// No noise multiplier up to the search bound reaches the target.
    #[error(
        "no noise multiplier up to {max_sigma} reaches epsilon {target} (epsilon there: {reached})"
    )]
    Unreachable {
        /// The target epsilon.
        target: f64,
        /// The largest noise multiplier tried.
        max_sigma: f64,
        /// The epsilon it gives.
        reached: f64,
    },
}

fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `log C(n, k)` for real `n`, `k` through `lgamma`.
fn log_binom(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `log(erfc(x))`, accurate where `erfc` underflows (large `x`): the asymptotic series
/// `erfc(x) ~ exp(−x²) / (x √π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸))`.
fn log_erfc(x: f64) -> f64 {
    if x < 5.0 {
        return libm::erfc(x).ln();
    }
    let x2 = x * x;
    let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2 * x2 * x2)
        + 105.0 / (16.0 * x2 * x2 * x2 * x2);
    -x2 - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln()
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let a = alpha as f64;
    (0..=alpha).fold(f64::NEG_INFINITY, |acc, i| {
        let i = i as f64;
        let term = log_binom(a, i) + i * lq + (a - i) * l1q + (i * i - i) / (2.0 * sigma * sigma);
        log_add(acc, term)
    })
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let s2 = std::f64::consts::SQRT_2 * sigma;
    let (mut a0, mut a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last0, mut last1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for i in 0..1000u32 {
        let i = f64::from(i);
        let j = alpha - i;
        let coef = log_binom(alpha, i);
        let t0 = coef + i * lq + j * l1q;
        let t1 = coef + j * lq + i * l1q;
        let e0 = 0.5f64.ln() + log_erfc((i - z0) / s2);
        let e1 = 0.5f64.ln() + log_erfc((z0 - j) / s2);
        let s0 = t0 + (i * i - i) / (2.0 * sigma * sigma) + e0;
        let s1 = t1 + (j * j - j) / (2.0 * sigma * sigma) + e1;
        a0 = log_add(a0, s0);
        a1 = log_add(a1, s1);
        let total = log_add(a0, a1);
        if s0 < last0 && s1 < last1 && s0.max(s1) < total - 30.0 {
            return total;
        }
        last0 = s0;
        last1 = s1;
    }
    // Not converged: the order is left out (infinite RDP never wins the minimum).
    f64::INFINITY
}

/// RDP of one step of the Poisson-sampled Gaussian mechanism at order `alpha` (> 1).
pub fn rdp_one_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 && alpha < 1e6 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

fn check(q: f64, sigma: f64, delta: f64) -> Result<(), DpError> {
    if !(0.0..=1.0).contains(&q) {
        return Err(DpError::Parameter {
            name: "sampling rate",
            value: q,
            reason: "must be in [0, 1]",
        });
    }
    if !(sigma >= 0.0 && sigma.is_finite()) {
        return Err(DpError::Parameter {
            name: "noise multiplier",
            value: sigma,
            reason: "must be a finite number >= 0",
        });
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(DpError::Parameter {
            name: "delta",
            value: delta,
            reason: "must be in (0, 1)",
        });
    }
    Ok(())
}

/// An accountant for one (sampling rate, noise multiplier): the one-step RDP at every order
/// of [`DEFAULT_ORDERS`], computed once; RDP composes by adding, so the epsilon after any number
/// of steps is a cheap minimum over orders.
#[derive(Debug, Clone)]
pub struct Accountant {
    rdp: Vec<f64>,
}

impl Accountant {
    /// Precomputes the one-step RDP of sampling rate `q` and noise multiplier `sigma`.
    ///
    /// # Errors
    /// [`DpError::Parameter`] for `q` outside [0, 1] or a negative or non-finite `sigma`.
    pub fn new(q: f64, sigma: f64) -> Result<Self, DpError> {
        check(q, sigma, 0.5)?;
        Ok(Self {
            rdp: DEFAULT_ORDERS
                .iter()
                .map(|&a| rdp_one_step(q, sigma, a))
                .collect(),
        })
    }

    /// The epsilon after `steps` steps at `delta`, and the RDP order that gives it.
    ///
    /// # Errors
    /// [`DpError::Parameter`] for `delta` outside (0, 1).
    pub fn epsilon(&self, steps: u64, delta: f64) -> Result<(f64, f64), DpError> {
        check(0.5, 1.0, delta)?;
        let mut best = (f64::INFINITY, DEFAULT_ORDERS[0]);
        for (&a, &r1) in DEFAULT_ORDERS.iter().zip(&self.rdp) {
            let rdp = r1 * steps as f64;
            let eps = if rdp < 0.0 || delta * delta + (-rdp).exp_m1() > 0.0 {
                0.0
            } else if a > 1.01 {
                rdp + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
            } else {
                f64::INFINITY
            };
            if eps < best.0 {
                best = (eps, a);
            }
        }
        Ok((best.0.max(0.0), best.1))
    }

    /// The most steps, up to `limit`, whose epsilon at `delta` stays within `budget`.
    ///
    /// # Errors
    /// [`DpError::Parameter`] for `delta` outside (0, 1).
    pub fn max_steps(&self, budget: f64, delta: f64, limit: u64) -> Result<u64, DpError> {
        if self.epsilon(limit, delta)?.0 <= budget {
            return Ok(limit);
        }
        let (mut lo, mut hi) = (0u64, limit);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.epsilon(mid, delta)?.0 <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// The epsilon of `steps` steps of DP-SGD with sampling rate `q` and noise multiplier `sigma`
/// at `delta`, and the RDP order that gives it.
///
/// # Errors
/// [`DpError::Parameter`] naming a parameter out of range (`q` in [0, 1], `sigma` ≥ 0,
/// `delta` in (0, 1)).
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<(f64, f64), DpError> {
    check(q, sigma, delta)?;
    Accountant::new(q, sigma)?.epsilon(steps, delta)
}

/// The smallest noise multiplier (to within the search's tolerance) whose epsilon after
/// `steps` steps at sampling rate `q` and `delta` is at most `target_epsilon`, with the epsilon
/// it gives: bisection until the epsilon is within `0.01` below the target, as Opacus's
/// `get_noise_multiplier` searches (`epsilon_tolerance = 0.01`).
///
/// # Errors
/// [`DpError::Parameter`] for a parameter out of range or a non-positive target;
/// [`DpError::Unreachable`] when even σ = 2^20 does not reach the target.
pub fn noise_multiplier(
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
) -> Result<(f64, f64), DpError> {
    check(q, 1.0, delta)?;
    if !(target_epsilon > 0.0 && target_epsilon.is_finite()) {
        return Err(DpError::Parameter {
            name: "target epsilon",
            value: target_epsilon,
            reason: "must be a finite number > 0",
        });
    }
    let eps = |s: f64| epsilon(q, s, steps, delta).map(|e| e.0);
    let (mut lo, mut hi) = (0.0, 10.0);
    let mut eps_hi = eps(hi)?;
    while eps_hi > target_epsilon {
        if hi >= f64::from(1u32 << 20) {
            return Err(DpError::Unreachable {
                target: target_epsilon,
                max_sigma: hi,
                reached: eps_hi,
            });
        }
        lo = hi;
        hi *= 2.0;
        eps_hi = eps(hi)?;
    }
    while target_epsilon - eps_hi > 0.01 {
        let mid = (lo + hi) / 2.0;
        let e = eps(mid)?;
        if e < target_epsilon {
            hi = mid;
            eps_hi = e;
        } else {
            lo = mid;
        }
        if hi - lo < 1e-9 {
            break;
        }
    }
    Ok((hi, eps_hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_the_usual_156() {
        assert_eq!(DEFAULT_ORDERS.len(), 156);
        assert_eq!(DEFAULT_ORDERS[0], 1.1);
        assert_eq!(DEFAULT_ORDERS[98], 10.9);
        assert_eq!(DEFAULT_ORDERS[99], 11.0);
        assert_eq!(DEFAULT_ORDERS[151], 63.0);
        assert_eq!(DEFAULT_ORDERS[155], 1024.0);
    }

    #[test]
    fn full_batch_gaussian_matches_the_closed_form() {
        // q = 1: the Gaussian mechanism, rdp_α = α / (2σ²) exactly.
        for a in [2.0, 3.5, 32.0] {
            let r = rdp_one_step(1.0, 2.0, a);
            assert!((r - a / 8.0).abs() < 1e-12, "{a}: {r}");
        }
        // Integer and fractional paths agree where they meet (α = 2 vs 2 ± tiny).
        let (q, s) = (0.01, 1.0);
        let i = rdp_one_step(q, s, 2.0);
        let f = rdp_one_step(q, s, 2.0 + 1e-9);
        assert!(((i - f) / i).abs() < 1e-6, "{i} vs {f}");
    }

    #[test]
    fn epsilon_grows_with_steps_and_falls_with_noise_and_the_search_inverts_it() {
        let (e1, _) = epsilon(0.01, 1.0, 1000, 1e-5).unwrap();
        let (e2, _) = epsilon(0.01, 1.0, 2000, 1e-5).unwrap();
        let (e3, _) = epsilon(0.01, 2.0, 1000, 1e-5).unwrap();
        assert!(e2 > e1 && e3 < e1, "{e1} {e2} {e3}");
        let (sigma, reached) = noise_multiplier(3.0, 0.01, 1000, 1e-5).unwrap();
        assert!(reached <= 3.0 && reached > 2.99, "{reached}");
        let (back, _) = epsilon(0.01, sigma, 1000, 1e-5).unwrap();
        assert!((back - reached).abs() < 1e-12);
        // A slightly smaller noise multiplier overshoots the target.
        assert!(epsilon(0.01, sigma * 0.99, 1000, 1e-5).unwrap().0 > 3.0 - 0.01);
        // The accountant stops where the budget ends.
        let acc = Accountant::new(0.01, 1.0).unwrap();
        let n = acc.max_steps(e1, 1e-5, 5000).unwrap();
        assert_eq!(n, 1000);
        assert!(acc.epsilon(n + 1, 1e-5).unwrap().0 > e1);
        assert_eq!(acc.max_steps(100.0, 1e-5, 5000).unwrap(), 5000);
    }

    #[test]
    fn parameters_out_of_range_are_named() {
        let e = epsilon(1.5, 1.0, 10, 1e-5).unwrap_err().to_string();
        assert!(e.contains("sampling rate = 1.5"), "{e}");
        let e = epsilon(0.1, -1.0, 10, 1e-5).unwrap_err().to_string();
        assert!(e.contains("noise multiplier"), "{e}");
        let e = epsilon(0.1, 1.0, 10, 0.0).unwrap_err().to_string();
        assert!(e.contains("delta"), "{e}");
        let e = noise_multiplier(0.0, 0.1, 10, 1e-5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target epsilon"), "{e}");
        assert_eq!(epsilon(0.1, 0.0, 10, 1e-5).unwrap().0, f64::INFINITY);
    }
}
