//! JSON Schemas (draft 2020-12) of the documents the parties edit, validated with the
//! `jsonschema` crate: `contract.json` ([`CONTRACT_SCHEMA`], published as
//! `policy/schema/contract.schema.json`) and, from the runtime crate, the pipeline config.

use serde_json::Value;

/// The contract's schema.
pub const CONTRACT_SCHEMA: &str = include_str!("../schema/contract.schema.json");

/// Validates `instance` against `schema` and returns every error as `<JSON pointer>: <reason>`
/// (`/` for the document itself). An empty list means valid.
///
/// # Errors
/// A schema that does not compile is reported as the single error `schema: <reason>`.
pub fn errors(schema: &str, instance: &Value) -> Vec<String> {
    let schema: Value = match serde_json::from_str(schema) {
        Ok(s) => s,
        Err(e) => return vec![format!("schema: {e}")],
    };
    let v = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => return vec![format!("schema: {e}")],
    };
    v.iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/".into() } else { at })
        })
        .collect()
}

/// Validates a contract's JSON against [`CONTRACT_SCHEMA`].
pub fn contract_errors(instance: &Value) -> Vec<String> {
    errors(CONTRACT_SCHEMA, instance)
}
