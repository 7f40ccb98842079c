//! Producing Azure vTPM evidence (`az-snp-vtpm`, `az-tdx-vtpm`) through the TSS2 ESAPI
//! (`tss-esapi` over `libtss2`), on a TPM chosen by a TCTI setting.
//!
//! The steps are those of Microsoft's `az-cvm-vtpm` (`vtpm::get_report`, `vtpm::get_ak_pub`,
//! `vtpm::get_quote`) and Trustee's `az-snp-vtpm` / `az-tdx-vtpm` attesters; `az-cvm-vtpm`'s own
//! functions always open `/dev/tpmrm0` (`TctiNameConf::Device`), so they are followed here over
//! a configurable TCTI instead of called:
//! 1. the HCL report: NV index [`HCL_REPORT_NV_INDEX`] read in full with owner authorization
//!    (the paravisor writes it; its runtime data binds the AK);
//! 2. the quote: the AK at persistent handle [`AK_HANDLE`] quotes the SHA-256 bank's PCRs 0–23
//!    (`TPM2_Quote`, TPM 2.0 Library Part 3 §18.4) with the first
//!    [`crate::report_data::BOUND_PREFIX_LEN`] bytes of `report_data` as qualifying data
//!    (`extraData`), the scheme left to the key (RSASSA-PKCS1-v1_5 SHA-256 on Azure); then the
//!    PCR values are read (`TPM2_PCR_Read`);
//! 3. the hardware evidence from Azure's Instance Metadata Service (IMDS), plain HTTP on
//!    `169.254.169.254`: SNP: the VCEK from the THIM endpoint `GET
//!    /metadata/THIM/amd/certification` (header `Metadata: true`; JSON `vcekCert` PEM,
//!    `certificateChain` PEM, `tcbm` hex); TDX: the TD quote for the HCL report's TDREPORT from
//!    `POST /acc/tdquote` (`{"report": base64url}` → `{"quote": base64url}`).
//!
//! The evidence is the KBS shape [`crate::evidence::AzVtpmEvidence`] (Trustee's).
//!
//! Settings (environment): [`TCTI_ENV`] names the TPM as a TCTI configuration string
//! (`device:/dev/tpmrm0`, the default; `swtpm:host=127.0.0.1,port=2321` for the software TPM
//! `swtpm`; `mssim:...`; `tabrmd:...`), [`IMDS_ENV`] the IMDS base URL (default
//! `http://169.254.169.254`). A TPM allows one command at a time: calls are serialized.

use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Value, json};
use tss_esapi::Context;
use tss_esapi::abstraction::{nv, pcr};
use tss_esapi::handles::{NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::pcr_selection_list::PcrSelectionListBuilder;
use tss_esapi::structures::pcr_slot::PcrSlot;
use tss_esapi::structures::{AttestInfo, Data, Signature, SignatureScheme};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;

use super::Attester;
use crate::Platform;
use crate::error::AttestError;
use crate::evidence::{AzVtpmEvidence, TpmQuoteJson};
use crate::report_data::BOUND_PREFIX_LEN;
use crate::snp::REPORT_DATA_LEN;
use crate::vtpm::{HclReport, HclReportType};

/// The NV index where Azure's paravisor (HCL) keeps its attestation report.
pub const HCL_REPORT_NV_INDEX: u32 = 0x0140_0001;
/// The persistent handle of Azure's vTPM attestation key (AK).
pub const AK_HANDLE: u32 = 0x8100_0003;
/// The environment variable naming the TPM's TCTI.
pub const TCTI_ENV: &str = "CCR_TPM_TCTI";
/// The default TCTI: the kernel's TPM resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// The environment variable giving the IMDS base URL.
pub const IMDS_ENV: &str = "CCR_AZURE_IMDS";
/// Azure's Instance Metadata Service.
pub const DEFAULT_IMDS: &str = "http://169.254.169.254";
/// The THIM path serving the VCEK of the host (AMD certification).
pub const THIM_PATH: &str = "/metadata/THIM/amd/certification";
/// The IMDS path that turns a TDREPORT into a TD quote.
pub const TDQUOTE_PATH: &str = "/acc/tdquote";

/// PCRs 0–23 of the SHA-256 bank, the selection Azure's attesters quote.
const PCR_SLOTS: [PcrSlot; 24] = [
    PcrSlot::Slot0,
    PcrSlot::Slot1,
    PcrSlot::Slot2,
    PcrSlot::Slot3,
    PcrSlot::Slot4,
    PcrSlot::Slot5,
    PcrSlot::Slot6,
    PcrSlot::Slot7,
    PcrSlot::Slot8,
    PcrSlot::Slot9,
    PcrSlot::Slot10,
    PcrSlot::Slot11,
    PcrSlot::Slot12,
    PcrSlot::Slot13,
    PcrSlot::Slot14,
    PcrSlot::Slot15,
    PcrSlot::Slot16,
    PcrSlot::Slot17,
    PcrSlot::Slot18,
    PcrSlot::Slot19,
    PcrSlot::Slot20,
    PcrSlot::Slot21,
    PcrSlot::Slot22,
    PcrSlot::Slot23,
];

/// The Azure vTPM attester.
pub struct VtpmAttester {
    tcti: String,
    imds: String,
    platform: Platform,
    lock: Mutex<()>,
}

impl std::fmt::Debug for VtpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VtpmAttester")
            .field("tcti", &self.tcti)
            .field("imds", &self.imds)
            .field("platform", &self.platform)
            .finish()
    }
}

