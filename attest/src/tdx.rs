//! Intel TDX: TD quotes (version 4 and 5) verified with `dcap-qvl` and given collateral.
//!
//! Sources: Intel TDX DCAP Quoting Library API, appendix "Quote Format" (quote v4: header 48
//! bytes, TD report body 584 bytes, then the signature data; v5 adds a body type and size before
//! a TD 1.0, 1.5 or 1.5-ex body); Intel PCS API v4 for the collateral (TCB info, QE identity,
//! PCK CRL, root CA CRL and their issuer chains).
//!
//! Verification is `dcap-qvl`'s (pure Rust, `ring`): the PCK chain in the quote to Intel's SGX
//! root CA (embedded in `dcap-qvl`), the CRLs, the QE report signature and its binding of the
//! attestation key, the quote signature, the TCB info and QE identity signatures, and the TCB
//! level matching that yields the TCB status, all at the given time.
//!
//! Without collateral (never fetched: Azure's TDX CVMs, say, where the auditor has only the
//! evidence), [`verify_signatures`] checks what needs no collateral, following the same steps:
//! the PCK chain in the quote (ECDSA P-256/SHA-256) to Intel's SGX root CA (embedded,
//! `intel_sgx_root_ca.der`, SHA-256 `44a0196b…74d3`, as published by Intel PCS and shipped in
//! `dcap-qvl`), each certificate valid at the given time, the QE report signed by the PCK key,
//! the QE report binding `SHA-256(attestation key || QE auth data)`, and the quote signed by the
//! attestation key. It cannot check revocation (CRLs), the QE's identity or the TCB level, so
//! the claims carry `tcb_status: null` and `collateral: false`, and ccr's default TDX release
//! policy (which requires `tcb_status` `UpToDate`) denies them.

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha384};

use crate::error::AttestError;
use crate::{Claims, Platform, VerifiedEvidence};

/// `TDATTRIBUTES` bit 0: the TD is debuggable.
pub const TD_ATTRIBUTES_DEBUG: u64 = 1;
/// Largest quote accepted, in bytes (a v5 quote with its PCK chain is about 5 KiB).
pub const MAX_QUOTE_LEN: usize = 64 * 1024;
/// Size of the quote header.
pub const HEADER_LEN: usize = 48;
/// Offset of the TD report body in a v4 quote.
pub const V4_BODY_OFFSET: usize = 48;
/// Offset of the TD report body in a v5 quote (after `body_type` u16 and `body_size` u32).
pub const V5_BODY_OFFSET: usize = 54;

/// Field offsets inside the TD 1.0 report body (TD quote body, Intel TDX DCAP quote spec table
/// "TD Quote Body").
pub mod offsets {
    /// `TEE_TCB_SVN` (16 bytes).
    pub const TEE_TCB_SVN: usize = 0;
    /// `MRSEAM` (48 bytes).
    pub const MRSEAM: usize = 16;
    /// `TDATTRIBUTES` (8 bytes).
    pub const TD_ATTRIBUTES: usize = 120;
    /// `XFAM` (8 bytes).
    pub const XFAM: usize = 128;
    /// `MRTD` (48 bytes).
    pub const MRTD: usize = 136;
    /// `MRCONFIGID` (48 bytes).
    pub const MRCONFIGID: usize = 184;
    /// `MROWNER` (48 bytes).
    pub const MROWNER: usize = 232;
    /// `MROWNERCONFIG` (48 bytes).
    pub const MROWNERCONFIG: usize = 280;
    /// `RTMR0` (48 bytes); RTMR1..3 follow at 48-byte steps.
    pub const RTMR0: usize = 328;
    /// `REPORTDATA` (64 bytes).
    pub const REPORTDATA: usize = 520;
}

