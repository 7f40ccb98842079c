//! Azure confidential VMs: the HCL report, the vTPM quote and the AK that binds them.
//!
//! Sources: Microsoft's `az-cvm-vtpm` crate and Azure's "Guest attestation" documentation for
//! the HCL report (the paravisor's `AttestationReport`: a 32-byte header `HCLA`, the hardware
//! report — SNP report of 1184 bytes or TDREPORT of 1024 — in a 1184-byte slot, then
//! `IgvmRequestData` of 20 bytes and the runtime data, a JSON document with the vTPM's AK and EK
//! public keys as JWKs, `vm-configuration` and `user-data`); TPM 2.0 Library Part 2 §10.12.8
//! (`TPMS_ATTEST`) and §10.12.1 (`TPMS_QUOTE_INFO`) for the quote.
//!
//! Verification: the hardware report (SNP: [`crate::snp::verify_report`] with the VCEK; TDX: the
//! TD quote with collateral, and the TDREPORT in the HCL report equal to the quote's body) must
//! carry `SHA-256(runtime data)` in the first 32 bytes of its `report_data`, which binds the AK
//! (`kid` `HCLAkPub`); the vTPM quote must be signed by that AK (RSASSA-PKCS1-v1_5 SHA-256); its
//! PCR digest must equal SHA-256 of the selected PCR values given; its `extraData` is the
//! nonce, which carries the relying party's `report_data` (first 32 bytes, see
//! [`crate::report_data::BOUND_PREFIX_LEN`]).
//!
//! The HCL report is parsed with `az-cvm-vtpm` (header, report type, runtime data bounds). Its
//! `verifier` feature is not used: it needs `tss-esapi` (the TSS C libraries) and OpenSSL only to
//! unmarshal `TPMS_ATTEST` and check one RSA signature, which is done here in pure Rust.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384};

use crate::error::AttestError;
use crate::snp::{REPORT_LEN, SnpReport};
use crate::{Platform, VerifiedEvidence};

/// Offset of the hardware report in the HCL report.
pub const HW_REPORT_OFFSET: usize = 32;
/// Size of the hardware report slot (the larger of the SNP report and the TDREPORT).
pub const HW_REPORT_SLOT: usize = REPORT_LEN;
/// Size of a TDREPORT (TDX module spec, `TDREPORT_STRUCT`).
pub const TD_REPORT_LEN: usize = 1024;
/// Offset of `IgvmRequestData` (`data_size`, `version`, `report_type`, `report_data_hash_type`,
/// `variable_data_size`, u32 each) in the HCL report.
pub const IGVM_REQUEST_OFFSET: usize = HW_REPORT_OFFSET + HW_REPORT_SLOT;
/// Offset of the runtime data (variable data) in the HCL report.
pub const RUNTIME_DATA_OFFSET: usize = IGVM_REQUEST_OFFSET + 20;
/// Largest HCL report accepted (the NV index holds at most a few KiB).
pub const MAX_HCL_LEN: usize = 64 * 1024;
/// `TPM_GENERATED_VALUE`, the magic of `TPMS_ATTEST`.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;
/// The AK's key id in the runtime data.
pub const AK_KID: &str = "HCLAkPub";

/// The hardware report inside an HCL report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HclReportType {
    /// An SEV-SNP attestation report.
    Snp,
    /// A TDX TDREPORT.
    Tdx,
}

/// A parsed HCL report.
#[derive(Debug, Clone)]
pub struct HclReport {
    raw: Vec<u8>,
    report_type: HclReportType,
    runtime_data: Vec<u8>,
    runtime: Value,
}

