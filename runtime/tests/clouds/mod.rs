//! The cloud stand-ins of `keybroker/tests/support` set up for the breast-cancer scenario: Key
//! Vault (with IMDS and MAA), Cloud KMS (with STS) and Confidential Space's launcher, over HTTPS
//! on loopback, and the layouts of the dataset keys the tests and the key release benchmark use
//! (`tests/cloud_release.rs`, `benches/key_release.rs`).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ccr_keybroker::azure;
use ccr_keybroker::cloud_http::{CloudClient, RetryPolicy};
use serde_json::{Value, json};

use crate::common::*;
use crate::support;

pub const PROVIDER: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ccr/providers/cs";
pub const KMS_KEY: &str = "projects/hospital-b/locations/global/keyRings/ccr/cryptoKeys/bc";
pub const IMAGE: &str = "sha256:1111222233334444555566667777888899990000aaaabbbbccccddddeeeeffff";

pub struct Clouds {
    pub az: support::azure::Azure,
    pub gcp: support::gcp::Gcp,
    pub launcher: support::launcher::Launcher,
    pub ca_pem: PathBuf,
}

pub fn clouds(dir: &std::path::Path, sim: &std::path::Path, kms_decrypters: Vec<String>) -> Clouds {
    let az = support::azure::start(support::azure::Config {
        sim_roots: ccr_attest::sim::load_roots(sim).unwrap(),
        maa_ttl: 600,
        keys: HashMap::new(),
    });
    let google = Arc::new(support::google::Issuer::new("g1"));
    let mut keys = HashMap::new();
    keys.insert(
        KMS_KEY.to_string(),
        support::gcp::KmsKey {
            decrypters: kms_decrypters,
        },
    );
    let gcp = support::gcp::start(support::gcp::Config {
        jwks: serde_json::from_value(google.jwks()).unwrap(),
        provider: PROVIDER.into(),
        attribute_condition: ccr_ok(
            &[],
            &["policy", "derive", "--for", "gcp", "--image-digest", IMAGE],
        )
        .trim()
        .to_string(),
        keys,
        admin_token: "hospital-b-admin".into(),
    });
    let launcher = support::launcher::start(dir, google, IMAGE);
    let ca_pem = dir.join("cloud-ca.pem");
    std::fs::write(&ca_pem, pem(&az.ca) + &pem(&gcp.ca)).unwrap();
    Clouds {
        az,
        gcp,
        launcher,
        ca_pem,
    }
}

/// Sets up breast-cancer with hospital A's key in Key Vault (release policy pinning
/// `akv_measurement`, default: this runtime's) and hospital B's DEK wrapped by Cloud KMS beside
/// its image; the output key with the ccr broker.
pub fn scenario(w: &World, c: &Clouds, akv_measurement: Option<&str>) -> Scenario {
    let work = &w.work;
    let sim = work.join("sim");
    let az_base = c.az.base.clone();
    let gcp_base = c.gcp.base.clone();
    let edit = move |v: &mut Value| {
        v["datasets"][0]["key"] = json!({"type": "azure", "properties": {
            "kid": "bc-hospital-a", "authority": {"endpoint": az_base}, "endpoint": az_base}});
        v["datasets"][1]["key"] = json!({"type": "gcp", "properties": {
            "kid": KMS_KEY, "authority": {"endpoint": PROVIDER}, "endpoint": gcp_base}});
    };
    let mut setup = Setup::breast_cancer();
    setup.edit_contract_early = &edit;
    let s = crate::common::setup(work, &sim, &w.broker, &setup);
    let measurement = sim_measurement(&s);
    let ca = ("CCR_CLOUD_CA", c.ca_pem.to_str().unwrap().to_string());
    // Hospital A imports its DEK into Key Vault with a release policy for this runtime.
    akv_import(
        c,
        &s,
        "bc-hospital-a",
        &s.keys.join("bc-hospital-a.dek"),
        akv_measurement.unwrap_or(&measurement),
    );
    // Hospital B wraps its DEK with its Cloud KMS key, beside its image.
    ccr_ok(
        &[ca, ("CCR_GCP_TOKEN", "hospital-b-admin".to_string())],
        &[
            "keys",
            "wrap",
            "--gcp",
            "--kms-key",
            KMS_KEY,
            "--dataset",
            "bc-hospital-b",
            "--key",
            s.keys.join("bc-hospital-b.dek").to_str().unwrap(),
            "--image",
            s.images.join("hospital_b").to_str().unwrap(),
            "--kms",
            &c.gcp.base,
        ],
    );
    s
}