/// The TDX claims of a quote, beside the common ones (`measurement` = `MRTD`, `host_data` =
/// `MRCONFIGID`, `report_data` = `REPORTDATA`, `debug` = `TDATTRIBUTES.DEBUG`,
/// `tcb_status` from the collateral). Hex strings are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdxClaims {
    /// Quote version (4 or 5).
    pub quote_version: u16,
    /// `MRTD`, 48 bytes hex.
    pub mrtd: String,
    /// `RTMR0`..`RTMR3`, 48 bytes hex each.
    pub rtmr: [String; 4],
    /// `MRCONFIGID`, 48 bytes hex.
    pub mr_config_id: String,
    /// `MROWNER`, 48 bytes hex.
    pub mr_owner: String,
    /// `MROWNERCONFIG`, 48 bytes hex.
    pub mr_owner_config: String,
    /// `MRSEAM`, 48 bytes hex.
    pub mr_seam: String,
    /// `TDATTRIBUTES`, 8 bytes hex.
    pub td_attributes: String,
    /// `XFAM`, 8 bytes hex.
    pub xfam: String,
    /// `TEE_TCB_SVN`, 16 bytes hex.
    pub tee_tcb_svn: String,
    /// Intel security advisories that apply to the platform's TCB level.
    pub advisory_ids: Vec<String>,
    /// Whether collateral was checked (CRLs, QE identity, TCB info).
    pub collateral: bool,
}

impl TdxClaims {
    pub(crate) fn policy_input(&self, c: &Claims, m: &mut Map<String, Value>) {
        let entries = [
            ("quote_version", json!(self.quote_version)),
            ("mrtd", json!(self.mrtd)),
            ("rtmr0", json!(self.rtmr[0])),
            ("rtmr1", json!(self.rtmr[1])),
            ("rtmr2", json!(self.rtmr[2])),
            ("rtmr3", json!(self.rtmr[3])),
            ("mr_config_id", json!(self.mr_config_id)),
            ("mr_owner", json!(self.mr_owner)),
            ("mr_owner_config", json!(self.mr_owner_config)),
            ("mr_seam", json!(self.mr_seam)),
            ("td_attributes", json!(self.td_attributes)),
            ("xfam", json!(self.xfam)),
            ("tee_tcb_svn", json!(self.tee_tcb_svn)),
            ("advisory_ids", json!(self.advisory_ids)),
            ("collateral", json!(self.collateral)),
            ("tdx_mrtd", json!(self.mrtd)),
            ("tdx_rtmr0", json!(self.rtmr[0])),
            ("tdx_rtmr1", json!(self.rtmr[1])),
            ("tdx_rtmr2", json!(self.rtmr[2])),
            ("tdx_rtmr3", json!(self.rtmr[3])),
            ("tdx_mrconfigid", json!(self.mr_config_id)),
            ("tdx_mrowner", json!(self.mr_owner)),
            ("tdx_mrownerconfig", json!(self.mr_owner_config)),
            ("tdx_mrseam", json!(self.mr_seam)),
            ("tdx_report_data", json!(c.report_data)),
            ("tdx_td_attributes_debug", json!(c.debug)),
            ("tdx_xfam", json!(self.xfam)),
            ("attester_tcb_status", json!(c.tcb_status)),
        ];
        for (k, v) in entries {
            m.insert(k.into(), v);
        }
    }
}

/// A parsed TD quote with its raw bytes.
#[derive(Debug, Clone)]
pub struct TdQuote {
    raw: Vec<u8>,
    parsed: dcap_qvl::quote::Quote,
}

fn td10(report: &dcap_qvl::quote::Report) -> Option<&dcap_qvl::quote::TDReport10> {
    report.as_td10()
}

