//! Keys of type `azure`: Azure Key Vault Secure Key Release. A fresh RSA-2048 transfer key;
//! the platform's SNP evidence (or TD quote) with `REPORT_DATA` = SHA-256 of the runtime data
//! (the transfer key's JWKS, MAA's binding); one MAA token per authority; a managed identity
//! token from IMDS (or `CCR_AZURE_TOKEN`); Key Vault's release, its JWS verified (x5c chain, the
//! vault's host name); the key unwrapped with the transfer key (`CKM_RSA_AES_KEY_WRAP`,
//! RFC 5649). `oct-HSM` keys are the DEK, `RSA-HSM` keys give the DEK by HKDF ([`crate::akv`]).

use std::collections::BTreeMap;

use base64::Engine;
use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use tracing::info;
use zeroize::Zeroizing;

use super::cloud::{CloudOptions, host, url};
use super::{KeyFor, KeyRequest, ReleaseError};
use crate::error::BrokerError;
use crate::{akv, azure};

/// Releases `azure` keys.
///
/// # Errors
/// [`ReleaseError::Attest`] or [`ReleaseError::Unsupported`] when the platform cannot give SNP
/// or TDX evidence; [`ReleaseError::Key`] naming the key and the service that refused or
/// failed.
pub(crate) fn release(
    opts: &CloudOptions,
    attester: &dyn Attester,
    items: &[KeyRequest],
) -> Result<Vec<(KeyFor, DatasetKey)>, ReleaseError> {
    let client = opts.client("Azure");
    let transfer =
        rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(ReleaseError::TransferKey)?;
    let (_jwks, runtime_data) = azure::runtime_data(&transfer, "ccr-runtime-transfer-key");
    let ev = attester
        .evidence(&azure::maa_report_data(&runtime_data))
        .map_err(|source| ReleaseError::Attest {
            what: "evidence for MAA".into(),
            source,
        })?;
    let for_maa = ForMaa::from_evidence(&ev, attester)?;
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    let mut bearer: Option<Zeroizing<String>> = None;
    let mut out = Vec::new();
    for item in items {
        let (key, r) = (&item.key, item.refused());
        let (kid, what) = (&key.properties.kid, item.what.to_string());
        let maa = url(&key.properties.authority.endpoint);
        if !tokens.contains_key(&maa) {
            let t = match &for_maa {
                ForMaa::Snp { report, chain, uvm } => azure::maa_attest_snp(
                    &client,
                    &maa,
                    report,
                    chain,
                    &runtime_data,
                    uvm.as_deref(),
                ),
                ForMaa::Tdx(quote) => azure::maa_attest_tdx(&client, &maa, quote, &runtime_data),
            }
            .map_err(&r)?;
            info!(maa = %maa, "attested to Microsoft Azure Attestation");
            tokens.insert(maa.clone(), t);
        }
        if bearer.is_none() {
            bearer = Some(match &opts.azure_token {
                Some(t) => t.clone(),
                None => azure::imds_token(
                    &client,
                    &opts.imds,
                    azure::VAULT_RESOURCE,
                    opts.azure_client_id.as_deref(),
                )
                .map_err(&r)?,
            });
        }
        let vault = url(&key.properties.endpoint);
        let (name, version) = kid.split_once('/').unwrap_or((kid.as_str(), ""));
        let jws = azure::akv_release(
            &client,
            &vault,
            name,
            version,
            bearer.as_deref().map(String::as_str).unwrap_or(""),
            &tokens[&maa],
        )
        .map_err(&r)?;
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let payload = azure::verify_release_jws(&jws, opts.roots.as_deref(), &host(&vault), now)
            .map_err(&r)?;
        let (kty, hsm) = azure::released_key(&payload).map_err(&r)?;
        let material = akv::unwrap_key_hsm(&hsm, &transfer).map_err(&r)?;
        let dek = match kty.as_str() {
            "oct-HSM" | "oct" => DatasetKey::from_slice(&material)
                .map_err(|e| r(BrokerError::Crypto(e.to_string())))?,
            "RSA-HSM" | "RSA" => {
                let salt = key
                    .properties
                    .salt
                    .as_deref()
                    .ok_or_else(|| ReleaseError::KeyRef {
                        kid: kid.clone(),
                        reason: "RSA-HSM: the contract must give its HKDF `salt`".into(),
                    })?;
                let salt = hex::decode(salt).map_err(|_| ReleaseError::KeyRef {
                    kid: kid.clone(),
                    reason: "`salt` is not hex".into(),
                })?;
                let label = key.properties.label.clone().unwrap_or_else(|| kid.clone());
                let k = akv::dek_from_rsa_private_key(&material, &salt, label.as_bytes())
                    .map_err(&r)?;
                DatasetKey::from_slice(&k[..]).map_err(|e| r(BrokerError::Crypto(e.to_string())))?
            }
            other => {
                return Err(r(BrokerError::Protocol {
                    field: "release payload key.kty".into(),
                    reason: format!("`{other}` (oct-HSM or RSA-HSM expected)"),
                }));
            }
        };
        info!(key = %kid, vault = %vault, what = %what, "key released by Azure Key Vault");
        out.push((item.what.clone(), dek));
    }
    Ok(out)
}

// What MAA is sent: an SNP report with its VCEK chain (SevSnpVm), or a TD quote (TdxVm).
enum ForMaa {
    Snp {
        report: Vec<u8>,
        chain: String,
        uvm: Option<Vec<u8>>,
    },
    Tdx(Vec<u8>),
}

impl ForMaa {
    /// Reads the platform's evidence JSON (`{"quote"}` for TDX, the SNP shape otherwise).
    fn from_evidence(
        ev: &serde_json::Value,
        attester: &dyn Attester,
    ) -> Result<Self, ReleaseError> {
        let b64 = |f: &str, s: &str| {
            ccr_attest::evidence::b64(f, s).map_err(|source| ReleaseError::Attest {
                what: format!("evidence field {f}"),
                source,
            })
        };
        let for_maa = if let Some(q) = ev.get("quote").and_then(serde_json::Value::as_str) {
            ForMaa::Tdx(b64("quote", q)?)
        } else {
            let snp = ccr_attest::SnpEvidence::from_json(ev).map_err(|_| {
                ReleaseError::Unsupported(format!(
                    "Azure Secure Key Release needs SEV-SNP or TDX evidence for MAA; platform {} gives neither",
                    attester.platform()
                ))
            })?;
            let report = b64("report", &snp.report)?;
            let mut chain = String::new();
            let mut ders = Vec::new();
            if let Some(v) = &snp.vek {
                ders.push(b64("vek", v)?);
            }
            for c in &snp.cert_chain {
                ders.push(b64("cert_chain", &c.data)?);
            }
            for d in ders {
                chain.push_str("-----BEGIN CERTIFICATE-----\n");
                let text = base64::engine::general_purpose::STANDARD.encode(d);
                for line in text.as_bytes().chunks(64) {
                    chain.push_str(&String::from_utf8_lossy(line));
                    chain.push('\n');
                }
                chain.push_str("-----END CERTIFICATE-----\n");
            }
            let uvm = snp
                .reference_info
                .as_deref()
                .map(|r| b64("reference_info", r))
                .transpose()?;
            ForMaa::Snp { report, chain, uvm }
        };
        Ok(for_maa)
    }
}
