//! The contract (`contract.json`): DEPA-Training's shape plus what ccr needs.
//!
//! DEPA-Training fields kept as DEPA writes them: `id`, `schemaVersion`, `startTime`,
//! `expiryTime`, `tdc`, `tdps`, `ccrp`, `datasets[]` (`id`, `owner`, `name`, `url`, `provider`,
//! `key` {`type`, `properties` {`kid`, `authority` {`endpoint`}, `endpoint`}}), `purpose`,
//! `constraints[].privacy[]` (`dataset`, `epsilon_threshold`, `delta`, `noise_multiplier`;
//! numbers may be written as strings, as DEPA does), `terms`.
//!
//! Added by ccr:
//! - `parties[]`: `{id, role: "tdc"|"tdp", publicKey: JWK}` (Ed25519 `OKP` or P-256 `EC`);
//!   every `tdc` and `tdps[]` entry must be a party, and every party must sign;
//! - `pipelineDigest`: `"sha256:<64 hex>"`, see [`pipeline_digest`];
//! - `output`: `{id, key}`: the output's id (its sealed image's dataset id) and key reference;
//! - `releasePolicy`: the release policy ([`crate::release`]);
//! - `signatures[]`: `{party, jws}`, detached JWS over the contract digest ([`crate::sign`]).
//!
//! Unknown fields are rejected with their path.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::PolicyError;
use crate::release::ReleasePolicy;

mod image;
mod keys;
mod verified;

pub use image::BaseModelImage;
use image::{check_image_pin, last_segment, pin_of};
pub use keys::{Authority, ImageFormat, KeyKind, KeyProperties, KeyRef, ShareRef};
pub use verified::VerifiedContract;

/// `contract.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Contract {
    /// Contract id (DEPA: a UUID).
    pub id: String,
    /// Schema version (DEPA writes `"0.1"`).
    pub schema_version: String,
    /// Start of validity (RFC 3339).
    pub start_time: DateTime<Utc>,
    /// End of validity (RFC 3339); the runtime and the broker refuse the contract after it.
    pub expiry_time: DateTime<Utc>,
    /// The data consumer's party id.
    pub tdc: String,
    /// The data providers' party ids.
    pub tdps: Vec<String>,
    /// DEPA's CCR provider field (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccrp: Option<String>,
    /// The parties with their public keys (ccr addition).
    pub parties: Vec<Party>,
    /// The datasets.
    pub datasets: Vec<Dataset>,
    /// Purpose (DEPA: `"TRAINING"`).
    pub purpose: String,
    /// Constraints; ccr reads `privacy`.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// DEPA's terms (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Value>,
    /// `"sha256:<hex>"` of the pipeline config (ccr addition).
    pub pipeline_digest: String,
    /// The output's id and key (ccr addition).
    pub output: Output,
    /// The release policy for every key of this contract (ccr addition).
    pub release_policy: ReleasePolicy,
    /// The training frameworks the pipeline may name (`Train_DL`, `Train_ML`, `Train_XGB`);
    /// absent: any (ccr addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_frameworks: Option<Vec<String>>,
    /// The model formats the output may carry (`Safetensors`, `ONNX`, `XGBoostJSON`); absent:
    /// any (ccr addition). The runtime refuses a run whose output would hold another format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_model_formats: Option<Vec<String>>,
    /// The most runs (attested sessions that get dataset keys) the broker allows under this
    /// contract; absent: no limit (ccr addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u32>,
    /// The SHA-256 (64 lowercase hex) of the consumer's base model (ccr addition, `ccr
    /// contract set-base-model`): a DEPA pipeline (`model_type` `onnx` or `safetensors`)
    /// names no digest, so the signed contract fixes which model trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_sha256: Option<String>,
    /// The consumer's base model inside a LUKS2 image (ccr addition; DEPA's `model.img` from
    /// `generatefs.sh`): its key is released to the run like a dataset's, and the model file is
    /// read from the image after release (its SHA-256 still fixed by `baseModelSha256` or the
    /// pipeline's `model_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_image: Option<BaseModelImage>,
    /// The parties' signatures (ccr addition).
    #[serde(default)]
    pub signatures: Vec<SignatureEntry>,
}

