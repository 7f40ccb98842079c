//! `ccr keys`: make a dataset key, register it with the ccr broker, import it into Azure Key
//! Vault (Secure Key Release), or wrap it with a Cloud KMS key.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::Value;
use zeroize::Zeroizing;

use ccr_images::{DatasetKey, Image};
use ccr_policy::ReleasePolicy;

use super::keybroker::{BrokerConn, client};
use crate::io::{cloud_client, load_contract, read_json, read_key, write_new_private};

#[derive(Subcommand)]
pub(crate) enum KeysCmd {
    /// Write a fresh random 32-byte key (mode 0600).
    Generate {
        /// Key file to create.
        out: PathBuf,
    },
    /// Split a dataset key into n shares, any k of which rebuild it (Shamir over GF(2^8)):
    /// writes DIR/share-1.key .. share-n.key (32 bytes each, mode 0600), each to be registered
    /// with its own key service as a key (`keys put`, `keys import --azure`, `keys wrap --gcp
    /// --share I`), and prints the contract's threshold key (k and each share's commitment) as
    /// JSON, each share's `type` and `properties` to fill in.
    Split {
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The threshold: shares needed to rebuild the key.
        #[arg(long)]
        k: usize,
        /// The number of shares (at most 255).
        #[arg(long)]
        n: usize,
        /// The folder to write the shares into (created; must not hold share files already).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Register a key with the local broker under a signed contract.
    Put {
        #[command(flatten)]
        conn: BrokerConn,
        /// KBS resource path `repo/type/tag` (the contract's kid).
        #[arg(long)]
        kid: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The signed contract the key is released under.
        #[arg(long)]
        contract: PathBuf,
        /// A release policy to use instead of the contract's: the JSON grammar, or Rego when
        /// the file ends in .rego.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Import a dataset key into Azure Key Vault as an exportable oct-HSM key with a release
    /// policy (Secure Key Release). The bearer token comes from CCR_AZURE_TOKEN, or from IMDS
    /// (a managed identity) with --imds.
    Import {
        /// Azure Key Vault (the only import target).
        #[arg(long, required = true)]
        azure: bool,
        /// The vault URL (`https://NAME.vault.azure.net`).
        #[arg(long)]
        vault: String,
        /// The key's name in the vault (the contract's kid).
        #[arg(long)]
        name: String,
        /// The 32-byte key file: imported as an oct-HSM key.
        #[arg(long, required_unless_present = "rsa_key", conflicts_with = "rsa_key")]
        key: Option<PathBuf>,
        /// An RSA private key (PKCS#8 PEM, as importkey makes): imported as an RSA-HSM key; the
        /// DEK is HKDF-SHA256 of its private exponent with --salt and --label, written to
        /// --dek-out (seal the dataset with it).
        #[arg(long, requires_all = ["salt", "dek_out"])]
        rsa_key: Option<PathBuf>,
        /// RSA-HSM: the public HKDF salt (hex; the contract's key `salt`).
        #[arg(long)]
        salt: Option<String>,
        /// RSA-HSM: the HKDF label (default: --name; the contract's key `label`).
        #[arg(long)]
        label: Option<String>,
        /// RSA-HSM: where to write the derived 32-byte DEK (must not exist).
        #[arg(long)]
        dek_out: Option<PathBuf>,
        /// The Key Vault release policy (`ccr policy derive --for azure`).
        #[arg(long)]
        policy: PathBuf,
        /// Get the token from this IMDS base URL (http://169.254.169.254 on Azure).
        #[arg(long)]
        imds: Option<String>,
        /// Trust only these CA certificates (PEM) for the vault.
        #[arg(long, env = "CCR_CLOUD_CA")]
        cloud_ca: Option<PathBuf>,
    },
    /// Wrap a dataset key with a Cloud KMS key into the image's wrapped_dek.json (envelope
    /// encryption; the dataset id is the additional authenticated data). The bearer token comes
    /// from CCR_GCP_TOKEN (`gcloud auth print-access-token`).
    Wrap {
        /// Cloud KMS (the only wrap target).
        #[arg(long, required = true)]
        gcp: bool,
        /// The KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K; the contract's kid).
        #[arg(long)]
        kms_key: String,
        /// The dataset id.
        #[arg(long)]
        dataset: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The dataset image folder (wrapped_dek.json is written there).
        #[arg(long)]
        image: PathBuf,
        /// The key is share I of a threshold key (`keys split`): written as
        /// wrapped_dek.share-I.json.
        #[arg(long)]
        share: Option<u8>,
        /// The Cloud KMS base URL.
        #[arg(long, default_value = ccr_keybroker::gcp::KMS_BASE)]
        kms: String,
        /// Trust only these CA certificates (PEM) for KMS.
        #[arg(long, env = "CCR_CLOUD_CA")]
        cloud_ca: Option<PathBuf>,
    },
}

/// Runs `ccr keys ...`.
pub(crate) fn run(cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Generate { out } => {
            let k = DatasetKey::generate();
            write_new_private(&out, k.as_bytes())?;
            println!("wrote a 32-byte key to {}", out.display());
        }
        KeysCmd::Split { key, k, n, out_dir } => split(&key, k, n, &out_dir)?,
        KeysCmd::Put {
            conn,
            kid,
            key,
            contract,
            policy,
        } => {
            let k = read_key(&key)?;
            load_contract(&contract)?;
            let c = read_json(&contract)?;
            let p = match policy.as_deref() {
                // A Rego module travels as a JSON string.
                Some(p) if p.extension().is_some_and(|e| e == "rego") => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    ccr_policy::RegoPolicy::from_source(&p.display().to_string(), &text)?;
                    Some(Value::String(text))
                }
                Some(p) => Some(read_json(p)?),
                None => None,
            };
            let (mut cl, token) = client(&conn)?;
            cl.put_resource(&token, &kid, k.as_bytes(), &c, p.as_ref())?;
            println!("registered {kid}");
        }
        KeysCmd::Import {
            azure: _,
            vault,
            name,
            key,
            rsa_key,
            salt,
            label,
            dek_out,
            policy,
            imds,
            cloud_ca,
        } => {
            let p = read_json(&policy)?;
            ReleasePolicy::from_json(p.to_string().as_bytes())
                .with_context(|| format!("release policy {}", policy.display()))?;
            let client = cloud_client("Azure", cloud_ca.as_deref())?;
            let token = match imds {
                Some(base) => ccr_keybroker::azure::imds_token(
                    &client,
                    &base,
                    ccr_keybroker::azure::VAULT_RESOURCE,
                    None,
                )?,
                None => Zeroizing::new(std::env::var("CCR_AZURE_TOKEN").context(
                    "no Key Vault token: set CCR_AZURE_TOKEN (az account get-access-token --resource https://vault.azure.net) or pass --imds",
                )?),
            };
            let kid = match (key, rsa_key) {
                (Some(key), _) => {
                    let k = read_key(&key)?;
                    ccr_keybroker::azure::akv_import_oct(
                        &client,
                        &vault,
                        &name,
                        &token,
                        k.as_bytes(),
                        &p,
                    )?
                }
                (None, Some(pem)) => {
                    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                    let text = Zeroizing::new(
                        std::fs::read_to_string(&pem)
                            .with_context(|| format!("reading {}", pem.display()))?,
                    );
                    let rk = rsa::RsaPrivateKey::from_pkcs8_pem(&text).with_context(|| {
                        format!("{}: not a PKCS#8 RSA private key", pem.display())
                    })?;
                    let salt =
                        hex::decode(salt.as_deref().unwrap_or("")).context("--salt: not hex")?;
                    let label = label.unwrap_or_else(|| name.clone());
                    let der = rk.to_pkcs8_der().context("encoding the RSA key")?;
                    let dek = ccr_keybroker::akv::dek_from_rsa_private_key(
                        der.as_bytes(),
                        &salt,
                        label.as_bytes(),
                    )?;
                    let out = dek_out.context("--dek-out is required with --rsa-key")?;
                    let kid = ccr_keybroker::azure::akv_import_rsa(
                        &client, &vault, &name, &token, &rk, &p,
                    )?;
                    write_new_private(&out, &dek[..])?;
                    println!("derived the DEK into {}", out.display());
                    kid
                }
                (None, None) => bail!("give --key or --rsa-key"),
            };
            println!("imported {kid}");
        }
        KeysCmd::Wrap {
            gcp: _,
            kms_key,
            dataset,
            key,
            image,
            share,
            kms,
            cloud_ca,
        } => {
            let k = read_key(&key)?;
            if share == Some(0) {
                bail!("--share: shares are numbered from 1");
            }
            Image::load(&image)
                .and_then(|i| i.expect_dataset(&dataset))
                .with_context(|| format!("image {}", image.display()))?;
            let client = cloud_client("GCP", cloud_ca.as_deref())?;
            let token = Zeroizing::new(std::env::var("CCR_GCP_TOKEN").context(
                "no Cloud KMS token: set CCR_GCP_TOKEN (gcloud auth print-access-token)",
            )?);
            let ct = ccr_keybroker::gcp::kms_encrypt(
                &client,
                &kms,
                &kms_key,
                &token,
                k.as_bytes(),
                dataset.as_bytes(),
            )?;
            let w = ccr_keybroker::gcp::WrappedDek {
                kms_key,
                dataset,
                ciphertext: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ct),
            };
            let what = match share {
                Some(i) => ccr_keybroker::release::KeyFor::Share(w.dataset.clone(), i),
                None => ccr_keybroker::release::KeyFor::Dataset(w.dataset.clone()),
            };
            let path = image.join(ccr_keybroker::release::gcp::wrapped_file(&what));
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&w)?)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// `ccr keys split`: the shares written, the contract's threshold key printed.
fn split(key: &std::path::Path, k: usize, n: usize, out_dir: &std::path::Path) -> Result<()> {
    let dek = read_key(key)?;
    let shares = ccr_keybroker::threshold::split(&dek, k, n)?;
    drop(dek);
    std::fs::create_dir_all(out_dir).with_context(|| format!("--out-dir {}", out_dir.display()))?;
    let files: Vec<PathBuf> = (1..=n)
        .map(|i| out_dir.join(format!("share-{i}.key")))
        .collect();
    if let Some(f) = files.iter().find(|f| f.exists()) {
        bail!("{}: already exists, refusing to overwrite", f.display());
    }
    let mut refs = Vec::new();
    for (s, f) in shares.iter().zip(&files) {
        write_new_private(f, s.value().as_bytes())?;
        refs.push(serde_json::json!({
            "type": "ccr",
            "properties": {"kid": format!("<share {} kid>", s.index()), "authority": {"endpoint": "local"}, "endpoint": ""},
            "commitment": s.commitment(),
        }));
        eprintln!("share {}: {}", s.index(), f.display());
    }
    let out = serde_json::json!({"type": "threshold", "properties": {"kid": "<dataset key name>", "k": k, "shares": refs}});
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!(
        "wrote {n} shares to {} (any {k} rebuild the key): register share i with its own key service, and fill in each share's type and properties in this key reference (share i is the i-th in the list)",
        out_dir.display()
    );
    Ok(())
}
