//! AMD's SEV-SNP certificate chain: ARK → ASK → VCEK, or ARK → ASVK → VLEK.
//!
//! Sources: AMD SEV-SNP ABI specification (publication 56860) §3 "VCEK" and §3.2 "VLEK"; AMD
//! "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface Specification"
//! (publication 57230) §3 "Certificates": the ARK is self-signed, the ARK signs the ASK and the
//! ASVK, the ASK signs VCEKs and the ASVK signs VLEKs, all with RSASSA-PSS/SHA-384 (salt 48).
//! VCEK and VLEK certificates carry the TCB they were derived for as extensions under
//! `1.3.6.1.4.1.3704.1.3.*` (DER INTEGERs), the product name under `…1.2`, the chip's hwID
//! under `…1.4` (VCEK only; 64 bytes, 8 on Turin) and the cloud provider under `…1.5` (VLEK only).
//!
//! The trust anchors are the ARKs only. [`SnpRoots::amd`] embeds AMD's public ARK and ASK of
//! Milan, Genoa and Turin (from the `sev` crate's `builtin` module, which copies them from AMD's
//! KDS `/vcek/v1/{product}/cert_chain`) and the Milan ASVK (`certs/milan_asvk.pem`, AMD KDS
//! `/vlek/v1/Milan/cert_chain`: CN `SEV-VLEK-Milan`, valid 2022-11-16 to 2047-11-16, SHA-256 of
//! the DER `c5e081f5…9082f5`), each checked against its ARK when the roots are made. Intermediates met elsewhere (an ASVK from the evidence's certificate table, an ASK from
//! ACI's THIM JSON) are added with [`SnpRoots::add_intermediate`] and are trusted only once they
//! verify against an embedded ARK. Nothing is fetched from AMD's KDS.

use der::{Decode, Encode};
use x509_cert::Certificate as X509;
use x509_cert::der::asn1::{Ia5String, OctetString};

use crate::error::AttestError;
use crate::tcb::Tcb;

/// OID arc of AMD's VCEK/VLEK extensions.
pub const OID_ARC: &str = "1.3.6.1.4.1.3704.1";
/// `blSPL`: SVN of the PSP bootloader the VEK was derived for.
pub const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
/// `teeSPL`: SVN of the PSP OS.
pub const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
/// `snpSPL`: SVN of the SNP firmware.
pub const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
/// `ucodeSPL`: microcode patch level.
pub const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
/// `fmcSPL`: SVN of the FMC firmware (Turin and later).
pub const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
/// `productName` (IA5String, for example `Milan-B0`).
pub const OID_PRODUCT_NAME: &str = "1.3.6.1.4.1.3704.1.2";
/// `hwID`: the chip's identifier (VCEK only), equal to the report's `CHIP_ID`.
pub const OID_HW_ID: &str = "1.3.6.1.4.1.3704.1.4";
/// `cspID`: the cloud provider a VLEK was issued to (VLEK only).
pub const OID_CSP_ID: &str = "1.3.6.1.4.1.3704.1.5";
/// `id-RSASSA-PSS` (RFC 4055): the signature algorithm of every AMD CA certificate.
pub const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

fn cert_err(which: &'static str) -> impl Fn(String) -> AttestError {
    move |reason| AttestError::Certificate { which, reason }
}

/// An X.509 certificate with its DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdCert {
    der: Vec<u8>,
    cert: X509,
}

