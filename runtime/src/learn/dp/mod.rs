//! Differential privacy: DP-SGD's per-sample gradients, clipping and noise ([`sgd`]), the RDP
//! accountant of the Poisson-sampled Gaussian mechanism ([`accountant`]), and the run's plan
//! and spend ([`plan`]).

pub mod accountant;
pub mod plan;
pub mod sgd;

pub use plan::{DpPlan, DpSpent, plan_dp};
