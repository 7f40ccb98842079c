//! Reference values: what an auditor recomputed for a deployment, per platform, in one file
//! that `ccr policy derive --reference` turns into a release policy and `ccr verify
//! --reference` checks evidence against.
//!
//! ```json
//! {"format": "ccr-reference/1", "platform": "snp",
//!  "values": {"measurement": ["<96 hex>", "<96 hex>"], "host_data": "<64 hex>",
//!             "debug": false, "vmpl": 0, "tcb.snp": {"atLeast": 8}}}
//! ```
//!
//! `values` maps claim names (the verifiers' vocabulary, `ccr_attest::Claims`) to one expected
//! value, a list of accepted values (a rollout), or `{"atLeast": n}` for a minimum. The
//! platform claim is implied by `platform`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::PolicyError;
use crate::release::ReleasePolicy;

/// The file's `format`.
pub const FORMAT: &str = "ccr-reference/1";

/// One expected value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// A minimum: `{"atLeast": n}`.
    AtLeast {
        /// The minimum.
        #[serde(rename = "atLeast")]
        at_least: f64,
    },
    /// Any of these values.
    AnyOf(Vec<Value>),
    /// Exactly this value.
    Equals(Value),
}

/// A reference-values file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceValues {
    /// Always [`FORMAT`].
    pub format: String,
    /// The platform (`snp`, `tdx`, `az-snp-vtpm`, `az-tdx-vtpm`, `gcp-cs`, `sim`).
    pub platform: String,
    /// Claim name → expected.
    pub values: BTreeMap<String, Expected>,
}

impl ReferenceValues {
    /// Parses a reference-values file.
    ///
    /// # Errors
    /// [`PolicyError::Json`] naming the path of the field at fault, and for a wrong `format`, an
    /// empty `values`, an empty list or an object value other than `{"atLeast": n}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        let bad = |path: String, reason: String| PolicyError::Json {
            document: "reference values",
            path,
            reason,
        };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let r: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| bad(e.path().to_string(), e.inner().to_string()))?;
        if r.format != FORMAT {
            return Err(bad("format".into(), format!("expected {FORMAT}")));
        }
        if r.values.is_empty() {
            return Err(bad("values".into(), "empty".into()));
        }
        for (k, v) in &r.values {
            match v {
                Expected::AnyOf(l) if l.is_empty() => {
                    return Err(bad(
                        format!("values.{k}"),
                        "an empty list accepts nothing".into(),
                    ));
                }
                Expected::Equals(Value::Object(_)) => {
                    return Err(bad(
                        format!("values.{k}"),
                        "an object must be {\"atLeast\": n}".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// The release policy that holds exactly when the claims match: `platform` and every value
    /// (a list as an `anyOf` of `equals`), in the JSON grammar ([`crate::release`]).
    ///
    /// # Errors
    /// [`PolicyError`] when the policy does not check (it always should).
    pub fn to_policy(&self) -> Result<ReleasePolicy, PolicyError> {
        let mut all = vec![json!({"claim": "platform", "equals": self.platform})];
        for (k, v) in &self.values {
            all.push(match v {
                Expected::Equals(x) => json!({"claim": k, "equals": x}),
                Expected::AtLeast { at_least } => json!({"claim": k, "atLeast": at_least}),
                Expected::AnyOf(l) => json!({"anyOf": l.iter().map(|x| json!({"claim": k, "equals": x})).collect::<Vec<_>>()}),
            });
        }
        let p = json!({"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": all}]});
        ReleasePolicy::from_json(p.to_string().as_bytes())
    }

    /// Every difference between `claims` (a flat policy input) and these values, each naming the
    /// claim, what the evidence says and what the reference says; empty when all match.
    pub fn differences(&self, claims: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let got = |k: &str| claims.get(k).cloned().unwrap_or(Value::Null);
        if got("platform") != Value::String(self.platform.clone()) {
            out.push(format!(
                "platform: evidence {}, reference {}",
                got("platform"),
                self.platform
            ));
        }
        for (k, v) in &self.values {
            let g = got(k);
            let ok = match v {
                Expected::Equals(x) => &g == x,
                Expected::AnyOf(l) => l.contains(&g),
                Expected::AtLeast { at_least } => g.as_f64().is_some_and(|n| n >= *at_least),
            };
            if !ok {
                let want = match v {
                    Expected::Equals(x) => x.to_string(),
                    Expected::AnyOf(l) => format!("one of {}", Value::Array(l.clone())),
                    Expected::AtLeast { at_least } => format!("at least {at_least}"),
                };
                out.push(format!("{k}: evidence {g}, reference {want}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refv() -> ReferenceValues {
        ReferenceValues::from_json(
            br#"{"format": "ccr-reference/1", "platform": "snp",
                 "values": {"measurement": ["aa", "bb"], "debug": false, "tcb.snp": {"atLeast": 8}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_derived_policy_and_the_check_agree() {
        let r = refv();
        let p = r.to_policy().unwrap();
        for (claims, ok) in [
            (
                json!({"platform": "snp", "measurement": "bb", "debug": false, "tcb.snp": 9}),
                true,
            ),
            (
                json!({"platform": "snp", "measurement": "cc", "debug": false, "tcb.snp": 9}),
                false,
            ),
            (
                json!({"platform": "snp", "measurement": "aa", "debug": true, "tcb.snp": 9}),
                false,
            ),
            (
                json!({"platform": "snp", "measurement": "aa", "debug": false, "tcb.snp": 7}),
                false,
            ),
            (
                json!({"platform": "tdx", "measurement": "aa", "debug": false, "tcb.snp": 9}),
                false,
            ),
        ] {
            let d = r.differences(&claims);
            assert_eq!(d.is_empty(), ok, "{claims}: {d:?}");
            assert_eq!(
                matches!(p.evaluate(&claims, "local"), crate::Decision::Allow(_)),
                ok,
                "{claims}"
            );
        }
        let d = r.differences(
            &json!({"platform": "snp", "measurement": "cc", "debug": false, "tcb.snp": 7}),
        );
        assert_eq!(d.len(), 2);
        assert!(
            d[0].starts_with("measurement: evidence \"cc\", reference one of [\"aa\",\"bb\"]"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("tcb.snp: evidence 7, reference at least 8"),
            "{d:?}"
        );
    }

    #[test]
    fn malformed_files_name_the_field() {
        for (doc, at) in [
            (
                r#"{"format": "x", "platform": "snp", "values": {"a": 1}}"#,
                "format",
            ),
            (
                r#"{"format": "ccr-reference/1", "platform": "snp", "values": {}}"#,
                "values",
            ),
            (
                r#"{"format": "ccr-reference/1", "platform": "snp", "values": {"a": []}}"#,
                "values.a",
            ),
            (
                r#"{"format": "ccr-reference/1", "platform": "snp", "values": {"a": {"min": 1}}}"#,
                "values.a",
            ),
            (
                r#"{"format": "ccr-reference/1", "platform": "snp", "values": {"a": 1}, "x": 1}"#,
                "unknown field `x`",
            ),
        ] {
            let e = ReferenceValues::from_json(doc.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(at), "{doc}: {e}");
        }
    }
}