impl AmdCert {
    /// Parses a DER certificate; `which` names it in errors (`VCEK`, `ASK`, ...).
    ///
    /// # Errors
    /// [`AttestError::Certificate`].
    pub fn from_der(der: &[u8], which: &'static str) -> Result<Self, AttestError> {
        let cert = X509::from_der(der).map_err(|e| cert_err(which)(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// Parses DER or PEM (one certificate).
    ///
    /// # Errors
    /// [`AttestError::Certificate`].
    pub fn from_der_or_pem(bytes: &[u8], which: &'static str) -> Result<Self, AttestError> {
        if bytes.starts_with(b"-----BEGIN") || bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            // A PEM bundle gives its first certificate.
            Self::pem_bundle(bytes.trim_ascii_start(), which)?
                .into_iter()
                .next()
                .ok_or_else(|| cert_err(which)("no certificate in the PEM".into()))
        } else {
            Self::from_der(bytes, which)
        }
    }

    /// Every certificate of a PEM bundle, in order.
    ///
    /// # Errors
    /// [`AttestError::Certificate`] naming the bundle when one block does not parse.
    pub fn pem_bundle(pem: &[u8], which: &'static str) -> Result<Vec<Self>, AttestError> {
        let certs = X509::load_pem_chain(pem).map_err(|e| cert_err(which)(e.to_string()))?;
        certs
            .into_iter()
            .map(|cert| {
                let der = cert.to_der().map_err(|e| cert_err(which)(e.to_string()))?;
                Ok(Self { der, cert })
            })
            .collect()
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn x509(&self) -> &X509 {
        &self.cert
    }

    /// The subject's common name, or `""`.
    pub fn subject_cn(&self) -> String {
        common_name(&self.cert.tbs_certificate.subject)
    }

    /// The issuer's common name, or `""`.
    pub fn issuer_cn(&self) -> String {
        common_name(&self.cert.tbs_certificate.issuer)
    }

    /// The SEC1 bytes of the subject public key.
    pub fn public_key_bytes(&self) -> &[u8] {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    }

    /// Checks `notBefore <= at <= notAfter` (`at` in Unix seconds).
    ///
    /// # Errors
    /// [`AttestError::Chain`] naming the certificate and its validity.
    pub fn check_validity(&self, at: i64) -> Result<(), AttestError> {
        let v = &self.cert.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs() as i64;
        let na = v.not_after.to_unix_duration().as_secs() as i64;
        if at < nb || at > na {
            return Err(AttestError::Chain {
                reason: format!(
                    "certificate {} is not valid at {} (valid {} to {})",
                    self.subject_cn(),
                    fmt_time(at),
                    v.not_before,
                    v.not_after
                ),
            });
        }
        Ok(())
    }

    /// Checks that `issuer`'s RSA key signed this certificate with RSASSA-PSS/SHA-384, and that
    /// this certificate names `issuer` as its issuer.
    ///
    /// # Errors
    /// [`AttestError::Chain`] naming both certificates.
    pub fn verify_signed_by(&self, issuer: &AmdCert) -> Result<(), AttestError> {
        let fail = |why: String| AttestError::Chain {
            reason: format!(
                "{} is not signed by {}: {why}",
                self.subject_cn(),
                issuer.subject_cn()
            ),
        };
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(fail("issuer name differs".into()));
        }
        if self.cert.signature_algorithm.oid.to_string() != OID_RSASSA_PSS {
            return Err(fail(format!(
                "signature algorithm {} (AMD uses RSASSA-PSS)",
                self.cert.signature_algorithm.oid
            )));
        }
        // The issuer's subjectPublicKey of an rsaEncryption key is the PKCS#1 RSAPublicKey,
        // which is what ring takes. ring's RSA_PSS_2048_8192_SHA384 fixes MGF1-SHA-384 and a
        // 48-byte salt, AMD's parameters.
        let key = issuer
            .cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| fail(e.to_string()))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA384, key)
            .verify(&tbs, self.cert.signature.raw_bytes())
            .map_err(|_| fail("signature does not verify".into()))
    }

    fn extension(&self, oid: &str) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
    }
}

fn common_name(name: &x509_cert::name::Name) -> String {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid.to_string() == "2.5.4.3" {
                if let Ok(s) = atv.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                    return s.to_string();
                }
                if let Ok(s) = atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>() {
                    return s.to_string();
                }
                if let Ok(s) = atv.value.decode_as::<Ia5String>() {
                    return s.to_string();
                }
            }
        }
    }
    String::new()
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn fmt_time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

/// The AMD extensions of a VCEK or VLEK certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekExtensions {
    /// `productName`, for example `Milan-B0` (VLEKs: `Milan`).
    pub product_name: Option<String>,
    /// The TCB the key was derived for (`blSPL`, `teeSPL`, `snpSPL`, `ucodeSPL`, `fmcSPL`).
    pub tcb: Tcb,
    /// `hwID` (VCEK only): 64 bytes, or 8 on Turin.
    pub hw_id: Option<Vec<u8>>,
    /// `cspID` (VLEK only).
    pub csp_id: Option<String>,
}

