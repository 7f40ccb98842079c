//! `ccr dataset`: data providers seal a dataset into an image, and open their own.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use ccr_images::Image;

use crate::io::{extract, read_key};

#[derive(Subcommand)]
pub(crate) enum DatasetCmd {
    /// Seal a file or folder into a new image.
    Seal {
        /// Dataset id (the contract's datasets[].id).
        #[arg(long)]
        id: String,
        /// Key id at the broker (the contract's key.properties.kid).
        #[arg(long)]
        kid: String,
        /// The 32-byte key file (`ccr keys generate`).
        #[arg(long)]
        key: PathBuf,
        /// File or folder to seal.
        source: PathBuf,
        /// Image folder to create.
        image: PathBuf,
    },
    /// Decrypt an image into a new folder (for the data owner).
    Open {
        /// Dataset id the image must be for.
        #[arg(long)]
        id: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The image folder.
        image: PathBuf,
        /// Folder to create with the plaintext files.
        out: PathBuf,
    },
}

/// Runs `ccr dataset ...`.
pub(crate) fn run(cmd: DatasetCmd) -> Result<()> {
    match cmd {
        DatasetCmd::Seal {
            id,
            kid,
            key,
            source,
            image,
        } => {
            let k = read_key(&key)?;
            let m = ccr_images::seal_path(&source, &image, &id, &kid, &k)?;
            println!(
                "sealed {} file(s) of dataset {id} into {}",
                m.files.len(),
                image.display()
            );
        }
        DatasetCmd::Open {
            id,
            key,
            image,
            out,
        } => {
            let k = read_key(&key)?;
            let img = Image::load(&image)?;
            img.expect_dataset(&id)?;
            extract(&img, &id, &k, &out)?;
        }
    }
    Ok(())
}
