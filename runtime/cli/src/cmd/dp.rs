//! `ccr dp`: privacy accounting for planners, with the accountant the runtime uses.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum DpCmd {
    /// The epsilon spent by STEPS steps of DP-SGD at sampling rate Q and noise multiplier S.
    Epsilon {
        /// Poisson sampling rate q (expected batch size / training rows), in [0, 1].
        #[arg(long)]
        sampling_rate: f64,
        /// Noise multiplier σ (noise standard deviation / max_grad_norm).
        #[arg(long)]
        noise_multiplier: f64,
        /// Number of steps (epochs × rows / expected batch size).
        #[arg(long)]
        steps: u64,
        /// Target delta, in (0, 1).
        #[arg(long)]
        delta: f64,
    },
    /// The smallest noise multiplier that keeps STEPS steps at sampling rate Q within E.
    NoiseMultiplier {
        /// The epsilon budget for the whole run.
        #[arg(long)]
        target_epsilon: f64,
        /// Poisson sampling rate q, in [0, 1].
        #[arg(long)]
        sampling_rate: f64,
        /// Number of steps.
        #[arg(long)]
        steps: u64,
        /// Target delta, in (0, 1).
        #[arg(long)]
        delta: f64,
    },
}

/// Runs `ccr dp ...`.
pub(crate) fn run(cmd: DpCmd) -> Result<()> {
    match cmd {
        DpCmd::Epsilon {
            sampling_rate,
            noise_multiplier,
            steps,
            delta,
        } => {
            let (eps, order) = ccr_runtime::learn::dp::accountant::epsilon(
                sampling_rate,
                noise_multiplier,
                steps,
                delta,
            )?;
            println!(
                "{}",
                json!({"epsilon": eps, "delta": delta, "order": order, "sampling_rate": sampling_rate,
                       "noise_multiplier": noise_multiplier, "steps": steps, "accountant": "rdp"})
            );
        }
        DpCmd::NoiseMultiplier {
            target_epsilon,
            sampling_rate,
            steps,
            delta,
        } => {
            let (sigma, eps) = ccr_runtime::learn::dp::accountant::noise_multiplier(
                target_epsilon,
                sampling_rate,
                steps,
                delta,
            )?;
            println!(
                "{}",
                json!({"noise_multiplier": sigma, "epsilon": eps, "target_epsilon": target_epsilon,
                       "delta": delta, "sampling_rate": sampling_rate, "steps": steps, "accountant": "rdp"})
            );
        }
    }
    Ok(())
}
