//! The SNP launch digest against `sev-snp-measure` (pip) on Debian's `ovmf` package, and the
//! kernel-hashes path against the `sev` crate's own test expectations.

mod common;

use std::path::Path;
use std::process::Command;

use ccr_measurements::snp::{SnpInputs, launch_digest};

const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

fn required() -> bool {
    std::env::var("CCR_REQUIRE_PYTHON").as_deref() == Ok("1")
}

fn tools_ready() -> bool {
    let ovmf = Path::new(OVMF).is_file();
    let tool = Command::new("sev-snp-measure")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(ovmf && tool) {
        let why = format!(
            "{OVMF} present: {ovmf}; sev-snp-measure runs: {tool} (apt-get install ovmf; pip install -r tests/requirements.txt)"
        );
        assert!(!required(), "CCR_REQUIRE_PYTHON=1 but {why}");
        println!("skipped: {why}");
    }
    ovmf && tool
}

fn inputs(vcpus: u32, vcpu_type: &str, features: u64) -> SnpInputs {
    SnpInputs {
        ovmf: OVMF.into(),
        vcpus,
        vcpu_type: vcpu_type.into(),
        guest_features: features,
        kernel: None,
        initrd: None,
        append: None,
        vmm_type: None,
    }
}

fn sev_snp_measure(args: &[String]) -> std::process::Output {
    Command::new("sev-snp-measure")
        .args(["--mode", "snp", "--ovmf", OVMF])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn launch_digest_equals_sev_snp_measure_on_debian_ovmf() {
    if !tools_ready() {
        return;
    }
    let mut n = 0;
    for vcpus in [1u32, 4] {
        for vcpu_type in ["EPYC-v4", "EPYC-Milan"] {
            for features in [0x1u64, 0x21] {
                let ours = hex::encode(launch_digest(&inputs(vcpus, vcpu_type, features)).unwrap());
                let o = sev_snp_measure(&[
                    format!("--vcpus={vcpus}"),
                    format!("--vcpu-type={vcpu_type}"),
                    format!("--guest-features=0x{features:x}"),
                ]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                let theirs = String::from_utf8_lossy(&o.stdout).trim().to_string();
                println!("vcpus {vcpus} {vcpu_type} features 0x{features:x}: {ours}");
                assert_eq!(ours, theirs, "vcpus {vcpus} {vcpu_type} 0x{features:x}");
                n += 1;
            }
        }
    }
    assert_eq!(n, 8);
    // The digests differ between the settings (the test would pass trivially otherwise).
    let a = launch_digest(&inputs(1, "EPYC-v4", 1)).unwrap();
    assert_ne!(a, launch_digest(&inputs(4, "EPYC-v4", 1)).unwrap());
    assert_ne!(a, launch_digest(&inputs(1, "EPYC-Milan", 1)).unwrap());
    assert_ne!(a, launch_digest(&inputs(1, "EPYC-v4", 0x21)).unwrap());
}

#[test]
fn a_kernel_on_a_firmware_without_kernel_hashes_is_refused_as_sev_snp_measure_does() {
    if !tools_ready() {
        return;
    }
    let mut i = inputs(1, "EPYC-v4", 1);
    i.kernel = Some("/dev/null".into());
    let e = launch_digest(&i).unwrap_err().to_string();
    assert!(e.contains("no SNP_KERNEL_HASHES section"), "{e}");
    let o = sev_snp_measure(&[
        "--vcpus=1".into(),
        "--vcpu-type=EPYC-v4".into(),
        "--kernel=/dev/null".into(),
    ]);
    assert!(!o.status.success(), "sev-snp-measure accepted it too");
    println!(
        "sev-snp-measure: {}",
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
}

/// The `exp_result` of test function `name` in the sev crate's tests/measurement.rs.
fn expected(src: &str, name: &str) -> String {
    let at = src
        .find(&format!("fn {name}()"))
        .unwrap_or_else(|| panic!("no {name}"));
    let rest = &src[at..];
    let e = rest.find("exp_result = \"").unwrap() + "exp_result = \"".len();
    rest[e..e + 96].to_string()
}

#[test]
fn kernel_initrd_and_command_line_hashing_matches_the_sev_crates_tests() {
    let Some(dir) = common::sev_source("tests/measurement.rs") else {
        assert!(
            !required(),
            "the sev 8.0.0 sources are not in the cargo registry"
        );
        return;
    };
    let src = std::fs::read_to_string(dir.join("tests/measurement.rs")).unwrap();
    // Those tests' inputs: 1 vCPU EPYC-v4, their AmdSev OVMF (with SNP_KERNEL_HASHES), an empty
    // kernel and initrd, the command line below; SNP-only (0x1) and default (0x21) features.
    for (name, features) in [("test_sev_snp_only", 0x1u64), ("test_snp_default", 0x21)] {
        let i = SnpInputs {
            ovmf: dir.join("tests/measurement/ovmf_AmdSev_suffix.bin"),
            vcpus: 1,
            vcpu_type: "EPYC-v4".into(),
            guest_features: features,
            kernel: Some("/dev/null".into()),
            initrd: Some("/dev/null".into()),
            append: Some("console=ttyS0 loglevel=7".into()),
            vmm_type: None,
        };
        let want = expected(&src, name);
        let got = hex::encode(launch_digest(&i).unwrap());
        println!("{name}: {got}");
        assert_eq!(got, want, "{name}");
        // Another command line gives another digest.
        let mut other = i.clone();
        other.append = Some("console=ttyS0".into());
        assert_ne!(hex::encode(launch_digest(&other).unwrap()), want);
    }
}

#[test]
fn bad_inputs_are_named() {
    let mut i = inputs(1, "EPYC-v9", 1);
    assert!(
        launch_digest(&i)
            .unwrap_err()
            .to_string()
            .contains("vcpu_type")
    );
    i.vcpu_type = "EPYC-v4".into();
    i.vcpus = 0;
    assert!(launch_digest(&i).unwrap_err().to_string().contains("vcpus"));
    i.vcpus = 1;
    i.ovmf = "/nonexistent/OVMF.fd".into();
    assert!(
        launch_digest(&i)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/OVMF.fd")
    );
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.fd");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    i.ovmf = junk;
    assert!(
        launch_digest(&i)
            .unwrap_err()
            .to_string()
            .contains("SEV metadata")
    );
}
