//! Evidence verification time per platform, median and 90th percentile in µs.
//!
//! `cargo run --release -p ccr-benches --bin verify [ITERATIONS] [VECTORS_DIR]`
//!
//! Each iteration verifies one piece of evidence from its bytes, as the broker does on
//! `/kbs/v0/attest`: parsing, the certificate chain to the embedded roots, the report or quote
//! signature, and (TDX) the collateral. Real evidence from `../shared/vectors` (default
//! `../shared/vectors` beside the workspace) at a time inside its validity; `gcp-cs` is a token
//! made here with a 2048-bit RSA key (Confidential Space signs with RS256); `sim` is a report of
//! the local chain.

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use ccr_attest::evidence::{Evidence, Trust};

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[t.len() * 9 / 10])
}

fn bench(name: &str, n: usize, ev: &Evidence, trust: &Trust) {
    ev.verify(trust)
        .unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        let v = ev.verify(trust).expect("verifies");
        std::hint::black_box(v);
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    let (med, p90) = stats(t);
    println!("| {name} | {n} | {med:.0} | {p90:.0} |");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut trust = Trust::new();
    trust.at = Some(1_751_328_000); // 2025-07-01: inside every vector's validity
    for f in [
        "snp/report-1.vcek.der",
        "aci/uvm_host_amd_certificate.json",
        "tdx/quote-1.collateral.json",
    ] {
        trust.add_file(&dir.join(f)).expect("trust file");
    }
    println!("| evidence | iterations | median µs | p90 µs |");
    println!("|---|---|---|---|");
    let sniff = |p: &str| Evidence::sniff(&read(p)).expect("evidence");
    bench(
        "snp (report-1, VCEK, Milan)",
        n,
        &sniff("snp/report-1.bin"),
        &trust,
    );
    bench(
        "snp on ACI (THIM VCEK)",
        n,
        &sniff("aci/snp_report.bin"),
        &trust,
    );
    bench(
        "tdx (quote v4 + collateral)",
        n,
        &sniff("tdx/quote-1.bin"),
        &trust,
    );
    bench(
        "az-snp-vtpm (HCL + vTPM quote)",
        n,
        &sniff("az-snp-vtpm/evidence-v1.json"),
        &trust,
    );

    // gcp-cs: a token signed here.
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa");
    let pubk = key.to_public_key();
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k", "alg": "RS256",
        "n": b64.encode(pubk.n().to_bytes_be()), "e": b64.encode(pubk.e().to_bytes_be())}]});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some("k".into());
    let claims = serde_json::json!({"iss": ccr_attest::cs::ISSUER, "aud": "ccr-kbs",
        "exp": 1_751_328_000 + 3600, "nbf": 1_751_328_000 - 60, "eat_nonce": ["00".repeat(32)],
        "dbgstat": "disabled-since-boot", "swname": "CONFIDENTIAL_SPACE", "hwmodel": "GCP_AMD_SEV_SNP",
        "submods": {"container": {"image_digest": "sha256:00"}}});
    let der = key.to_pkcs1_der().expect("der");
    let token = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .expect("token");
    let mut cs_trust = trust.clone();
    cs_trust.jwks = Some(serde_json::from_value(jwks).expect("jwks"));
    cs_trust.audiences = vec!["ccr-kbs".into()];
    bench(
        "gcp-cs (RS256 token, JWKS)",
        n,
        &Evidence::GcpCs { token },
        &cs_trust,
    );

    // sim: the local chain.
    let d = tempfile::tempdir().expect("tempdir");
    let sim = ccr_attest::sim::SimAuthority::load_or_create(d.path()).expect("sim");
    let mut sim_trust = Trust::new();
    sim_trust.sim_roots = Some(sim.roots().expect("roots"));
    let ev = serde_json::to_value(sim.evidence(&[0; 64], &[0; 48], &[0; 32])).expect("json");
    bench(
        "sim (RSA-2048 chain, P-384 report)",
        n,
        &Evidence::from_kbs("sim", &ev).expect("sim evidence"),
        &sim_trust,
    );
}
