//! The main job end to end with the breast-cancer dataset keys held one in Azure Key Vault and
//! one in GCP Cloud KMS (local stand-ins that verify what they are sent, over HTTPS on
//! loopback), released through ccr-init's real client code; the output key stays with the ccr
//! broker.

mod common;

#[path = "../../images/tests/support/luks2.rs"]
mod luks2_support;

#[path = "../../keybroker/tests/support/mod.rs"]
mod support;

mod clouds;

use std::path::PathBuf;

use ccr_keybroker::azure;
use ccr_keybroker::cloud_http::{CloudClient, RetryPolicy};
use clouds::*;
use common::*;
use serde_json::{Value, json};

#[test]
fn breast_cancer_with_one_key_in_key_vault_and_one_in_cloud_kms() {
    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![IMAGE.into()]);
    let s = scenario(&w, &c, None);
    let out = w.work.join("bc-out");
    let o = run(&s, &c, &w.broker, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("key released by Azure Key Vault"), "{log}");
    assert!(log.contains("DEK released by Cloud KMS"), "{log}");
    assert_eq!(last_log_line(&o)["message"], "training complete");
    let dir = unseal(&s, &out);
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.93, "accuracy {acc}");
    // The ccr broker released the output key only: the dataset keys came from the clouds.
    let audit = w.broker.audit();
    let released: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "allow" && r["resource"] != "attest")
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(released, ["ccr/output/bc-model"], "{audit}");
    // The run report says which service released which key.
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let said: Vec<(&str, &str, &str)> = run["key_release"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap(),
                k["type"].as_str().unwrap(),
                k["kid"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("dataset bc-hospital-a", "azure", "bc-hospital-a"),
            ("dataset bc-hospital-b", "gcp", KMS_KEY),
            ("output", "ccr", "ccr/output/bc-model"),
        ]
    );
}