impl HclReport {
    /// Parses an HCL report (through `az-cvm-vtpm`'s `HclReport`) and its runtime data JSON.
    ///
    /// # Errors
    /// [`AttestError::Length`] for a truncated or oversized report; [`AttestError::Field`]
    /// naming `HCL.signature`, `HCL.report_type`, `HCL.report_data_hash_type` or
    /// `HCL.runtime_data`.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() < RUNTIME_DATA_OFFSET || bytes.len() > MAX_HCL_LEN {
            return Err(AttestError::Length {
                what: "HCL report",
                expected: if bytes.len() < RUNTIME_DATA_OFFSET {
                    RUNTIME_DATA_OFFSET
                } else {
                    MAX_HCL_LEN
                },
                got: bytes.len(),
            });
        }
        if &bytes[..4] != b"HCLA" {
            return Err(AttestError::Field {
                field: "HCL.signature",
                reason: "not `HCLA`".into(),
            });
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let hash_type = u32_at(IGVM_REQUEST_OFFSET + 12);
        if hash_type != 1 {
            return Err(AttestError::Field {
                field: "HCL.report_data_hash_type",
                reason: format!("{hash_type}, only 1 (SHA-256) is supported"),
            });
        }
        let parsed =
            az_cvm_vtpm::hcl::HclReport::new(bytes.to_vec()).map_err(|e| AttestError::Field {
                field: "HCL",
                reason: e.to_string(),
            })?;
        let report_type = match parsed.report_type() {
            az_cvm_vtpm::hcl::ReportType::Snp => HclReportType::Snp,
            az_cvm_vtpm::hcl::ReportType::Tdx => HclReportType::Tdx,
        };
        let runtime_data = parsed.var_data().to_vec();
        let runtime: Value =
            serde_json::from_slice(&runtime_data).map_err(|e| AttestError::Field {
                field: "HCL.runtime_data",
                reason: format!("not JSON: {e}"),
            })?;
        Ok(Self {
            raw: bytes.to_vec(),
            report_type,
            runtime_data,
            runtime,
        })
    }

    /// The kind of hardware report inside.
    pub fn report_type(&self) -> HclReportType {
        self.report_type
    }

    /// The hardware report's bytes (1184 for SNP, 1024 for a TDREPORT).
    pub fn hw_report(&self) -> &[u8] {
        let len = match self.report_type {
            HclReportType::Snp => REPORT_LEN,
            HclReportType::Tdx => TD_REPORT_LEN,
        };
        &self.raw[HW_REPORT_OFFSET..HW_REPORT_OFFSET + len]
    }

    /// The runtime data (variable data) bytes.
    pub fn runtime_data(&self) -> &[u8] {
        &self.runtime_data
    }

    /// The AK public key from the runtime data (`kid` `HCLAkPub`, an RSA JWK).
    ///
    /// # Errors
    /// [`AttestError::Field`] naming `HCL.runtime_data.keys`.
    pub fn ak_pub(&self) -> Result<RsaPublicKey, AttestError> {
        let err = |reason: &str| AttestError::Field {
            field: "HCL.runtime_data.keys",
            reason: reason.into(),
        };
        let key = self
            .runtime
            .get("keys")
            .and_then(Value::as_array)
            .and_then(|ks| {
                ks.iter()
                    .find(|k| k.get("kid").and_then(Value::as_str) == Some(AK_KID))
            })
            .ok_or_else(|| err("no key with kid HCLAkPub"))?;
        let b64 = |f: &str| {
            key.get(f)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                .ok_or_else(|| err("the AK's n or e is not base64url"))
        };
        RsaPublicKey::new(
            BigUint::from_bytes_be(&b64("n")?),
            BigUint::from_bytes_be(&b64("e")?),
        )
        .map_err(|e| err(&format!("the AK is not a valid RSA key: {e}")))
    }
}

/// A vTPM quote: the marshalled `TPMS_ATTEST`, the AK's signature, and the PCR values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmQuote {
    /// `TPMS_ATTEST`, marshalled (big endian).
    pub message: Vec<u8>,
    /// The RSASSA-PKCS1-v1_5 signature (SHA-256) by the AK.
    pub signature: Vec<u8>,
    /// SHA-256 PCR bank values, index 0 first (24 values of 32 bytes).
    pub pcrs: Vec<[u8; 32]>,
}

