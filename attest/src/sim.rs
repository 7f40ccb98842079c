//! The `sim` platform: SNP-layout reports signed by a local ARK → ASK → VCEK chain.
//!
//! For local runs and tests only. The chain mirrors AMD's algorithms so that the SNP verifier
//! ([`crate::snp`]) checks it unchanged: ARK and ASK are RSA keys (2048-bit here, 4096 at AMD;
//! the verifier accepts either) signing with RSASSA-PSS/SHA-384 (salt 48), the VCEK is a P-384
//! key signing the report with ECDSA/SHA-384. The state folder holds:
//!
//! ```text
//! ark.pem  ask.pem  vcek.pem   certificates (PEM)
//! ark.crl                      the ARK's CRL (DER; revokes nothing)
//! vcek.key                     the VCEK's PKCS#8 private key (PEM, mode 0600)
//! ```
//!
//! Only the VCEK's private key is kept; the ARK and ASK keys are discarded once the chain is
//! made, so nothing can extend it later.
//!
//! # Measurement
//! A sim report's `MEASUREMENT` (48 bytes) is [`sim_measurement`]:
//! `SHA-384("ccr-sim-measurement/1" || SHA-384(ccr-init binary) || contract launch digest)`,
//! where the contract launch digest is the SHA-256 of the contract's JCS form without its
//! `signatures` and `releasePolicy` fields (the release policy may pin the measurement, so it
//! cannot be part of it). `HOST_DATA` carries the full contract digest (what the parties
//! signed), which the broker checks against the contract the key was registered under.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use p384::ecdsa::signature::hazmat::PrehashSigner;
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngCore;
use sha2::{Digest, Sha384};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{Decode, DecodePem, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use crate::error::AttestError;
use crate::evidence::SnpEvidence;
use crate::snp::{
    self, HOST_DATA_LEN, MEASUREMENT_LEN, REPORT_DATA_LEN, REPORT_LEN, SnpRoots, Tcb, offsets,
};

/// RSA modulus size of the sim ARK and ASK, in bits.
pub const SIM_RSA_BITS: usize = 2048;
/// Report version the sim platform writes.
pub const SIM_REPORT_VERSION: u32 = 3;
/// The TCB the sim platform reports (current, committed, launch and reported).
pub const SIM_TCB: Tcb = Tcb {
    bootloader: 10,
    tee: 0,
    snp: 23,
    microcode: 213,
    fmc: None,
};
/// Guest policy of sim reports: SMT allowed (bit 16), the must-be-one bit 17, debug off.
pub const SIM_POLICY: u64 = 0x3_0000;
/// Domain separator of [`sim_measurement`].
pub const MEASUREMENT_DOMAIN: &[u8] = b"ccr-sim-measurement/1";

/// Computes a sim `MEASUREMENT` from the SHA-384 of the ccr-init binary and the contract launch
/// digest (SHA-256 of the contract without `signatures` and `releasePolicy`).
pub fn sim_measurement(init_sha384: &[u8; 48], contract_launch_digest: &[u8; 32]) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update(MEASUREMENT_DOMAIN);
    h.update(init_sha384);
    h.update(contract_launch_digest);
    h.finalize().into()
}

macro_rules! amd_ext {
    ($name:ident, $oid:expr, $inner:ty) => {
        struct $name($inner);
        impl der::oid::AssociatedOid for $name {
            const OID: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap($oid);
        }
        impl der::Encode for $name {
            fn encoded_len(&self) -> der::Result<der::Length> {
                self.0.encoded_len()
            }
            fn encode(&self, w: &mut impl der::Writer) -> der::Result<()> {
                self.0.encode(w)
            }
        }
        impl x509_cert::ext::AsExtension for $name {
            fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
                false
            }
        }
    };
}
amd_ext!(BlSpl, "1.3.6.1.4.1.3704.1.3.1", u8);
amd_ext!(TeeSpl, "1.3.6.1.4.1.3704.1.3.2", u8);
amd_ext!(SnpSpl, "1.3.6.1.4.1.3704.1.3.3", u8);
amd_ext!(UcodeSpl, "1.3.6.1.4.1.3704.1.3.8", u8);
amd_ext!(HwId, "1.3.6.1.4.1.3704.1.4", der::asn1::OctetString);
amd_ext!(ProductName, "1.3.6.1.4.1.3704.1.2", der::asn1::Ia5String);