impl TdQuote {
    /// Parses a TD quote (version 4 or 5, TEE type TDX `0x81`).
    ///
    /// # Errors
    /// [`AttestError::Length`] when shorter than a header or over [`MAX_QUOTE_LEN`];
    /// [`AttestError::Field`] naming `version`, `tee_type` or the structure `dcap-qvl` rejected.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() < HEADER_LEN || bytes.len() > MAX_QUOTE_LEN {
            return Err(AttestError::Length {
                what: "TD quote",
                expected: if bytes.len() < HEADER_LEN {
                    HEADER_LEN
                } else {
                    MAX_QUOTE_LEN
                },
                got: bytes.len(),
            });
        }
        let version = u16::from_le_bytes([bytes[0], bytes[1]]);
        if version != 4 && version != 5 {
            return Err(AttestError::Field {
                field: "quote.header.version",
                reason: format!("{version}, supported are 4 and 5"),
            });
        }
        let tee_type = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if tee_type != 0x81 {
            return Err(AttestError::Field {
                field: "quote.header.tee_type",
                reason: format!("{tee_type:#x}, expected 0x81 (TDX)"),
            });
        }
        let parsed = dcap_qvl::quote::Quote::parse(bytes).map_err(|e| AttestError::Field {
            field: "quote",
            reason: format!("malformed TD quote: {e:#}"),
        })?;
        if td10(&parsed.report).is_none() {
            return Err(AttestError::Field {
                field: "quote.body",
                reason: "not a TD report".into(),
            });
        }
        Ok(Self {
            raw: bytes.to_vec(),
            parsed,
        })
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The quote version (4 or 5).
    pub fn version(&self) -> u16 {
        self.parsed.header.version
    }

    /// `REPORTDATA` (64 bytes).
    pub fn report_data(&self) -> [u8; 64] {
        td10(&self.parsed.report).map_or([0; 64], |r| r.report_data)
    }

    /// The TD report fields as claims, with `tcb_status` and advisories when known.
    pub fn claims(
        &self,
        platform: Platform,
        tcb_status: Option<String>,
        advisory_ids: Vec<String>,
    ) -> Claims {
        let r = td10(&self.parsed.report)
            .copied()
            .unwrap_or_else(|| unreachable!("TdQuote::parse only accepts TD reports"));
        let attrs = u64::from_le_bytes(r.td_attributes);
        let collateral = tcb_status.is_some();
        Claims {
            platform,
            report_data: hex::encode(r.report_data),
            measurement: Some(hex::encode(r.mr_td)),
            host_data: Some(hex::encode(r.mr_config_id)),
            debug: attrs & TD_ATTRIBUTES_DEBUG != 0,
            tcb_status,
            endorsement: Vec::new(),
            snp: None,
            tdx: Some(TdxClaims {
                quote_version: self.version(),
                mrtd: hex::encode(r.mr_td),
                rtmr: [
                    hex::encode(r.rt_mr0),
                    hex::encode(r.rt_mr1),
                    hex::encode(r.rt_mr2),
                    hex::encode(r.rt_mr3),
                ],
                mr_config_id: hex::encode(r.mr_config_id),
                mr_owner: hex::encode(r.mr_owner),
                mr_owner_config: hex::encode(r.mr_owner_config),
                mr_seam: hex::encode(r.mr_seam),
                td_attributes: hex::encode(r.td_attributes),
                xfam: hex::encode(r.xfam),
                tee_tcb_svn: hex::encode(r.tee_tcb_svn),
                collateral,
                advisory_ids,
            }),
            vtpm: None,
            cs: None,
            aci: None,
        }
    }
}

/// Collateral for one quote, as Intel PCS / PCCS serve it and `dcap-qvl` consumes it.
pub type Collateral = dcap_qvl::QuoteCollateralV3;

