//! Evidence of every platform, in the KBS protocol's shapes, and its verification into claims.
//!
//! The KBS `Attestation` carries `tee-evidence.primary_evidence` for the `tee` named in the
//! `Request`. Shapes accepted (`tee` → JSON):
//! - `snp`, `sim`: `{"report": base64 (1184 bytes), "vek"?: base64 DER, "cert_chain"?:
//!   [{"cert_type": "vcek"|"vlek"|"ask"|"asvk"|"ark", "data": base64 DER}], "security_policy"?:
//!   base64 (ACI CCE policy), "reference_info"?: base64 (ACI UVM reference info)}`; `cert_chain`
//!   is the extended report's certificate table (GUID table of the SNP `SNP_GET_EXT_REPORT`).
//!   Trustee's shape is accepted too: `{"attestation_report": {...the sev crate's
//!   AttestationReport as JSON...}, "cert_chain": [{"cert_type": "VCEK", "data": [bytes]}]}`;
//!   the report is re-encoded to its 1184 bytes by the `sev` crate (reserved fields as zero)
//!   before the signature is checked, so a report whose reserved bytes are not zero fails;
//! - `tdx`: `{"quote": base64, "cc_eventlog"?: base64}` (Trustee's `TdxEvidence`);
//! - `az-snp-vtpm`: `{"version": 1, "hcl_report": base64url, "tpm_quote": {"signature": hex,
//!   "message": hex, "pcrs": [hex × 24]}, "vcek": base64 DER}` (Trustee's `az-snp-vtpm`);
//! - `az-tdx-vtpm`: `{"version": 1, "hcl_report": base64url, "td_quote": base64url,
//!   "tpm_quote": {...}}` (Trustee's `az-tdx-vtpm`);
//! - `gcp-cs`: `{"token": "<compact JWS>"}`.
//!
//! Base64 fields accept the standard and URL-safe alphabets, padded or not.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aci::SecurityContext;
use crate::amd::AmdCert;
use crate::error::AttestError;
use crate::snp::{SnpReport, SnpRoots};
use crate::{Platform, VerifiedEvidence};

/// Decodes base64 in either alphabet, padded or not.
///
/// # Errors
/// [`AttestError::Evidence`] naming `field`.
pub fn b64(field: &str, s: &str) -> Result<Vec<u8>, AttestError> {
    let t: String = s
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .map_err(|e| AttestError::Evidence {
            field: field.into(),
            reason: format!("not base64: {e}"),
        })
}

fn bad(field: &str, reason: impl Into<String>) -> AttestError {
    AttestError::Evidence {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One entry of the SNP extended report's certificate table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertEntry {
    /// `vcek`, `vlek`, `ask`, `asvk` or `ark`.
    pub cert_type: String,
    /// The certificate, DER, base64.
    pub data: String,
}

/// SNP-layout evidence (`snp` and `sim`).
///
/// ```json
/// {"report": "<base64 of 1184 bytes>", "vek": "<base64 of the DER certificate>"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpEvidence {
    /// The attestation report, 1184 bytes, base64.
    pub report: String,
    /// The VCEK or VLEK certificate, DER, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vek: Option<String>,
    /// The extended report's certificate table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_chain: Vec<CertEntry>,
    /// ACI: the CCE security policy, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    /// ACI: the UVM reference info, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_info: Option<String>,
}

impl SnpEvidence {
    /// Builds the envelope from raw bytes.
    pub fn new(report: &[u8], vek_der: &[u8]) -> Self {
        Self {
            report: STANDARD.encode(report),
            vek: Some(STANDARD.encode(vek_der)),
            cert_chain: Vec::new(),
            security_policy: None,
            reference_info: None,
        }
    }

    /// Parses the envelope from JSON.
    ///
    /// # Errors
    /// [`AttestError::Evidence`] naming the field.
    pub fn from_json(v: &Value) -> Result<Self, AttestError> {
        serde_json::from_value(v.clone()).map_err(|e| bad("primary_evidence", e.to_string()))
    }

