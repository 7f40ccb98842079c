//! Producing evidence on the machine the runtime runs on, and finding out which platform that is.
//!
//! Detection ([`detect`]) probes, in this order, and takes the first that answers:
//! 1. the Confidential Space launcher socket `/run/container_launcher/teeserver.sock` →
//!    `gcp-cs` (the workload runs in a container under the launcher, which holds the TEE);
//! 2. configfs-tsm `/sys/kernel/config/tsm/report` → `snp` or `tdx` by the entry's `provider`
//!    (`sev_guest`, `tdx_guest`): the kernel's vendor-neutral report interface (Linux 6.7);
//! 3. `/dev/sev-guest` → `snp` (the SNP guest driver's ioctls, through the `sev` crate);
//! 4. `/dev/tdx_guest` → `tdx`: this device only gives a TDREPORT (MAC'd, not signed), and
//!    the quote comes from the host's quoting enclave through configfs-tsm; without it the
//!    platform is reported as found but unable to quote. The `tdx-guest` crate issues raw
//!    TDCALL instructions, which only a guest kernel may execute: it does not fit a Linux
//!    process and is not used;
//! 5. the Azure vTPM: `/dev/tpmrm0` on a machine whose DMI `sys_vendor` is `Microsoft
//!    Corporation` → `az-snp-vtpm` or `az-tdx-vtpm` (by the HCL report's type). Its evidence is
//!    produced through the TSS libraries (feature `tpm`, [`vtpm`], on the TPM
//!    named by `CCR_TPM_TCTI`) and verified in full ([`crate::vtpm`]).
//!
//! `sim` is never detected: it is used only when asked for by name. Every attester binds the
//! 64-byte `report_data` it is given (the KBS binding of the nonce and the runtime key); the vTPM
//! and Confidential Space bind its first 32 bytes
//! ([`crate::report_data::BOUND_PREFIX_LEN`]).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::Platform;
use crate::error::AttestError;
use crate::evidence::{CertEntry, SnpEvidence};
use crate::sim::SimAuthority;
use crate::snp::{HOST_DATA_LEN, MEASUREMENT_LEN, REPORT_DATA_LEN};

#[cfg(feature = "tpm")]
pub mod vtpm;

/// Something that produces evidence binding a `report_data` (shared by the threads that ask
/// several key services at once).
pub trait Attester: Send + Sync {
    /// The platform.
    fn platform(&self) -> Platform;
    /// Evidence (the KBS `primary_evidence` JSON) whose `report_data` is `report_data`.
    ///
    /// # Errors
    /// [`AttestError`] when the platform fails to produce it.
    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError>;
}

/// The sim attester: reports from a [`SimAuthority`] with a fixed measurement and host data.
#[derive(Debug)]
pub struct SimAttester {
    authority: SimAuthority,
    measurement: [u8; MEASUREMENT_LEN],
    host_data: [u8; HOST_DATA_LEN],
}

