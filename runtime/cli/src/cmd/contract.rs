//! `ccr contract`: parties make signing keys, edit, check, sign and verify the contract.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use ccr_policy::ReleasePolicy;
use ccr_policy::contract::SignatureEntry;
use ccr_policy::sign::PrivateKey;

use crate::io::{load_contract, private_key, read_json, write_atomic, write_new_private};

#[derive(Subcommand)]
pub(crate) enum ContractCmd {
    /// Make a party signing key (PKCS#8 PEM, mode 0600) and print its public JWK.
    Keygen {
        /// `ed25519` or `p256`.
        #[arg(long, default_value = "ed25519")]
        alg: String,
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Set a party's public key from its private key file (removes existing signatures).
    SetParty(PartyKey),
    /// Set pipelineDigest from a pipeline config (removes existing signatures).
    SetPipeline {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: PathBuf,
    },
    /// Set baseModelSha256 from the consumer's base model file (removes existing signatures).
    SetBaseModel {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        model: PathBuf,
    },
    /// Set releasePolicy from a policy file (removes existing signatures).
    SetPolicy {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Sign the contract digest as a party (adds or replaces its signature).
    Sign(PartyKey),
    /// Check a contract (and its pipeline config) while editing: JSON Schema errors with their
    /// JSON pointer, then the semantic checks; prints the signature status without failing on
    /// missing signatures. Exit status 2 on an error.
    Check {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Verify signatures and validity (and the pipeline digest when given).
    Verify {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Print the contract digest (what the parties sign; the sim host_data).
    Digest { contract: PathBuf },
}

/// A party acting on a contract with its signing key.
#[derive(Args)]
pub(crate) struct PartyKey {
    /// The contract file (edited in place).
    #[arg(long)]
    contract: PathBuf,
    /// The party's id in the contract.
    #[arg(long)]
    party: String,
    /// The party's signing key (PKCS#8 PEM, from `ccr contract keygen`).
    #[arg(long)]
    key: PathBuf,
}

/// Runs `ccr contract ...`.
pub(crate) fn run(cmd: ContractCmd) -> Result<()> {
    match cmd {
        ContractCmd::Keygen { alg, out } => {
            let k = PrivateKey::generate(&alg)?;
            write_new_private(&out, k.to_pkcs8_pem().as_bytes())?;
            println!("{}", k.public_key().to_jwk());
        }
        ContractCmd::SetParty(PartyKey {
            contract,
            party,
            key,
        }) => {
            let jwk = private_key(&key)?.public_key().to_jwk();
            edit_contract(&contract, |m| {
                let parties = m
                    .get_mut("parties")
                    .and_then(Value::as_array_mut)
                    .context("contract has no parties[]")?;
                let p = parties
                    .iter_mut()
                    .find(|p| p.get("id").and_then(Value::as_str) == Some(party.as_str()))
                    .with_context(|| format!("party `{party}` is not in parties[]"))?;
                p["publicKey"] = jwk;
                Ok(())
            })?;
        }
        ContractCmd::SetPipeline { contract, pipeline } => {
            let d = ccr_policy::pipeline_digest(&read_json(&pipeline)?);
            edit_contract(&contract, |m| {
                m.insert("pipelineDigest".into(), json!(d));
                Ok(())
            })?;
            println!("{d}");
        }
        ContractCmd::SetBaseModel { contract, model } => {
            use sha2::Digest;
            let b =
                std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let d = hex::encode(sha2::Sha256::digest(&b));
            edit_contract(&contract, |m| {
                m.insert("baseModelSha256".into(), json!(d));
                Ok(())
            })?;
            println!("{d}");
        }
        ContractCmd::SetPolicy { contract, policy } => {
            let b =
                std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?;
            ReleasePolicy::from_json(&b)?;
            let p: Value = serde_json::from_slice(&b)?;
            edit_contract(&contract, |m| {
                m.insert("releasePolicy".into(), p);
                Ok(())
            })?;
        }
        ContractCmd::Sign(PartyKey {
            contract,
            party,
            key,
        }) => {
            let c = load_contract(&contract)?;
            if !c.parties.iter().any(|p| p.id == party) {
                bail!("`{party}` is not a party to contract {}", c.id);
            }
            let k = private_key(&key)?;
            let pk = ccr_policy::sign::PublicKey::from_jwk(
                &c.parties
                    .iter()
                    .find(|p| p.id == party)
                    .map(|p| p.public_key.clone())
                    .unwrap_or_default(),
            )?;
            if pk.to_jwk() != k.public_key().to_jwk() {
                bail!(
                    "key {} is not party `{party}`'s key in the contract",
                    key.display()
                );
            }
            let jws = k.sign_detached(&party, &c.digest());
            let mut v = read_json(&contract)?;
            let sigs = v
                .as_object_mut()
                .context("contract is not a JSON object")?
                .entry("signatures")
                .or_insert(json!([]));
            let arr = sigs.as_array_mut().context("signatures is not a list")?;
            arr.retain(|s| s.get("party").and_then(Value::as_str) != Some(party.as_str()));
            arr.push(serde_json::to_value(SignatureEntry {
                party: party.clone(),
                jws,
            })?);
            write_atomic(&contract, &serde_json::to_vec_pretty(&v)?, false)?;
            println!("signed contract {} as {party}", c.id);
        }
        ContractCmd::Check { contract, pipeline } => {
            let mut errors = Vec::new();
            let cv = read_json(&contract)?;
            for e in ccr_policy::schema::contract_errors(&cv) {
                errors.push(format!("{}: {e}", contract.display()));
            }
            let pv = pipeline.as_deref().map(read_json).transpose()?;
            if let (Some(p), Some(v)) = (&pipeline, &pv) {
                for e in ccr_policy::schema::errors(ccr_runtime::pipeline::SCHEMA, v) {
                    errors.push(format!("{}: {e}", p.display()));
                }
            }
            if errors.is_empty() {
                match load_contract(&contract) {
                    Ok(c) => {
                        if let (Some(p), Some(v)) = (&pipeline, &pv) {
                            if let Err(e) = ccr_runtime::pipeline::Pipeline::from_value(v) {
                                errors.push(format!("{}: {e}", p.display()));
                            } else if ccr_policy::pipeline_digest(v) != c.pipeline_digest {
                                errors.push(format!(
                                    "{}: pipelineDigest {} is not the pipeline's {}",
                                    contract.display(),
                                    c.pipeline_digest,
                                    ccr_policy::pipeline_digest(v)
                                ));
                            }
                        }
                        match c.verify(chrono::Utc::now()) {
                            Ok(_) => println!("signatures: all parties signed, valid now"),
                            Err(e) => println!("signatures: {e}"),
                        }
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            for e in &errors {
                eprintln!("{e}");
            }
            if !errors.is_empty() {
                std::process::exit(2);
            }
            println!("{}: ok", contract.display());
        }
        ContractCmd::Verify { contract, pipeline } => {
            let c = load_contract(&contract)?;
            let vc = c.verify(chrono::Utc::now())?;
            if let Some(p) = pipeline {
                vc.check_pipeline(&read_json(&p)?)?;
            }
            println!(
                "contract {} verified: {} signatures, digest {}",
                c.id,
                c.signatures.len(),
                hex::encode(vc.digest())
            );
        }
        ContractCmd::Digest { contract } => {
            println!("{}", hex::encode(load_contract(&contract)?.digest()))
        }
    }
    Ok(())
}

/// Edits a contract's JSON (as a value, so fields keep their form), dropping signatures.
fn edit_contract(
    path: &Path,
    f: impl FnOnce(&mut serde_json::Map<String, Value>) -> Result<()>,
) -> Result<()> {
    let mut v = read_json(path)?;
    let m = v.as_object_mut().context("contract is not a JSON object")?;
    f(m)?;
    if m.get("signatures")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        eprintln!(
            "note: contract changed; existing signatures removed, every party must sign again"
        );
    }
    m.insert("signatures".into(), json!([]));
    write_atomic(path, &serde_json::to_vec_pretty(&v)?, false)
}
