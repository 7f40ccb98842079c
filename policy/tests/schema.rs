//! The published JSON Schemas accept the documents ccr accepts and name the field at fault in
//! the ones it refuses.

use ccr_policy::schema::{contract_errors, errors};
use serde_json::{Value, json};

fn example(name: &str) -> Value {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .join("contract.template.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn the_example_contracts_are_valid() {
    for name in ["breast-cancer", "digits"] {
        assert_eq!(
            contract_errors(&example(name)),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

#[test]
fn the_contract_fields_for_frameworks_formats_runs_dp_and_approvers_are_valid() {
    let mut c = example("breast-cancer");
    c["allowedFrameworks"] = json!(["Train_DL", "Train_ML"]);
    c["allowedModelFormats"] = json!(["Safetensors", "ONNX"]);
    c["maxRuns"] = json!(5);
    c["output"]["approvers"] = json!(["hospital-a"]);
    c["constraints"][0]["privacy"][0]["dp_required"] = json!(true);
    assert_eq!(contract_errors(&c), Vec::<String>::new());
}

#[test]
fn invalid_contracts_are_refused_at_their_field() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("/", Box::new(|c| c["unknownField"] = json!(1))),
        (
            "/pipelineDigest",
            Box::new(|c| c["pipelineDigest"] = json!("sha256:xyz")),
        ),
        (
            "/parties/0/role",
            Box::new(|c| c["parties"][0]["role"] = json!("admin")),
        ),
        (
            "/datasets/0/key/type",
            Box::new(|c| c["datasets"][0]["key"]["type"] = json!("aws")),
        ),
        (
            "/datasets/1/name",
            Box::new(|c| c["datasets"][1]["name"] = json!("drop table")),
        ),
        (
            "/constraints/0/privacy/0/epsilon_threshold",
            Box::new(|c| c["constraints"][0]["privacy"][0]["epsilon_threshold"] = json!("lots")),
        ),
        (
            "/releasePolicy/allOf/0",
            Box::new(|c| {
                c["releasePolicy"]["allOf"][0] = json!({"claim": "x", "equals": 1, "atLeast": 2})
            }),
        ),
        (
            "/releasePolicy/version",
            Box::new(|c| c["releasePolicy"]["version"] = json!("2.0")),
        ),
        (
            "/",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("output");
            }),
        ),
        (
            "/allowedFrameworks/1",
            Box::new(|c| c["allowedFrameworks"] = json!(["Train_DL", "Train_Spark"])),
        ),
        (
            "/allowedModelFormats/0",
            Box::new(|c| c["allowedModelFormats"] = json!(["pickle"])),
        ),
        ("/maxRuns", Box::new(|c| c["maxRuns"] = json!(0))),
        (
            "/output/approvers",
            Box::new(|c| c["output"]["approvers"] = json!(["a", "a"])),
        ),
        (
            "/constraints/0/privacy/0/dp_required",
            Box::new(|c| c["constraints"][0]["privacy"][0]["dp_required"] = json!("yes")),
        ),
    ];
    // Additional properties are reported at their parent, naming the property.
    let mut c = example("breast-cancer");
    c["unknownField"] = json!(1);
    assert!(contract_errors(&c)[0].contains("'unknownField' was unexpected"));
    for (at, edit) in cases {
        let mut c = example("breast-cancer");
        edit(&mut c);
        let errs = contract_errors(&c);
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{at}: "))),
            "{at}: {errs:?}"
        );
    }
}

#[test]
fn a_broken_schema_is_reported_not_panicked() {
    assert!(errors("{", &json!({}))[0].starts_with("schema: "));
}
