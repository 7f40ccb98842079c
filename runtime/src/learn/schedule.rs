//! Learning-rate schedules, as PyTorch's `torch.optim.lr_scheduler` computes them: the rate of
//! optimizer step `t` (from 0) is the scheduler's value after `t` calls of `step()`, which is
//! how DEPA-Training's trainer steps it (after every batch). Closed forms of PyTorch's
//! definitions (`CosineAnnealingLR` by its closed form, which its recursive update follows).

use std::f64::consts::PI;

use crate::pipeline::{
    Anneal, CyclicMode, PlateauMode, ReduceLrOnPlateau, Scheduler, ThresholdMode,
};

/// The learning rate of optimizer step `t`, for the optimizer's `lr` and an optional schedule
/// (`ReduceLROnPlateau` has no rate per step: [`Plateau`] holds it).
pub fn lr_at(scheduler: Option<&Scheduler>, lr: f64, t: u64) -> f64 {
    let Some(s) = scheduler else {
        return lr;
    };
    let tf = t as f64;
    match s {
        Scheduler::StepLR(p) => lr * p.gamma.powi((t / p.step_size.max(1)) as i32),
        Scheduler::MultiStepLR(p) => {
            lr * p
                .gamma
                .powi(p.milestones.iter().filter(|&&m| m <= t).count() as i32)
        }
        Scheduler::ExponentialLR(p) => lr * p.gamma.powf(tf),
        Scheduler::ReduceLROnPlateau(_) => lr,
        Scheduler::CosineAnnealingLR(p) => {
            p.eta_min + (lr - p.eta_min) * (1.0 + (PI * tf / p.t_max.max(1) as f64).cos()) / 2.0
        }
        Scheduler::CyclicLR(p) => {
            let up = p.step_size_up as f64;
            let down = p.step_size_down.unwrap_or(p.step_size_up) as f64;
            let total = up + down;
            let ratio = up / total;
            let cycle = (1.0 + tf / total).floor();
            let x = 1.0 + tf / total - cycle;
            let scale_factor = if x <= ratio {
                x / ratio
            } else {
                (x - 1.0) / (ratio - 1.0)
            };
            let scale = match p.mode {
                CyclicMode::Triangular => 1.0,
                CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
                CyclicMode::ExpRange => p.gamma.powf(tf),
            };
            p.base_lr + (p.max_lr - p.base_lr) * scale_factor * scale
        }
        Scheduler::OneCycleLR(p) => {
            let total = p.steps().unwrap_or(1) as f64;
            let initial = p.max_lr / p.div_factor;
            let min = initial / p.final_div_factor;
            let phases: Vec<(f64, f64, f64)> = if p.three_phase {
                vec![
                    (p.pct_start * total - 1.0, initial, p.max_lr),
                    (2.0 * p.pct_start * total - 2.0, p.max_lr, initial),
                    (total - 1.0, initial, min),
                ]
            } else {
                vec![
                    (p.pct_start * total - 1.0, initial, p.max_lr),
                    (total - 1.0, p.max_lr, min),
                ]
            };
            let mut start = 0.0;
            for (i, &(end, from, to)) in phases.iter().enumerate() {
                if tf <= end || i + 1 == phases.len() {
                    let pct = (tf - start) / (end - start);
                    return match p.anneal_strategy {
                        Anneal::Cos => to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0),
                        Anneal::Linear => (to - from) * pct + from,
                    };
                }
                start = end;
            }
            min
        }
    }
}

/// `ReduceLROnPlateau`'s state, stepped once per epoch with the monitored value (PyTorch's
/// `step(metrics)`): the best value so far, the epochs since it, the cooldown left, and the
/// current rate.
#[derive(Debug, Clone)]
pub struct Plateau {
    p: ReduceLrOnPlateau,
    best: f64,
    bad_epochs: u64,
    cooldown_left: u64,
    lr: f64,
}