/// The sim measurement the scenario's policy pins (the runtime's own).
pub fn sim_measurement(s: &Scenario) -> String {
    let sim_policy: Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("policy.json")).unwrap()).unwrap();
    sim_policy["anyOf"][0]["allOf"][1]["equals"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A provider imports `key` into the Key Vault stand-in as `kid`, with a release policy that
/// pins the sim launch `measurement` (`ccr keys import --azure`).
pub fn akv_import(c: &Clouds, s: &Scenario, kid: &str, key: &std::path::Path, measurement: &str) {
    let client = CloudClient::new(
        "Azure",
        RetryPolicy::default(),
        Some(&[c.az.ca.clone(), c.gcp.ca.clone()]),
    );
    let ca = ("CCR_CLOUD_CA", c.ca_pem.to_str().unwrap().to_string());
    let policy = json!({"version": "1.0.0", "anyOf": [{"authority": c.az.base, "allOf": [
        {"claim": "x-ms-attestation-type", "equals": "sim"},
        {"claim": "x-ms-sevsnpvm-launchmeasurement", "equals": measurement},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false}]}]});
    let pfile = s.dir.join(format!("akv-policy-{kid}.json"));
    std::fs::write(&pfile, policy.to_string()).unwrap();
    let bearer = azure::imds_token(&client, &c.az.base, azure::VAULT_RESOURCE, None).unwrap();
    let said = ccr_ok(
        &[ca, ("CCR_AZURE_TOKEN", bearer.to_string())],
        &[
            "keys",
            "import",
            "--azure",
            "--vault",
            &c.az.base,
            "--name",
            kid,
            "--key",
            key.to_str().unwrap(),
            "--policy",
            pfile.to_str().unwrap(),
        ],
    );
    assert!(
        said.starts_with(&format!("imported {}/keys/{kid}/", c.az.base)),
        "{said}"
    );
}

pub fn run(
    s: &Scenario,
    c: &Clouds,
    broker: &Broker,
    out: &std::path::Path,
) -> std::process::Output {
    init_command(s, &broker.url, &broker.pin, out)
        .env("CCR_CLOUD_CA", &c.ca_pem)
        .env("CCR_AZURE_IMDS", &c.az.base)
        .env("CCR_GCP_STS", &c.gcp.base)
        .env("CCR_CS_SOCKET", &c.launcher.socket)
        .output()
        .unwrap()
}