/// The training framework names of DEPA-Training's pipeline steps.
pub const FRAMEWORKS: &[&str] = &["Train_DL", "Train_ML", "Train_XGB", "LLM_Finetune"];
/// The model formats an output may carry: `model.safetensors`, `model.onnx`, and
/// `model.xgb.json` (gradient-boosted trees, `Train_XGB`).
pub const MODEL_FORMATS: &[&str] = &["Safetensors", "ONNX", "XGBoostJSON"];

/// A model format the output may carry (`allowedModelFormats`, checked against
/// [`MODEL_FORMATS`] when the contract is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `model.safetensors` (PyTorch's layouts).
    Safetensors,
    /// `model.onnx`.
    Onnx,
    /// `model.xgb.json` (gradient-boosted trees).
    XgboostJson,
}

impl OutputFormat {
    /// Every format, in [`MODEL_FORMATS`]' order.
    pub const ALL: [Self; 3] = [Self::Safetensors, Self::Onnx, Self::XgboostJson];

    /// The contract's spelling (one of [`MODEL_FORMATS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safetensors => "Safetensors",
            Self::Onnx => "ONNX",
            Self::XgboostJson => "XGBoostJSON",
        }
    }
}

/// A party to the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Party {
    /// Party id, as used in `tdc`, `tdps` and `signatures[].party`.
    pub id: String,
    /// `tdc` or `tdp`.
    pub role: Role,
    /// The party's signing public key as a JWK: `{"kty":"OKP","crv":"Ed25519","x":...}` or
    /// `{"kty":"EC","crv":"P-256","x":...,"y":...}`.
    pub public_key: Value,
}

/// A party's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Training data consumer.
    Tdc,
    /// Training data provider.
    Tdp,
}

/// A dataset entry (DEPA shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Dataset id; also the sealed image's dataset id and the first part of its associated data.
    pub id: String,
    /// The owning party's id (defaults to `provider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Dataset name; the table name in the join's SQL.
    pub name: String,
    /// Where the image is published (informative).
    #[serde(default)]
    pub url: String,
    /// The providing party's id.
    #[serde(default)]
    pub provider: String,
    /// Where its key is released from.
    pub key: KeyRef,
    /// The SHA-256 of the encrypted image file, 64 lowercase hex (ccr addition, as
    /// `sha256sum` prints it): a LUKS2 image (aes-xts, no integrity of its own) is read only
    /// if every byte hashes to this; given with `imageSize`.
    #[serde(
        default,
        rename = "imageSha256",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_sha256: Option<String>,
    /// The encrypted image file's size in bytes (ccr addition; with `imageSha256`).
    #[serde(default, rename = "imageSize", skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// The fields (JSONL) or columns (CSV) of the dataset's records, as its provider declares
    /// them (ccr addition): a pipeline that reads a field not listed is refused before any key
    /// is released, since the records themselves can be read only after decryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl Dataset {
    fn check_image_pin(&self) -> Result<(), (&'static str, String)> {
        check_image_pin(
            self.image_sha256.as_deref(),
            self.image_size,
            self.key.properties.image_format,
        )
    }

    /// The pinned image digest and size, when the contract pins them (checked by
    /// [`Contract::check`]: 32 bytes).
    pub fn image_pin(&self) -> Option<([u8; 32], u64)> {
        pin_of(self.image_sha256.as_deref(), self.image_size)
    }

    /// The image file's name in the dataset's folder: the last segment of `url` (DEPA
    /// publishes `.../data.img`), else `data.img`.
    pub fn image_file_name(&self) -> &str {
        last_segment(&self.url).unwrap_or("data.img")
    }

    /// The owning party: `owner`, else `provider`.
    pub fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.provider)
    }
}

/// A constraint block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// Per-dataset privacy budgets.
    #[serde(default)]
    pub privacy: Vec<Privacy>,
}