impl Plateau {
    /// The state before the first epoch, at the optimizer's `lr`.
    pub fn new(p: &ReduceLrOnPlateau, lr: f64) -> Self {
        Self {
            best: match p.mode {
                PlateauMode::Min => f64::INFINITY,
                PlateauMode::Max => f64::NEG_INFINITY,
            },
            p: p.clone(),
            bad_epochs: 0,
            cooldown_left: 0,
            lr,
        }
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// One epoch's monitored value (a NaN is never better, as in PyTorch).
    pub fn step(&mut self, value: f64) {
        if self.better(value) {
            self.best = value;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.p.patience {
            let reduced = (self.lr * self.p.factor).max(self.p.min_lr);
            if self.lr - reduced > self.p.eps {
                self.lr = reduced;
            }
            self.cooldown_left = self.p.cooldown;
            self.bad_epochs = 0;
        }
    }

    fn better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.p.threshold);
        match (self.p.mode, self.p.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (th + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{
        CosineAnnealingLr, CyclicLr, ExponentialLr, MultiStepLr, OneCycleLr, StepLr,
    };

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} vs {b}");
    }

    fn parse(v: serde_json::Value) -> Scheduler {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn step_multistep_exponential_and_cosine_follow_pytorchs_formulas() {
        let s = Scheduler::StepLR(StepLr {
            step_size: 3,
            gamma: 0.5,
        });
        let lrs: Vec<f64> = (0..7).map(|t| lr_at(Some(&s), 1.0, t)).collect();
        assert_eq!(lrs, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        let s = Scheduler::MultiStepLR(MultiStepLr {
            milestones: vec![2, 5],
            gamma: 0.1,
        });
        close(lr_at(Some(&s), 1.0, 1), 1.0);
        close(lr_at(Some(&s), 1.0, 2), 0.1);
        close(lr_at(Some(&s), 1.0, 5), 0.01);
        let s = Scheduler::ExponentialLR(ExponentialLr { gamma: 0.9 });
        close(lr_at(Some(&s), 2.0, 3), 2.0 * 0.729);
        let s = Scheduler::CosineAnnealingLR(CosineAnnealingLr {
            t_max: 10,
            eta_min: 0.1,
        });
        close(lr_at(Some(&s), 1.1, 0), 1.1);
        close(lr_at(Some(&s), 1.1, 5), 0.6);
        close(lr_at(Some(&s), 1.1, 10), 0.1);
        assert_eq!(lr_at(None, 0.3, 99), 0.3);
    }

    #[test]
    fn cyclic_lr_rises_and_falls_per_step_as_pytorch() {
        // PyTorch: CyclicLR(base_lr=0.001, max_lr=0.006, step_size_up=2000).
        let s = Scheduler::CyclicLR(CyclicLr {
            base_lr: 0.001,
            max_lr: 0.006,
            step_size_up: 2000,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
            cycle_momentum: false,
        });
        for (t, want) in [
            (0, 0.001),
            (1000, 0.0035),
            (2000, 0.006),
            (3000, 0.0035),
            (4000, 0.001),
        ] {
            close(lr_at(Some(&s), 0.5, t), want);
        }
        // triangular2 halves the amplitude in the second cycle; exp_range scales by gamma^t.
        let Scheduler::CyclicLR(mut p) = s else {
            unreachable!()
        };
        p.mode = CyclicMode::Triangular2;
        close(
            lr_at(Some(&Scheduler::CyclicLR(p.clone())), 0.5, 6000),
            0.0035,
        );
        p.mode = CyclicMode::ExpRange;
        p.gamma = 0.999;
        close(
            lr_at(Some(&Scheduler::CyclicLR(p)), 0.5, 1000),
            0.001 + 0.0025 * 0.999f64.powi(1000),
        );
        // mnist's scheduler as DEPA writes it parses.
        let m = parse(serde_json::json!({"name": "CyclicLR",
            "params": {"base_lr": 0.0001, "max_lr": 0.01, "cycle_momentum": false}}));
        close(lr_at(Some(&m), 1.0, 2000), 0.01);
    }

    #[test]
    fn one_cycle_lr_starts_peaks_and_ends_where_pytorch_does() {
        let s = Scheduler::OneCycleLR(OneCycleLr {
            max_lr: 1.0,
            total_steps: Some(100),
            epochs: None,
            steps_per_epoch: None,
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            cycle_momentum: false,
        });
        close(lr_at(Some(&s), 0.5, 0), 0.04);
        close(lr_at(Some(&s), 0.5, 29), 1.0);
        close(lr_at(Some(&s), 0.5, 99), 0.04 / 1e4);
        // Halfway up: the cosine's midpoint.
        close(
            lr_at(Some(&s), 0.5, 14),
            1.0 + (0.04 - 1.0) / 2.0 * ((PI * 14.0 / 29.0).cos() + 1.0),
        );
        let Scheduler::OneCycleLR(mut p) = s else {
            unreachable!()
        };
        p.anneal_strategy = Anneal::Linear;
        p.three_phase = true;
        let s = Scheduler::OneCycleLR(p);
        close(lr_at(Some(&s), 0.5, 29), 1.0);
        close(lr_at(Some(&s), 0.5, 58), 0.04);
        close(lr_at(Some(&s), 0.5, 99), 0.04 / 1e4);
    }

    #[test]
    fn reduce_lr_on_plateau_drops_after_patience_and_waits_out_its_cooldown() {
        let Scheduler::ReduceLROnPlateau(p) =
            parse(serde_json::json!({"name": "ReduceLROnPlateau",
            "params": {"factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 0.2}}))
        else {
            unreachable!()
        };
        let mut s = Plateau::new(&p, 1.0);
        // PyTorch 2.x, same parameters, step(v) for each value: the rate after each step.
        let mut lrs = Vec::new();
        for v in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8] {
            s.step(v);
            lrs.push(s.lr());
        }
        assert_eq!(
            lrs,
            [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2]
        );
        // An improvement smaller than the relative threshold is a bad epoch; max mode flips it.
        let mut p2 = p;
        p2.mode = PlateauMode::Max;
        p2.threshold = 0.1;
        let mut s = Plateau::new(&p2, 1.0);
        for v in [1.0, 1.05, 1.09] {
            s.step(v);
        }
        assert_eq!(s.lr(), 0.5);
    }
}