fn tpm_err(platform: &str, what: &str) -> impl Fn(tss_esapi::Error) -> AttestError + use<> {
    let (platform, what) = (platform.to_string(), what.to_string());
    move |e| AttestError::Unavailable {
        platform: platform.clone(),
        reason: format!("{what}: {e}"),
    }
}

impl VtpmAttester {
    /// Opens the TPM named by `tcti` (a TCTI configuration string, see the module
    /// documentation), reads the HCL report once to learn the platform (`az-snp-vtpm` or
    /// `az-tdx-vtpm` by the hardware report inside), and uses `imds` as the IMDS base URL.
    ///
    /// # Errors
    /// [`AttestError::Unavailable`] naming the TCTI when the TPM cannot be opened or the NV
    /// index read; the HCL parser's error when the NV index does not hold an HCL report.
    pub fn open(tcti: &str, imds: &str) -> Result<Self, AttestError> {
        let mut a = Self {
            tcti: tcti.to_string(),
            imds: imds.trim_end_matches('/').to_string(),
            platform: Platform::AzSnpVtpm,
            lock: Mutex::new(()),
        };
        let hcl = HclReport::parse(&a.hcl_report()?)?;
        a.platform = match hcl.report_type() {
            HclReportType::Snp => Platform::AzSnpVtpm,
            HclReportType::Tdx => Platform::AzTdxVtpm,
        };
        Ok(a)
    }

    /// [`VtpmAttester::open`] with the TCTI and IMDS from [`TCTI_ENV`] and [`IMDS_ENV`] (or
    /// their defaults).
    ///
    /// # Errors
    /// As [`VtpmAttester::open`].
    pub fn from_env() -> Result<Self, AttestError> {
        let tcti = std::env::var(TCTI_ENV).unwrap_or_else(|_| DEFAULT_TCTI.into());
        let imds = std::env::var(IMDS_ENV).unwrap_or_else(|_| DEFAULT_IMDS.into());
        Self::open(&tcti, &imds)
    }

    fn context(&self) -> Result<Context, AttestError> {
        let name = self.platform.to_string();
        let conf = TctiNameConf::from_str(&self.tcti).map_err(|e| AttestError::Unavailable {
            platform: name.clone(),
            reason: format!("TCTI `{}` ({TCTI_ENV}): {e}", self.tcti),
        })?;
        Context::new(conf).map_err(tpm_err(&name, &format!("TPM at `{}`", self.tcti)))
    }

