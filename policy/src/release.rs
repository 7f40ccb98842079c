//! Release policies in the rego-style JSON grammar of Azure Key Vault release policies.
//!
//! ```json
//! {"version": "1.0.0",
//!  "anyOf": [{"authority": "local",
//!             "allOf": [{"claim": "platform", "equals": "sim"},
//!                       {"claim": "measurement", "equals": "9f…"}]}]}
//! ```
//!
//! The top level has `version` (`1.0.0`) and exactly one of `anyOf` / `allOf`. Each element is
//! either a condition `{"claim": NAME, "equals": VALUE}` or a group with `allOf` or `anyOf` (and
//! optionally `authority`: the group then applies only to claims from that verifier). `equals`
//! compares JSON values exactly (strings case-sensitively, numbers numerically, booleans). This is
//! the grammar of Azure Key Vault's "Secure Key Release policy grammar" document.
//!
//! ccr's extension: `{"claim": NAME, "atLeast": NUMBER}` holds when the claim is a number not
//! below NUMBER — a minimum TCB, for instance `{"claim": "tcb.snp", "atLeast": 22}` or
//! `{"claim": "x-ms-sevsnpvm-microcode-svn", "atLeast": 213}`. Azure Key Vault does not know
//! it: a policy meant for Key Vault keeps to `equals`.
//!
//! **The sim rule.** Claims with `platform: "sim"` satisfy a policy only through a group that
//! itself requires `platform` (or `x-ms-attestation-type`) to equal `"sim"`: a policy that does
//! not name sim can never release to it.
//!
//! Evaluation returns [`Decision`]: on deny, every failing clause by its path
//! (`anyOf[0].allOf[1]: ...`); on allow, an [`Allow`] token that only this module can make.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PolicyError;

/// The only supported `version`.
pub const VERSION: &str = "1.0.0";

/// A release policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Grammar version, `1.0.0`.
    pub version: String,
    /// Satisfied when any element is.
    #[serde(rename = "anyOf", default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<Node>>,
    /// Satisfied when every element is.
    #[serde(rename = "allOf", default, skip_serializing_if = "Option::is_none")]
    pub all_of: Option<Vec<Node>>,
}

/// A clause: a condition on one claim, or a group of clauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Node {
    /// `{"claim": NAME, "equals": VALUE}`.
    Condition(Condition),
    /// `{"authority"?: ..., "allOf"|"anyOf": [...]}`.
    Group(Group),
}

/// A condition on one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The claim's name (see `ccr_attest::Claims::to_policy_input`).
    pub claim: String,
    /// The value it must equal (`null` included: present-and-null is `Some(Null)`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub equals: Option<Value>,
    /// ccr's extension: the number it must be at least (a minimum SVN).
    #[serde(rename = "atLeast", default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<serde_json::Number>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A group of clauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The verifier whose claims this group reads (`local` for ccr's broker, or an MAA host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Satisfied when every element is.
    #[serde(rename = "allOf", default, skip_serializing_if = "Option::is_none")]
    pub all_of: Option<Vec<Node>>,
    /// Satisfied when any element is.
    #[serde(rename = "anyOf", default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<Node>>,
}

/// Proof that a policy allowed a release. Only [`ReleasePolicy::evaluate`] makes one.
#[derive(Debug, Clone)]
pub struct Allow {
    pub(crate) trace: Vec<String>,
}

impl Allow {
    /// The clauses that held, by path.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }
}

/// The outcome of an evaluation.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Release allowed.
    Allow(Allow),
    /// Release denied; the failing clauses, each `path: reason`.
    Deny(Vec<String>),
}

impl Decision {
    /// The deny reasons joined with `; ` (empty when allowed).
    pub fn reason(&self) -> String {
        match self {
            Self::Allow(_) => String::new(),
            Self::Deny(r) => r.join("; "),
        }
    }
}

struct Ctx<'a> {
    claims: &'a Value,
    authority: &'a str,
    sim: bool,
    held: Vec<String>,
    failed: Vec<String>,
}

/// Result of one node: satisfied, and whether the satisfying path named platform sim.
#[derive(Clone, Copy)]
struct Outcome {
    ok: bool,
    names_sim: bool,
}