/// The fields of a `TPMS_ATTEST` of type quote that verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// `extraData`: the nonce the quote was asked for.
    pub extra_data: Vec<u8>,
    /// PCR indexes selected in the SHA-256 bank, ascending.
    pub pcr_indexes: Vec<usize>,
    /// `pcrDigest`.
    pub pcr_digest: Vec<u8>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], AttestError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(AttestError::Field {
                field,
                reason: "truncated TPMS_ATTEST".into(),
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self, f: &'static str) -> Result<u16, AttestError> {
        let s = self.take(2, f)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, f: &'static str) -> Result<u32, AttestError> {
        let s = self.take(4, f)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn tpm2b(&mut self, f: &'static str) -> Result<&'a [u8], AttestError> {
        let n = self.u16(f)? as usize;
        self.take(n, f)
    }
}

impl QuoteInfo {
    /// Unmarshals a `TPMS_ATTEST` holding a `TPMS_QUOTE_INFO` (TPM 2.0 Part 2 §10.12.8).
    ///
    /// # Errors
    /// [`AttestError::Field`] naming `TPMS_ATTEST.magic`, `.type`, or the truncated field.
    pub fn parse(message: &[u8]) -> Result<Self, AttestError> {
        let mut r = Reader { b: message, at: 0 };
        if r.u32("TPMS_ATTEST.magic")? != TPM_GENERATED_VALUE {
            return Err(AttestError::Field {
                field: "TPMS_ATTEST.magic",
                reason: "not TPM_GENERATED_VALUE".into(),
            });
        }
        if r.u16("TPMS_ATTEST.type")? != TPM_ST_ATTEST_QUOTE {
            return Err(AttestError::Field {
                field: "TPMS_ATTEST.type",
                reason: "not TPM_ST_ATTEST_QUOTE".into(),
            });
        }
        r.tpm2b("TPMS_ATTEST.qualifiedSigner")?;
        let extra_data = r.tpm2b("TPMS_ATTEST.extraData")?.to_vec();
        r.take(17, "TPMS_ATTEST.clockInfo")?;
        r.take(8, "TPMS_ATTEST.firmwareVersion")?;
        let count = r.u32("TPML_PCR_SELECTION.count")?;
        if count > 16 {
            return Err(AttestError::Field {
                field: "TPML_PCR_SELECTION.count",
                reason: format!("{count} banks"),
            });
        }
        let mut pcr_indexes = Vec::new();
        for _ in 0..count {
            let alg = r.u16("TPMS_PCR_SELECTION.hash")?;
            let n = r.take(1, "TPMS_PCR_SELECTION.sizeofSelect")?[0] as usize;
            let bitmap = r.take(n, "TPMS_PCR_SELECTION.pcrSelect")?;
            if alg != TPM_ALG_SHA256 {
                return Err(AttestError::Field {
                    field: "TPMS_PCR_SELECTION.hash",
                    reason: format!("bank {alg:#06x}, only SHA-256 (0x000b) is supported"),
                });
            }
            for (byte, bits) in bitmap.iter().enumerate() {
                for bit in 0..8 {
                    if bits & (1 << bit) != 0 {
                        pcr_indexes.push(byte * 8 + bit);
                    }
                }
            }
        }
        let pcr_digest = r.tpm2b("TPMS_QUOTE_INFO.pcrDigest")?.to_vec();
        Ok(Self {
            extra_data,
            pcr_indexes,
            pcr_digest,
        })
    }
}

impl TpmQuote {
    /// Verifies the AK's signature, then the PCR digest, and returns the quote's fields.
    ///
    /// # Errors
    /// [`AttestError::Signature`] when the AK did not sign the message; [`AttestError::Field`]
    /// naming `TPMS_QUOTE_INFO.pcrDigest` when the PCR values given are not the ones quoted.
    pub fn verify(&self, ak: &RsaPublicKey) -> Result<QuoteInfo, AttestError> {
        let digest = Sha256::digest(&self.message);
        ak.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &self.signature)
            .map_err(|_| AttestError::Signature {
                what: "vTPM quote",
                reason: "not signed by the AK bound in the HCL report".into(),
            })?;
        let info = QuoteInfo::parse(&self.message)?;
        let mut h = Sha256::new();
        for &i in &info.pcr_indexes {
            let pcr = self.pcrs.get(i).ok_or_else(|| AttestError::Field {
                field: "tpm_quote.pcrs",
                reason: format!("PCR {i} is selected but not given"),
            })?;
            h.update(pcr);
        }
        if h.finalize().as_slice() != info.pcr_digest.as_slice() {
            return Err(AttestError::Field {
                field: "TPMS_QUOTE_INFO.pcrDigest",
                reason: "the PCR values given are not the ones quoted".into(),
            });
        }
        Ok(info)
    }
}

/// The Azure vTPM claims, beside the hardware report's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VtpmClaims {
    /// The hardware report inside the HCL report.
    pub hcl_report_type: HclReportType,
    /// SHA-256 PCR values by index (hex), the selected ones.
    pub pcrs: Vec<(usize, String)>,
    /// The runtime data's `vm-configuration` object.
    pub vm_configuration: Value,
    /// The runtime data's `user-data` string.
    pub user_data: Option<String>,
}

impl VtpmClaims {
    pub(crate) fn policy_input(&self, m: &mut Map<String, Value>) {
        for (i, v) in &self.pcrs {
            m.insert(format!("pcr.{i}"), json!(v));
        }
        if let Value::Object(cfg) = &self.vm_configuration {
            for (k, v) in cfg {
                m.insert(format!("x-ms-runtime.vm-configuration.{k}"), v.clone());
            }
        }
        m.insert("x-ms-runtime.user-data".into(), json!(self.user_data));
    }
}

