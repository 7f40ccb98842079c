//! Azure confidential container groups (ACI): the security context the platform mounts.
//!
//! ACI mounts a folder named by `UVM_SECURITY_CONTEXT_DIR` holding three base64 files
//! (Microsoft `confidential-sidecar-containers`, `pkg/common`):
//! - `host-amd-cert-base64`: the host's AMD certificates as the THIM service serves them, a JSON
//!   object `{"vcekCert": PEM, "certificateChain": PEM (ASK then ARK), "tcbm": hex, ...}`;
//! - `security-policy-base64`: the container group's CCE security policy (Rego text). Its
//!   SHA-256 is the SNP report's `HOST_DATA` (32 bytes);
//! - `reference-info-base64`: the UVM reference info, a COSE_Sign1 endorsement of the utility
//!   VM's launch measurement by Microsoft. Its SHA-256 is reported; checking the COSE signature
//!   and its measurement against the report is the measurement crate's work (issue 7).
//!
//! The report verifies as SNP evidence with the VCEK from `vcekCert`; the ASK from
//! `certificateChain` is accepted only when it verifies against an embedded AMD ARK, and the
//! chain's own ARK is ignored.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::amd::AmdCert;
use crate::error::AttestError;

/// File names in `UVM_SECURITY_CONTEXT_DIR`.
pub const HOST_AMD_CERT: &str = "host-amd-cert-base64";
/// The CCE policy file.
pub const SECURITY_POLICY: &str = "security-policy-base64";
/// The UVM reference info file.
pub const REFERENCE_INFO: &str = "reference-info-base64";

/// The host's AMD certificates in the THIM JSON shape.
#[derive(Debug, Clone)]
pub struct ThimCerts {
    /// The VCEK, DER.
    pub vcek_der: Vec<u8>,
    /// The chain's certificates (ASK, ARK), as given.
    pub chain: Vec<AmdCert>,
    /// `tcbm`: the TCB the VCEK is for, hex.
    pub tcbm: Option<String>,
}

/// Parses THIM JSON (`vcekCert`, `certificateChain`, `tcbm`).
///
/// # Errors
/// [`AttestError::Evidence`] naming the field; [`AttestError::Certificate`] for bad PEM.
pub fn parse_thim(json: &[u8]) -> Result<ThimCerts, AttestError> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| AttestError::Evidence {
        field: "THIM".into(),
        reason: e.to_string(),
    })?;
    let s = |f: &str| v.get(f).and_then(serde_json::Value::as_str);
    let vcek_pem = s("vcekCert").ok_or_else(|| AttestError::Evidence {
        field: "THIM.vcekCert".into(),
        reason: "missing".into(),
    })?;
    let vcek = AmdCert::from_der_or_pem(vcek_pem.as_bytes(), "VCEK")?;
    let chain = match s("certificateChain") {
        Some(p) => AmdCert::pem_bundle(p.as_bytes(), "THIM certificateChain")?,
        None => Vec::new(),
    };
    Ok(ThimCerts {
        vcek_der: vcek.der().to_vec(),
        chain,
        tcbm: s("tcbm").map(str::to_string),
    })
}

/// The contents of an ACI security context.
#[derive(Debug, Clone)]
pub struct SecurityContext {
    /// The host's AMD certificates.
    pub certs: ThimCerts,
    /// The CCE security policy (Rego text), decoded.
    pub security_policy: Vec<u8>,
    /// The UVM reference info (COSE_Sign1), decoded; absent when the file is.
    pub reference_info: Option<Vec<u8>>,
}

/// What the security context adds to the claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AciClaims {
    /// SHA-256 of the CCE policy (equal to `host_data`).
    pub security_policy_digest: String,
    /// SHA-256 of the UVM reference info (not verified here).
    pub reference_info_digest: Option<String>,
    /// The contract digest the CCE policy fixes for the container
    /// (`CCR_CONTRACT_DIGEST=<64 hex>` in its environment rules), if any.
    pub ccr_contract_digest: Option<String>,
}

/// The environment variable a CCE policy fixes to bind the contract.
pub const CONTRACT_DIGEST_ENV: &str = "CCR_CONTRACT_DIGEST=";

/// Finds `CCR_CONTRACT_DIGEST=<64 hex>` in a CCE policy's text; `None` when absent or when two
/// different digests appear.
pub fn contract_digest_in_policy(policy: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(policy);
    let mut found: Option<String> = None;
    for (i, _) in text.match_indices(CONTRACT_DIGEST_ENV) {
        let rest = &text[i + CONTRACT_DIGEST_ENV.len()..];
        let d: String = rest.chars().take(64).collect();
        if d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()) {
            let d = d.to_lowercase();
            match &found {
                Some(f) if *f != d => return None,
                _ => found = Some(d),
            }
        }
    }
    found
}

fn b64_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, AttestError> {
    let p = dir.join(name);
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AttestError::Evidence {
                field: p.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    let clean: Vec<u8> = text
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(&clean)
        .map(Some)
        .map_err(|e| AttestError::Evidence {
            field: p.display().to_string(),
            reason: format!("not base64: {e}"),
        })
}

impl SecurityContext {
    /// Reads a `UVM_SECURITY_CONTEXT_DIR` folder.
    ///
    /// # Errors
    /// [`AttestError::Evidence`] naming the file that is missing or not base64; as
    /// [`parse_thim`].
    pub fn load(dir: &Path) -> Result<Self, AttestError> {
        let missing = |name: &str| AttestError::Evidence {
            field: dir.join(name).display().to_string(),
            reason: "missing".into(),
        };
        let thim = b64_file(dir, HOST_AMD_CERT)?.ok_or_else(|| missing(HOST_AMD_CERT))?;
        let policy = b64_file(dir, SECURITY_POLICY)?.ok_or_else(|| missing(SECURITY_POLICY))?;
        Ok(Self {
            certs: parse_thim(&thim)?,
            security_policy: policy,
            reference_info: b64_file(dir, REFERENCE_INFO)?,
        })
    }

    /// SHA-256 of the CCE policy: the `HOST_DATA` a report from this container group carries.
    pub fn host_data(&self) -> [u8; 32] {
        Sha256::digest(&self.security_policy).into()
    }

    /// The claims this context adds.
    pub fn claims(&self) -> AciClaims {
        AciClaims {
            security_policy_digest: hex::encode(self.host_data()),
            reference_info_digest: self
                .reference_info
                .as_ref()
                .map(|r| hex::encode(Sha256::digest(r))),
            ccr_contract_digest: contract_digest_in_policy(&self.security_policy),
        }
    }
}
