//! Producing evidence on the machine the runtime runs on, and finding out which platform that is.

use std::path::{Path, PathBuf};

use crate::Platform;
use crate::error::AttestError;
use crate::sim::SimAuthority;
use crate::snp::{HOST_DATA_LEN, MEASUREMENT_LEN, REPORT_DATA_LEN};

/// Something that produces evidence binding a `report_data`.
pub trait Attester {
    /// The platform.
    fn platform(&self) -> Platform;
    /// Evidence (the KBS `primary_evidence` JSON) whose `report_data` is `report_data`.
    ///
    /// # Errors
    /// [`AttestError`] when the platform fails to produce it.
    fn evidence(
        &self,
        report_data: &[u8; REPORT_DATA_LEN],
    ) -> Result<serde_json::Value, AttestError>;
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

impl Attester for SimAttester {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn evidence(
        &self,
        report_data: &[u8; REPORT_DATA_LEN],
    ) -> Result<serde_json::Value, AttestError> {
        let ev = self
            .authority
            .evidence(report_data, &self.measurement, &self.host_data);
        serde_json::to_value(ev).map_err(|e| AttestError::Evidence {
            field: "primary_evidence".into(),
            reason: e.to_string(),
        })
    }
}

/// What platform detection found.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The platform found, if any.
    pub platform: Option<Platform>,
    /// The interface it was found through (a device or configfs path).
    pub found: Option<PathBuf>,
    /// Every probe, in order, with its outcome.
    pub probes: Vec<String>,
}

/// The hardware interfaces probed by [`detect`], in order: configfs-tsm (SNP or TDX through the
/// kernel's TSM report interface), `/dev/sev-guest`, `/dev/tdx_guest`.
pub const PROBES: &[&str] = &[
    "/sys/kernel/config/tsm/report",
    "/dev/sev-guest",
    "/dev/tdx_guest",
];

/// Probes for a confidential-computing platform under `root` (`/` on a real machine). Never
/// returns `sim`: the simulator is used only when asked for by name.
pub fn detect(root: &Path) -> Detection {
    let mut d = Detection {
        platform: None,
        found: None,
        probes: Vec::new(),
    };
    for p in PROBES {
        let path = root.join(p.trim_start_matches('/'));
        let exists = path.exists();
        d.probes.push(format!(
            "{p}: {}",
            if exists { "present" } else { "absent" }
        ));
        if exists && d.found.is_none() {
            d.found = Some(path);
            if p.contains("sev") {
                d.platform = Some(Platform::Snp);
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_never_yields_sim_and_reports_probes() {
        let d = tempfile::tempdir().unwrap();
        let r = detect(d.path());
        assert!(r.platform.is_none() && r.found.is_none());
        assert_eq!(r.probes.len(), PROBES.len());
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/sev-guest"), b"").unwrap();
        let r = detect(d.path());
        assert_eq!(r.platform, Some(Platform::Snp));
    }
}
