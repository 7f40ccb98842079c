//! `ccr sim`: the sim platform's local ARK → ASK → VCEK chain (tests and demos only).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum SimCmd {
    /// Make (or load) the sim chain in a state folder and print where its roots are.
    Init {
        #[arg(long)]
        state: PathBuf,
    },
}

/// Runs `ccr sim ...`.
pub(crate) fn run(cmd: SimCmd) -> Result<()> {
    match cmd {
        SimCmd::Init { state } => {
            let a = ccr_attest::sim::SimAuthority::load_or_create(&state)?;
            println!(
                "sim chain in {} (ark.pem, ask.pem, vcek.pem)",
                a.dir().display()
            );
        }
    }
    Ok(())
}
