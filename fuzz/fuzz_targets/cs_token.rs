//! Confidential Space tokens and evidence files: parsing and verification never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = ccr_attest::evidence::Evidence::sniff(data);
        return;
    };
    let _ = ccr_attest::cs::parse_header(text);
    let jwks = ccr_attest::cs::parse_jwks(JWKS.as_bytes()).unwrap();
    let aud = vec!["ccr-kbs".to_string()];
    let check = ccr_attest::cs::TokenCheck {
        jwks: &jwks,
        audience: &aud,
        issuer: ccr_attest::cs::ISSUER,
        at: 1_800_000_000,
        leeway: 60,
    };
    let _ = ccr_attest::cs::verify(text, &check, false);
    if let Ok(ev) = ccr_attest::evidence::Evidence::sniff(data) {
        let mut trust = ccr_attest::evidence::Trust::new();
        trust.at = Some(1_751_328_000);
        let _ = ev.verify(&trust);
    }
});
