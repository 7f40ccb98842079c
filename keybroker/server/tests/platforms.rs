//! The broker with real platforms' evidence: a Confidential Space token through the whole KBS
//! flow (auth, attest, resource), and the claims of every real vector in `../shared/vectors`
//! through the broker's release decision.

mod support;

use std::path::PathBuf;

use support::broker::{contract, start};
use support::google::Issuer;

use ccr_attest::evidence::{Evidence, Trust};
use ccr_attest::report_data::kbs_report_data;
use ccr_keybroker::{BrokerError, KbsClient, RuntimeKey};
use ccr_keybroker_server::{contract_binding, release_decision};
use ccr_policy::{Decision, ReleasePolicy};
use serde_json::{Value, json};

const AUDIENCE: &str = "ccr-kbs";
const IMAGE_DIGEST: &str =
    "sha256:5f3b2b5b0c6f1e6c4a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b";

/// The claims Confidential Space puts in a token, for `nonce` and `contract_digest`.
fn cs_claims(nonce: &str, contract_digest: &str, aud: &str) -> Value {
    support::google::cs_claims(
        aud,
        nonce,
        IMAGE_DIGEST,
        json!({"CCR_CONTRACT_DIGEST": contract_digest}),
    )
}

/// Auth as `gcp-cs`, then attest with a token made by `make(nonce)`.
fn cs_attest(
    cl: &mut KbsClient,
    make: &dyn Fn(&str) -> String,
) -> (RuntimeKey, Result<(), BrokerError>) {
    let rk = RuntimeKey::generate();
    let ch = cl
        .auth(
            "gcp-cs",
            json!({"pipeline-digest": format!("sha256:{}", "00".repeat(32))}),
        )
        .unwrap();
    let rd = kbs_report_data(&ch.nonce, &rk.tee_pubkey_json(), "");
    let nonce = hex::encode(&rd[..32]);
    let r = cl
        .attest(&ch.nonce, &rk, json!({"token": make(&nonce)}))
        .map(|_| ());
    (rk, r)
}

#[test]
fn confidential_space_token_gets_the_key_released() {
    let d = tempfile::tempdir().unwrap();
    let google = Issuer::new("k1");
    let mut trust = Trust::new();
    trust.jwks = Some(serde_json::from_value(google.jwks()).unwrap());
    trust.audiences = vec![AUDIENCE.into()];
    let r = start(&d.path().join("store"), trust);
    let policy = serde_json::to_value(ReleasePolicy::for_platform("gcp-cs", IMAGE_DIGEST)).unwrap();
    let (c, digest) = contract(policy);
    let digest = hex::encode(digest);
    let mut cl = KbsClient::new(&r.url, r.pin);
    cl.put_resource(&r.token, "r/k/d1", &[7u8; 32], &c, None)
        .unwrap();

    let (rk, ok) = cs_attest(&mut cl, &|n| google.token(&cs_claims(n, &digest, AUDIENCE)));
    ok.unwrap();
    assert_eq!(&cl.get_resource("r/k/d1", &rk).unwrap()[..], &[7u8; 32]);

    // Another audience, another signer, a nonce that does not bind this session: refused at
    // attestation, naming the check.
    let (_, e) = cs_attest(&mut cl, &|n| {
        google.token(&cs_claims(n, &digest, "someone-else"))
    });
    assert!(e.unwrap_err().to_string().contains("aud"));
    let mallory = Issuer::new("k1");
    let (_, e) = cs_attest(&mut cl, &|n| {
        mallory.token(&cs_claims(n, &digest, AUDIENCE))
    });
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("Confidential Space token")
    );
    let (_, e) = cs_attest(&mut cl, &|_| {
        google.token(&cs_claims(&"ab".repeat(32), &digest, AUDIENCE))
    });
    assert!(e.unwrap_err().to_string().contains("report_data"));
    // A token for another contract: attested, but the key is not released.
    let (rk, ok) = cs_attest(&mut cl, &|n| {
        google.token(&cs_claims(n, &"11".repeat(32), AUDIENCE))
    });
    ok.unwrap();
    let e = cl.get_resource("r/k/d1", &rk).unwrap_err();
    assert!(e.to_string().contains("does not bind the contract"), "{e}");
    // A debug image is refused.
    let (_, e) = cs_attest(&mut cl, &|n| {
        let mut cl = cs_claims(n, &digest, AUDIENCE);
        cl["dbgstat"] = "enabled".into();
        google.token(&cl)
    });
    assert!(e.unwrap_err().to_string().contains("dbgstat"));
}

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (real attestation vectors)",
            p.display()
        );
        None
    }
}

const AT_2025_07_01: i64 = 1_751_328_000;

