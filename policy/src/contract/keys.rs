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

impl KeyRef {
    /// Whether a `ccr` broker releases this key, or one of its shares, under the resource path
    /// `kid`.
    pub fn ccr_releases(&self, kid: &str) -> bool {
        match self.kind {
            KeyKind::Ccr => self.properties.kid == kid,
            KeyKind::Threshold => self
                .properties
                .shares
                .iter()
                .flatten()
                .any(|s| s.kind == KeyKind::Ccr && s.properties.kid == kid),
            _ => false,
        }
    }
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
    /// k of n shares, each released by its own service (ccr addition): `properties.k` and
    /// `properties.shares` ([`ShareRef`]).
    Threshold,
}

impl KeyKind {
    /// The contract's spelling: `ccr`, `azure`, `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ccr => "ccr",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
            Self::Threshold => "threshold",
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
    /// The attestation authority (verifier) whose claims the release policy reads (required
    /// but for `threshold` keys, whose shares each name their own).
    #[serde(default)]
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
    /// `threshold` keys: how many of the shares rebuild the key (1 ≤ k ≤ n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// `threshold` keys: the n shares, share i (from 1) the i-th, each with its service and
    /// commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<ShareRef>>,
}

/// One share of a `threshold` key: the service that releases its 32-byte value (a `ccr`,
/// `azure` or `gcp` key reference) and its commitment, SHA-256(identifier ‖ value) in 64
/// lowercase hex (`ccr keys split` prints them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRef {
    /// `ccr`, `azure` or `gcp`.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The service and the share's key id there.
    pub properties: KeyProperties,
    /// SHA-256(identifier ‖ value), hex.
    pub commitment: String,
}

impl ShareRef {
    /// The share's reference as a plain key reference (to release it like any key).
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            kind: self.kind,
            properties: self.properties.clone(),
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authority {
    /// Endpoint of the verifier (for the local broker, `local`).
    pub endpoint: String,
}

/// Checks a key reference: a `threshold` key (only where `threshold_ok`: dataset keys) has `k`
/// and 1 ≤ k ≤ n ≤ 255 shares, each a `ccr`, `azure` or `gcp` key with a kid, an authority and
/// a 64-hex commitment, no two alike; other keys have no `k` or `shares` and an authority.
///
/// # Errors
/// `(field under the key, reason)`.
pub(crate) fn check_key(key: &KeyRef, threshold_ok: bool) -> Result<(), (String, String)> {
    let p = &key.properties;
    let err = |f: &str, r: &str| Err((f.to_string(), r.to_string()));
    if key.kind != KeyKind::Threshold {
        if p.k.is_some() || p.shares.is_some() {
            return err(
                "properties.shares",
                "k and shares belong to a key of type threshold",
            );
        }
        if p.authority.endpoint.is_empty() {
            return err("properties.authority.endpoint", "required");
        }
        return Ok(());
    }
    if !threshold_ok {
        return err(
            "type",
            "threshold keys are for datasets (the output and base model keys are whole keys)",
        );
    }
    let Some(shares) = p.shares.as_ref() else {
        return err("properties.shares", "required for a threshold key");
    };
    let n = shares.len();
    let Some(k) = p.k else {
        return err("properties.k", "required for a threshold key");
    };
    if k == 0 || k > n || n > 255 {
        return Err((
            "properties.k".into(),
            format!("{k} of {n} shares: need 1 <= k <= n <= 255"),
        ));
    }
    for (j, sh) in shares.iter().enumerate() {
        let f = |x: &str| format!("properties.shares[{j}].{x}");
        if sh.kind == KeyKind::Threshold {
            return Err((f("type"), "a share is a ccr, azure or gcp key".into()));
        }
        if sh.properties.k.is_some() || sh.properties.shares.is_some() {
            return Err((f("properties.shares"), "a share holds no shares".into()));
        }
        if sh.properties.kid.is_empty() {
            return Err((f("properties.kid"), "empty".into()));
        }
        if sh.properties.authority.endpoint.is_empty() {
            return Err((f("properties.authority.endpoint"), "required".into()));
        }
        let c = &sh.commitment;
        if c.len() != 64
            || !c
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err((
                f("commitment"),
                "64 lowercase hex digits (SHA-256 of the share, as `ccr keys split` prints it)"
                    .into(),
            ));
        }
        if shares[..j].iter().any(|o| {
            o.commitment == sh.commitment || (o.kind == sh.kind && o.properties == sh.properties)
        }) {
            return Err((
                f("properties"),
                "the same service key or commitment as an earlier share".into(),
            ));
        }
    }
    Ok(())
}
