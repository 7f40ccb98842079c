//! `ccr model`: the data consumer unseals the trained model (with its own output key, or the
//! escrowed one from the broker once the approvers agree).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use ccr_images::{DatasetKey, Image};

use super::keybroker::{PartyConn, party_call};
use crate::io::{extract, read_key};

#[derive(Subcommand)]
pub(crate) enum ModelCmd {
    /// Decrypt the sealed output into a new folder. With output approvers (manifest `kid`
    /// `runs/<id>`), the output key comes from the broker once they approved: give
    /// --broker/--pin/--party/--signing-key instead of --key.
    Unseal {
        /// The output id (the contract's output.id).
        #[arg(long)]
        id: String,
        /// The output key file.
        #[arg(long, required_unless_present = "broker")]
        key: Option<PathBuf>,
        /// Broker URL holding the escrowed output key (not read from CCR_BROKER: a consumer's
        /// own key stays the default).
        #[arg(long, requires_all = ["pin", "party", "signing_key"])]
        broker: Option<String>,
        /// SHA-256 (hex) of the broker's TLS certificate.
        #[arg(long, env = "CCR_BROKER_PIN")]
        pin: Option<String>,
        /// Your party id (the contract's tdc).
        #[arg(long)]
        party: Option<String>,
        /// Your contract signing key (PKCS#8 PEM).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        image: PathBuf,
        out: PathBuf,
    },
}

/// Runs `ccr model ...`.
pub(crate) fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Unseal {
            id,
            key,
            broker,
            pin,
            party,
            signing_key,
            image,
            out,
        } => {
            let img = Image::load(&image)?;
            img.expect_dataset(&id)?;
            let k = match (key, broker) {
                (Some(k), _) => read_key(&k)?,
                (None, Some(broker)) => {
                    let kid = &img.manifest().kid;
                    let run = kid.strip_prefix("runs/").with_context(|| {
                        format!("image {}: kid `{kid}` is not runs/<run id>: this output's key is not escrowed; use --key", image.display())
                    })?;
                    let conn = PartyConn {
                        broker,
                        pin: pin.unwrap_or_default(),
                        party: party.unwrap_or_default(),
                        key: signing_key.unwrap_or_default(),
                    };
                    let ephemeral = ccr_keybroker::RuntimeKey::generate();
                    let ans = party_call(&conn, run, "output-key", |r| {
                        r.tee_pubkey = Some(ephemeral.tee_pubkey_json())
                    })?;
                    let secret = ephemeral.unwrap_json(&ans)?;
                    DatasetKey::from_slice(&secret).context("the escrowed output key")?
                }
                (None, None) => bail!("--key or --broker is required"),
            };
            extract(&img, &id, &k, &out)?;
            let page = out.join(ccr_runtime::job::seal::REPORT_HTML);
            if page.is_file() {
                println!("report: {}", page.display());
            }
        }
    }
    Ok(())
}