/// Hospital A's key split 2-of-3 (`ccr keys split`): share 1 at the ccr broker, share 2 in the
/// Key Vault stand-in, share 3 wrapped by the Cloud KMS stand-in beside the image; `slots` says
/// what each service gets: the share of that index (`Some(i)`, possibly another's), or nothing
/// (`None`); `akv_ok` whether Key Vault's release policy pins this runtime's measurement.
pub fn threshold_scenario(
    w: &World,
    c: &Clouds,
    case: &'static str,
    slots: [Option<usize>; 3],
    akv_ok: bool,
) -> Scenario {
    let work = &w.work;
    let keys = work.join(case).join("keys");
    let commitments = split_hospital_a_key(&keys);
    let shares = keys.join("shares");
    let commit = |j: usize| json!(commitments[j]);
    let (az, gcp) = (c.az.base.clone(), c.gcp.base.clone());
    let (c0, c1, c2) = (commit(0), commit(1), commit(2));
    let edit = move |v: &mut Value| {
        v["datasets"][0]["key"] = json!({"type": "threshold", "properties": {"kid": "hospital-a-dek", "k": 2,
            "shares": [
                {"type": "ccr", "properties": {"kid": "ccr/share/a-1", "authority": {"endpoint": "local"}, "endpoint": ""}, "commitment": c0},
                {"type": "azure", "properties": {"kid": "a-share-2", "authority": {"endpoint": az}, "endpoint": az}, "commitment": c1},
                {"type": "gcp", "properties": {"kid": KMS_KEY, "authority": {"endpoint": PROVIDER}, "endpoint": gcp}, "commitment": c2}]}});
    };
    let mut setup = Setup::breast_cancer();
    setup.scenario = case;
    setup.edit_contract_early = &edit;
    let s = setup_from(
        work,
        &w.sim,
        &w.broker,
        &setup,
        &examples().join("breast-cancer"),
    );
    let file = |i: usize| shares.join(format!("share-{i}.key"));
    if let Some(i) = slots[0] {
        ccr_ok(
            &w.broker.env(),
            &[
                "keys",
                "put",
                "--kid",
                "ccr/share/a-1",
                "--key",
                file(i).to_str().unwrap(),
                "--contract",
                s.contract.to_str().unwrap(),
            ],
        );
    }
    if let Some(i) = slots[1] {
        let m = if akv_ok {
            sim_measurement(&s)
        } else {
            "00".repeat(48)
        };
        akv_import(c, &s, "a-share-2", &file(i), &m);
    }
    if let Some(i) = slots[2] {
        let ca = ("CCR_CLOUD_CA", c.ca_pem.to_str().unwrap().to_string());
        ccr_ok(
            &[ca, ("CCR_GCP_TOKEN", "hospital-b-admin".to_string())],
            &[
                "keys",
                "wrap",
                "--gcp",
                "--share",
                "3",
                "--kms-key",
                KMS_KEY,
                "--dataset",
                "bc-hospital-a",
                "--key",
                file(i).to_str().unwrap(),
                "--image",
                s.images.join("hospital_a").to_str().unwrap(),
                "--kms",
                &c.gcp.base,
            ],
        );
    }
    s
}

/// Where hospital A's key is held (hospital B's and the output key stay with the ccr broker).
#[derive(Clone, Copy, Debug)]
pub enum AKey {
    /// Whole, at the ccr broker.
    Broker,
    /// Whole, in the Key Vault stand-in.
    Vault,
    /// Whole, wrapped by the Cloud KMS stand-in beside its image.
    Kms,
    /// Split 2-of-3: a share at each of the three.
    TwoOfThree,
}

/// The breast-cancer scenario `case` with hospital A's key held as `at` says.
pub fn a_key_layout(w: &World, c: &Clouds, case: &'static str, at: AKey) -> Scenario {
    if let AKey::TwoOfThree = at {
        return threshold_scenario(w, c, case, [Some(1), Some(2), Some(3)], true);
    }
    let (az, gcp) = (c.az.base.clone(), c.gcp.base.clone());
    let edit = move |v: &mut Value| match at {
        AKey::Vault => {
            v["datasets"][0]["key"] = json!({"type": "azure", "properties": {
                "kid": "bc-hospital-a", "authority": {"endpoint": az}, "endpoint": az}});
        }
        AKey::Kms => {
            v["datasets"][0]["key"] = json!({"type": "gcp", "properties": {
                "kid": KMS_KEY, "authority": {"endpoint": PROVIDER}, "endpoint": gcp}});
        }
        AKey::Broker | AKey::TwoOfThree => {}
    };
    let mut setup = Setup::breast_cancer();
    setup.scenario = case;
    setup.edit_contract_early = &edit;
    let s = setup_from(
        &w.work,
        &w.sim,
        &w.broker,
        &setup,
        &examples().join("breast-cancer"),
    );
    let dek = s.keys.join("bc-hospital-a.dek");
    match at {
        AKey::Vault => akv_import(c, &s, "bc-hospital-a", &dek, &sim_measurement(&s)),
        AKey::Kms => {
            let ca = ("CCR_CLOUD_CA", c.ca_pem.to_str().unwrap().to_string());
            ccr_ok(
                &[ca, ("CCR_GCP_TOKEN", "hospital-b-admin".to_string())],
                &[
                    "keys",
                    "wrap",
                    "--gcp",
                    "--kms-key",
                    KMS_KEY,
                    "--dataset",
                    "bc-hospital-a",
                    "--key",
                    dek.to_str().unwrap(),
                    "--image",
                    s.images.join("hospital_a").to_str().unwrap(),
                    "--kms",
                    &c.gcp.base,
                ],
            );
        }
        AKey::Broker | AKey::TwoOfThree => {}
    }
    s
}