fn ext_int(cert: &AmdCert, oid: &'static str) -> Result<u8, AttestError> {
    let raw = cert
        .extension(oid)
        .ok_or_else(|| AttestError::Certificate {
            which: "VCEK/VLEK",
            reason: format!("extension {oid} (TCB SPL) is missing"),
        })?;
    let v = der::asn1::Int::from_der(raw).map_err(|e| AttestError::Certificate {
        which: "VCEK/VLEK",
        reason: format!("extension {oid} is not a DER INTEGER: {e}"),
    })?;
    let bytes = v.as_bytes();
    // DER INTEGER 0..=255: one byte, or two with a leading zero for values >= 128.
    let trimmed: &[u8] = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    match trimmed {
        [b] => Ok(*b),
        _ => Err(AttestError::Certificate {
            which: "VCEK/VLEK",
            reason: format!("extension {oid} is not an 8-bit SPL"),
        }),
    }
}

impl VekExtensions {
    /// Reads the extensions of `cert`.
    ///
    /// # Errors
    /// [`AttestError::Certificate`] when a TCB extension is missing or malformed, or when a
    /// hwID is present but is neither 64 (or 8) raw bytes nor a DER OCTET STRING of that size.
    pub fn read(cert: &AmdCert) -> Result<Self, AttestError> {
        let tcb = Tcb {
            bootloader: ext_int(cert, OID_BL_SPL)?,
            tee: ext_int(cert, OID_TEE_SPL)?,
            snp: ext_int(cert, OID_SNP_SPL)?,
            microcode: ext_int(cert, OID_UCODE_SPL)?,
            fmc: match cert.extension(OID_FMC_SPL) {
                Some(_) => Some(ext_int(cert, OID_FMC_SPL)?),
                None => None,
            },
        };
        let hw_id = match cert.extension(OID_HW_ID) {
            None => None,
            Some(raw) => {
                // KDS certificates carry a DER OCTET STRING; early ones carried the raw bytes.
                let v = match OctetString::from_der(raw) {
                    Ok(o) => o.as_bytes().to_vec(),
                    Err(_) if raw.len() == 64 || raw.len() == 8 => raw.to_vec(),
                    Err(e) => {
                        return Err(AttestError::Certificate {
                            which: "VCEK",
                            reason: format!("extension {OID_HW_ID} (hwID) is malformed: {e}"),
                        });
                    }
                };
                if v.len() != 64 && v.len() != 8 {
                    return Err(AttestError::Certificate {
                        which: "VCEK",
                        reason: format!(
                            "extension {OID_HW_ID} (hwID) holds {} bytes, expected 64 (or 8 on Turin)",
                            v.len()
                        ),
                    });
                }
                Some(v)
            }
        };
        let string_ext = |oid: &str| {
            cert.extension(oid).map(|raw| {
                Ia5String::from_der(raw)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
            })
        };
        Ok(Self {
            product_name: string_ext(OID_PRODUCT_NAME),
            tcb,
            hw_id,
            csp_id: string_ext(OID_CSP_ID),
        })
    }
}

/// Parses an X.509 CRL (RFC 5280 §5), DER or PEM.
///
/// # Errors
/// [`AttestError::Certificate`] naming the CRL.
pub fn parse_crl(bytes: &[u8]) -> Result<x509_cert::crl::CertificateList, AttestError> {
    let t = bytes.trim_ascii_start();
    let der = if t.starts_with(b"-----BEGIN") {
        der::pem::decode_vec(t)
            .map_err(|e| cert_err("CRL")(e.to_string()))?
            .1
    } else {
        bytes.to_vec()
    };
    x509_cert::crl::CertificateList::from_der(&der).map_err(|e| cert_err("CRL")(e.to_string()))
}

/// AMD's Milan ASVK (`SEV-VLEK-Milan`), the issuer of Milan VLEKs.
pub const MILAN_ASVK_PEM: &[u8] = include_bytes!("certs/milan_asvk.pem");

/// One trust anchor: a product's ARK and the intermediates embedded with it.
#[derive(Debug, Clone)]
struct Anchor {
    product: String,
    ark: AmdCert,
    asks: Vec<AmdCert>,
    /// The ARK's self-signature and its signatures on `asks` were checked when the anchor was
    /// made; only validity periods remain to check per verification.
    preverified: bool,
}

impl Anchor {
    fn new(product: String, ark: AmdCert, asks: Vec<AmdCert>) -> Self {
        let preverified = ark.verify_signed_by(&ark).is_ok()
            && asks.iter().all(|a| a.verify_signed_by(&ark).is_ok());
        Self {
            product,
            ark,
            asks,
            preverified,
        }
    }
}