/// The local ARK → ASK → VCEK chain and the VCEK private key.
pub struct SimAuthority {
    dir: PathBuf,
    ark_pem: Vec<u8>,
    ask_pem: Vec<u8>,
    vcek_der: Vec<u8>,
    vcek_key: p384::ecdsa::SigningKey,
    chip_id: [u8; 64],
}

impl std::fmt::Debug for SimAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAuthority")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// [`AttestError::State`] for `path`, keeping the cause.
fn state(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> AttestError {
    AttestError::State {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

impl SimAuthority {
    /// Loads the chain from `dir`, or makes a new one there when `dir` holds none.
    ///
    /// # Errors
    /// [`AttestError::State`] when files cannot be read, written or parsed.
    pub fn load_or_create(dir: &Path) -> Result<Self, AttestError> {
        if dir.join("vcek.key").exists() {
            return Self::load(dir);
        }
        Self::create(dir, false)?;
        Self::load(dir)
    }

    fn load(dir: &Path) -> Result<Self, AttestError> {
        let read = |name: &str| {
            let p = dir.join(name);
            fs::read(&p).map_err(|e| state(&p, e))
        };
        let ark_pem = read("ark.pem")?;
        let ask_pem = read("ask.pem")?;
        let vcek_pem = read("vcek.pem")?;
        let key_pem = read("vcek.key")?;
        let vcek = x509_cert::Certificate::from_pem(&vcek_pem)
            .map_err(|e| state(&dir.join("vcek.pem"), e))?;
        let vcek_der = vcek.to_der().map_err(|e| state(&dir.join("vcek.pem"), e))?;
        let key_str = String::from_utf8(key_pem)
            .map_err(|_| state(&dir.join("vcek.key"), "not UTF-8 PEM"))?;
        let vcek_key = p384::ecdsa::SigningKey::from_pkcs8_pem(&key_str)
            .map_err(|e| state(&dir.join("vcek.key"), e))?;
        let cert = crate::amd::AmdCert::from_der(&vcek_der, "sim VCEK")?;
        let chip_id: [u8; 64] = crate::amd::VekExtensions::read(&cert)
            .ok()
            .and_then(|e| e.hw_id)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| {
                state(
                    &dir.join("vcek.pem"),
                    "the sim VCEK has no 64-byte hwID (made by an older ccr: remove the folder to make a new chain)",
                )
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ark_pem,
            ask_pem,
            vcek_der,
            vcek_key,
            chip_id,
        })
    }

    fn create(dir: &Path, revoke_ask: bool) -> Result<(), AttestError> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| state(dir, e);
        fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        let mut rng = rand::rngs::OsRng;
        let ark_key = rsa::RsaPrivateKey::new(&mut rng, SIM_RSA_BITS).map_err(|e| err(e.into()))?;
        let ask_key = rsa::RsaPrivateKey::new(&mut rng, SIM_RSA_BITS).map_err(|e| err(e.into()))?;
        let vcek_key = p384::ecdsa::SigningKey::random(&mut rng);

        let ark_name = Name::from_str("CN=ccr-sim ARK,O=ccr sim platform (not AMD)")
            .map_err(|e| err(e.into()))?;
        let ask_name = Name::from_str("CN=ccr-sim ASK,O=ccr sim platform (not AMD)")
            .map_err(|e| err(e.into()))?;
        let vcek_name = Name::from_str("CN=ccr-sim VCEK,O=ccr sim platform (not AMD)")
            .map_err(|e| err(e.into()))?;
        let validity =
            Validity::from_now(Duration::from_secs(20 * 365 * 86400)).map_err(|e| err(e.into()))?;

        let spki_rsa = |k: &rsa::RsaPrivateKey| {
            SubjectPublicKeyInfoOwned::from_key(k.to_public_key()).map_err(|e| err(e.into()))
        };
        let ark_signer = rsa::pss::SigningKey::<Sha384>::new(ark_key.clone());
        let ark = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity,
            ark_name.clone(),
            spki_rsa(&ark_key)?,
            &ark_signer,
        )
        .map_err(|e| err(e.into()))?
        .build_with_rng::<rsa::pss::Signature>(&mut rng)
        .map_err(|e| err(e.into()))?;
        let ask = CertificateBuilder::new(
            Profile::SubCA {
                issuer: ark_name,
                path_len_constraint: Some(0),
            },
            SerialNumber::from(2u32),
            validity,
            ask_name.clone(),
            spki_rsa(&ask_key)?,
            &ark_signer,
        )
        .map_err(|e| err(e.into()))?
        .build_with_rng::<rsa::pss::Signature>(&mut rng)
        .map_err(|e| err(e.into()))?;
        let ask_signer = rsa::pss::SigningKey::<Sha384>::new(ask_key);
        let vcek_spki = SubjectPublicKeyInfoOwned::from_key(*vcek_key.verifying_key())
            .map_err(|e| err(e.into()))?;
        let mut vcek = CertificateBuilder::new(
            Profile::Leaf {
                issuer: ask_name,
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(3u32),
            validity,
            vcek_name,
            vcek_spki,
            &ask_signer,
        )
        .map_err(|e| err(e.into()))?;
        // AMD's VCEK extensions: the TCB the key is for, and the chip's hwID (random here).
        let mut chip_id = [0u8; 64];
        rng.fill_bytes(&mut chip_id);
        let e = |r: Result<(), x509_cert::builder::Error>| r.map_err(|e| err(e.into()));
        e(vcek.add_extension(&BlSpl(SIM_TCB.bootloader)))?;
        e(vcek.add_extension(&TeeSpl(SIM_TCB.tee)))?;
        e(vcek.add_extension(&SnpSpl(SIM_TCB.snp)))?;
        e(vcek.add_extension(&UcodeSpl(SIM_TCB.microcode)))?;
        e(vcek.add_extension(&HwId(
            der::asn1::OctetString::new(chip_id.to_vec()).map_err(|x| err(x.into()))?,
        )))?;
        e(vcek.add_extension(&ProductName(
            der::asn1::Ia5String::new("ccr-sim").map_err(|x| err(x.into()))?,
        )))?;
        let vcek = vcek
            .build_with_rng::<rsa::pss::Signature>(&mut rng)
            .map_err(|e| err(e.into()))?;

        let pem = |c: &x509_cert::Certificate| c.to_pem(LineEnding::LF).map_err(|e| err(e.into()));
        let write = |name: &str, data: &[u8]| {
            let tmp = dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, data).map_err(|e| err(e.into()))?;
            fs::rename(&tmp, dir.join(name)).map_err(|e| err(e.into()))
        };
        write("ark.pem", pem(&ark)?.as_bytes())?;
        write("ask.pem", pem(&ask)?.as_bytes())?;
        write("vcek.pem", pem(&vcek)?.as_bytes())?;
        // The ARK's CRL, as AMD's KDS publishes one per product (`ark.crl`, DER). It revokes
        // nothing, except in the test that revokes the ASK.
        let crl = {
            use x509_cert::der::asn1::BitString;
            use x509_cert::spki::DynSignatureAlgorithmIdentifier;
            let now = x509_cert::time::Time::try_from(std::time::SystemTime::now())
                .map_err(|e| err(e.into()))?;
            let tbs = x509_cert::crl::TbsCertList {
                version: x509_cert::Version::V2,
                signature: ark_signer
                    .signature_algorithm_identifier()
                    .map_err(|e| err(e.into()))?,
                issuer: ark.tbs_certificate.subject,
                this_update: now,
                next_update: None,
                revoked_certificates: revoke_ask.then(|| {
                    vec![x509_cert::crl::RevokedCert {
                        serial_number: ask.tbs_certificate.serial_number.clone(),
                        revocation_date: now,
                        crl_entry_extensions: None,
                    }]
                }),
                crl_extensions: None,
            };
            let tbs_der = tbs.to_der().map_err(|e| err(e.into()))?;
            use rsa::signature::{RandomizedSigner, SignatureEncoding};
            let sig = ark_signer.sign_with_rng(&mut rng, &tbs_der);
            x509_cert::crl::CertificateList {
                signature_algorithm: tbs.signature.clone(),
                tbs_cert_list: tbs,
                signature: BitString::from_bytes(&sig.to_bytes()).map_err(|e| err(e.into()))?,
            }
            .to_der()
            .map_err(|e| err(e.into()))?
        };
        write("ark.crl", &crl)?;
        let key_pem = vcek_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| err(e.into()))?;
        // The key file is written last: its presence marks a complete state folder.
        let tmp = dir.join(".vcek.key.tmp");
        fs::write(&tmp, key_pem.as_bytes()).map_err(|e| err(e.into()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
                .map_err(|e| err(e.into()))?;
        }
        fs::rename(&tmp, dir.join("vcek.key")).map_err(|e| err(e.into()))?;
        Ok(())
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trust anchors (sim ARK and ASK) a broker needs to accept this authority's evidence.
    ///
    /// # Errors
    /// [`AttestError::Certificate`] if the stored PEM is damaged.
    pub fn roots(&self) -> Result<SnpRoots, AttestError> {
        SnpRoots::from_pem(&self.ark_pem, &self.ask_pem)
    }

    /// The sim VCEK certificate, DER.
    pub fn vcek_der(&self) -> &[u8] {
        &self.vcek_der
    }

    /// Makes a signed 1184-byte report in the SNP layout (version 3, Genoa CPUID, VMPL 0).
    pub fn report(
        &self,
        report_data: &[u8; REPORT_DATA_LEN],
        measurement: &[u8; MEASUREMENT_LEN],
        host_data: &[u8; HOST_DATA_LEN],
    ) -> [u8; REPORT_LEN] {
        let mut r = [0u8; REPORT_LEN];
        let put = |r: &mut [u8; REPORT_LEN], off: usize, b: &[u8]| {
            r[off..off + b.len()].copy_from_slice(b)
        };
        let tcb = SIM_TCB.to_legacy_u64().to_le_bytes();
        put(&mut r, offsets::VERSION, &SIM_REPORT_VERSION.to_le_bytes());
        put(&mut r, offsets::GUEST_SVN, &0u32.to_le_bytes());
        put(&mut r, offsets::POLICY, &SIM_POLICY.to_le_bytes());
        put(&mut r, offsets::VMPL, &0u32.to_le_bytes());
        put(
            &mut r,
            offsets::SIGNATURE_ALGO,
            &snp::SIG_ALGO_ECDSA_P384_SHA384.to_le_bytes(),
        );
        put(&mut r, offsets::CURRENT_TCB, &tcb);
        put(&mut r, offsets::PLATFORM_INFO, &1u64.to_le_bytes());
        put(&mut r, offsets::KEY_INFO, &0u32.to_le_bytes());
        put(&mut r, offsets::REPORT_DATA, report_data);
        put(&mut r, offsets::MEASUREMENT, measurement);
        put(&mut r, offsets::HOST_DATA, host_data);
        let mut report_id = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut report_id);
        put(&mut r, offsets::REPORT_ID, &report_id);
        put(&mut r, offsets::REPORTED_TCB, &tcb);
        // Family 19h, model 11h: a Genoa part, so the TCB uses the Milan/Genoa layout.
        put(&mut r, offsets::CPUID_FAM_ID, &[0x19]);
        put(&mut r, offsets::CPUID_MOD_ID, &[0x11]);
        put(&mut r, offsets::CPUID_STEP, &[0x01]);
        put(&mut r, offsets::CHIP_ID, &self.chip_id);
        put(&mut r, offsets::COMMITTED_TCB, &tcb);
        put(&mut r, offsets::CURRENT_VERSION, &[0x0b, 0x37, 0x01]);
        put(&mut r, offsets::COMMITTED_VERSION, &[0x0b, 0x37, 0x01]);
        put(&mut r, offsets::LAUNCH_TCB, &tcb);

        let digest = Sha384::digest(&r[..snp::SIGNED_LEN]);
        let sig: p384::ecdsa::Signature = self
            .vcek_key
            .sign_prehash(&digest)
            .unwrap_or_else(|_| unreachable!("a 48-byte prehash always signs"));
        let (rr, ss) = sig.split_bytes();
        let mut rle = rr.to_vec();
        let mut sle = ss.to_vec();
        rle.reverse();
        sle.reverse();
        put(&mut r, snp::SIG_R_OFFSET, &rle);
        put(&mut r, snp::SIG_S_OFFSET, &sle);
        r
    }

    /// Makes evidence (report + VCEK) binding `report_data`.
    pub fn evidence(
        &self,
        report_data: &[u8; REPORT_DATA_LEN],
        measurement: &[u8; MEASUREMENT_LEN],
        host_data: &[u8; HOST_DATA_LEN],
    ) -> SnpEvidence {
        SnpEvidence::new(
            &self.report(report_data, measurement, host_data),
            &self.vcek_der,
        )
    }
}

