//! Key release from the parties' cloud key stores: Azure Key Vault Secure Key Release and GCP
//! Cloud KMS (through a Confidential Space token and STS), for dataset keys of type `azure`
//! and `gcp` in the contract (see `ccr_policy::contract::KeyRef`).
//!
//! - `azure`: a fresh RSA-2048 transfer key; the platform's SNP evidence with `REPORT_DATA` =
//!   SHA-256 of the runtime data (the transfer key's JWKS, MAA's binding); one MAA token per
//!   authority; a managed identity token from IMDS; Key Vault's release, its JWS verified (x5c
//!   chain, the vault's host name); the key unwrapped with the transfer key; `oct-HSM` keys are
//!   the DEK, `RSA-HSM` keys give the DEK by HKDF ([`ccr_keybroker::akv`]).
//! - `gcp`: a Confidential Space token from the launcher (audience STS); one federated token per
//!   workload identity provider; Cloud KMS decrypts the image's `wrapped_dek.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use ccr_keybroker::BrokerError;
use ccr_keybroker::cloud_http::{CloudClient, RetryPolicy};
use ccr_keybroker::{akv, azure, gcp};
use ccr_policy::contract::KeyRef;
use rustls::pki_types::CertificateDer;
use tracing::info;
use zeroize::Zeroizing;

use crate::job::JobError;

/// Where the cloud services are and what TLS roots to trust (defaults: the public endpoints and
/// the web PKI).
#[derive(Clone)]
pub struct CloudOptions {
    /// Trust only these roots (DER) for cloud endpoints and Key Vault's release JWS; `None`:
    /// the public web PKI.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// The IMDS base URL.
    pub imds: String,
    /// A user-assigned managed identity's client id.
    pub azure_client_id: Option<String>,
    /// A Key Vault bearer token given in the environment (`CCR_AZURE_TOKEN`), used instead of
    /// IMDS.
    pub azure_token: Option<Zeroizing<String>>,
    /// The GCP STS base URL.
    pub sts: String,
    /// The Cloud KMS base URL (a key's `endpoint` overrides it).
    pub kms: String,
    /// The Confidential Space launcher socket.
    pub cs_socket: PathBuf,
}

impl std::fmt::Debug for CloudOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("CloudOptions")
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("imds", &self.imds)
            .field("azure_client_id", &self.azure_client_id)
            .field("azure_token", &self.azure_token.as_ref().map(|_| "<set>"))
            .field("sts", &self.sts)
            .field("kms", &self.kms)
            .field("cs_socket", &self.cs_socket)
            .finish()
    }
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            roots: None,
            imds: azure::IMDS_BASE.into(),
            azure_client_id: None,
            azure_token: None,
            sts: gcp::STS_BASE.into(),
            kms: gcp::KMS_BASE.into(),
            cs_socket: ccr_attest::attester::CS_SOCKET.into(),
        }
    }
}

impl CloudOptions {
    fn client(&self, service: &str) -> CloudClient {
        CloudClient::new(service, RetryPolicy::default(), self.roots.as_deref())
    }
}

/// A key to fetch: (what, dataset or output id, key reference).
pub type Wanted = (String, String, KeyRef);

fn rel(what: &str, kid: &str) -> impl Fn(BrokerError) -> JobError {
    let (what, kid) = (what.to_string(), kid.to_string());
    move |source| JobError::Release {
        what: what.clone(),
        kid: kid.clone(),
        source,
    }
}

fn url(s: &str) -> String {
    if s.contains("://") {
        s.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", s.trim_end_matches('/'))
    }
}

fn host(u: &str) -> String {
    let rest = u.split("://").nth(1).unwrap_or(u);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}