/// The chain a VEK verified through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekChain {
    /// The product whose ARK anchors the chain (`milan`, `genoa`, `turin`, or `sim`).
    pub product: String,
    /// Common names from the VEK up to the ARK.
    pub names: Vec<String>,
}

/// The trust anchors for SNP verification: ARKs with their ASKs, plus intermediates given later.
#[derive(Debug, Clone)]
pub struct SnpRoots {
    anchors: Vec<Anchor>,
    intermediates: Vec<AmdCert>,
    crls: Vec<x509_cert::crl::CertificateList>,
}

impl SnpRoots {
    /// AMD's public ARK and ASK for Milan, Genoa and Turin, embedded in the binary (the `sev`
    /// crate's `certs::snp::builtin`, from AMD's KDS `/vcek/v1/{product}/cert_chain`).
    pub fn amd() -> Self {
        use sev::certs::snp::builtin::{genoa, milan, turin};
        let mut anchors = Vec::new();
        for (product, ark, ask, asvk) in [
            ("milan", milan::ARK, milan::ASK, Some(MILAN_ASVK_PEM)),
            ("genoa", genoa::ARK, genoa::ASK, None),
            ("turin", turin::ARK, turin::ASK, None),
        ] {
            // The embedded PEMs are constants; a failure here would be a build defect, and it
            // only drops that product.
            if let (Ok(ark), Ok(ask)) = (
                AmdCert::from_der_or_pem(ark, "ARK"),
                AmdCert::from_der_or_pem(ask, "ASK"),
            ) {
                let mut asks = vec![ask];
                if let Some(Ok(asvk)) = asvk.map(|p| AmdCert::from_der_or_pem(p, "ASVK")) {
                    asks.push(asvk);
                }
                anchors.push(Anchor::new(product.into(), ark, asks));
            }
        }
        Self {
            anchors,
            intermediates: Vec::new(),
            crls: Vec::new(),
        }
    }

    /// One anchor from PEM ARK and ASK (the `sim` chain, or a custom root).
    ///
    /// # Errors
    /// [`AttestError::Certificate`] when either is not a PEM certificate.
    pub fn from_pem(ark: &[u8], ask: &[u8]) -> Result<Self, AttestError> {
        Ok(Self::single(
            AmdCert::from_der_or_pem(ark, "ARK")?,
            AmdCert::from_der_or_pem(ask, "ASK")?,
        ))
    }

    /// One anchor from DER ARK and ASK.
    ///
    /// # Errors
    /// [`AttestError::Certificate`] when either is not a DER certificate.
    pub fn from_der(ark: &[u8], ask: &[u8]) -> Result<Self, AttestError> {
        Ok(Self::single(
            AmdCert::from_der(ark, "ARK")?,
            AmdCert::from_der(ask, "ASK")?,
        ))
    }

    fn single(ark: AmdCert, ask: AmdCert) -> Self {
        let product = if ark.subject_cn().starts_with("ccr-sim") {
            "sim".to_string()
        } else {
            ark.subject_cn()
                .strip_prefix("ARK-")
                .unwrap_or("custom")
                .to_lowercase()
        };
        Self {
            anchors: vec![Anchor::new(product, ark, vec![ask])],
            intermediates: Vec::new(),
            crls: Vec::new(),
        }
    }

    /// Adds an intermediate (ASK or ASVK) met in evidence or endorsements. It is trusted only
    /// when it verifies against one of the anchors' ARKs; an ARK given here is ignored unless it
    /// is byte-identical to an anchor (anchors are never added at run time).
    pub fn add_intermediate(&mut self, cert: AmdCert) {
        if self.anchors.iter().any(|a| a.ark.der == cert.der) {
            return;
        }
        if !self.intermediates.contains(&cert) {
            self.intermediates.push(cert);
        }
    }

    /// Adds a certificate revocation list (DER or PEM), as AMD's KDS serves it
    /// (`/vcek/v1/{product}/crl`, signed by the ARK; it lists revoked ASKs and ASVKs) or as the
    /// extended report's certificate table carries it. A CRL is used only for the certificates
    /// its issuer issued, and only once its signature verifies with that issuer's key; a CRL
    /// from a trusted issuer whose signature fails makes verification fail.
    ///
    /// # Errors
    /// [`AttestError::Certificate`] when the bytes are not a CRL.
    pub fn add_crl(&mut self, bytes: &[u8]) -> Result<(), AttestError> {
        let crl = parse_crl(bytes)?;
        if !self.crls.contains(&crl) {
            self.crls.push(crl);
        }
        Ok(())
    }

