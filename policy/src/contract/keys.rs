//! Key references: which service releases a dataset's or the output's key, and where.

use serde::{Deserialize, Serialize};

/// A key reference (DEPA shape): `{type, properties {kid, authority {endpoint}, endpoint}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// Broker type: `ccr` (the local broker, KBS protocol: `kid` is the resource path),
    /// `azure` (Key Vault Secure Key Release: `kid` is the key name, optionally `name/version`,
    /// `authority.endpoint` the MAA URL, `endpoint` the vault URL), `gcp` (Cloud KMS: `kid` is
    /// the KEK's resource name, `authority.endpoint` the workload identity pool provider; the
    /// wrapped DEK is `wrapped_dek.json` in the dataset image).
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// Where and what.
    pub properties: KeyProperties,
}

/// Which service releases a key (the key reference's `type`); any other value is an error
/// naming `...key.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// The local ccr broker (KBS protocol).
    Ccr,
    /// Azure Key Vault Secure Key Release.
    Azure,
    /// GCP Cloud KMS (through Confidential Space and STS).
    Gcp,
}

impl KeyKind {
    /// The contract's spelling: `ccr`, `azure`, `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ccr => "ccr",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProperties {
    /// Key id at the broker. For `ccr` brokers, the KBS resource path `repo/type/tag`.
    pub kid: String,
    /// The attestation authority (verifier) whose claims the release policy reads.
    pub authority: Authority,
    /// The broker's endpoint (for `ccr`: `https://host:port`; for `azure`: the Key Vault URL;
    /// for `gcp`: the Cloud KMS endpoint, empty for Google's).
    #[serde(default)]
    pub endpoint: String,
    /// `azure` `RSA-HSM` keys: the public HKDF salt (hex) the DEK is derived with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// `azure` `RSA-HSM` keys: the HKDF label (default: the key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the released key opens (ccr addition): `ccr` (default) a ccr sealed image, the key
    /// its DEK; `luks2` a LUKS2 image with ext4 inside as DEPA's `generatefs.sh` makes it, the
    /// key the 32-byte key file that opens one of its keyslots.
    #[serde(default, skip_serializing_if = "ImageFormat::is_ccr")]
    pub image_format: ImageFormat,
}

/// The kind of dataset image a key opens (`key.properties.image_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// A ccr sealed image (a folder with `manifest.json`; Tink streaming AEAD).
    #[default]
    Ccr,
    /// A LUKS2 image file (aes-xts, ext4 inside).
    Luks2,
}

impl ImageFormat {
    /// Whether this is the default, `ccr`.
    pub fn is_ccr(&self) -> bool {
        *self == Self::Ccr
    }
}

/// Attestation authority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authority {
    /// Endpoint of the verifier (for the local broker, `local`).
    pub endpoint: String,
}
