//! Release policies in Rego, evaluated with `regorus` (Microsoft's Rego interpreter), over the
//! same claims as the JSON grammar ([`crate::release`]).
//!
//! A Rego release policy is a module whose `data.ccr.allow` is `true` to release; its input is
//! `{"claims": <the flat claims object>, "authority": "<the verifier's name>", "contract":
//! <the contract JSON>, "request": {"resource", "platform", "pipeline_digest", "run"}}` (as
//! Trustee's KBS gives its resource policies the claims and the request); `contract` and
//! `request` are present when the broker evaluates (and with `ccr policy eval --contract
//! --request`). A module may also define `data.ccr.reasons`, a set of strings that a denial
//! reports. [`to_rego`] translates a JSON policy into an
//! equivalent module — including ccr's sim rule: claims of `platform` `sim` satisfy a clause
//! group only through a path that requires `platform` (or `x-ms-attestation-type`) `"sim"`.

use regorus::Engine;
use serde_json::{Value, json};

use crate::error::PolicyError;
use crate::release::{Condition, Group, Node, ReleasePolicy};

/// The rule a Rego release policy must define.
pub const ALLOW_RULE: &str = "data.ccr.allow";

/// A parsed Rego release policy.
#[derive(Clone)]
pub struct RegoPolicy {
    engine: Engine,
}

impl std::fmt::Debug for RegoPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoPolicy").finish_non_exhaustive()
    }
}

impl RegoPolicy {
    /// Parses a Rego module (`package ccr`, defining `allow`).
    ///
    /// # Errors
    /// [`PolicyError::Rego`] with regorus's message, which gives the line and column.
    pub fn from_source(name: &str, rego: &str) -> Result<Self, PolicyError> {
        let mut engine = Engine::new();
        engine
            .add_policy(name.to_string(), rego.to_string())
            .map_err(|e| PolicyError::Rego {
                reason: e.to_string(),
            })?;
        Ok(Self { engine })
    }

    /// Evaluates `data.ccr.allow` with input `{"claims": claims, "authority": authority}`;
    /// an undefined `allow` is a denial.
    ///
    /// # Errors
    /// [`PolicyError::Rego`] when evaluation fails (a runtime error in the policy).
    pub fn evaluate(&self, claims: &Value, authority: &str) -> Result<bool, PolicyError> {
        Ok(self
            .evaluate_input(&json!({"claims": claims, "authority": authority}))?
            .0)
    }

    /// The release decision over a whole `input` document: allow with the trace `Rego
    /// data.ccr.allow is true`, or deny with `data.ccr.reasons` (or `data.ccr.allow is not
    /// true`); an evaluation error is a denial naming it.
    pub fn decide(&self, input: &Value) -> crate::Decision {
        match self.evaluate_input(input) {
            Ok((true, _)) => crate::Decision::Allow(crate::release::Allow {
                trace: vec![format!("Rego {ALLOW_RULE} is true")],
            }),
            Ok((false, r)) if r.is_empty() => {
                crate::Decision::Deny(vec![format!("Rego {ALLOW_RULE} is not true")])
            }
            Ok((false, r)) => crate::Decision::Deny(r),
            Err(e) => crate::Decision::Deny(vec![format!("Rego evaluation failed: {e}")]),
        }
    }

    /// Evaluates `data.ccr.allow` over a whole `input` document (see the module docs) and, on
    /// deny, `data.ccr.reasons` when the module defines it: `(allow, reasons)`.
    ///
    /// # Errors
    /// [`PolicyError::Rego`] when evaluation fails (a runtime error in the policy).
    pub fn evaluate_input(&self, input: &Value) -> Result<(bool, Vec<String>), PolicyError> {
        let mut engine = self.engine.clone();
        let input = input.to_string();
        engine
            .set_input_json(&input)
            .map_err(|e| PolicyError::Rego {
                reason: format!("input: {e}"),
            })?;
        let v = engine
            .eval_rule(ALLOW_RULE.to_string())
            .map_err(|e| PolicyError::Rego {
                reason: e.to_string(),
            })?;
        let allow = v == regorus::Value::from(true);
        let mut reasons = Vec::new();
        if !allow
            && let Ok(r) = engine.eval_rule("data.ccr.reasons".to_string())
            && let Ok(s) = r.to_json_str()
            && let Ok(Value::Array(a)) = serde_json::from_str::<Value>(&s)
        {
            reasons = a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect();
        }
        Ok((allow, reasons))
    }
}