/// A claim or policy value as it appears in reasons: the full JSON (claims are not secret,
/// and a measurement may differ in its last digit).
fn short(v: &Value) -> String {
    v.to_string()
}

fn names_sim(c: &Condition) -> bool {
    (c.claim == "platform" || c.claim == "x-ms-attestation-type")
        && c.equals == Some(Value::String("sim".into()))
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Ctx<'_> {
    fn condition(&mut self, path: &str, c: &Condition) -> Outcome {
        match self.claims.get(&c.claim) {
            None => {
                self.failed
                    .push(format!("{path}: claim `{}` is absent", c.claim));
                Outcome {
                    ok: false,
                    names_sim: false,
                }
            }
            Some(v) => {
                let (ok, want) = match (&c.equals, &c.at_least) {
                    (Some(e), _) => (values_equal(v, e), short(e)),
                    (None, Some(min)) => (
                        matches!((v.as_f64(), min.as_f64()), (Some(x), Some(m)) if x >= m),
                        format!("at least {min}"),
                    ),
                    (None, None) => (false, "(no comparison)".into()),
                };
                if ok {
                    let op = if c.equals.is_some() { "==" } else { ">=" };
                    let rhs = c
                        .equals
                        .as_ref()
                        .map(short)
                        .or_else(|| c.at_least.as_ref().map(|n| n.to_string()))
                        .unwrap_or_default();
                    self.held.push(format!("{path}: {} {op} {rhs}", c.claim));
                    Outcome {
                        ok: true,
                        names_sim: names_sim(c),
                    }
                } else {
                    self.failed.push(format!(
                        "{path}: claim `{}` is {}, policy requires {want}",
                        c.claim,
                        short(v)
                    ));
                    Outcome {
                        ok: false,
                        names_sim: false,
                    }
                }
            }
        }
    }

    fn all(&mut self, path: &str, nodes: &[Node]) -> Outcome {
        let mut out = Outcome {
            ok: true,
            names_sim: false,
        };
        for (i, n) in nodes.iter().enumerate() {
            let o = self.node(&format!("{path}.allOf[{i}]"), n);
            out.ok &= o.ok;
            out.names_sim |= o.names_sim;
        }
        out
    }

    fn any(&mut self, path: &str, nodes: &[Node]) -> Outcome {
        let mut best = Outcome {
            ok: false,
            names_sim: false,
        };
        for (i, n) in nodes.iter().enumerate() {
            let o = self.node(&format!("{path}.anyOf[{i}]"), n);
            if o.ok && (!best.ok || (o.names_sim && !best.names_sim)) {
                best = o;
            }
        }
        best
    }

    fn node(&mut self, path: &str, n: &Node) -> Outcome {
        match n {
            Node::Condition(c) => self.condition(path, c),
            Node::Group(g) => {
                if let Some(a) = &g.authority
                    && a != self.authority
                {
                    self.failed.push(format!(
                        "{path}: authority `{a}` is not this verifier (`{}`)",
                        self.authority
                    ));
                    return Outcome {
                        ok: false,
                        names_sim: false,
                    };
                }
                let mut out = Outcome {
                    ok: true,
                    names_sim: false,
                };
                if let Some(all) = &g.all_of {
                    let o = self.all(path, all);
                    out.ok &= o.ok;
                    out.names_sim |= o.names_sim;
                }
                if let Some(any) = &g.any_of {
                    let o = self.any(path, any);
                    out.ok &= o.ok;
                    out.names_sim |= o.names_sim;
                }
                if self.sim && out.ok && !out.names_sim {
                    self.failed.push(format!(
                        "{path}: evidence is from the sim platform and this clause group does not require platform == \"sim\""
                    ));
                    out.ok = false;
                }
                out
            }
        }
    }
}