#[test]
fn a_key_vault_policy_denial_stops_the_job_naming_the_key() {
    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![IMAGE.into()]);
    let s = scenario(&w, &c, Some(&"00".repeat(48)));
    let out = w.work.join("bc-out");
    let o = run(&s, &c, &w.broker, &out);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = last_log_line(&o)["error"].as_str().unwrap().to_string();
    assert!(
        err.starts_with("key release for dataset bc-hospital-a (bc-hospital-a): Azure: 403 Forbidden: Target environment attestation statement does not satisfy the key's release policy"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_kms_permission_denial_stops_the_job_naming_the_key() {
    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![]);
    let s = scenario(&w, &c, None);
    let out = w.work.join("bc-out");
    let o = run(&s, &c, &w.broker, &out);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = last_log_line(&o)["error"].as_str().unwrap().to_string();
    assert!(
        err.starts_with(&format!("key release for dataset bc-hospital-b ({KMS_KEY}): GCP: 403 PERMISSION_DENIED: Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied")),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn the_key_vault_policy_ccr_derives_pins_host_data_compliance_and_vmpl() {
    let p: Value = serde_json::from_str(&ccr_ok(
        &[],
        &[
            "policy",
            "derive",
            "--for",
            "azure",
            "--maa",
            "https://shared.weu.attest.azure.net",
            "--host-data",
            &"ab".repeat(32),
        ],
    ))
    .unwrap();
    assert_eq!(
        p["anyOf"][0]["authority"],
        "https://shared.weu.attest.azure.net"
    );
    let claims: Vec<(&str, &Value)> = p["anyOf"][0]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["claim"].as_str().unwrap(), &c["equals"]))
        .collect();
    assert!(claims.contains(&("x-ms-sevsnpvm-hostdata", &json!("ab".repeat(32)))));
    assert!(claims.contains(&("x-ms-compliance-status", &json!("azure-compliant-uvm"))));
    assert!(claims.contains(&("x-ms-sevsnpvm-vmpl", &json!(0))));
}

#[test]
fn an_importkey_rsa_key_is_imported_and_its_dek_derived() {
    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![]);
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let rk = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pem_path = w.work.join("private_key.pem");
    std::fs::write(
        &pem_path,
        rk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let pfile = w.work.join("p.json");
    std::fs::write(
        &pfile,
        json!({"version": "1.0.0", "anyOf": [{"authority": c.az.base, "allOf": [
            {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]})
        .to_string(),
    )
    .unwrap();
    let client = CloudClient::new(
        "Azure",
        RetryPolicy::default(),
        Some(std::slice::from_ref(&c.az.ca)),
    );
    let bearer = azure::imds_token(&client, &c.az.base, azure::VAULT_RESOURCE, None).unwrap();
    let salt = "0f".repeat(32);
    let dek_out = w.work.join("derived.dek");
    let said = ccr_ok(
        &[
            ("CCR_CLOUD_CA", c.ca_pem.to_str().unwrap().to_string()),
            ("CCR_AZURE_TOKEN", bearer.to_string()),
        ],
        &[
            "keys",
            "import",
            "--azure",
            "--vault",
            &c.az.base,
            "--name",
            "rsa-key",
            "--rsa-key",
            pem_path.to_str().unwrap(),
            "--salt",
            &salt,
            "--dek-out",
            dek_out.to_str().unwrap(),
            "--policy",
            pfile.to_str().unwrap(),
        ],
    );
    assert!(said.contains("imported"), "{said}");
    let want = ccr_keybroker::akv::dek_from_rsa_private_key(
        rk.to_pkcs8_der().unwrap().as_bytes(),
        &hex::decode(&salt).unwrap(),
        b"rsa-key",
    )
    .unwrap();
    assert_eq!(std::fs::read(&dek_out).unwrap(), want.to_vec());
}

/// One hospital's LUKS2 image as DEPA's `generatefs.sh` makes it: its CSV in an ext4 file system,
/// a fresh 32-byte key file. Returns the image, the key file, its SHA-256 (hex) and size.
fn depa_image(work: &std::path::Path, name: &str, csv: &str) -> (PathBuf, PathBuf, String, u64) {
    use sha2::Digest;
    let src = work.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(examples().join("data").join(csv), src.join(csv)).unwrap();
    let key = work.join(format!("{name}.keyfile"));
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    std::fs::write(&key, k).unwrap();
    let img = work.join(format!("{name}.img"));
    luks2_support::make_image(&img, &src, 16, &key, &luks2_support::DEPA);
    let bytes = std::fs::read(&img).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    (img, key, sha, bytes.len() as u64)
}

/// Breast cancer as DEPA deploys it: both hospitals' data in LUKS2 images (generatefs.sh's
/// parameters), pinned by SHA-256 in the contract, each 32-byte key file imported into the Key
/// Vault stand-in and released to the runtime; the metrics are those of the same job on ccr's
/// sealed images (within ccr's run-to-run variation). Then one flipped ciphertext byte in hospital B's image: refused by the pin;
/// then the wrong key file in Key Vault: no keyslot opens; each exit 5, nothing written.
#[test]
fn breast_cancer_from_depa_luks2_images_with_key_files_in_key_vault() {
    if luks2_support::tools().is_none() {
        return;
    }
    // Today's run, from ccr sealed images through the ccr broker.
    let today = world();
    let ts = setup_scenario(&today, &Setup::breast_cancer());
    let out = today.work.join("bc-out");
    let o = run_init(&ts, &today.broker.url, &today.broker.pin, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = metrics(&unseal(&ts, &out));

    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![]);
    let work = &w.work;
    let hospitals = [
        (
            "hospital_a",
            "bc-hospital-a",
            "breast_cancer_hospital_a.csv",
        ),
        (
            "hospital_b",
            "bc-hospital-b",
            "breast_cancer_hospital_b.csv",
        ),
    ];
    let made: Vec<_> = hospitals
        .iter()
        .map(|(name, _, csv)| depa_image(work, name, csv))
        .collect();
    let az_base = c.az.base.clone();
    let pins: Vec<(String, u64)> = made.iter().map(|m| (m.2.clone(), m.3)).collect();
    let edit = move |v: &mut Value| {
        for (i, id) in ["bc-hospital-a", "bc-hospital-b"].iter().enumerate() {
            v["datasets"][i]["key"] = json!({"type": "azure", "properties": {
                "kid": id, "authority": {"endpoint": az_base}, "endpoint": az_base,
                "image_format": "luks2"}});
            v["datasets"][i]["url"] = json!(format!("https://storage.invalid/{id}/data.img"));
            v["datasets"][i]["imageSha256"] = json!(pins[i].0);
            v["datasets"][i]["imageSize"] = json!(pins[i].1);
        }
    };
    let mut setup = Setup::breast_cancer();
    setup.edit_contract_early = &edit;
    let s = common::setup(work, &work.join("sim"), &w.broker, &setup);
    let measurement = sim_measurement(&s);
    for ((name, id, _), (img, key, _, _)) in hospitals.iter().zip(&made) {
        // The provider uploads data.img (here: the dataset's folder holds it) and imports its
        // key file into Key Vault.
        let dir = s.images.join(name);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::rename(img, dir.join("data.img")).unwrap();
        akv_import(&c, &s, id, key, &measurement);
    }
    let out = work.join("bc-out");
    let o = run(&s, &c, &w.broker, &out);
    let log = stderr(&o);
    assert!(o.status.success(), "ccr-init failed:\n{log}");
    assert_eq!(
        log.matches("LUKS2 image matches the contract's imageSha256")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("key released by Azure Key Vault").count(),
        2,
        "{log}"
    );
    // The same rows and pipeline as the sealed-image run. Under a loaded machine the two runs
    // have given different test metrics (accuracy 0.963 vs 0.972 on 109 rows): training on
    // identical inputs is not bit-reproducible (not caused by LUKS2), so they agree within 0.03.
    let got = metrics(&unseal(&s, &out));
    assert_eq!(got["test"]["n"], want["test"]["n"]);
    for k in ["accuracy", "roc_auc", "f1"] {
        let (g, w) = (
            got["test"][k].as_f64().unwrap(),
            want["test"][k].as_f64().unwrap(),
        );
        assert!(
            (g - w).abs() <= 0.03 && g >= 0.93,
            "{k}: from LUKS2 images {g}, from sealed images {w}"
        );
    }

    // One flipped ciphertext byte (in the data segment, past the 16 MiB header area).
    let img = s.images.join("hospital_b").join("data.img");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[(16 << 20) + 4096 * 40 + 7] ^= 0x01;
    std::fs::write(&img, &bytes).unwrap();
    let out2 = work.join("bc-out-2");
    let o = run(&s, &c, &w.broker, &out2);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = last_log_line(&o)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("bc-hospital-b")
            && err.contains("image pin: the image's SHA-256 is")
            && err.contains(&pins_b(&made)),
        "{err}"
    );
    assert!(!out2.exists(), "nothing is written");

    // The image back as made, but hospital B registered another key file in Key Vault: the
    // released key opens no keyslot.
    bytes[(16 << 20) + 4096 * 40 + 7] ^= 0x01;
    std::fs::write(&img, &bytes).unwrap();
    let other = work.join("other.keyfile");
    std::fs::write(&other, [0x11u8; 32]).unwrap();
    akv_import(&c, &s, "bc-hospital-b", &other, &measurement);
    let out3 = work.join("bc-out-3");
    let o = run(&s, &c, &w.broker, &out3);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let err = last_log_line(&o)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("bc-hospital-b") && err.contains("the key file opens no keyslot (wrong key)"),
        "{err}"
    );
    assert!(!out3.exists(), "nothing is written");
}

fn pins_b(made: &[(PathBuf, PathBuf, String, u64)]) -> String {
    format!("the contract pins {}", made[1].2)
}

#[test]
fn a_key_split_two_of_three_across_the_broker_key_vault_and_cloud_kms() {
    let w = world();
    let c = clouds(&w.work, &w.work.join("sim"), vec![IMAGE.into()]);
    // (case, slots, Key Vault's policy pins this runtime, the run succeeds, shares named)
    type Case = (
        &'static str,
        [Option<usize>; 3],
        bool,
        bool,
        &'static [&'static str],
    );
    let cases: [Case; 7] = [
        ("t-all-up", [Some(1), Some(2), Some(3)], true, true, &[]),
        ("t-vault-down", [Some(1), None, Some(3)], true, true, &[]),
        ("t-kms-down", [Some(1), Some(2), None], true, true, &[]),
        ("t-broker-down", [None, Some(2), Some(3)], true, true, &[]),
        (
            "t-vault-denies",
            [Some(1), Some(2), Some(3)],
            false,
            true,
            &[],
        ),
        (
            "t-kms-wrong-share",
            [None, Some(2), Some(1)],
            true,
            false,
            &["share 1 (ccr ccr/share/a-1)", "share 3 (gcp "],
        ),
        (
            "t-two-fail",
            [None, Some(2), Some(3)],
            false,
            false,
            &["share 1 (ccr ccr/share/a-1)", "share 2 (azure a-share-2)"],
        ),
    ];
    for (case, slots, akv_ok, ok, named) in cases {
        let s = threshold_scenario(&w, &c, case, slots, akv_ok);
        let out = w.work.join(format!("{case}-out"));
        let o = run(&s, &c, &w.broker, &out);
        let log = stderr(&o);
        if ok {
            assert!(o.status.success(), "{case}: {log}");
            assert!(log.contains("threshold key rebuilt"), "{case}: {log}");
            let dir = unseal(&s, &out);
            let acc = metrics(&dir)["test"]["accuracy"].as_f64().unwrap();
            assert!(acc >= 0.93, "{case}: accuracy {acc}");
            // The run report says which shares were used; a share that was not released (or
            // not wanted by its service's policy) is never among them.
            let run: Value =
                serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
            let sources = run["key_release"].as_array().unwrap();
            let a = sources
                .iter()
                .find(|k| k["key"] == "dataset bc-hospital-a")
                .unwrap();
            assert_eq!((&a["type"], &a["k"]), (&json!("threshold"), &json!(2)));
            let shares = a["shares"].as_array().unwrap();
            assert_eq!(shares.len(), 3, "{case}: {a}");
            let valid: Vec<usize> = shares
                .iter()
                .filter(|x| x["outcome"] == "valid")
                .map(|x| x["index"].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(valid.len(), 2, "{case}: {a}");
            for (j, slot) in slots.iter().enumerate() {
                if slot.is_none() || (j == 1 && !akv_ok) {
                    assert!(!valid.contains(&(j + 1)), "{case}: {a}");
                }
            }
            for x in shares.iter().filter(|x| x["outcome"] == "failed") {
                assert!(!x["reason"].as_str().unwrap().is_empty(), "{case}: {a}");
            }
            let b = sources
                .iter()
                .find(|k| k["key"] == "dataset bc-hospital-b")
                .unwrap();
            assert_eq!(b["type"], "ccr", "{b}");
        } else {
            assert_eq!(o.status.code(), Some(4), "{case}: {log}");
            assert!(!out.exists(), "{case}");
            let err = last_log_line(&o)["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for n in named {
                assert!(err.contains(n), "{case}: `{n}` in {err}");
            }
        }
        if case == "t-kms-wrong-share" {
            assert!(log.contains("does not match its commitment"), "{log}");
        }
        // (Key Vault's denial in t-vault-denies is logged only when it answers before the two
        // other shares: the run stops listening once it holds k.)
    }
}