fn lit(v: &Value) -> String {
    v.to_string()
}

fn claim(name: &str) -> String {
    format!("input.claims[{}]", Value::String(name.into()))
}

fn cond_expr(c: &Condition) -> Vec<String> {
    match (&c.equals, &c.at_least) {
        (Some(v), _) => vec![format!("{} == {}", claim(&c.claim), lit(v))],
        (None, Some(n)) => vec![
            format!("is_number({})", claim(&c.claim)),
            format!("{} >= {n}", claim(&c.claim)),
        ],
        (None, None) => vec!["false".into()],
    }
}

fn cond_names_sim(c: &Condition) -> bool {
    (c.claim == "platform" || c.claim == "x-ms-attestation-type")
        && c.equals == Some(Value::String("sim".into()))
}

struct Gen {
    rules: Vec<String>,
    next: usize,
}

impl Gen {
    fn body(lines: &[String]) -> String {
        format!("{{\n\t{}\n}}", lines.join("\n\t"))
    }

    /// Emits the rules of a group and returns its id: `gN_ok` (the group holds, sim rule
    /// included) and `gN_sim` (a satisfying path names sim).
    fn group(&mut self, g: &Group) -> usize {
        let n = self.next;
        self.next += 1;
        for r in ["base", "sim", "ok"] {
            self.rules.push(format!("default g{n}_{r} := false"));
        }
        if g.any_of.is_some() {
            self.rules.push(format!("default g{n}_any := false"));
        }
        let mut base = Vec::new();
        let mut sim_paths: Vec<Vec<String>> = Vec::new();
        if let Some(a) = &g.authority {
            base.push(format!(
                "input.authority == {}",
                lit(&Value::String(a.clone()))
            ));
        }
        for child in g.all_of.iter().flatten() {
            match child {
                Node::Condition(c) => {
                    base.extend(cond_expr(c));
                    if cond_names_sim(c) {
                        sim_paths.push(vec![]);
                    }
                }
                Node::Group(sub) => {
                    let m = self.group(sub);
                    base.push(format!("g{m}_ok"));
                    sim_paths.push(vec![format!("g{m}_sim")]);
                }
            }
        }
        if let Some(any) = &g.any_of {
            for child in any {
                match child {
                    Node::Condition(c) => {
                        let e = cond_expr(c);
                        self.rules.push(format!("g{n}_any if {}", Self::body(&e)));
                        if cond_names_sim(c) {
                            sim_paths.push(e);
                        }
                    }
                    Node::Group(sub) => {
                        let m = self.group(sub);
                        self.rules.push(format!("g{n}_any if g{m}_ok"));
                        sim_paths.push(vec![format!("g{m}_ok"), format!("g{m}_sim")]);
                    }
                }
            }
            base.push(format!("g{n}_any"));
        }
        if base.is_empty() {
            base.push("true".into());
        }
        self.rules
            .push(format!("g{n}_base if {}", Self::body(&base)));
        for p in sim_paths {
            let mut lines = vec![format!("g{n}_base")];
            lines.extend(p);
            self.rules
                .push(format!("g{n}_sim if {}", Self::body(&lines)));
        }
        self.rules.push(format!(
            "g{n}_ok if {}",
            Self::body(&[format!("g{n}_base"), "not is_sim".into()])
        ));
        self.rules.push(format!(
            "g{n}_ok if {}",
            Self::body(&[format!("g{n}_base"), format!("g{n}_sim")])
        ));
        n
    }
}

/// Translates a JSON release policy into an equivalent Rego module (`package ccr`, rule
/// `allow`), for `ccr policy to-rego` and for brokers that take Rego.
pub fn to_rego(p: &ReleasePolicy) -> String {
    let top = Group {
        authority: None,
        all_of: p.all_of.clone(),
        any_of: p.any_of.clone(),
    };
    let mut g = Gen {
        rules: Vec::new(),
        next: 0,
    };
    let root = g.group(&top);
    let mut out = String::from(
        "# Generated by ccr from a JSON release policy (ccr policy to-rego).\n\
         # input: {\"claims\": {...}, \"authority\": \"...\"}\n\
         package ccr\n\nimport rego.v1\n\ndefault allow := false\n\n\
         allow if g",
    );
    out.push_str(&format!("{root}_ok\n\n"));
    out.push_str("is_sim if input.claims.platform == \"sim\"\n\n");
    for r in g.rules {
        out.push_str(&r);
        out.push_str("\n\n");
    }
    out
}
