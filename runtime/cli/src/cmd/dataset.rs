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
    /// Print a LUKS2 dataset image's metadata (no key needed) and, with `--key`, the files of
    /// its ext4 file system, so that a provider can check an image before registering it.
    Inspect {
        /// The key file that opens a keyslot (DEPA's 32-byte key file).
        #[arg(long)]
        key: Option<PathBuf>,
        /// The LUKS2 image file.
        image: PathBuf,
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
        DatasetCmd::Inspect { key, image } => inspect(&image, key.as_deref())?,
    }
    Ok(())
}

/// `ccr dataset inspect`: the header copy in use, segments, keyslots and digests; with a key,
/// every regular file (size and path).
fn inspect(image: &std::path::Path, key: Option<&std::path::Path>) -> Result<()> {
    use ccr_images::luks2::header::Kdf;
    use ccr_images::luks2::{Luks2Image, files::Files};
    let img = Luks2Image::open(image).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
    let h = &img.header;
    println!("LUKS2 image {}", image.display());
    println!(
        "  uuid {}  label {:?}  header {} ({} bytes, seqid {}, {})",
        h.uuid, h.label, h.which, h.hdr_size, h.seqid, h.checksum_alg
    );
    if let Some(why) = &img.primary_damaged {
        println!("  WARNING: the primary header is damaged ({why}); the secondary is used");
    }
    let pin = ccr_images::luks2::source::pin_of(image)
        .map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
    println!(
        "  imageSha256 {}  imageSize {}  (the contract's pin of this image)",
        hex::encode(pin.sha256),
        pin.size
    );
    for (id, s) in &h.metadata.segments {
        println!(
            "  segment {id}: {} offset {} size {} cipher {} sector {} iv_tweak {}",
            s.kind, s.offset, s.size, s.encryption, s.sector_size, s.iv_tweak
        );
    }
    for (id, k) in &h.metadata.keyslots {
        let kdf = match &k.kdf {
            Kdf::Pbkdf2 {
                hash, iterations, ..
            } => format!("pbkdf2 {hash} {iterations} iterations"),
            Kdf::Argon2i {
                time, memory, cpus, ..
            } => format!("argon2i time {time} memory {memory} KiB cpus {cpus}"),
            Kdf::Argon2id {
                time, memory, cpus, ..
            } => format!("argon2id time {time} memory {memory} KiB cpus {cpus}"),
        };
        println!(
            "  keyslot {id}: {} key {} bits, {kdf}, AF {} stripes {}, area {} at {} ({} bytes)",
            k.kind,
            k.key_size * 8,
            k.af.stripes,
            k.af.hash,
            k.area.encryption,
            k.area.offset,
            k.area.size
        );
    }
    for (id, d) in &h.metadata.digests {
        println!(
            "  digest {id}: {} {} {} iterations, keyslots {:?}, segments {:?}",
            d.kind, d.hash, d.iterations, d.keyslots, d.segments
        );
    }
    let Some(key) = key else {
        return Ok(());
    };
    let k = zeroize::Zeroizing::new(
        std::fs::read(key).map_err(|e| anyhow::anyhow!("key file {}: {e}", key.display()))?,
    );
    let files = Files::load(
        img.unlock(&k)
            .map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?,
    )?;
    let list = files.list("")?;
    println!("  ext4: {} file(s)", list.len());
    for f in list {
        println!("  {:>12}  {}", f.size, f.path);
    }
    Ok(())
}
