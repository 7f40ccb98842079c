//! The JSON release-policy grammar and its Rego translation give the same decision on a corpus
//! of (policy, claims, authority, expected decision) cases: `tests/data/release_corpus.json`,
//! with the Key Vault release policy examples of Microsoft's documentation rewritten by hand
//! (each with the result the document states) and ccr's own policies over ccr's claims.

use ccr_policy::{Decision, RegoPolicy, ReleasePolicy, to_rego};
use serde_json::Value;

#[test]
fn json_and_rego_agree_with_the_expected_decisions() {
    let corpus: Vec<Value> =
        serde_json::from_str(include_str!("data/release_corpus.json")).unwrap();
    assert!(corpus.len() >= 30, "{} cases", corpus.len());
    let from_docs = corpus
        .iter()
        .filter(|c| c["source"].as_str().unwrap().starts_with("Microsoft"))
        .count();
    assert!(
        from_docs >= 10,
        "{from_docs} cases from Microsoft's documentation"
    );
    for c in &corpus {
        let name = c["name"].as_str().unwrap();
        let expect = c["expect"].as_bool().unwrap();
        let authority = c["authority"].as_str().unwrap();
        let policy = ReleasePolicy::from_json(c["policy"].to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let json_says = matches!(policy.evaluate(&c["claims"], authority), Decision::Allow(_));
        assert_eq!(json_says, expect, "JSON grammar on `{name}`");
        let rego = to_rego(&policy);
        let r = RegoPolicy::from_source("policy.rego", &rego)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{rego}"));
        let rego_says = r.evaluate(&c["claims"], authority).unwrap();
        assert_eq!(rego_says, expect, "Rego on `{name}`:\n{rego}");
    }
}

#[test]
fn malformed_rego_is_an_error_with_its_position() {
    let e = RegoPolicy::from_source("bad.rego", "package ccr\n\nallow if {\n  input.x ==\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("Rego: "), "{e}");
    assert!(e.contains("bad.rego:"), "{e}");
}