/// Verifies Azure vTPM evidence. `snp_vcek` is the VCEK for an SNP HCL report;
/// `td_quote` and `collateral` are required for a TDX one. `sim_roots`: when given, an SNP HCL
/// report whose VCEK chains to them (the sim authority's) is verified against them and its
/// claims' `platform` is `sim` (for tests of the vTPM path on a software TPM; never real).
///
/// # Errors
/// As the hardware verifier; [`AttestError::Field`] naming `HCL.report_data` when the hardware
/// report does not bind the runtime data, or `HCL.td_report` when the TD quote's body is not the
/// HCL report's TDREPORT; as [`TpmQuote::verify`].
#[allow(clippy::too_many_arguments)]
pub fn verify(
    hcl: &HclReport,
    quote: &TpmQuote,
    snp_roots: &crate::snp::SnpRoots,
    sim_roots: Option<&crate::snp::SnpRoots>,
    snp_vcek: Option<&[u8]>,
    td_quote: Option<&crate::tdx::TdQuote>,
    collateral: Option<&crate::tdx::Collateral>,
    at: i64,
    allow_debug: bool,
) -> Result<VerifiedEvidence, AttestError> {
    let runtime_hash = Sha256::digest(hcl.runtime_data());
    let (mut claims, hw_report_data, platform) = match hcl.report_type() {
        HclReportType::Snp => {
            let vcek = snp_vcek.ok_or_else(|| AttestError::Evidence {
                field: "vcek".into(),
                reason: "the VCEK is required for an SNP HCL report".into(),
            })?;
            let rep = SnpReport::parse(hcl.hw_report())?;
            // A VCEK that chains to the sim roots (when they are given) makes sim evidence in
            // the vTPM shape: its claims say `sim`, which only a policy naming sim accepts.
            let vek = crate::amd::AmdCert::from_der_or_pem(vcek, "VCEK")?;
            let sim = sim_roots.filter(|r| r.verify_vek(&vek, Some(at)).is_ok());
            let v = crate::snp::verify_report(
                sim.unwrap_or(snp_roots),
                &rep,
                vcek,
                Platform::AzSnpVtpm,
                Some(at),
            )?;
            (
                v.claims().clone(),
                rep.parsed().report_data.to_vec(),
                if sim.is_some() {
                    Platform::Sim
                } else {
                    Platform::AzSnpVtpm
                },
            )
        }
        HclReportType::Tdx => {
            let q = td_quote.ok_or_else(|| AttestError::Evidence {
                field: "td_quote".into(),
                reason: "the TD quote is required for a TDX HCL report".into(),
            })?;
            let v = match collateral {
                Some(col) => crate::tdx::verify(q, col, at, Platform::AzTdxVtpm, true)?,
                None => crate::tdx::verify_signatures(q, at, Platform::AzTdxVtpm, true)?,
            };
            // TDREPORT_STRUCT: REPORTMACSTRUCT (256 bytes, REPORTDATA at 128), TEE_TCB_INFO
            // (239) + reserved (17), TDINFO (512: attributes, xfam, MRTD, MRCONFIGID, MROWNER,
            // MROWNERCONFIG, RTMR0-3).
            let td = hcl.hw_report();
            let report_data = &td[128..192];
            let tdinfo = &td[512..512 + 16 + 48 * 8];
            let body =
                &q.bytes()[crate::tdx::V4_BODY_OFFSET + if q.version() == 5 { 6 } else { 0 }..];
            let quote_tdinfo = &body[crate::tdx::offsets::TD_ATTRIBUTES
                ..crate::tdx::offsets::TD_ATTRIBUTES + 16 + 48 * 8];
            if tdinfo != quote_tdinfo || report_data != q.report_data() {
                return Err(AttestError::Field {
                    field: "HCL.td_report",
                    reason: "the TD quote's body is not the HCL report's TDREPORT".into(),
                });
            }
            (
                v.claims().clone(),
                report_data.to_vec(),
                Platform::AzTdxVtpm,
            )
        }
    };
    if hw_report_data[..32] != runtime_hash[..] {
        return Err(AttestError::Field {
            field: "HCL.report_data",
            reason:
                "the hardware report does not bind SHA-256 of the HCL runtime data (and so the AK)"
                    .into(),
        });
    }
    if claims.debug && !allow_debug {
        return Err(AttestError::Field {
            field: "debug",
            reason: "the guest is debuggable: its memory is readable by the host".into(),
        });
    }
    let ak = hcl.ak_pub()?;
    let info = quote.verify(&ak)?;
    claims.platform = platform;
    claims.report_data = hex::encode(&info.extra_data);
    claims.endorsement.insert(0, "vTPM AK (HCLAkPub)".into());
    claims.vtpm = Some(VtpmClaims {
        hcl_report_type: hcl.report_type(),
        pcrs: info
            .pcr_indexes
            .iter()
            .filter_map(|&i| quote.pcrs.get(i).map(|p| (i, hex::encode(p))))
            .collect(),
        vm_configuration: hcl
            .runtime
            .get("vm-configuration")
            .cloned()
            .unwrap_or(Value::Null),
        user_data: hcl
            .runtime
            .get("user-data")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
    let mut h = Sha384::new();
    h.update(&hcl.raw);
    h.update(&quote.message);
    Ok(VerifiedEvidence::new(claims, h.finalize().into()))
}