    /// Decodes and verifies the evidence against `roots` at the current time, yielding claims
    /// for `platform`.
    ///
    /// # Errors
    /// As [`Evidence::verify`].
    pub fn verify(
        &self,
        roots: &SnpRoots,
        platform: Platform,
    ) -> Result<VerifiedEvidence, AttestError> {
        let mut trust = Trust::new_with_roots(roots.clone());
        trust.sim_roots = Some(roots.clone());
        Evidence::Snp {
            platform,
            evidence: self.clone(),
        }
        .verify(&trust)
    }
}

/// The vTPM quote as Trustee's evidence carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmQuoteJson {
    /// The AK's signature, hex.
    pub signature: String,
    /// `TPMS_ATTEST`, hex.
    pub message: String,
    /// PCR values, hex.
    pub pcrs: Vec<String>,
}

/// Azure vTPM evidence (`az-snp-vtpm`, `az-tdx-vtpm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzVtpmEvidence {
    /// Format version (1).
    #[serde(default)]
    pub version: u32,
    /// The HCL report, base64.
    pub hcl_report: String,
    /// The vTPM quote.
    pub tpm_quote: TpmQuoteJson,
    /// SNP: the VCEK, base64 DER (or PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcek: Option<String>,
    /// TDX: the TD quote, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub td_quote: Option<String>,
}

/// Evidence of any platform.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Evidence {
    /// `snp` or `sim`.
    Snp {
        /// `Snp` or `Sim`.
        platform: Platform,
        /// The envelope.
        evidence: SnpEvidence,
    },
    /// `tdx`: the TD quote, raw.
    Tdx {
        /// The quote bytes.
        quote: Vec<u8>,
    },
    /// `az-snp-vtpm` or `az-tdx-vtpm`.
    AzVtpm {
        /// `AzSnpVtpm` or `AzTdxVtpm`.
        platform: Platform,
        /// The envelope.
        evidence: AzVtpmEvidence,
    },
    /// `gcp-cs`: the token.
    GcpCs {
        /// The compact JWS.
        token: String,
    },
}

impl Evidence {
    /// The platform.
    pub fn platform(&self) -> Platform {
        match self {
            Self::Snp { platform, .. } | Self::AzVtpm { platform, .. } => *platform,
            Self::Tdx { .. } => Platform::Tdx,
            Self::GcpCs { .. } => Platform::GcpCs,
        }
    }

    /// Parses `primary_evidence` for the KBS `tee` value.
    ///
    /// # Errors
    /// [`AttestError::Field`] for an unknown `tee`; [`AttestError::Evidence`] naming the field.
    pub fn from_kbs(tee: &str, v: &Value) -> Result<Self, AttestError> {
        let platform = Platform::parse(tee)?;
        Ok(match platform {
            Platform::Sim | Platform::Snp if v.get("attestation_report").is_some() => Self::Snp {
                platform,
                evidence: from_trustee_snp(v)?,
            },
            Platform::Sim | Platform::Snp => Self::Snp {
                platform,
                evidence: SnpEvidence::from_json(v)?,
            },
            Platform::Tdx => {
                let q = v
                    .get("quote")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("quote", "missing"))?;
                Self::Tdx {
                    quote: b64("quote", q)?,
                }
            }
            Platform::AzSnpVtpm | Platform::AzTdxVtpm => Self::AzVtpm {
                platform,
                evidence: serde_json::from_value(v.clone())
                    .map_err(|e| bad("primary_evidence", e.to_string()))?,
            },
            Platform::GcpCs => Self::GcpCs {
                token: v
                    .get("token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("token", "missing"))?
                    .to_string(),
            },
        })
    }