impl ReleasePolicy {
    /// Parses a policy document.
    ///
    /// # Errors
    /// [`PolicyError::Json`] with the path of the field at fault, or [`PolicyError::Release`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let p: Self = serde_path_to_error::deserialize(de).map_err(|e| PolicyError::Json {
            document: "release policy",
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?;
        p.check()?;
        Ok(p)
    }

    /// Structural checks: version, exactly one of `anyOf`/`allOf` at the top, no empty
    /// group, every group has `allOf` or `anyOf`.
    ///
    /// # Errors
    /// [`PolicyError::Release`] naming the path.
    pub fn check(&self) -> Result<(), PolicyError> {
        let bad = |path: String, reason: &str| PolicyError::Release {
            path,
            reason: reason.into(),
        };
        if self.version != VERSION {
            return Err(bad("version".into(), "must be \"1.0.0\""));
        }
        let (name, nodes) = match (&self.any_of, &self.all_of) {
            (Some(a), None) => ("anyOf", a),
            (None, Some(a)) => ("allOf", a),
            _ => return Err(bad("<top>".into(), "needs exactly one of anyOf, allOf")),
        };
        fn walk(path: &str, nodes: &[Node]) -> Result<(), PolicyError> {
            if nodes.is_empty() {
                return Err(PolicyError::Release {
                    path: path.into(),
                    reason: "empty list".into(),
                });
            }
            for (i, n) in nodes.iter().enumerate() {
                if let Node::Condition(c) = n
                    && c.equals.is_some() == c.at_least.is_some()
                {
                    return Err(PolicyError::Release {
                        path: format!("{path}[{i}]"),
                        reason: format!(
                            "condition on `{}` needs exactly one of equals, atLeast",
                            c.claim
                        ),
                    });
                }
                if let Node::Group(g) = n {
                    let p = format!("{path}[{i}]");
                    if g.all_of.is_none() && g.any_of.is_none() {
                        return Err(PolicyError::Release {
                            path: p,
                            reason: "a group needs allOf or anyOf".into(),
                        });
                    }
                    if let Some(a) = &g.all_of {
                        walk(&format!("{p}.allOf"), a)?;
                    }
                    if let Some(a) = &g.any_of {
                        walk(&format!("{p}.anyOf"), a)?;
                    }
                }
            }
            Ok(())
        }
        walk(name, nodes)
    }

    /// Evaluates the policy over `claims` (a flat JSON object) from the verifier `authority`.
    pub fn evaluate(&self, claims: &Value, authority: &str) -> Decision {
        let sim = claims.get("platform") == Some(&Value::String("sim".into()));
        let mut ctx = Ctx {
            claims,
            authority,
            sim,
            held: Vec::new(),
            failed: Vec::new(),
        };
        let top = Group {
            authority: None,
            all_of: self.all_of.clone(),
            any_of: self.any_of.clone(),
        };
        // The top level is evaluated like a group, but its paths start at `anyOf`/`allOf`.
        let out = {
            let mut out = Outcome {
                ok: true,
                names_sim: false,
            };
            if let Some(all) = &top.all_of {
                let o = ctx.all("", all);
                out.ok &= o.ok;
                out.names_sim |= o.names_sim;
            }
            if let Some(any) = &top.any_of {
                let o = ctx.any("", any);
                out.ok &= o.ok;
                out.names_sim |= o.names_sim;
            }
            if sim && out.ok && !out.names_sim {
                ctx.failed.push(
                    "policy: evidence is from the sim platform and the policy does not require platform == \"sim\"".into(),
                );
                out.ok = false;
            }
            out
        };
        let strip = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.strip_prefix('.').map(str::to_string).unwrap_or(s))
                .collect()
        };
        if out.ok {
            Decision::Allow(Allow {
                trace: strip(ctx.held),
            })
        } else {
            Decision::Deny(strip(ctx.failed))
        }
    }

    /// Warnings a policy author should see (the policy still parses): claims no verifier
    /// produces (with the closest known name, by Jaro-Winkler similarity), and groups that can
    /// never hold because an `allOf` requires one claim to equal two different values.
    /// `is_known` says whether a claim name exists; `names` are the fixed names to suggest from.
    pub fn lint(&self, is_known: &dyn Fn(&str) -> bool, names: &[&str]) -> Vec<String> {
        fn walk(
            path: &str,
            nodes: &[Node],
            all: bool,
            is_known: &dyn Fn(&str) -> bool,
            names: &[&str],
            out: &mut Vec<String>,
        ) {
            let mut seen: Vec<(&str, &Value)> = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match n {
                    Node::Condition(c) => {
                        if !is_known(&c.claim) {
                            let best = names
                                .iter()
                                .map(|k| (strsim::jaro_winkler(k, &c.claim), *k))
                                .max_by(|a, b| a.0.total_cmp(&b.0));
                            let hint = match best {
                                Some((score, k)) if score > 0.8 => {
                                    format!("; did you mean `{k}`?")
                                }
                                _ => String::new(),
                            };
                            out.push(format!(
                                "{p}: claim `{}` is not produced by any verifier{hint}",
                                c.claim
                            ));
                        }
                        if let Some(why) = value_never_matches(c) {
                            out.push(format!("{p}: can never hold: {why}"));
                        }
                        if all && let Some(v) = &c.equals {
                            if let Some((_, other)) = seen
                                .iter()
                                .find(|(k, w)| *k == c.claim && !values_equal(v, w))
                            {
                                out.push(format!(
                                    "{p}: can never hold: `{}` must also equal {} in the same allOf",
                                    c.claim,
                                    short(other)
                                ));
                            }
                            seen.push((&c.claim, v));
                        }
                    }
                    Node::Group(g) => {
                        if let Some(a) = &g.all_of {
                            walk(&format!("{p}.allOf"), a, true, is_known, names, out);
                        }
                        if let Some(a) = &g.any_of {
                            walk(&format!("{p}.anyOf"), a, false, is_known, names, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        if let Some(a) = &self.all_of {
            walk("allOf", a, true, is_known, names, &mut out);
        }
        if let Some(a) = &self.any_of {
            walk("anyOf", a, false, is_known, names, &mut out);
        }
        out
    }

    /// The release policy ccr derives for a platform and a reference measurement: the platform,
    /// the measurement, debugging off, and where the platform reports them VMPL 0 (SNP, sim,
    /// Azure SNP CVMs: a report from a less privileged VMPL may come from software beside the
    /// guest's kernel) and TCB status `UpToDate` (TDX and Azure TDX CVMs, from the collateral:
    /// a quote verified without collateral has none, and is denied). Policy authors add
    /// to it; a VMPL 1 report (a VLEK report from an SVSM, say) is denied with `vmpl` named.
    pub fn for_platform(platform: &str, measurement: &str) -> Self {
        let mut all = vec![
            serde_json::json!({"claim": "platform", "equals": platform}),
            serde_json::json!({"claim": "measurement", "equals": measurement}),
            serde_json::json!({"claim": "debug", "equals": false}),
        ];
        match platform {
            "snp" | "sim" | "az-snp-vtpm" => {
                all.push(serde_json::json!({"claim": "vmpl", "equals": 0}));
            }
            "tdx" | "az-tdx-vtpm" => {
                all.push(serde_json::json!({"claim": "tcb_status", "equals": "UpToDate"}));
            }
            _ => {}
        }
        serde_json::from_value(serde_json::json!({
            "version": VERSION,
            "anyOf": [{"authority": "local", "allOf": all}]
        }))
        .unwrap_or_else(|_| unreachable!("static policy parses"))
    }

    /// The default policy of the local broker for keys registered without one: allow only
    /// `snp` evidence at VMPL 0 with debugging off. It never allows `sim`.
    pub fn default_deny_sim() -> Self {
        serde_json::from_value(serde_json::json!({
            "version": VERSION,
            "allOf": [
                {"claim": "platform", "equals": "snp"},
                {"claim": "debug", "equals": false},
                {"claim": "vmpl", "equals": 0}
            ]
        }))
        .unwrap_or_else(|_| unreachable!("static policy parses"))
    }
}

/// The platforms ccr's verifiers name in the `platform` claim.
pub const PLATFORMS: &[&str] = &["sim", "snp", "tdx", "az-snp-vtpm", "az-tdx-vtpm", "gcp-cs"];

/// Why a condition can never hold whatever the evidence, from the fixed shapes of ccr's claims:
/// `platform` is one of [`PLATFORMS`]; `debug` a boolean; `vmpl` an integer 0–3; hex claims
/// (`measurement`, `host_data`, `report_data`, `mrtd`, `rtmr*`) lowercase hex; string claims
/// never compare `atLeast` a number.
fn value_never_matches(c: &Condition) -> Option<String> {
    let hex_claim = matches!(
        c.claim.as_str(),
        "measurement"
            | "host_data"
            | "report_data"
            | "mrtd"
            | "rtmr0"
            | "rtmr1"
            | "rtmr2"
            | "rtmr3"
    );
    if let Some(v) = &c.equals {
        match c.claim.as_str() {
            "platform" if !v.as_str().is_some_and(|p| PLATFORMS.contains(&p)) => {
                return Some(format!(
                    "`platform` is one of {}, never {}",
                    PLATFORMS.join(", "),
                    short(v)
                ));
            }
            "debug" if !v.is_boolean() => {
                return Some(format!("`debug` is true or false, never {}", short(v)));
            }
            "vmpl" if v.as_u64().is_none_or(|n| n > 3) => {
                return Some(format!("`vmpl` is 0 to 3, never {}", short(v)));
            }
            _ if hex_claim
                && !v
                    .as_str()
                    .is_some_and(|h| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))) =>
            {
                return Some(format!(
                    "`{}` is lowercase hex, never {} (write hex in lowercase)",
                    c.claim,
                    short(v)
                ));
            }
            _ => {}
        }
    }
    if c.at_least.is_some() && (hex_claim || matches!(c.claim.as_str(), "platform" | "debug")) {
        return Some(format!(
            "`{}` is not a number: atLeast never holds",
            c.claim
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pol(v: Value) -> ReleasePolicy {
        let p: ReleasePolicy = serde_json::from_value(v).unwrap();
        p.check().unwrap();
        p
    }

    fn sim_claims() -> Value {
        json!({"platform": "sim", "measurement": "aa", "debug": false, "vmpl": 0, "x-ms-attestation-type": "sim"})
    }

    #[test]
    fn policy_naming_sim_allows_matching_sim_claims() {
        let p = pol(
            json!({"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": [
            {"claim": "platform", "equals": "sim"}, {"claim": "measurement", "equals": "aa"}]}]}),
        );
        assert!(matches!(
            p.evaluate(&sim_claims(), "local"),
            Decision::Allow(_)
        ));
    }

    #[test]
    fn policy_not_naming_sim_denies_sim_even_when_every_clause_holds() {
        let p =
            pol(json!({"version": "1.0.0", "allOf": [{"claim": "measurement", "equals": "aa"}]}));
        let d = p.evaluate(&sim_claims(), "local");
        assert!(d.reason().contains("sim platform"), "{}", d.reason());
        assert!(matches!(
            ReleasePolicy::default_deny_sim().evaluate(&sim_claims(), "local"),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn deny_names_the_failing_clause() {
        let p = pol(json!({"version": "1.0.0", "anyOf": [{"allOf": [
            {"claim": "platform", "equals": "sim"}, {"claim": "measurement", "equals": "bb"}]}]}));
        let d = p.evaluate(&sim_claims(), "local");
        assert_eq!(
            d.reason(),
            "anyOf[0].allOf[1]: claim `measurement` is \"aa\", policy requires \"bb\""
        );
    }

    #[test]
    fn wrong_authority_and_absent_claims_deny() {
        let p = pol(
            json!({"version": "1.0.0", "anyOf": [{"authority": "maa.example", "allOf": [
            {"claim": "platform", "equals": "sim"}]}]}),
        );
        assert!(
            p.evaluate(&sim_claims(), "local")
                .reason()
                .contains("authority")
        );
        let p = pol(
            json!({"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "sim"}, {"claim": "nope", "equals": 1}]}),
        );
        assert!(
            p.evaluate(&sim_claims(), "local")
                .reason()
                .contains("`nope` is absent")
        );
    }

    #[test]
    fn malformed_policies_are_rejected_with_a_path() {
        assert!(
            ReleasePolicy::from_json(br#"{"version":"2.0.0","allOf":[{"claim":"a","equals":1}]}"#)
                .is_err()
        );
        assert!(ReleasePolicy::from_json(br#"{"version":"1.0.0"}"#).is_err());
        let e = ReleasePolicy::from_json(br#"{"version":"1.0.0","allOf":[]}"#).unwrap_err();
        assert!(e.to_string().contains("allOf"), "{e}");
        assert!(
            ReleasePolicy::from_json(br#"{"version":"1.0.0","allOf":[{"claim":"a"}]}"#).is_err()
        );
    }

    #[test]
    fn at_least_is_a_minimum_and_needs_a_number() {
        let p = pol(json!({"version": "1.0.0", "allOf": [
            {"claim": "platform", "equals": "snp"},
            {"claim": "tcb.snp", "atLeast": 8}]}));
        let ok = json!({"platform": "snp", "tcb.snp": 8});
        assert!(matches!(p.evaluate(&ok, "local"), Decision::Allow(_)));
        let old = json!({"platform": "snp", "tcb.snp": 7});
        match p.evaluate(&old, "local") {
            Decision::Deny(r) => assert!(r.join(";").contains("at least 8"), "{r:?}"),
            Decision::Allow(_) => panic!("below the minimum"),
        }
        let text = json!({"platform": "snp", "tcb.snp": "9"});
        assert!(matches!(p.evaluate(&text, "local"), Decision::Deny(_)));
        let both: ReleasePolicy = serde_json::from_value(json!({"version": "1.0.0", "allOf": [
            {"claim": "tcb.snp", "atLeast": 8, "equals": 8}]}))
        .unwrap();
        assert!(both.check().is_err());
        let neither: ReleasePolicy =
            serde_json::from_value(json!({"version": "1.0.0", "allOf": [{"claim": "tcb.snp"}]}))
                .unwrap();
        assert!(neither.check().is_err());
    }

    #[test]
    fn lint_names_unknown_claims_with_a_suggestion_and_contradictions() {
        let p = pol(
            json!({"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": [
            {"claim": "x-ms-sevsnpvm-hostdta", "equals": "aa"},
            {"claim": "platform", "equals": "snp"},
            {"claim": "platform", "equals": "tdx"}]}]}),
        );
        let names = ["platform", "x-ms-sevsnpvm-hostdata", "measurement"];
        let w = p.lint(&|n| names.contains(&n), &names);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("did you mean `x-ms-sevsnpvm-hostdata`"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("anyOf[0].allOf[2]: can never hold"),
            "{w:?}"
        );
        let ok =
            pol(json!({"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "snp"}]}));
        assert!(ok.lint(&|n| names.contains(&n), &names).is_empty());
    }

    #[test]
    fn lint_names_values_no_evidence_can_carry() {
        let p = pol(
            json!({"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": [
            {"claim": "platform", "equals": "sev-snp"},
            {"claim": "measurement", "equals": "ABCDEF"},
            {"claim": "debug", "equals": "false"},
            {"claim": "vmpl", "equals": 4},
            {"claim": "measurement", "atLeast": 1},
            {"claim": "vmpl", "equals": 0},
            {"claim": "host_data", "equals": "0a1b"}]}]}),
        );
        let names = ["platform", "measurement", "debug", "vmpl", "host_data"];
        let w = p.lint(&|n| names.contains(&n), &names);
        let at = |i: usize| format!("anyOf[0].allOf[{i}]: can never hold");
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(
            w[0].starts_with(&at(0)) && w[0].contains("never \"sev-snp\""),
            "{w:?}"
        );
        assert!(
            w[1].starts_with(&at(1)) && w[1].contains("lowercase"),
            "{w:?}"
        );
        assert!(
            w[2].starts_with(&at(2)) && w[2].contains("true or false"),
            "{w:?}"
        );
        assert!(w[3].starts_with(&at(3)) && w[3].contains("0 to 3"), "{w:?}");
        assert!(
            w[4].starts_with(&at(4)) && w[4].contains("atLeast"),
            "{w:?}"
        );
        assert!(
            w[5].starts_with(&at(5)) && w[5].contains("must also equal 4"),
            "{w:?}"
        );
    }
}