#[test]
fn real_vectors_claims_through_the_release_decision() {
    let Some(dir) = vectors() else { return };
    let mut trust = Trust::new();
    trust.at = Some(AT_2025_07_01);
    for f in [
        "snp/report-1.vcek.der",
        "aci/uvm_host_amd_certificate.json",
        "tdx/quote-1.collateral.json",
    ] {
        trust.add_file(&dir.join(f)).unwrap();
    }
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    // TDX quotes without their collateral in the vectors are verified by signature only.
    let mut no_tdx = trust.clone();
    no_tdx.tdx_collateral = None;
    let cases: Vec<(&str, Evidence)> = vec![
        (
            "snp/report-1.bin",
            Evidence::sniff(&read("snp/report-1.bin")).unwrap(),
        ),
        (
            "aci/snp_report.bin",
            Evidence::sniff(&read("aci/snp_report.bin")).unwrap(),
        ),
        (
            "tdx/quote-1.bin",
            Evidence::sniff(&read("tdx/quote-1.bin")).unwrap(),
        ),
        (
            "az-snp-vtpm/evidence-v1.json",
            Evidence::sniff(&read("az-snp-vtpm/evidence-v1.json")).unwrap(),
        ),
        (
            "az-tdx-vtpm/evidence-v1.json",
            Evidence::sniff(&read("az-tdx-vtpm/evidence-v1.json")).unwrap(),
        ),
        (
            "tdx/quote-2-no-collateral.bin",
            Evidence::sniff(&read("tdx/quote-2-no-collateral.bin")).unwrap(),
        ),
    ];
    for (name, ev) in cases {
        let t = if name.contains("az-tdx") || name.contains("quote-2") {
            &no_tdx
        } else {
            &trust
        };
        let v = ev.verify(t).unwrap_or_else(|e| panic!("{name}: {e}"));
        let claims = v.claims().to_policy_input();
        let platform = v.claims().platform.as_str();
        let m = v.claims().measurement.clone().unwrap();
        let mut allow = ReleasePolicy::for_platform(platform, &m);
        if v.claims().tdx.is_some() {
            // TDX: the default policy wants TCB status UpToDate. Without collateral there is
            // none, and the default policy denies, naming it.
            let status = v.claims().tcb_status.clone();
            if status.is_none() {
                match release_decision(&allow, &claims) {
                    Decision::Deny(r) => assert!(r.join(";").contains("tcb_status"), "{r:?}"),
                    Decision::Allow(_) => panic!("{name}: no TCB status must deny by default"),
                }
            }
            allow = serde_json::from_value(
                json!({"version": "1.0.0", "anyOf": [{"authority": "local", "allOf": [
                {"claim": "platform", "equals": platform}, {"claim": "measurement", "equals": m},
                {"claim": "debug", "equals": false}, {"claim": "tcb_status", "equals": status}]}]}),
            )
            .unwrap();
        }
        match release_decision(&allow, &claims) {
            Decision::Allow(a) => eprintln!("{name}: allow ({})", a.trace().join("; ")),
            Decision::Deny(r) => {
                panic!("{name}: a policy naming its measurement must allow: {r:?}")
            }
        }
        let other = ReleasePolicy::for_platform(platform, &"ab".repeat(m.len() / 2));
        match release_decision(&other, &claims) {
            Decision::Allow(_) => panic!("{name}: another measurement must deny"),
            Decision::Deny(r) => {
                let r = r.join("; ");
                assert!(r.contains("measurement"), "{name}: {r}");
                eprintln!("{name}: deny ({r})");
            }
        }
        // These are not this deployment's: none binds a ccr contract.
        assert!(contract_binding(&claims, &"5a".repeat(32)).is_err());
    }
}

#[test]
fn vlek_report_is_denied_by_the_default_policy_naming_vmpl() {
    let Some(dir) = vectors() else { return };
    let raw = std::fs::read(dir.join("snp/report-vlek.bin")).unwrap();
    let vlek = std::fs::read(dir.join("snp/report-vlek.vlek.der")).unwrap();
    let rep = ccr_attest::snp::SnpReport::parse(&raw).unwrap();
    let cert = ccr_attest::amd::AmdCert::from_der(&vlek, "VLEK").unwrap();
    // The signature is the VLEK's.
    rep.verify_signature_with_key(cert.public_key_bytes())
        .unwrap();
    let c = rep.claims(ccr_attest::Platform::Snp);
    let m = c.measurement.clone().unwrap();
    let d = release_decision(
        &ReleasePolicy::for_platform("snp", &m),
        &c.to_policy_input(),
    );
    match d {
        Decision::Deny(r) => {
            let r = r.join("; ");
            assert!(r.contains("vmpl"), "{r}");
            assert!(!r.contains("measurement"), "{r}");
            eprintln!("VLEK report: deny ({r})");
        }
        Decision::Allow(_) => panic!("VMPL 1 must be denied"),
    }
}