    /// Recognises an evidence file: a raw SNP report (1184 bytes), a raw TD quote, a compact
    /// JWS, a `{"tee", "evidence"}` envelope, or one of the JSON shapes of [`Evidence::from_kbs`].
    ///
    /// # Errors
    /// [`AttestError::Evidence`] when the bytes are none of these.
    pub fn sniff(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() == crate::snp::REPORT_LEN && !bytes.starts_with(b"{") {
            return Ok(Self::Snp {
                platform: Platform::Snp,
                evidence: SnpEvidence {
                    report: STANDARD.encode(bytes),
                    vek: None,
                    cert_chain: Vec::new(),
                    security_policy: None,
                    reference_info: None,
                },
            });
        }
        if bytes.len() >= 8
            && matches!(u16::from_le_bytes([bytes[0], bytes[1]]), 4 | 5)
            && bytes[4..8] == [0x81, 0, 0, 0]
        {
            return Ok(Self::Tdx {
                quote: bytes.to_vec(),
            });
        }
        if bytes.starts_with(b"HCLA") {
            return Err(bad(
                "evidence",
                "a bare HCL report: give the az-*-vtpm JSON with the vTPM quote",
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("evidence", "unrecognised"))?;
        let t = text.trim();
        if !t.starts_with('{') && t.split('.').count() == 3 {
            return Ok(Self::GcpCs {
                token: t.to_string(),
            });
        }
        let v: Value = serde_json::from_str(t).map_err(|e| bad("evidence", e.to_string()))?;
        if let (Some(tee), Some(ev)) = (v.get("tee").and_then(Value::as_str), v.get("evidence")) {
            return Self::from_kbs(tee, ev);
        }
        if let Some(h) = v.get("hcl_report").and_then(Value::as_str) {
            let hcl = crate::vtpm::HclReport::parse(&b64("hcl_report", h)?)?;
            let tee = match hcl.report_type() {
                crate::vtpm::HclReportType::Snp => "az-snp-vtpm",
                crate::vtpm::HclReportType::Tdx => "az-tdx-vtpm",
            };
            return Self::from_kbs(tee, &v);
        }
        for (key, tee) in [("report", "snp"), ("quote", "tdx"), ("token", "gcp-cs")] {
            if v.get(key).is_some() {
                return Self::from_kbs(tee, &v);
            }
        }
        Err(bad(
            "evidence",
            "not a known shape (SNP report, TD quote, az-*-vtpm JSON, token)",
        ))
    }

    /// Verifies the evidence with `trust` and returns the claims.
    ///
    /// # Errors
    /// The platform verifier's error, naming the check that failed.
    pub fn verify(&self, trust: &Trust) -> Result<VerifiedEvidence, AttestError> {
        let at = trust.at.unwrap_or_else(|| chrono::Utc::now().timestamp());
        match self {
            Self::Snp { platform, evidence } => verify_snp(*platform, evidence, trust, at),
            Self::Tdx { quote } => {
                let q = crate::tdx::TdQuote::parse(quote)?;
                match trust.tdx_collateral.as_ref() {
                    Some(col) => crate::tdx::verify(&q, col, at, Platform::Tdx, trust.allow_debug),
                    None => crate::tdx::verify_signatures(&q, at, Platform::Tdx, trust.allow_debug),
                }
            }
            Self::AzVtpm { platform, evidence } => {
                let hcl = crate::vtpm::HclReport::parse(&b64("hcl_report", &evidence.hcl_report)?)?;
                let expect = match hcl.report_type() {
                    crate::vtpm::HclReportType::Snp => Platform::AzSnpVtpm,
                    crate::vtpm::HclReportType::Tdx => Platform::AzTdxVtpm,
                };
                if expect != *platform {
                    return Err(AttestError::Field {
                        field: "HCL.report_type",
                        reason: format!("the HCL report is {expect}, the tee is {platform}"),
                    });
                }
                let hexd = |f: &str, s: &str| hex::decode(s).map_err(|_| bad(f, "not hex"));
                let quote = crate::vtpm::TpmQuote {
                    message: hexd("tpm_quote.message", &evidence.tpm_quote.message)?,
                    signature: hexd("tpm_quote.signature", &evidence.tpm_quote.signature)?,
                    pcrs: evidence
                        .tpm_quote
                        .pcrs
                        .iter()
                        .map(|p| {
                            hexd("tpm_quote.pcrs", p)?
                                .try_into()
                                .map_err(|_| bad("tpm_quote.pcrs", "a PCR value is not 32 bytes"))
                        })
                        .collect::<Result<_, _>>()?,
                };
                let vcek = match &evidence.vcek {
                    Some(v) if v.trim_start().starts_with("-----BEGIN") => Some(
                        AmdCert::from_der_or_pem(v.as_bytes(), "VCEK")?
                            .der()
                            .to_vec(),
                    ),
                    Some(v) => Some(b64("vcek", v)?),
                    None => None,
                };
                let td = match &evidence.td_quote {
                    Some(q) => Some(crate::tdx::TdQuote::parse(&b64("td_quote", q)?)?),
                    None => None,
                };
                crate::vtpm::verify(
                    &hcl,
                    &quote,
                    &trust.snp_roots,
                    trust.sim_roots.as_ref(),
                    vcek.as_deref(),
                    td.as_ref(),
                    trust.tdx_collateral.as_ref(),
                    at,
                    trust.allow_debug,
                )
            }
            Self::GcpCs { token } => {
                let jwks = trust.jwks.as_ref().ok_or_else(|| {
                    bad(
                        "jwks",
                        "the JWKS of the token issuer is required and was not given",
                    )
                })?;
                crate::cs::verify(
                    token,
                    &crate::cs::TokenCheck {
                        jwks,
                        audience: &trust.audiences,
                        issuer: crate::cs::ISSUER,
                        at,
                        leeway: 60,
                    },
                    trust.allow_debug,
                )
            }
        }
    }
}

/// Trustee's `SnpEvidence {attestation_report, cert_chain}` → ours.
fn from_trustee_snp(v: &Value) -> Result<SnpEvidence, AttestError> {
    use sev::parser::ByteParser;
    let report: sev::firmware::guest::AttestationReport =
        serde_json::from_value(v["attestation_report"].clone())
            .map_err(|e| bad("attestation_report", e.to_string()))?;
    let raw = report
        .to_bytes()
        .map_err(|e| bad("attestation_report", format!("cannot be encoded: {e}")))?;
    let mut chain = Vec::new();
    if let Some(entries) = v.get("cert_chain").and_then(Value::as_array) {
        for (i, e) in entries.iter().enumerate() {
            let field = format!("cert_chain[{i}]");
            let kind = e
                .get("cert_type")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&field, "cert_type is not a name (VCEK, VLEK, ASK, ARK)"))?;
            let data: Vec<u8> = match e.get("data") {
                Some(Value::String(s)) => b64(&field, s)?,
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|n| u8::try_from(n).ok())
                            .ok_or_else(|| bad(&field, "data is not bytes"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad(&field, "data missing")),
            };
            let kind = kind.to_ascii_lowercase();
            if ["vcek", "vlek", "ask", "ark"].contains(&kind.as_str()) {
                chain.push(CertEntry {
                    cert_type: kind,
                    data: STANDARD.encode(data),
                });
            }
        }
    }
    Ok(SnpEvidence {
        report: STANDARD.encode(raw),
        vek: None,
        cert_chain: chain,
        security_policy: None,
        reference_info: None,
    })
}