/// Loads sim trust anchors (ARK and ASK) from a state folder, for a broker.
///
/// # Errors
/// [`AttestError::State`] or [`AttestError::Certificate`].
pub fn load_roots(dir: &Path) -> Result<SnpRoots, AttestError> {
    let read = |name: &str| {
        let p = dir.join(name);
        fs::read(&p).map_err(|e| state(&p, e))
    };
    let mut roots = SnpRoots::from_pem(&read("ark.pem")?, &read("ask.pem")?)?;
    if dir.join("ark.crl").exists() {
        roots.add_crl(&read("ark.crl")?)?;
    }
    Ok(roots)
}

/// Parses a DER certificate, for callers that only need to check it is one.
///
/// # Errors
/// [`AttestError::Certificate`].
pub fn parse_der_certificate(der: &[u8]) -> Result<(), AttestError> {
    x509_cert::Certificate::from_der(der)
        .map(|_| ())
        .map_err(|e| AttestError::Certificate {
            which: "VCEK",
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;
    use crate::snp::SnpReport;

    fn authority() -> (tempfile::TempDir, SimAuthority) {
        let d = tempfile::tempdir().unwrap();
        let a = SimAuthority::load_or_create(&d.path().join("sim")).unwrap();
        (d, a)
    }

    #[test]
    fn sim_report_verifies_through_the_snp_verifier() {
        let (_d, a) = authority();
        let rd = [7u8; 64];
        let m = [1u8; 48];
        let hd = [2u8; 32];
        let ev = a.evidence(&rd, &m, &hd);
        let v = ev.verify(&a.roots().unwrap(), Platform::Sim).unwrap();
        let c = v.claims();
        assert_eq!(c.platform, Platform::Sim);
        assert_eq!(c.report_data, hex::encode(rd));
        assert_eq!(c.measurement, Some(hex::encode(m)));
        assert_eq!(c.host_data, Some(hex::encode(hd)));
        let s = c.snp.as_ref().unwrap();
        assert_eq!(s.vmpl, 0);
        assert!(!c.debug);
        assert_eq!(s.reported_tcb.snp, SIM_TCB.snp);
        assert_eq!(s.product.as_deref(), Some("sim"));
        assert_eq!(c.endorsement.len(), 3);
        v.expect_report_data(&rd).unwrap();
        assert!(v.expect_report_data(&[0u8; 64]).is_err());
    }

    #[test]
    fn reloaded_authority_keeps_its_chain() {
        let d = tempfile::tempdir().unwrap();
        let a = SimAuthority::load_or_create(d.path()).unwrap();
        let b = SimAuthority::load_or_create(d.path()).unwrap();
        assert_eq!(a.vcek_der(), b.vcek_der());
        let ev = b.evidence(&[0; 64], &[0; 48], &[0; 32]);
        ev.verify(&a.roots().unwrap(), Platform::Sim).unwrap();
    }

    #[test]
    fn flipped_report_byte_fails_signature() {
        let (_d, a) = authority();
        let mut r = a.report(&[1; 64], &[2; 48], &[3; 32]);
        r[offsets::MEASUREMENT] ^= 1;
        let rep = SnpReport::parse(&r).unwrap();
        let err = a
            .roots()
            .unwrap()
            .verify(&rep, a.vcek_der(), Platform::Sim)
            .unwrap_err();
        assert!(matches!(err, AttestError::Signature { .. }), "{err}");
    }

    #[test]
    fn another_authoritys_chain_is_rejected() {
        let (_d, a) = authority();
        let (_e, b) = authority();
        let ev = a.evidence(&[1; 64], &[2; 48], &[3; 32]);
        let err = ev.verify(&b.roots().unwrap(), Platform::Sim).unwrap_err();
        assert!(matches!(err, AttestError::Chain { .. }), "{err}");
    }

    #[test]
    fn mutated_reports_never_panic_the_parser_or_the_verifier() {
        use rand::{Rng, SeedableRng};
        let (_d, a) = authority();
        let roots = a.roots().unwrap();
        let good = a.report(&[1; 64], &[2; 48], &[3; 32]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut parsed = 0;
        for _ in 0..1000 {
            let mut m = good;
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..REPORT_LEN);
                m[i] = rng.r#gen();
            }
            if let Ok(rep) = SnpReport::parse(&m) {
                parsed += 1;
                let _ = rep.claims(Platform::Sim);
                // Any change to the signed bytes or the signature must fail verification.
                assert!(roots.verify(&rep, a.vcek_der(), Platform::Sim).is_err() || m == good);
            }
        }
        assert!(parsed > 50, "most small mutations still parse: {parsed}");
        for len in [0, 1, 0x2A0, REPORT_LEN - 1] {
            assert!(SnpReport::parse(&vec![0xffu8; len]).is_err());
        }
    }

    #[test]
    fn truncated_oversized_and_unknown_version_reports_are_rejected() {
        let (_d, a) = authority();
        let r = a.report(&[1; 64], &[2; 48], &[3; 32]);
        assert!(matches!(
            SnpReport::parse(&r[..1000]),
            Err(AttestError::Length { got: 1000, .. })
        ));
        let mut big = r.to_vec();
        big.push(0);
        assert!(matches!(
            SnpReport::parse(&big),
            Err(AttestError::Length { .. })
        ));
        let mut v9 = r;
        v9[0] = 9;
        assert!(matches!(
            SnpReport::parse(&v9),
            Err(AttestError::Field {
                field: "VERSION",
                ..
            })
        ));
    }

    #[test]
    fn a_revoked_ask_fails_the_chain_naming_the_crl() {
        let d = tempfile::tempdir().unwrap();
        SimAuthority::create(d.path(), true).unwrap();
        let a = SimAuthority::load_or_create(d.path()).unwrap();
        let ev = a.evidence(&[0; 64], &[0; 48], &[0; 32]);
        let e = ev
            .verify(&load_roots(d.path()).unwrap(), Platform::Sim)
            .unwrap_err();
        assert!(e.to_string().contains("revoked"), "{e}");
        // Without the CRL the same chain verifies; with an unrevoking CRL too.
        ev.verify(&a.roots().unwrap(), Platform::Sim).unwrap();
        let (_d2, b) = authority();
        let ev = b.evidence(&[0; 64], &[0; 48], &[0; 32]);
        ev.verify(&load_roots(b.dir()).unwrap(), Platform::Sim)
            .unwrap();
        // A CRL whose signature is broken fails verification instead of being ignored.
        let mut crl = fs::read(b.dir().join("ark.crl")).unwrap();
        let n = crl.len();
        crl[n - 5] ^= 1;
        let mut roots = b.roots().unwrap();
        roots.add_crl(&crl).unwrap();
        let e = ev.verify(&roots, Platform::Sim).unwrap_err();
        assert!(e.to_string().contains("CRL"), "{e}");
    }
}