    /// Fails when a CRL issued by `issuer` lists `cert`.
    fn check_revocation(&self, cert: &AmdCert, issuer: &AmdCert) -> Result<(), AttestError> {
        for crl in &self.crls {
            let tbs = &crl.tbs_cert_list;
            if tbs.issuer != issuer.cert.tbs_certificate.subject {
                continue;
            }
            let bytes = tbs.to_der().map_err(|e| cert_err("CRL")(e.to_string()))?;
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PSS_2048_8192_SHA384,
                issuer.public_key_bytes(),
            )
            .verify(&bytes, crl.signature.raw_bytes())
            .map_err(|_| AttestError::Chain {
                reason: format!(
                    "the CRL of {} does not verify with its key",
                    issuer.subject_cn()
                ),
            })?;
            let serial = &cert.cert.tbs_certificate.serial_number;
            if let Some(r) = tbs
                .revoked_certificates
                .as_ref()
                .and_then(|rs| rs.iter().find(|r| &r.serial_number == serial))
            {
                return Err(AttestError::Chain {
                    reason: format!(
                        "{} (serial {}) is revoked by {}'s CRL since {}",
                        cert.subject_cn(),
                        hex::encode(serial.as_bytes()),
                        issuer.subject_cn(),
                        r.revocation_date
                    ),
                });
            }
        }
        Ok(())
    }

    /// The products anchored (`milan`, `genoa`, `turin`, or `sim`).
    pub fn products(&self) -> Vec<&str> {
        self.anchors.iter().map(|a| a.product.as_str()).collect()
    }

    /// Verifies ARK (self-signed) → ASK/ASVK → `vek`, each valid at `at` (Unix seconds) when
    /// given.
    ///
    /// # Errors
    /// [`AttestError::Chain`] with every anchor's reason when no chain verifies.
    pub fn verify_vek(&self, vek: &AmdCert, at: Option<i64>) -> Result<VekChain, AttestError> {
        let mut reasons = Vec::new();
        for a in &self.anchors {
            let candidates = a
                .asks
                .iter()
                .chain(&self.intermediates)
                .filter(|c| c.cert.tbs_certificate.subject == vek.cert.tbs_certificate.issuer);
            let mut tried = false;
            for ica in candidates {
                tried = true;
                let embedded = a.preverified && a.asks.contains(ica);
                let r = (|| {
                    if !embedded {
                        a.ark.verify_signed_by(&a.ark)?;
                        ica.verify_signed_by(&a.ark)?;
                    }
                    vek.verify_signed_by(ica)?;
                    self.check_revocation(ica, &a.ark)?;
                    self.check_revocation(vek, ica)?;
                    if let Some(at) = at {
                        a.ark.check_validity(at)?;
                        ica.check_validity(at)?;
                        vek.check_validity(at)?;
                    }
                    Ok::<_, AttestError>(())
                })();
                match r {
                    Ok(()) => {
                        return Ok(VekChain {
                            product: a.product.clone(),
                            names: vec![vek.subject_cn(), ica.subject_cn(), a.ark.subject_cn()],
                        });
                    }
                    Err(e) => reasons.push(format!("{}: {e}", a.product)),
                }
            }
            if !tried {
                reasons.push(format!(
                    "{}: no intermediate named {}",
                    a.product,
                    vek.issuer_cn()
                ));
            }
        }
        Err(AttestError::Chain {
            reason: format!(
                "{} does not chain to a trusted ARK ({})",
                vek.subject_cn(),
                reasons.join("; ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_roots_are_all_preverified() {
        let r = SnpRoots::amd();
        assert_eq!(r.products(), ["milan", "genoa", "turin"]);
        for a in &r.anchors {
            assert!(a.preverified, "{}: ARK/ASK signatures", a.product);
        }
        let milan = &r.anchors[0];
        assert_eq!(milan.asks.len(), 2);
        assert_eq!(milan.asks[1].subject_cn(), "SEV-VLEK-Milan");
        assert_eq!(milan.asks[1].issuer_cn(), "ARK-Milan");
    }
}