    /// The HCL report, read in full from NV index [`HCL_REPORT_NV_INDEX`].
    ///
    /// # Errors
    /// [`AttestError::Unavailable`] naming the NV index.
    pub fn hcl_report(&self) -> Result<Vec<u8>, AttestError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.read_hcl(&mut self.context()?)
    }

    fn read_hcl(&self, ctx: &mut Context) -> Result<Vec<u8>, AttestError> {
        let name = self.platform.to_string();
        ctx.set_sessions((Some(AuthSession::Password), None, None));
        let what = format!("NV index {HCL_REPORT_NV_INDEX:#010x} (the HCL report)");
        let index = NvIndexTpmHandle::new(HCL_REPORT_NV_INDEX).map_err(tpm_err(&name, &what))?;
        let report = nv::read_full(ctx, NvAuth::Owner, index).map_err(tpm_err(&name, &what));
        ctx.clear_sessions();
        report
    }

    /// A quote by the AK over PCRs 0–23 (SHA-256) with `nonce` as qualifying data, and the PCR
    /// values read after it.
    ///
    /// # Errors
    /// [`AttestError::Unavailable`] naming the TPM command that failed.
    pub fn quote(&self, nonce: &[u8]) -> Result<TpmQuoteJson, AttestError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.quote_in(&mut self.context()?, nonce)
    }

    fn quote_in(&self, ctx: &mut Context, nonce: &[u8]) -> Result<TpmQuoteJson, AttestError> {
        let name = self.platform.to_string();
        let what = format!("TPM2_Quote by the AK at {AK_HANDLE:#010x}");
        let handle = TpmHandle::try_from(AK_HANDLE).map_err(tpm_err(&name, &what))?;
        let key = ctx
            .tr_from_tpm_public(handle)
            .map_err(tpm_err(&name, &what))?;
        let data = Data::try_from(nonce.to_vec()).map_err(tpm_err(&name, &what))?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &PCR_SLOTS)
            .build()
            .map_err(tpm_err(&name, &what))?;
        ctx.set_sessions((Some(AuthSession::Password), None, None));
        let (attest, signature) = ctx
            .quote(key.into(), data, SignatureScheme::Null, selection.clone())
            .map_err(tpm_err(&name, &what))?;
        ctx.clear_sessions();
        let unexpected = |reason: &str| AttestError::Unavailable {
            platform: name.clone(),
            reason: format!("{what}: {reason}"),
        };
        if !matches!(attest.attested(), AttestInfo::Quote { .. }) {
            return Err(unexpected(
                "the TPM returned an attestation that is not a quote",
            ));
        }
        let Signature::RsaSsa(sig) = signature else {
            return Err(unexpected(
                "the signature is not RSASSA-PKCS1-v1_5 (Azure's AK scheme)",
            ));
        };
        let message = attest.marshall().map_err(tpm_err(&name, &what))?;
        let pcrs = pcr::read_all(ctx, selection).map_err(tpm_err(&name, "TPM2_PCR_Read"))?;
        let bank = pcrs
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or_else(|| unexpected("no SHA-256 PCR bank"))?;
        let pcrs = bank
            .into_iter()
            .map(|(_, d)| hex::encode(d.value()))
            .collect();
        Ok(TpmQuoteJson {
            signature: hex::encode(sig.signature().value()),
            message: hex::encode(message),
            pcrs,
        })
    }

    /// Sends `req` (`path`) to IMDS and returns the string `field` of its JSON answer.
    fn imds_field(
        &self,
        path: &str,
        req: Result<hyper::Request<Full<Bytes>>, hyper::http::Error>,
        field: &str,
    ) -> Result<String, AttestError> {
        let req = req.map_err(|e| AttestError::Evidence {
            field: format!("IMDS {path} request"),
            reason: e.to_string(),
        })?;
        let body = crate::unix_http::tcp_request(&self.platform.to_string(), &self.imds, req)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| AttestError::Evidence {
            field: format!("IMDS {path} answer"),
            reason: format!("not JSON: {e}"),
        })?;
        v.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| AttestError::Evidence {
                field: format!("IMDS {path} {field}"),
                reason: "missing from the answer".into(),
            })
    }

    /// The VCEK (PEM) from THIM.
    fn vcek(&self) -> Result<String, AttestError> {
        let req = hyper::Request::get(THIM_PATH)
            .header("Metadata", "true")
            .body(Full::new(Bytes::new()));
        self.imds_field(THIM_PATH, req, "vcekCert")
    }

    /// The TD quote (base64url) for `td_report`.
    fn td_quote(&self, td_report: &[u8]) -> Result<String, AttestError> {
        let body = json!({"report": URL_SAFE_NO_PAD.encode(td_report)}).to_string();
        let req = hyper::Request::post(TDQUOTE_PATH)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        self.imds_field(TDQUOTE_PATH, req, "quote")
    }
}

impl Attester for VtpmAttester {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError> {
        // One TPM connection for both, held alone (a TPM runs one command at a time).
        let (raw, tpm_quote) = {
            let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut ctx = self.context()?;
            let raw = self.read_hcl(&mut ctx)?;
            (
                raw,
                self.quote_in(&mut ctx, &report_data[..BOUND_PREFIX_LEN])?,
            )
        };
        let hcl = HclReport::parse(&raw)?;
        let mut ev = AzVtpmEvidence {
            version: 1,
            hcl_report: URL_SAFE_NO_PAD.encode(&raw),
            tpm_quote,
            vcek: None,
            td_quote: None,
        };
        match hcl.report_type() {
            HclReportType::Snp => ev.vcek = Some(self.vcek()?),
            HclReportType::Tdx => ev.td_quote = Some(self.td_quote(hcl.hw_report())?),
        }
        serde_json::to_value(&ev).map_err(|e| AttestError::Evidence {
            field: "primary_evidence".into(),
            reason: e.to_string(),
        })
    }
}
