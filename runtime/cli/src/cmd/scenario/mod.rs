//! `ccr scenario`: DEPA-Training's scenarios as folders. `new` writes one from DEPA's
//! build-your-own-scenario input; `run` runs one end to end on this machine (sim platform) with
//! the data each provider points to. A scenario folder has DEPA's layout: `scenario.json`,
//! `config/` (`pipeline_config.json`, or the separate files DEPA's `consolidate_pipeline.sh`
//! merges), `contract/contract.json`, and ccr's `data.json` (dataset → its data folder or
//! file, relative to the folder); a new scenario is files, not code.

mod files;
mod new;
mod run;

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ScenarioCmd {
    /// Write a scenario folder (contract template, pipeline config, data.json, each role's
    /// commands in README.md) from DEPA's scenario input (`scenario_name`, `tdps[].datasets[]`,
    /// `training_framework`, `join_type`, `model_format`).
    New {
        /// DEPA's scenario JSON.
        scenario: PathBuf,
        /// The folder to write (default: `./<scenario_name>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite the folder's files.
        #[arg(long)]
        force: bool,
    },
    /// Run a scenario folder end to end on this machine on the sim platform (NOT confidential:
    /// for trying a scenario and one's own data): the broker, every party's keys and
    /// signatures, each provider's sealed data, ccr-init, the unsealed model and metrics.
    Run {
        /// The scenario folder.
        dir: PathBuf,
        /// A dataset's data: `NAME=PATH` (the contract dataset's name, id or owner; a folder
        /// holding its file, or the file); overrides data.json.
        #[arg(long, value_name = "NAME=PATH")]
        data: Vec<String>,
        /// The consumer's base model (ONNX, or safetensors for a model_config graph).
        #[arg(long)]
        base_model: Option<PathBuf>,
        /// The work folder (default: a new folder under the temporary directory).
        #[arg(long)]
        work: Option<PathBuf>,
        /// The ccr-init binary (default: beside ccr).
        #[arg(long)]
        init: Option<PathBuf>,
    },
}

/// Runs `ccr scenario ...`.
pub(crate) fn run(cmd: ScenarioCmd) -> Result<()> {
    match cmd {
        ScenarioCmd::New {
            scenario,
            out,
            force,
        } => new::new(&scenario, out, force),
        ScenarioCmd::Run {
            dir,
            data,
            base_model,
            work,
            init,
        } => run::run(run::RunArgs {
            dir,
            data,
            base_model,
            work,
            init,
        }),
    }
}

#[cfg(test)]
mod tests;
