//! `ccr image`: build the ccr-init container image (a deterministic OCI image layout).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ImageCmd {
    /// Write an OCI image layout holding ccr-init (/usr/local/bin/ccr-init, the entrypoint);
    /// the same binary and SOURCE_DATE_EPOCH (default 0) give the same manifest digest.
    Build {
        /// The ccr-init binary.
        #[arg(long)]
        binary: PathBuf,
        /// The new image layout folder (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "latest")]
        tag: String,
    },
}

/// Runs `ccr image ...`.
pub(crate) fn run(cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Build { binary, out, tag } => {
            let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v
                    .trim()
                    .parse::<u64>()
                    .with_context(|| format!("SOURCE_DATE_EPOCH `{v}` is not Unix seconds"))?,
                Err(_) => 0,
            };
            let d = ccr_measurements::oci::build(&binary, &out, &tag, mtime)?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
    }
    Ok(())
}