impl SimAttester {
    /// An attester whose reports carry `measurement` and `host_data`.
    pub fn new(
        authority: SimAuthority,
        measurement: [u8; MEASUREMENT_LEN],
        host_data: [u8; HOST_DATA_LEN],
    ) -> Self {
        Self {
            authority,
            measurement,
            host_data,
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, AttestError> {
    serde_json::to_value(v).map_err(|e| AttestError::Evidence {
        field: "primary_evidence".into(),
        reason: e.to_string(),
    })
}

impl Attester for SimAttester {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError> {
        to_json(
            &self
                .authority
                .evidence(report_data, &self.measurement, &self.host_data),
        )
    }
}

/// The Confidential Space launcher's socket.
pub const CS_SOCKET: &str = "/run/container_launcher/teeserver.sock";
/// The configfs-tsm report folder.
pub const CONFIGFS_TSM: &str = "/sys/kernel/config/tsm/report";
/// The SNP guest device.
pub const SEV_GUEST: &str = "/dev/sev-guest";
/// The TDX guest device.
pub const TDX_GUEST: &str = "/dev/tdx_guest";
/// The TPM resource manager device.
pub const TPMRM: &str = "/dev/tpmrm0";
/// Where DMI names the system's vendor.
pub const DMI_SYS_VENDOR: &str = "/sys/class/dmi/id/sys_vendor";
/// The environment variable ACI sets to its security-context folder.
pub const UVM_SECURITY_CONTEXT_DIR: &str = "UVM_SECURITY_CONTEXT_DIR";

/// The hardware interfaces probed by [`detect`], in order.
pub const PROBES: &[&str] = &[CS_SOCKET, CONFIGFS_TSM, SEV_GUEST, TDX_GUEST, TPMRM];

/// What platform detection found.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The platform found, if any.
    pub platform: Option<Platform>,
    /// The interface it was found through.
    pub found: Option<PathBuf>,
    /// Every probe, in order, with its outcome and why.
    pub probes: Vec<String>,
}

fn configfs_provider(dir: &Path) -> Result<String, String> {
    let entry = dir.join(format!("ccr-probe-{}", std::process::id()));
    std::fs::create_dir(&entry).map_err(|e| format!("cannot create a report entry: {e}"))?;
    let p = std::fs::read_to_string(entry.join("provider"));
    let _ = std::fs::remove_dir(&entry);
    p.map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read provider: {e}"))
}

/// Probes for a confidential-computing platform under `root` (`/` on a real machine), in the
/// order of the module documentation. Never returns `sim`.
pub fn detect(root: &Path) -> Detection {
    let mut d = Detection {
        platform: None,
        found: None,
        probes: Vec::new(),
    };
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let take = |d: &mut Detection, p: &str, platform: Platform, why: String| {
        d.probes.push(format!("{p}: {why}"));
        if d.found.is_none() {
            d.found = Some(at(p));
            d.platform = Some(platform);
        }
    };
    for probe in PROBES {
        let path = at(probe);
        if !path.exists() {
            d.probes.push(format!("{probe}: absent"));
            continue;
        }
        match *probe {
            CS_SOCKET => take(
                &mut d,
                probe,
                Platform::GcpCs,
                "present: Confidential Space launcher".into(),
            ),
            CONFIGFS_TSM => match configfs_provider(&path) {
                Ok(p) if p == "sev_guest" => {
                    take(&mut d, probe, Platform::Snp, format!("provider {p}"))
                }
                Ok(p) if p == "tdx_guest" => {
                    take(&mut d, probe, Platform::Tdx, format!("provider {p}"))
                }
                Ok(p) => d.probes.push(format!("{probe}: unknown provider `{p}`")),
                Err(e) => d.probes.push(format!("{probe}: present but {e}")),
            },
            SEV_GUEST => take(&mut d, probe, Platform::Snp, "present".into()),
            TDX_GUEST => take(
                &mut d,
                probe,
                Platform::Tdx,
                "present (quotes need configfs-tsm)".into(),
            ),
            TPMRM => {
                let vendor = std::fs::read_to_string(at(DMI_SYS_VENDOR)).unwrap_or_default();
                if vendor.trim() == "Microsoft Corporation" {
                    take(
                        &mut d,
                        probe,
                        Platform::AzSnpVtpm,
                        "present on a Microsoft machine: Azure CVM vTPM (SNP or TDX by the HCL report)"
                            .into(),
                    );
                } else {
                    d.probes.push(format!(
                        "{probe}: present, but sys_vendor is `{}`, not an Azure CVM",
                        vendor.trim()
                    ));
                }
            }
            _ => {}
        }
    }
    d
}

/// Evidence through configfs-tsm (`/sys/kernel/config/tsm/report`, Linux
/// `Documentation/ABI/testing/configfs-tsm`): make an entry, write `inblob` (64 bytes), read
/// `outblob` (SNP report or TD quote) and, for SNP, `auxblob` (the certificate table), check
/// that `generation` advanced by exactly one (no other writer raced us; else ask again, up to
/// [`GENERATION_TRIES`] times), remove the entry.
#[derive(Debug, Clone)]
pub struct ConfigfsTsmAttester {
    dir: PathBuf,
    platform: Platform,
    security_context: Option<PathBuf>,
}

impl ConfigfsTsmAttester {
    /// An attester on the configfs-tsm folder `dir`, for `platform` (`Snp` or `Tdx`).
    /// `security_context`: ACI's `UVM_SECURITY_CONTEXT_DIR`, whose certificates and CCE policy
    /// join SNP evidence.
    pub fn new(dir: PathBuf, platform: Platform, security_context: Option<PathBuf>) -> Self {
        Self {
            dir,
            platform,
            security_context,
        }
    }
}

/// How often a report is asked for again when `generation` moved between the write of
/// `inblob` and the read of `outblob` (the kernel ABI's race signal: the report may be for
/// another writer's input).
pub const GENERATION_TRIES: usize = 3;

/// `outblob` and, when readable, `auxblob`.
type Blobs = (Vec<u8>, Option<Vec<u8>>);

/// One write of `inblob` and read of `outblob` and `auxblob` in `entry`; `None` when
/// `generation` did not advance by exactly one (another writer raced us).
fn read_entry(
    entry: &Path,
    report_data: &[u8; REPORT_DATA_LEN],
) -> Result<Option<Blobs>, AttestError> {
    let gen_path = entry.join("generation");
    let read_gen = || -> Result<u64, AttestError> {
        let s = std::fs::read_to_string(&gen_path).map_err(io_err(&gen_path))?;
        s.trim().parse().map_err(|_| AttestError::Unavailable {
            platform: "configfs-tsm".into(),
            reason: format!("{}: `{}` is not a number", gen_path.display(), s.trim()),
        })
    };
    let before = read_gen()?;
    let inblob = entry.join("inblob");
    std::fs::write(&inblob, report_data).map_err(io_err(&inblob))?;
    let outblob = entry.join("outblob");
    let out = std::fs::read(&outblob).map_err(io_err(&outblob))?;
    let aux = std::fs::read(entry.join("auxblob")).ok();
    Ok((read_gen()? == before + 1).then_some((out, aux)))
}

fn io_err(what: &Path) -> impl Fn(std::io::Error) -> AttestError + '_ {
    move |e| AttestError::Unavailable {
        platform: "configfs-tsm".into(),
        reason: format!("{}: {e}", what.display()),
    }
}

impl Attester for ConfigfsTsmAttester {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError> {
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let entry = self.dir.join(format!("ccr-{}", hex::encode(id)));
        std::fs::create_dir(&entry).map_err(io_err(&entry))?;
        let result = (|| {
            for _ in 0..GENERATION_TRIES {
                if let Some(got) = read_entry(&entry, report_data)? {
                    return Ok(got);
                }
            }
            Err(AttestError::Unavailable {
                platform: "configfs-tsm".into(),
                reason: format!(
                    "another writer used the report entry (generation moved) on each of {GENERATION_TRIES} tries"
                ),
            })
        })();
        let _ = std::fs::remove_dir(&entry);
        let (out, aux) = result?;
        match self.platform {
            Platform::Tdx => Ok(json!({"quote": STANDARD.encode(&out)})),
            _ => {
                let mut chain = Vec::new();
                if let Some(aux) = aux.filter(|a| !a.is_empty()) {
                    for (kind, der) in crate::certtable::parse(&aux)? {
                        if ["vcek", "vlek", "ask", "ark"].contains(&kind.as_str()) {
                            chain.push(CertEntry {
                                cert_type: kind,
                                data: STANDARD.encode(der),
                            });
                        }
                    }
                }
                snp_evidence(&out, chain, self.security_context.as_deref())
            }
        }
    }
}

fn snp_evidence(
    report: &[u8],
    mut chain: Vec<CertEntry>,
    security_context: Option<&Path>,
) -> Result<Value, AttestError> {
    let mut ev = SnpEvidence {
        report: STANDARD.encode(report),
        vek: None,
        cert_chain: Vec::new(),
        security_policy: None,
        reference_info: None,
    };
    if let Some(dir) = security_context {
        let ctx = crate::aci::SecurityContext::load(dir)?;
        chain.push(CertEntry {
            cert_type: "vcek".into(),
            data: STANDARD.encode(&ctx.certs.vcek_der),
        });
        for c in &ctx.certs.chain {
            let kind = if c.subject_cn().starts_with("ARK") {
                "ark"
            } else {
                "ask"
            };
            chain.push(CertEntry {
                cert_type: kind.into(),
                data: STANDARD.encode(c.der()),
            });
        }
        ev.security_policy = Some(STANDARD.encode(&ctx.security_policy));
        ev.reference_info = ctx.reference_info.as_ref().map(|r| STANDARD.encode(r));
    }
    ev.cert_chain = chain;
    to_json(&ev)
}

/// SNP evidence through `/dev/sev-guest` (`SNP_GET_EXT_REPORT` through the `sev` crate, VMPL 0,
/// with the host's certificate table when it provides one).
#[derive(Debug, Clone)]
pub struct SevGuestAttester {
    security_context: Option<PathBuf>,
}

impl SevGuestAttester {
    /// An attester on `/dev/sev-guest`; `security_context` as for [`ConfigfsTsmAttester::new`].
    pub fn new(security_context: Option<PathBuf>) -> Self {
        Self { security_context }
    }
}

impl Attester for SevGuestAttester {
    fn platform(&self) -> Platform {
        Platform::Snp
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError> {
        let unavailable = |reason: String| AttestError::Unavailable {
            platform: "snp".into(),
            reason,
        };
        let mut fw = sev::firmware::guest::Firmware::open()
            .map_err(|e| unavailable(format!("{SEV_GUEST}: {e}")))?;
        let (report, certs) = fw
            .get_ext_report(None, Some(*report_data), Some(0))
            .map_err(|e| unavailable(format!("SNP_GET_EXT_REPORT: {e}")))?;
        let mut chain = Vec::new();
        for c in certs.unwrap_or_default() {
            use sev::firmware::host::CertType;
            let kind = match c.cert_type {
                CertType::VCEK => "vcek",
                CertType::VLEK => "vlek",
                CertType::ASK => "ask",
                CertType::ARK => "ark",
                _ => continue,
            };
            chain.push(CertEntry {
                cert_type: kind.into(),
                data: STANDARD.encode(c.data()),
            });
        }
        snp_evidence(&report, chain, self.security_context.as_deref())
    }
}

/// Confidential Space: the attestation token from the launcher (`POST /v1/token` on
/// [`CS_SOCKET`], body `{"audience", "nonces", "token_type": "OIDC"}`), with the hex of the
/// first 32 bytes of `report_data` as its nonce.
#[derive(Debug, Clone)]
pub struct CsAttester {
    socket: PathBuf,
    audience: String,
}

impl CsAttester {
    /// An attester asking the launcher at `socket` for tokens for `audience`.
    pub fn new(socket: PathBuf, audience: String) -> Self {
        Self { socket, audience }
    }
}

impl Attester for CsAttester {
    fn platform(&self) -> Platform {
        Platform::GcpCs
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Value, AttestError> {
        let body = crate::cs::token_request(&self.audience, report_data).to_string();
        let token = crate::unix_http::post_json(&self.socket, "/v1/token", &body)?;
        Ok(json!({"token": token.trim()}))
    }
}

/// The attester for a detected (or named) platform, with why.
///
/// # Errors
/// [`AttestError::Unavailable`] when the platform cannot produce evidence here, saying why.
pub fn for_platform(
    root: &Path,
    platform: Platform,
    cs_audience: &str,
) -> Result<Box<dyn Attester>, AttestError> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let sc = std::env::var_os(UVM_SECURITY_CONTEXT_DIR).map(PathBuf::from);
    match platform {
        Platform::GcpCs => Ok(Box::new(CsAttester::new(
            at(CS_SOCKET),
            cs_audience.to_string(),
        ))),
        Platform::Snp | Platform::Tdx if at(CONFIGFS_TSM).exists() => Ok(Box::new(
            ConfigfsTsmAttester::new(at(CONFIGFS_TSM), platform, sc),
        )),
        Platform::Snp if at(SEV_GUEST).exists() => Ok(Box::new(SevGuestAttester::new(sc))),
        Platform::Tdx => Err(AttestError::Unavailable {
            platform: "tdx".into(),
            reason: format!(
                "TD quotes come through configfs-tsm ({CONFIGFS_TSM}), which this kernel lacks; {TDX_GUEST} alone gives only an unsigned TDREPORT"
            ),
        }),
        #[cfg(feature = "tpm")]
        Platform::AzSnpVtpm | Platform::AzTdxVtpm => {
            let a = vtpm::VtpmAttester::from_env()?;
            if a.platform() != platform {
                return Err(AttestError::Unavailable {
                    platform: platform.to_string(),
                    reason: format!(
                        "the vTPM's HCL report holds a {} report: this is {}",
                        if a.platform() == Platform::AzSnpVtpm { "SEV-SNP" } else { "TDX" },
                        a.platform()
                    ),
                });
            }
            Ok(Box::new(a))
        }
        #[cfg(not(feature = "tpm"))]
        Platform::AzSnpVtpm | Platform::AzTdxVtpm => Err(AttestError::Unavailable {
            platform: platform.to_string(),
            reason: "producing vTPM evidence needs the TSS libraries: this ccr-init was built without the `tpm` feature".into(),
        }),
        other => Err(AttestError::Unavailable {
            platform: other.to_string(),
            reason: "no interface for it on this machine".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_never_yields_sim_and_reports_probes_in_order() {
        let d = tempfile::tempdir().unwrap();
        let r = detect(d.path());
        assert!(r.platform.is_none() && r.found.is_none());
        assert_eq!(r.probes.len(), PROBES.len());
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/sev-guest"), b"").unwrap();
        let r = detect(d.path());
        assert_eq!(r.platform, Some(Platform::Snp));
        // A TPM on a non-Microsoft machine is not an Azure CVM.
        std::fs::write(d.path().join("dev/tpmrm0"), b"").unwrap();
        let r = detect(d.path());
        assert_eq!(r.platform, Some(Platform::Snp));
        assert!(r.probes.last().unwrap().contains("not an Azure CVM"));
        // The launcher socket comes first.
        std::fs::create_dir_all(d.path().join("run/container_launcher")).unwrap();
        std::fs::write(d.path().join("run/container_launcher/teeserver.sock"), b"").unwrap();
        assert_eq!(detect(d.path()).platform, Some(Platform::GcpCs));
    }

    #[test]
    fn configfs_tsm_attester_names_what_is_missing_and_cleans_up() {
        // A plain folder is not configfs: the new entry has no `generation` file.
        let d = tempfile::tempdir().unwrap();
        let a = ConfigfsTsmAttester::new(d.path().to_path_buf(), Platform::Snp, None);
        let e = a.evidence(&[0u8; 64]).unwrap_err();
        assert!(e.to_string().contains("generation"), "{e}");
        // The entry was removed again.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn confidential_space_attester_asks_the_launcher_for_a_bound_token() {
        use std::io::{Read, Write};
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("teeserver.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\na.b.c")
                .unwrap();
            req
        });
        let rd = [0x5au8; 64];
        let a = CsAttester::new(sock, "ccr-kbs".into());
        let ev = a.evidence(&rd).unwrap();
        assert_eq!(ev, json!({"token": "a.b.c"}));
        let req = t.join().unwrap();
        assert!(req.starts_with("POST /v1/token HTTP/1.1"), "{req}");
        let body: Value = serde_json::from_str(req.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"audience": "ccr-kbs", "nonces": ["5a".repeat(32)], "token_type": "OIDC"})
        );
    }
}
