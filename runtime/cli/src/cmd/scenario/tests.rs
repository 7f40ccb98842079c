//! The scenario files: DEPA's separate configs consolidate to its own pipeline_config.json; a new
//! scenario's files parse; DEPA's contract templates complete for a local run.

use std::path::Path;

use serde_json::json;

use super::files;

fn depa(rel: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/depa")
        .join(rel);
    p.exists().then_some(p)
}

#[test]
fn depas_separate_config_files_consolidate_to_its_pipeline_config() {
    let Some(covid) = depa("covid/config") else {
        eprintln!("skipped: ../shared/depa is absent");
        return;
    };
    for dir in [
        covid,
        depa("mnist/config").unwrap(),
        depa("cifar10/config").unwrap(),
    ] {
        let merged = files::consolidate(&dir).unwrap();
        let theirs = crate::io::read_json(&dir.join("pipeline_config.json")).unwrap();
        assert_eq!(merged, theirs, "{}", dir.display());
    }
}

#[test]
fn depas_contract_templates_complete_for_a_local_run() {
    let Some(dir) = depa("covid") else {
        eprintln!("skipped: ../shared/depa is absent");
        return;
    };
    let t = crate::io::read_json(&dir.join("contract/contract.json")).unwrap();
    let s = crate::io::read_json(&dir.join("scenario.json")).unwrap();
    let c = files::local_contract(&t, Some(&s), "covid-1-model", Some(&"ab".repeat(32))).unwrap();
    assert_eq!(c["tdps"], json!(["icmr", "cowin", "index"]));
    assert_eq!(c["tdc"], "tdc");
    assert_eq!(
        c["datasets"][1]["key"]["properties"]["kid"],
        "ccr/dataset/216d5cc6-bab8-11ed-afa1-0242ac120002"
    );
    assert_eq!(c["parties"].as_array().unwrap().len(), 4);
    // DEPA's own fields are kept, and the result reads as ccr's contract.
    assert_eq!(c["constraints"], t["constraints"]);
    let parsed: ccr_policy::Contract = serde_json::from_value(c).unwrap();
    assert!(parsed.expiry_time > chrono::Utc::now());
    assert_eq!(
        parsed
            .privacy_for("19517ba8-bab8-11ed-afa1-0242ac120002")
            .unwrap()
            .epsilon_threshold,
        1.5
    );
}

#[test]
fn a_new_scenario_writes_files_that_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("s.json");
    std::fs::write(
        &input,
        json!({"scenario_name": "two-hospitals", "training_framework": "Train_DL", "join_type": "SparkJoin", "model_format": "ONNX",
               "tdps": [{"name": "a", "datasets": [{"name": "ds-a", "id": "id-a", "privacy": true, "epsilon": 2.0, "delta": 1e-5}]},
                        {"name": "b", "datasets": [{"name": "ds-b", "id": "id-b", "privacy": false}]}]})
        .to_string(),
    )
    .unwrap();
    let out = tmp.path().join("two-hospitals");
    super::new::new(&input, Some(out.clone()), false).unwrap();
    let p = files::pipeline(&out.join("config")).unwrap();
    let pipeline = ccr_runtime::pipeline::Pipeline::from_value(&p).unwrap();
    assert!(pipeline.train.is_private);
    assert!(ccr_policy::schema::errors(ccr_runtime::pipeline::SCHEMA, &p).is_empty());
    let t = crate::io::read_json(&out.join("contract/contract.json")).unwrap();
    let c = files::local_contract(&t, None, "m", None).unwrap();
    let parsed: ccr_policy::Contract = serde_json::from_value(c).unwrap();
    assert_eq!(parsed.datasets.len(), 2);
    assert!(
        std::fs::read_to_string(out.join("README.md"))
            .unwrap()
            .contains("ccr dataset seal --id id-a")
    );
    // An existing folder is kept unless --force.
    let e = super::new::new(&input, Some(out.clone()), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--force"), "{e}");
    super::new::new(&input, Some(out), true).unwrap();
}