fn verify_snp(
    platform: Platform,
    ev: &SnpEvidence,
    trust: &Trust,
    at: i64,
) -> Result<VerifiedEvidence, AttestError> {
    let report = SnpReport::parse(&b64("report", &ev.report)?)?;
    let mut roots = match platform {
        Platform::Sim => trust
            .sim_roots
            .clone()
            .ok_or_else(|| AttestError::Unavailable {
                platform: "sim".into(),
                reason: "no sim roots were given: sim evidence is refused".into(),
            })?,
        _ => trust.snp_roots.clone(),
    };
    let mut veks: Vec<Vec<u8>> = Vec::new();
    if let Some(v) = &ev.vek {
        veks.push(b64("vek", v)?);
    }
    for (i, e) in ev.cert_chain.iter().enumerate() {
        let der = b64(&format!("cert_chain[{i}].data"), &e.data)?;
        match e.cert_type.to_ascii_lowercase().as_str() {
            "vcek" | "vlek" => veks.push(der),
            "ask" | "asvk" | "ark" => roots.add_intermediate(AmdCert::from_der(&der, "ASK/ASVK")?),
            "crl" => roots.add_crl(&der)?,
            other => {
                return Err(bad(
                    &format!("cert_chain[{i}].cert_type"),
                    format!("`{other}` (known: vcek, vlek, ask, asvk, ark, crl)"),
                ));
            }
        }
    }
    for crl in &trust.amd_crls {
        roots.add_crl(crl)?;
    }
    if platform != Platform::Sim {
        for c in &trust.snp_intermediates {
            roots.add_intermediate(c.clone());
        }
        if let Some(ctx) = &trust.security_context {
            veks.push(ctx.certs.vcek_der.clone());
            for c in &ctx.certs.chain {
                roots.add_intermediate(c.clone());
            }
        }
        veks.extend(trust.vek_cache.iter().map(|c| c.der().to_vec()));
    }
    if veks.is_empty() {
        return Err(bad(
            "vek",
            "no VCEK/VLEK: none in the evidence, the security context or the local cache (never fetched from AMD KDS)",
        ));
    }
    // Try first the VEKs made for this chip (hwID = CHIP_ID) or VLEKs, so that a cache of many
    // VCEKs does not cost a chain verification each.
    let chip = report.parsed().chip_id;
    veks.sort_by_key(|der| {
        let ext = AmdCert::from_der(der, "VEK")
            .ok()
            .and_then(|c| crate::amd::VekExtensions::read(&c).ok());
        match ext.and_then(|e| e.hw_id) {
            Some(h) if chip.starts_with(&h) => 0,
            None => 1,
            Some(_) => 2,
        }
    });
    let mut last = None;
    let mut verified = None;
    for vek in &veks {
        match crate::snp::verify_report(&roots, &report, vek, platform, Some(at)) {
            Ok(v) => {
                verified = Some(v);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut v) = verified else {
        return Err(last.unwrap_or_else(|| bad("vek", "no VEK verified")));
    };
    if v.claims().debug && !trust.allow_debug {
        return Err(AttestError::Field {
            field: "POLICY.DEBUG",
            reason: "the guest is debuggable: its memory is readable by the host".into(),
        });
    }
    // ACI: the CCE policy given (in the evidence or the security context) must be the one
    // HOST_DATA commits to.
    let policy = match &ev.security_policy {
        Some(p) => Some(b64("security_policy", p)?),
        None => trust
            .security_context
            .as_ref()
            .map(|c| c.security_policy.clone()),
    };
    if let Some(policy) = policy {
        let ctx_ref = trust.security_context.as_ref();
        let reference_info = match &ev.reference_info {
            Some(r) => Some(b64("reference_info", r)?),
            None => ctx_ref.and_then(|c| c.reference_info.clone()),
        };
        let ctx = SecurityContext {
            certs: ctx_ref
                .map(|c| c.certs.clone())
                .unwrap_or(crate::aci::ThimCerts {
                    vcek_der: Vec::new(),
                    chain: Vec::new(),
                    tcbm: None,
                }),
            security_policy: policy,
            reference_info,
        };
        let hd = hex::encode(ctx.host_data());
        if v.claims().host_data.as_deref() != Some(hd.as_str()) {
            return Err(AttestError::Field {
                field: "HOST_DATA",
                reason: format!(
                    "{} is not SHA-256 of the CCE security policy given ({hd})",
                    v.claims().host_data.as_deref().unwrap_or("")
                ),
            });
        }
        v.set_aci(ctx.claims(), &ctx.security_policy);
    }
    Ok(v)
}

/// What verification trusts and needs: roots, endorsements, collateral, keys and the time.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The time to verify at, Unix seconds; `None`: now.
    pub at: Option<i64>,
    /// AMD's roots (embedded).
    pub snp_roots: SnpRoots,
    /// The sim ARK/ASK; `None`: sim evidence is refused.
    pub sim_roots: Option<SnpRoots>,
    /// ASKs/ASVKs from a local cache (checked against the embedded ARKs when used).
    pub snp_intermediates: Vec<AmdCert>,
    /// VCEKs/VLEKs from a local cache folder, tried when the evidence carries none.
    pub vek_cache: Vec<AmdCert>,
    /// AMD CRLs (DER), checked for the certificates their issuer issued.
    pub amd_crls: Vec<Vec<u8>>,
    /// ACI's security context.
    pub security_context: Option<SecurityContext>,
    /// TDX collateral.
    pub tdx_collateral: Option<crate::tdx::Collateral>,
    /// Confidential Space: the issuer's JWKS.
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// Confidential Space: accepted audiences.
    pub audiences: Vec<String>,
    /// Accept debuggable guests (never for key release).
    pub allow_debug: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Self::new()
    }
}