/// Releases `azure` keys.
///
/// # Errors
/// [`JobError::Attest`] when the platform cannot give SNP evidence; [`JobError::Release`]
/// naming the key and the service that refused or failed.
pub fn release_azure(
    opts: &CloudOptions,
    attester: &dyn Attester,
    items: &[Wanted],
) -> Result<Vec<(String, String, DatasetKey)>, JobError> {
    let client = opts.client("Azure");
    let transfer = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .map_err(|e| JobError::Attest(format!("transfer key: {e}")))?;
    let (_jwks, runtime_data) = azure::runtime_data(&transfer, "ccr-runtime-transfer-key");
    let ev = attester
        .evidence(&azure::maa_report_data(&runtime_data))
        .map_err(|e| JobError::Attest(e.to_string()))?;
    let b64 = |f: &str, s: &str| {
        ccr_attest::evidence::b64(f, s).map_err(|e| JobError::Attest(e.to_string()))
    };
    // What MAA is sent: an SNP report with its VCEK chain (SevSnpVm), or a TD quote (TdxVm).
    enum ForMaa {
        Snp {
            report: Vec<u8>,
            chain: String,
            uvm: Option<Vec<u8>>,
        },
        Tdx(Vec<u8>),
    }
    let for_maa = if let Some(q) = ev.get("quote").and_then(serde_json::Value::as_str) {
        ForMaa::Tdx(b64("quote", q)?)
    } else {
        let snp = ccr_attest::SnpEvidence::from_json(&ev).map_err(|_| {
            JobError::Attest(format!(
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
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    let mut bearer: Option<Zeroizing<String>> = None;
    let mut out = Vec::new();
    for (what, id, key) in items {
        let kid = &key.properties.kid;
        let r = rel(what, kid);
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
                let salt = key.properties.salt.as_deref().ok_or_else(|| {
                    JobError::Config(format!(
                        "key {kid} is RSA-HSM: the contract must give its HKDF `salt`"
                    ))
                })?;
                let salt = hex::decode(salt)
                    .map_err(|_| JobError::Config(format!("key {kid}: `salt` is not hex")))?;
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
        out.push((what.clone(), id.clone(), dek));
    }
    Ok(out)
}

/// The file beside a dataset image that holds its KMS-wrapped DEK.
pub const WRAPPED_DEK_FILE: &str = "wrapped_dek.json";

/// Releases `gcp` keys; `image_dir` gives each dataset id's image folder.
///
/// # Errors
/// [`JobError::Attest`] when the launcher gives no token; [`JobError::Input`] for a missing or
/// malformed `wrapped_dek.json`; [`JobError::Release`] naming the key and the service.
pub fn release_gcp(
    opts: &CloudOptions,
    image_dir: &dyn Fn(&str) -> Option<PathBuf>,
    items: &[Wanted],
) -> Result<Vec<(String, String, DatasetKey)>, JobError> {
    let client = opts.client("GCP");
    let launcher =
        ccr_attest::attester::CsAttester::new(opts.cs_socket.clone(), gcp::STS_AUDIENCE.into());
    let mut nonce = [0u8; 64];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let token = launcher
        .evidence(&nonce)
        .map_err(|e| JobError::Attest(format!("Confidential Space token: {e}")))?;
    let token = Zeroizing::new(token["token"].as_str().unwrap_or("").to_string());
    let mut federated: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for (what, id, key) in items {
        let kid = &key.properties.kid;
        let r = rel(what, kid);
        let provider = &key.properties.authority.endpoint;
        if !federated.contains_key(provider) {
            let t = gcp::sts_exchange(&client, &opts.sts, provider, &token).map_err(&r)?;
            info!(provider = %provider, "federated token from STS");
            federated.insert(provider.clone(), t);
        }
        let dir = image_dir(id).ok_or_else(|| {
            JobError::Config(format!(
                "{what}: a gcp key needs the dataset's image folder"
            ))
        })?;
        let path = dir.join(WRAPPED_DEK_FILE);
        let w: gcp::WrappedDek = read_wrapped(&path)?;
        if &w.kms_key != kid || &w.dataset != id {
            return Err(JobError::Input {
                path,
                reason: format!(
                    "wraps a DEK for dataset `{}` under `{}`, the contract says `{id}` under `{kid}`",
                    w.dataset, w.kms_key
                ),
            });
        }
        let kms = if key.properties.endpoint.is_empty() {
            opts.kms.clone()
        } else {
            url(&key.properties.endpoint)
        };
        let k = w.unwrap(&client, &kms, &federated[provider]).map_err(&r)?;
        let dek =
            DatasetKey::from_slice(&k[..]).map_err(|e| r(BrokerError::Crypto(e.to_string())))?;
        info!(key = %kid, what = %what, "DEK released by Cloud KMS");
        out.push((what.clone(), id.clone(), dek));
    }
    Ok(out)
}

fn read_wrapped(path: &Path) -> Result<gcp::WrappedDek, JobError> {
    let bytes = std::fs::read(path).map_err(|e| JobError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| JobError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