/// Parses collateral JSON: the fields of `dcap-qvl`'s `QuoteCollateralV3`
/// (`pck_crl_issuer_chain`, `root_ca_crl`, `pck_crl`, `tcb_info_issuer_chain`, `tcb_info`,
/// `tcb_info_signature`, `qe_identity_issuer_chain`, `qe_identity`, `qe_identity_signature`,
/// optional `pck_certificate_chain`), with the binary ones (CRLs, signatures) as hex strings
/// or byte arrays.
///
/// # Errors
/// [`AttestError::Evidence`] naming the missing or malformed field.
pub fn parse_collateral(json: &[u8]) -> Result<Collateral, AttestError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| AttestError::Evidence {
        field: "collateral".into(),
        reason: e.to_string(),
    })?;
    let err = |field: &str, reason: &str| AttestError::Evidence {
        field: format!("collateral.{field}"),
        reason: reason.into(),
    };
    let text = |f: &str| -> Result<String, AttestError> {
        v.get(f)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err(f, "missing or not a string"))
    };
    let bin = |f: &str| -> Result<Vec<u8>, AttestError> {
        match v.get(f) {
            Some(Value::String(s)) => hex::decode(s).map_err(|_| err(f, "not hex")),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| err(f, "not a byte array"))
                })
                .collect(),
            _ => Err(err(f, "missing (hex string or byte array)")),
        }
    };
    Ok(Collateral {
        pck_crl_issuer_chain: text("pck_crl_issuer_chain")?,
        root_ca_crl: bin("root_ca_crl")?,
        pck_crl: bin("pck_crl")?,
        tcb_info_issuer_chain: text("tcb_info_issuer_chain")?,
        tcb_info: text("tcb_info")?,
        tcb_info_signature: bin("tcb_info_signature")?,
        qe_identity_issuer_chain: text("qe_identity_issuer_chain")?,
        qe_identity: text("qe_identity")?,
        qe_identity_signature: bin("qe_identity_signature")?,
        pck_certificate_chain: v
            .get("pck_certificate_chain")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Verifies `quote` with `collateral` at `at` (Unix seconds) against Intel's SGX root CA.
///
/// Debug TDs are rejected unless `allow_debug`. The TCB status is reported in the claims, not
/// judged here: the release policy decides which statuses it accepts.
///
/// # Errors
/// [`AttestError::Signature`] with `dcap-qvl`'s reason (chain, CRL, signature, expired
/// collateral, or TCB matching); [`AttestError::Field`] naming `TDATTRIBUTES.DEBUG`.
pub fn verify(
    quote: &TdQuote,
    collateral: &Collateral,
    at: i64,
    platform: Platform,
    allow_debug: bool,
) -> Result<VerifiedEvidence, AttestError> {
    let now = u64::try_from(at).map_err(|_| AttestError::Field {
        field: "at",
        reason: "time before 1970".into(),
    })?;
    let r = dcap_qvl::verify::QuoteVerifier::new_prod()
        .allow_debug(true)
        .verify(&quote.raw, collateral, now)
        .map_err(|e| AttestError::Signature {
            what: "TD quote (dcap-qvl)",
            reason: format!("{e:#}"),
        })?;
    let claims = quote.claims(platform, Some(r.status), r.advisory_ids);
    if claims.debug && !allow_debug {
        return Err(AttestError::Field {
            field: "TDATTRIBUTES.DEBUG",
            reason: "the TD is debuggable: its memory is readable by the host".into(),
        });
    }
    let mut claims = claims;
    claims.endorsement = vec![
        "PCK certificate (in the quote)".into(),
        "Intel SGX PCK CA".into(),
        "Intel SGX Root CA".into(),
    ];
    Ok(VerifiedEvidence::new(
        claims,
        Sha384::digest(&quote.raw).into(),
    ))
}

/// Intel SGX Root CA (DER), the anchor of PCK chains: Intel PCS
/// `Intel_SGX_Provisioning_Certification_RootCA`, valid 2018-05-21 to 2049-12-31.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

fn sig_err(reason: String) -> AttestError {
    AttestError::Signature {
        what: "TD quote",
        reason,
    }
}

fn p256_key(sec1: &[u8]) -> Result<p256::ecdsa::VerifyingKey, AttestError> {
    p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
        .map_err(|e| sig_err(format!("not a P-256 key: {e}")))
}

fn verify_raw(
    key: &p256::ecdsa::VerifyingKey,
    msg: &[u8],
    rs: &[u8],
    what: &str,
) -> Result<(), AttestError> {
    use p256::ecdsa::signature::Verifier;
    let sig = p256::ecdsa::Signature::from_slice(rs)
        .map_err(|e| sig_err(format!("{what}: malformed signature: {e}")))?;
    key.verify(msg, &sig)
        .map_err(|_| sig_err(format!("{what}: signature does not verify")))
}

fn verify_cert(
    cert: &x509_cert::Certificate,
    issuer: &x509_cert::Certificate,
    at: i64,
) -> Result<(), AttestError> {
    use der::Encode;
    use p256::ecdsa::signature::Verifier;
    let name = crate::amd::AmdCert::from_der(&cert.to_der().unwrap_or_default(), "PCK chain")
        .map(|c| c.subject_cn())
        .unwrap_or_default();
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(AttestError::Chain {
            reason: format!("{name}: issuer name differs from the next certificate's subject"),
        });
    }
    if cert.signature_algorithm.oid.to_string() != "1.2.840.10045.4.3.2" {
        return Err(AttestError::Chain {
            reason: format!("{name}: signature algorithm is not ecdsa-with-SHA256"),
        });
    }
    let key = p256_key(
        issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| AttestError::Chain {
            reason: e.to_string(),
        })?;
    let sig = p256::ecdsa::Signature::from_der(cert.signature.raw_bytes()).map_err(|e| {
        AttestError::Chain {
            reason: format!("{name}: malformed signature: {e}"),
        }
    })?;
    key.verify(&tbs, &sig).map_err(|_| AttestError::Chain {
        reason: format!("{name} is not signed by its issuer"),
    })?;
    let v = &cert.tbs_certificate.validity;
    let (nb, na) = (
        v.not_before.to_unix_duration().as_secs() as i64,
        v.not_after.to_unix_duration().as_secs() as i64,
    );
    if at < nb || at > na {
        return Err(AttestError::Chain {
            reason: format!(
                "{name} is not valid at {} (valid {} to {})",
                crate::amd::fmt_time(at),
                v.not_before,
                v.not_after
            ),
        });
    }
    Ok(())
}

/// Verifies what a quote proves without collateral (see the module documentation): the PCK
/// chain to the embedded Intel root at `at`, the QE report signature and binding, and the quote
/// signature. The claims carry `tcb_status: null` and `collateral: false`.
///
/// # Errors
/// [`AttestError::Chain`] for the PCK chain; [`AttestError::Signature`] for the QE report or
/// quote signature; [`AttestError::Field`] for an unsupported key type or certification data,
/// or (unless `allow_debug`) a debuggable TD.
pub fn verify_signatures(
    quote: &TdQuote,
    at: i64,
    platform: Platform,
    allow_debug: bool,
) -> Result<VerifiedEvidence, AttestError> {
    use dcap_qvl::quote::AuthData;
    use der::Decode;
    if quote.parsed.header.attestation_key_type != 2 {
        return Err(AttestError::Field {
            field: "quote.header.attestation_key_type",
            reason: format!(
                "{}, only 2 (ECDSA P-256) is defined",
                quote.parsed.header.attestation_key_type
            ),
        });
    }
    let auth = match quote.parsed.auth_data.clone() {
        AuthData::V3(a) => a,
        AuthData::V4(a) => a.into_v3(),
    };
    let pem = quote
        .parsed
        .raw_cert_chain()
        .map_err(|e| AttestError::Field {
            field: "quote.certification_data",
            reason: format!("{e:#} (the PCK chain, type 5, is required)"),
        })?;
    let pem: Vec<u8> = pem.iter().copied().take_while(|&b| b != 0).collect();
    let certs = x509_cert::Certificate::load_pem_chain(&pem).map_err(|e| AttestError::Chain {
        reason: format!("PCK chain: {e}"),
    })?;
    let root = x509_cert::Certificate::from_der(INTEL_SGX_ROOT_CA_DER).map_err(|e| {
        AttestError::Chain {
            reason: format!("embedded Intel root: {e}"),
        }
    })?;
    let mut chain: Vec<&x509_cert::Certificate> = certs.iter().collect();
    if chain.last().is_some_and(|c| **c == root) {
        chain.pop();
    }
    if chain.is_empty() {
        return Err(AttestError::Chain {
            reason: "the quote's PCK chain is empty".into(),
        });
    }
    for (i, c) in chain.iter().enumerate() {
        let issuer = chain.get(i + 1).copied().unwrap_or(&root);
        verify_cert(c, issuer, at)?;
    }
    let pck = p256_key(
        chain[0]
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )?;
    verify_raw(
        &pck,
        &auth.qe_report,
        &auth.qe_report_signature,
        "QE report",
    )?;
    let mut h = sha2::Sha256::new();
    h.update(auth.ecdsa_attestation_key);
    h.update(&auth.qe_auth_data.data);
    if h.finalize()[..] != auth.qe_report[320..352] {
        return Err(sig_err(
            "the QE report does not bind the attestation key".into(),
        ));
    }
    let mut ak = [0x04u8; 65];
    ak[1..].copy_from_slice(&auth.ecdsa_attestation_key);
    let signed = quote
        .raw
        .get(..quote.parsed.signed_length())
        .ok_or_else(|| sig_err("truncated signed part".into()))?;
    verify_raw(&p256_key(&ak)?, signed, &auth.ecdsa_signature, "quote")?;
    let mut claims = quote.claims(platform, None, Vec::new());
    if claims.debug && !allow_debug {
        return Err(AttestError::Field {
            field: "TDATTRIBUTES.DEBUG",
            reason: "the TD is debuggable: its memory is readable by the host".into(),
        });
    }
    let cn = |c: &x509_cert::Certificate| {
        use der::Encode;
        crate::amd::AmdCert::from_der(&c.to_der().unwrap_or_default(), "PCK chain")
            .map(|c| c.subject_cn())
            .unwrap_or_default()
    };
    claims.endorsement = chain.iter().map(|c| cn(c)).collect();
    claims.endorsement.push(cn(&root));
    Ok(VerifiedEvidence::new(
        claims,
        Sha384::digest(&quote.raw).into(),
    ))
}
