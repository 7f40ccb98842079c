//! The SEV-SNP TCB version (AMD SEV-SNP ABI spec, table TCB_VERSION), shared by the report
//! ([`crate::snp`]) and the VCEK's extensions ([`crate::amd`]).

use serde::Serialize;

/// A TCB version in the Milan/Genoa layout (ABI spec, table TCB_VERSION): SVNs of the PSP
/// bootloader, the PSP OS (TEE), the SNP firmware and the microcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tcb {
    /// SVN of the PSP bootloader.
    pub bootloader: u8,
    /// SVN of the PSP operating system.
    pub tee: u8,
    /// SVN of the SNP firmware.
    pub snp: u8,
    /// Lowest microcode patch level of all cores.
    pub microcode: u8,
    /// SVN of the FMC firmware (Turin and later; absent before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl Tcb {
    /// Encodes the TCB as the u64 of the Milan/Genoa layout: bootloader in byte 0, TEE in
    /// byte 1, SNP in byte 6, microcode in byte 7.
    pub fn to_legacy_u64(self) -> u64 {
        u64::from_le_bytes([
            self.bootloader,
            self.tee,
            0,
            0,
            0,
            0,
            self.snp,
            self.microcode,
        ])
    }
}

impl From<sev::firmware::host::TcbVersion> for Tcb {
    fn from(t: sev::firmware::host::TcbVersion) -> Self {
        Self {
            bootloader: t.bootloader,
            tee: t.tee,
            snp: t.snp,
            microcode: t.microcode,
            fmc: t.fmc,
        }
    }
}