/// A dataset's privacy budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    /// The dataset id.
    pub dataset: String,
    /// Total epsilon allowed (DEPA may write it as a string).
    #[serde(deserialize_with = "num_or_str")]
    pub epsilon_threshold: f64,
    /// Delta (DEPA may write it as a string).
    #[serde(deserialize_with = "num_or_str")]
    pub delta: f64,
    /// Noise multiplier, if fixed by the contract.
    #[serde(
        default,
        deserialize_with = "opt_num_or_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub noise_multiplier: Option<f64>,
    /// DEPA's reporting period of the epsilon spent, in epochs (DEPA may write it as a string).
    /// ccr logs the epsilon spent after every epoch, which meets any period.
    #[serde(
        default,
        deserialize_with = "opt_num_or_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub epochs_per_report: Option<f64>,
    /// Whether every run that reads this dataset must train with DP-SGD (ccr addition; default
    /// false). When true, the runtime refuses a non-private pipeline and the broker refuses a
    /// release to a run that plans no epsilon, so nothing trained without DP leaves the CCR.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dp_required: bool,
}

/// The output's id and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The output image's dataset id.
    pub id: String,
    /// Where the output key is released from. With `approvers`, `kid` names the broker that
    /// holds each run's output key until the approvers agree (the runtime makes a fresh output
    /// key per run and escrows it there; the sealed output's manifest `kid` is `runs/<run id>`).
    pub key: KeyRef,
    /// The parties (data providers) that must approve a run before its output key is released
    /// to the data consumer; empty: the output key is the consumer's own (ccr addition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

/// One party's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The signing party's id.
    pub party: String,
    /// Detached compact JWS (`header..signature`) over the contract digest.
    pub jws: String,
}

fn parse_num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{n} is not a finite number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("\"{s}\" is not a number")),
        other => Err(format!("{other} is not a number")),
    }
    .and_then(|x| {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{x} is not finite"))
        }
    })
}

fn num_or_str<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    parse_num(&v).map_err(serde::de::Error::custom)
}