impl Trust {
    /// AMD's embedded roots, nothing else, verifying at the current time.
    pub fn new() -> Self {
        Self::new_with_roots(SnpRoots::amd())
    }

    /// `snp_roots` as the SNP trust anchors, nothing else, verifying at the current time.
    pub fn new_with_roots(snp_roots: SnpRoots) -> Self {
        Self {
            at: None,
            snp_roots,
            sim_roots: None,
            snp_intermediates: Vec::new(),
            vek_cache: Vec::new(),
            amd_crls: Vec::new(),
            security_context: None,
            tdx_collateral: None,
            jwks: None,
            audiences: Vec::new(),
            allow_debug: false,
        }
    }

    /// Adds what a file holds, recognised by content: an AMD CRL (DER or PEM), certificates
    /// (PEM, one or many, or DER: VCEK/VLEK into the cache, others as intermediates), TDX collateral JSON (`tcb_info`),
    /// a JWKS (`keys`), or THIM JSON (`vcekCert`). Returns what it was taken as.
    ///
    /// # Errors
    /// [`AttestError::Evidence`] naming the file when it is none of these.
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<&'static str, AttestError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| bad(&name, e.to_string()))?;
        let text = std::str::from_utf8(&bytes).ok().map(str::trim_start);
        if text.is_some_and(|t| t.starts_with("-----BEGIN X509 CRL"))
            || (bytes.first() == Some(&0x30) && crate::amd::parse_crl(&bytes).is_ok())
        {
            crate::amd::parse_crl(&bytes)?;
            self.amd_crls.push(bytes);
            return Ok("CRL");
        }
        let certs = if text.is_some_and(|t| t.starts_with("-----BEGIN")) {
            Some(AmdCert::pem_bundle(&bytes, "certificate file")?)
        } else if bytes.first() == Some(&0x30) {
            Some(vec![AmdCert::from_der(&bytes, "certificate file")?])
        } else {
            None
        };
        if let Some(certs) = certs {
            for c in certs {
                let cn = c.subject_cn();
                if cn.contains("VCEK") || cn.contains("VLEK") && !cn.starts_with("SEV-VLEK-") {
                    self.vek_cache.push(c);
                } else {
                    self.snp_intermediates.push(c);
                }
            }
            return Ok("certificates");
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| bad(&name, "neither certificates nor JSON"))?;
        if v.get("tcb_info").is_some() {
            self.tdx_collateral = Some(crate::tdx::parse_collateral(&bytes)?);
            Ok("TDX collateral")
        } else if v.get("keys").is_some() {
            self.jwks = Some(crate::cs::parse_jwks(&bytes)?);
            Ok("JWKS")
        } else if v.get("vcekCert").is_some() {
            let t = crate::aci::parse_thim(&bytes)?;
            self.vek_cache
                .push(AmdCert::from_der(&t.vcek_der, "THIM vcekCert")?);
            self.snp_intermediates.extend(t.chain);
            Ok("THIM certificates")
        } else {
            Err(bad(
                &name,
                "JSON that is neither TDX collateral, a JWKS nor THIM certificates",
            ))
        }
    }
}