fn opt_num_or_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_num(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// SHA-256 of the JCS (RFC 8785) form of a JSON value.
pub fn jcs_sha256(v: &Value) -> [u8; 32] {
    let bytes = serde_jcs::to_vec(v).unwrap_or_else(|_| unreachable!("JSON value serialises"));
    Sha256::digest(bytes).into()
}

/// The pipeline config's digest as the contract writes it: `"sha256:" + hex(SHA-256(JCS(config)))`,
/// so whitespace and key order do not matter.
pub fn pipeline_digest(config: &Value) -> String {
    format!("sha256:{}", hex::encode(jcs_sha256(config)))
}

impl Contract {
    /// The model formats the output may carry: those `allowedModelFormats` lists, or every
    /// one when it is absent.
    pub fn output_formats(&self) -> Vec<OutputFormat> {
        OutputFormat::ALL
            .into_iter()
            .filter(|f| {
                self.allowed_model_formats
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|x| x == f.as_str()))
            })
            .collect()
    }

    /// Parses `contract.json`.
    ///
    /// # Errors
    /// [`PolicyError::Json`] naming the path of the field at fault (unknown fields included),
    /// then [`PolicyError::Contract`] for semantic errors ([`Contract::check`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let c: Contract = serde_path_to_error::deserialize(de).map_err(|e| PolicyError::Json {
            document: "contract",
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?;
        c.check()?;
        Ok(c)
    }

    /// Semantic checks: parties cover `tdc` and `tdps` with the right roles, ids unique, the
    /// privacy constraints name known datasets with epsilon > 0 and 0 < delta < 1, the pipeline
    /// digest is well formed, the release policy is valid.
    ///
    /// # Errors
    /// [`PolicyError::Contract`] naming the field.
    pub fn check(&self) -> Result<(), PolicyError> {
        let bad = |field: String, reason: String| PolicyError::Contract { field, reason };
        let party = |id: &str| self.parties.iter().find(|p| p.id == id);
        match party(&self.tdc) {
            Some(p) if p.role == Role::Tdc => {}
            Some(_) => {
                return Err(bad(
                    "tdc".into(),
                    format!("party `{}` has role tdp", self.tdc),
                ));
            }
            None => {
                return Err(bad(
                    "tdc".into(),
                    format!("`{}` is not in parties[]", self.tdc),
                ));
            }
        }
        for (i, t) in self.tdps.iter().enumerate() {
            match party(t) {
                Some(p) if p.role == Role::Tdp => {}
                Some(_) => {
                    return Err(bad(
                        format!("tdps[{i}]"),
                        format!("party `{t}` has role tdc"),
                    ));
                }
                None => {
                    return Err(bad(
                        format!("tdps[{i}]"),
                        format!("`{t}` is not in parties[]"),
                    ));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, p) in self.parties.iter().enumerate() {
            if !ids.insert(&p.id) {
                return Err(bad(
                    format!("parties[{i}].id"),
                    format!("duplicate `{}`", p.id),
                ));
            }
            crate::sign::PublicKey::from_jwk(&p.public_key)
                .map_err(|e| bad(format!("parties[{i}].publicKey"), e.to_string()))?;
        }
        let mut ds = std::collections::HashSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            if !ds.insert(&d.id) {
                return Err(bad(
                    format!("datasets[{i}].id"),
                    format!("duplicate `{}`", d.id),
                ));
            }
            if !self.tdps.iter().any(|t| t == d.owner()) {
                return Err(bad(
                    format!("datasets[{i}].owner"),
                    format!("`{}` is not one of tdps", d.owner()),
                ));
            }
            if d.key.properties.kid.is_empty() {
                return Err(bad(
                    format!("datasets[{i}].key.properties.kid"),
                    "empty".into(),
                ));
            }
            d.check_image_pin()
                .map_err(|(field, reason)| bad(format!("datasets[{i}].{field}"), reason))?;
            keys::check_key(&d.key, true)
                .map_err(|(field, reason)| bad(format!("datasets[{i}].key.{field}"), reason))?;
        }
        keys::check_key(&self.output.key, false)
            .map_err(|(field, reason)| bad(format!("output.key.{field}"), reason))?;
        if let Some(m) = &self.base_model_image {
            keys::check_key(&m.key, false)
                .map_err(|(field, reason)| bad(format!("baseModelImage.key.{field}"), reason))?;
        }
        if ds.contains(&self.output.id) {
            return Err(bad("output.id".into(), "equals a dataset id".into()));
        }
        if let Some(m) = &self.base_model_image {
            if m.key.properties.image_format != ImageFormat::Luks2 {
                return Err(bad(
                    "baseModelImage.key.properties.image_format".into(),
                    "must be luks2 (the base model image is a LUKS2 image)".into(),
                ));
            }
            check_image_pin(m.image_sha256.as_deref(), m.image_size, ImageFormat::Luks2)
                .map_err(|(field, reason)| bad(format!("baseModelImage.{field}"), reason))?;
        }
        for (ci, c) in self.constraints.iter().enumerate() {
            for (pi, p) in c.privacy.iter().enumerate() {
                let f = |n: &str| format!("constraints[{ci}].privacy[{pi}].{n}");
                if !ds.contains(&p.dataset) {
                    return Err(bad(
                        f("dataset"),
                        format!("unknown dataset `{}`", p.dataset),
                    ));
                }
                if p.epsilon_threshold <= 0.0 {
                    return Err(bad(f("epsilon_threshold"), "must be > 0".into()));
                }
                if !(p.delta > 0.0 && p.delta < 1.0) {
                    return Err(bad(f("delta"), "must be in (0, 1)".into()));
                }
                if p.noise_multiplier.is_some_and(|n| n <= 0.0) {
                    return Err(bad(f("noise_multiplier"), "must be > 0".into()));
                }
            }
        }
        for (i, a) in self.output.approvers.iter().enumerate() {
            match party(a) {
                Some(_) if self.output.approvers[..i].contains(a) => {
                    return Err(bad(
                        format!("output.approvers[{i}]"),
                        format!("duplicate `{a}`"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(bad(
                        format!("output.approvers[{i}]"),
                        format!("`{a}` is not in parties[]"),
                    ));
                }
            }
        }
        if !self.output.approvers.is_empty() && self.output.key.kind != KeyKind::Ccr {
            return Err(bad(
                "output.key.type".into(),
                "output approval needs a ccr broker to hold the output key (type `ccr`)".into(),
            ));
        }
        self.check_names()?;
        if self.max_runs == Some(0) {
            return Err(bad("maxRuns".into(), "must be at least 1".into()));
        }
        let hex_part = self.pipeline_digest.strip_prefix("sha256:");
        if !hex_part.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad(
                "pipelineDigest".into(),
                "expected \"sha256:\" and 64 hex characters".into(),
            ));
        }
        if self.expiry_time <= self.start_time {
            return Err(bad("expiryTime".into(), "not after startTime".into()));
        }
        self.release_policy
            .check()
            .map_err(|e| bad("releasePolicy".into(), e.to_string()))?;
        Ok(())
    }

    /// `allowedFrameworks` and `allowedModelFormats` name only what ccr knows.
    fn check_names(&self) -> Result<(), PolicyError> {
        let known = |field: &str, got: &Option<Vec<String>>, names: &[&str]| {
            for (i, n) in got.iter().flatten().enumerate() {
                if !names.contains(&n.as_str()) {
                    return Err(PolicyError::Contract {
                        field: format!("{field}[{i}]"),
                        reason: format!("unknown `{n}` (known: {})", names.join(", ")),
                    });
                }
            }
            Ok(())
        };
        known("allowedFrameworks", &self.allowed_frameworks, FRAMEWORKS)?;
        known(
            "allowedModelFormats",
            &self.allowed_model_formats,
            MODEL_FORMATS,
        )
    }

    /// The contract as JSON without `signatures`.
    fn unsigned_value(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| unreachable!("serialises"));
        if let Value::Object(m) = &mut v {
            m.remove("signatures");
        }
        v
    }

    /// The contract digest every party signs: SHA-256 of the JCS (RFC 8785) form of the
    /// contract without its `signatures` field (32 bytes).
    pub fn digest(&self) -> [u8; 32] {
        jcs_sha256(&self.unsigned_value())
    }

    /// The launch digest that goes into a sim measurement: as [`Contract::digest`] but also
    /// without `releasePolicy` (which may pin the measurement). 32 bytes.
    pub fn launch_digest(&self) -> [u8; 32] {
        let mut v = self.unsigned_value();
        if let Value::Object(m) = &mut v {
            m.remove("releasePolicy");
        }
        jcs_sha256(&v)
    }

    /// The privacy budget for a dataset, if the contract sets one.
    pub fn privacy_for(&self, dataset_id: &str) -> Option<&Privacy> {
        self.constraints
            .iter()
            .flat_map(|c| c.privacy.iter())
            .find(|p| p.dataset == dataset_id)
    }

    /// Checks validity at `now`, every party's signature, and that no non-party signed.
    ///
    /// # Errors
    /// [`PolicyError::NotYetValid`], [`PolicyError::Expired`],
    /// [`PolicyError::MissingSignature`] naming the party, [`PolicyError::BadSignature`].
    pub fn verify(&self, now: DateTime<Utc>) -> Result<VerifiedContract, PolicyError> {
        if now < self.start_time {
            return Err(PolicyError::NotYetValid {
                start: self.start_time.to_rfc3339(),
            });
        }
        if now >= self.expiry_time {
            return Err(PolicyError::Expired {
                expiry: self.expiry_time.to_rfc3339(),
            });
        }
        let digest = self.digest();
        for s in &self.signatures {
            let party = self
                .parties
                .iter()
                .find(|p| p.id == s.party)
                .ok_or_else(|| PolicyError::BadSignature {
                    party: s.party.clone(),
                    reason: "not a party to the contract".into(),
                })?;
            let key = crate::sign::PublicKey::from_jwk(&party.public_key)?;
            crate::sign::verify_detached(&key, &s.jws, &digest).map_err(|e| {
                PolicyError::BadSignature {
                    party: s.party.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        for p in &self.parties {
            if !self.signatures.iter().any(|s| s.party == p.id) {
                return Err(PolicyError::MissingSignature {
                    party: p.id.clone(),
                });
            }
        }
        Ok(VerifiedContract {
            contract: self.clone(),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::PrivateKey;
    use serde_json::json;

    fn signed() -> (Value, Vec<PrivateKey>) {
        let a = PrivateKey::generate("ed25519").unwrap();
        let b = PrivateKey::generate("p256").unwrap();
        let mut c = json!({
            "id": "c", "schemaVersion": "0.1",
            "startTime": "2026-01-01T00:00:00Z", "expiryTime": "2030-01-01T00:00:00Z",
            "tdc": "b", "tdps": ["a"],
            "parties": [{"id": "a", "role": "tdp", "publicKey": a.public_key().to_jwk()},
                        {"id": "b", "role": "tdc", "publicKey": b.public_key().to_jwk()}],
            "datasets": [{"id": "d", "name": "d", "provider": "a",
                "key": {"type": "ccr", "properties": {"kid": "r/k/d", "authority": {"endpoint": "local"}}}}],
            "purpose": "TRAINING",
            "constraints": [{"privacy": [{"dataset": "d", "epsilon_threshold": "7.5", "delta": "0.01"}]}],
            "pipelineDigest": format!("sha256:{}", "ab".repeat(32)),
            "output": {"id": "o", "key": {"type": "ccr", "properties": {"kid": "r/k/o", "authority": {"endpoint": "local"}}}},
            "releasePolicy": {"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "sim"}]},
            "signatures": []
        });
        let d = Contract::from_json(c.to_string().as_bytes())
            .unwrap()
            .digest();
        c["signatures"] = json!([{"party": "a", "jws": a.sign_detached("a", &d)},
                                 {"party": "b", "jws": b.sign_detached("b", &d)}]);
        (c, vec![a, b])
    }

    fn now() -> DateTime<Utc> {
        "2027-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn depa_numbers_written_as_strings_are_typed() {
        let (c, _) = signed();
        let c = Contract::from_json(c.to_string().as_bytes()).unwrap();
        assert_eq!(c.privacy_for("d").unwrap().epsilon_threshold, 7.5);
        assert_eq!(c.privacy_for("d").unwrap().delta, 0.01);
    }

    #[test]
    fn signed_contract_verifies_and_key_order_does_not_change_the_digest() {
        let (c, _) = signed();
        let parsed = Contract::from_json(c.to_string().as_bytes()).unwrap();
        parsed.verify(now()).unwrap();
        let pretty = serde_json::to_string_pretty(&c).unwrap();
        assert_eq!(
            Contract::from_json(pretty.as_bytes()).unwrap().digest(),
            parsed.digest()
        );
    }

    #[test]
    fn expiry_missing_and_foreign_signatures_are_refused() {
        let (c, keys) = signed();
        let parsed = Contract::from_json(c.to_string().as_bytes()).unwrap();
        assert!(matches!(
            parsed.verify("2031-01-01T00:00:00Z".parse().unwrap()),
            Err(PolicyError::Expired { .. })
        ));
        assert!(matches!(
            parsed.verify("2025-01-01T00:00:00Z".parse().unwrap()),
            Err(PolicyError::NotYetValid { .. })
        ));
        let mut one = c.clone();
        one["signatures"].as_array_mut().unwrap().pop();
        let e = Contract::from_json(one.to_string().as_bytes())
            .unwrap()
            .verify(now())
            .unwrap_err();
        assert!(
            matches!(&e, PolicyError::MissingSignature { party } if party == "b"),
            "{e}"
        );
        let mut foreign = c;
        let d = parsed.digest();
        foreign["signatures"][1] = json!({"party": "b", "jws": keys[0].sign_detached("b", &d)});
        let e = Contract::from_json(foreign.to_string().as_bytes())
            .unwrap()
            .verify(now())
            .unwrap_err();
        assert!(
            matches!(&e, PolicyError::BadSignature { party, .. } if party == "b"),
            "{e}"
        );
    }

    fn checked(c: &Value) -> Result<VerifiedContract, PolicyError> {
        // Semantic checks only: signatures do not matter here.
        let c = Contract::from_json(c.to_string().as_bytes())?;
        Ok(VerifiedContract {
            digest: c.digest(),
            contract: c,
        })
    }

    fn pipeline(c: &mut Value, train: &str, private: bool) -> Value {
        let p = json!({"pipeline": [
            {"name": "SparkJoin", "config": {"datasets": [{"id": "d", "name": "d"}]}},
            {"name": train, "config": {"is_private": private}}]});
        c["pipelineDigest"] = json!(pipeline_digest(&p));
        p
    }

    #[test]
    fn frameworks_formats_dp_required_runs_and_approvers_are_checked() {
        let (mut c, _) = signed();
        let refused = |c: &Value, p: &Value| {
            checked(c)
                .unwrap()
                .check_pipeline(p)
                .unwrap_err()
                .to_string()
        };
        c["allowedFrameworks"] = json!(["Train_DL"]);
        let p = pipeline(&mut c, "Train_ML", false);
        let e = refused(&c, &p);
        assert!(
            e.contains("pipeline[1].name") && e.contains("allowedFrameworks"),
            "{e}"
        );
        let p = pipeline(&mut c, "Train_DL", false);
        checked(&c).unwrap().check_pipeline(&p).unwrap();

        c["constraints"][0]["privacy"][0]["dp_required"] = json!(true);
        let p = pipeline(&mut c, "Train_DL", false);
        let e = refused(&c, &p);
        assert!(
            e.contains("pipeline[1].config.is_private") && e.contains("`d` requires DP"),
            "{e}"
        );
        let p = pipeline(&mut c, "Train_DL", true);
        checked(&c).unwrap().check_pipeline(&p).unwrap();

        c["allowedModelFormats"] = json!(["ONNX"]);
        let v = checked(&c).unwrap();
        assert!(
            v.check_model_format("Safetensors")
                .unwrap_err()
                .to_string()
                .contains("allowedModelFormats")
        );
        v.check_model_format("ONNX").unwrap();

        for (edit, field) in [
            (
                json!({"allowedFrameworks": ["Train_Spark"]}),
                "allowedFrameworks[0]",
            ),
            (
                json!({"allowedModelFormats": ["pickle"]}),
                "allowedModelFormats[0]",
            ),
            (json!({"maxRuns": 0}), "maxRuns"),
        ] {
            let mut bad = c.clone();
            for (k, v) in edit.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let e = checked(&bad).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let mut bad = c.clone();
        bad["output"]["approvers"] = json!(["a", "mallory"]);
        let e = checked(&bad).unwrap_err().to_string();
        assert!(
            e.contains("output.approvers[1]") && e.contains("mallory"),
            "{e}"
        );
        bad["output"]["approvers"] = json!(["a"]);
        bad["output"]["key"]["type"] = json!("azure");
        assert!(
            checked(&bad)
                .unwrap_err()
                .to_string()
                .contains("output.key.type")
        );
        bad["output"]["key"]["type"] = json!("ccr");
        assert_eq!(
            checked(&bad).unwrap().contract().output.approvers,
            vec!["a"]
        );
    }

    #[test]
    fn a_luks2_image_pin_is_read_and_checked() {
        let sha = "ab".repeat(32);
        let (mut c, _) = signed();
        c["datasets"][0]["key"]["properties"]["image_format"] = json!("luks2");
        c["datasets"][0]["url"] = json!("https://acct.blob.core.windows.net/a/data.img");
        c["datasets"][0]["imageSha256"] = json!(sha);
        c["datasets"][0]["imageSize"] = json!(50331648u64);
        let parsed = Contract::from_json(c.to_string().as_bytes()).unwrap();
        let d = &parsed.datasets[0];
        assert_eq!(d.key.properties.image_format, ImageFormat::Luks2);
        assert_eq!(d.image_pin(), Some(([0xab; 32], 50331648)));
        assert_eq!(d.image_file_name(), "data.img");
        let mut unpinned = d.clone();
        unpinned.image_sha256 = None;
        unpinned.image_size = None;
        assert_eq!(unpinned.image_pin(), None);
        unpinned.url = "file://images/hospital_a/".into();
        assert_eq!(unpinned.image_file_name(), "data.img");
        let refused = |c: &Value| {
            Contract::from_json(c.to_string().as_bytes())
                .unwrap_err()
                .to_string()
        };
        // Half a pin: the schema and the check both name the missing field.
        let mut half = c.clone();
        half["datasets"][0]
            .as_object_mut()
            .unwrap()
            .remove("imageSize");
        let e = refused(&half);
        assert!(e.contains("datasets[0]") && e.contains("imageSize"), "{e}");
        let mut upper = c.clone();
        upper["datasets"][0]["imageSha256"] = json!("AB".repeat(32));
        let e = refused(&upper);
        assert!(e.contains("datasets[0].imageSha256"), "{e}");
        // A pin on a ccr sealed image is refused: its AEAD authenticates it.
        let mut sealed = c.clone();
        sealed["datasets"][0]["key"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("image_format");
        let e = refused(&sealed);
        assert!(
            e.contains("datasets[0].imageSha256") && e.contains("ccr sealed image"),
            "{e}"
        );
        let mut other = c;
        other["datasets"][0]["key"]["properties"]["image_format"] = json!("luks1");
        let e = refused(&other);
        assert!(e.contains("datasets[0].key.properties.image_format"), "{e}");
    }

    #[test]
    fn a_threshold_key_is_read_and_checked() {
        let (mut c, _) = signed();
        let share = |kind: &str, kid: &str, commit: &str| {
            json!({"type": kind, "properties": {"kid": kid, "authority": {"endpoint": "local"},
                "endpoint": ""}, "commitment": commit.repeat(32)})
        };
        c["datasets"][0]["key"] = json!({"type": "threshold", "properties": {"kid": "a-dek", "k": 2,
            "shares": [share("ccr", "ccr/share/1", "a1"), share("azure", "share-2", "b2"),
                       share("gcp", "projects/p/locations/l/keyRings/r/cryptoKeys/k", "c3")]}});
        let parsed = Contract::from_json(c.to_string().as_bytes()).unwrap();
        let key = &parsed.datasets[0].key;
        assert_eq!(key.kind, KeyKind::Threshold);
        assert_eq!(key.properties.k, Some(2));
        let shares = key.properties.shares.as_ref().unwrap();
        assert_eq!(shares[1].key_ref().kind, KeyKind::Azure);
        assert_eq!(shares[2].commitment, "c3".repeat(32));
        let refused = |edit: &dyn Fn(&mut Value)| {
            let mut v = c.clone();
            edit(&mut v);
            Contract::from_json(v.to_string().as_bytes())
                .unwrap_err()
                .to_string()
        };
        for (edit, want) in [
            (
                Box::new(|v: &mut Value| v["datasets"][0]["key"]["properties"]["k"] = json!(4))
                    as Box<dyn Fn(&mut Value)>,
                "datasets[0].key.properties.k",
            ),
            (
                Box::new(|v| {
                    v["datasets"][0]["key"]["properties"]["shares"][1]["commitment"] =
                        json!("XY".repeat(32))
                }),
                "commitment",
            ),
            (
                Box::new(|v| {
                    v["datasets"][0]["key"]["properties"]["shares"][2] =
                        v["datasets"][0]["key"]["properties"]["shares"][0].clone()
                }),
                "datasets[0].key.properties.shares[2].properties",
            ),
            (
                Box::new(|v| {
                    v["datasets"][0]["key"]["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("k");
                }),
                "k",
            ),
            (
                Box::new(|v| {
                    v["output"]["key"] = v["datasets"][0]["key"].clone();
                }),
                "output.key",
            ),
        ] {
            let e = refused(&*edit);
            assert!(e.contains(want), "`{want}` in: {e}");
        }
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named_by_path() {
        let (mut c, _) = signed();
        c["datasets"][0]["key"]["properties"]["kidd"] = json!("x");
        let e = Contract::from_json(c.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("datasets[0].key.properties"), "{e}");
        let (mut c, _) = signed();
        c["constraints"][0]["privacy"][0]["delta"] = json!("lots");
        let e = Contract::from_json(c.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("constraints[0].privacy[0].delta"), "{e}");
    }

    #[test]
    fn mutated_contracts_are_errors_not_panics() {
        use rand::{Rng, SeedableRng};
        let (c, _) = signed();
        let s = c.to_string().into_bytes();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..2000 {
            let mut m = s.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..m.len());
                m[i] = rng.r#gen();
            }
            if let Ok(c) = Contract::from_json(&m) {
                let _ = c.verify(now());
            }
        }
    }
}
