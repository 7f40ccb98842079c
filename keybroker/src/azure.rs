//! Azure: Microsoft Azure Attestation (MAA), Key Vault Secure Key Release, and managed identity
//! tokens from IMDS — the client side, over [`crate::cloud_http`].
//!
//! Sources: MAA REST API "Attestation - Attest Sev Snp Vm" (`POST {maa}/attest/SevSnpVm?api-version=2022-08-01`,
//! body `{"report": base64url(JSON), "runtimeData": {"data": base64url, "dataType": "JSON"}}`,
//! answer `{"token": JWT}`); Key Vault REST API 7.4 "Release" (`POST
//! {vault}/keys/{name}/{version}/release?api-version=7.4`, body `{"target": <MAA token>, "enc"?:
//! KeyEncryptionAlgorithm}`, answer `{"value": <JWS>}`); Azure IMDS "Acquire an access token"
//! (`GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`,
//! header `Metadata: true`).
//!
//! The runtime key for Azure is an RSA transfer key: MAA puts the runtime data (a JWKS holding
//! it) in the token's `x-ms-runtime` claim after checking that SHA-256 of the runtime data is
//! the first 32 bytes of the SNP report's `REPORT_DATA` (MAA's binding, not the KBS binding);
//! Key Vault wraps the released key to it ([`crate::akv`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cloud_http::{CloudClient, CloudError};
use crate::error::BrokerError;

/// MAA's API version for SEV-SNP attestation.
pub const MAA_API_VERSION: &str = "2022-08-01";
/// MAA's API version for TDX attestation.
pub const MAA_TDX_API_VERSION: &str = "2023-04-01-preview";
/// Key Vault's API version for key release.
pub const AKV_API_VERSION: &str = "7.4";
/// IMDS's API version for managed identity tokens.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// The IMDS endpoint on every Azure VM.
pub const IMDS_BASE: &str = "http://169.254.169.254";
/// The resource Key Vault tokens are for.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";

fn cloud(e: CloudError) -> BrokerError {
    BrokerError::Cloud(e.to_string())
}

/// The string at `pointer` in an answer, or a protocol error naming `what`.
pub(crate) fn answer_str(v: &Value, pointer: &str, what: &str) -> Result<String, BrokerError> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| proto(what, "missing"))
}

fn proto(field: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::Protocol {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The runtime's RSA transfer key as the JWKS MAA's runtime data carries:
/// `{"keys": [{"kid", "kty": "RSA", "key_ops": ["encrypt"], "n", "e"}]}`, and its serialisation
/// (the bytes whose SHA-256 goes into `REPORT_DATA`).
pub fn runtime_data(key: &RsaPrivateKey, kid: &str) -> (Value, Vec<u8>) {
    let p = key.to_public_key();
    let v = json!({"keys": [{
        "kid": kid, "kty": "RSA", "key_ops": ["encrypt"],
        "n": URL_SAFE_NO_PAD.encode(p.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(p.e().to_bytes_be()),
    }]});
    let bytes = v.to_string().into_bytes();
    (v, bytes)
}

/// The 64-byte `REPORT_DATA` MAA expects for `runtime_data` bytes: SHA-256, zero-padded.
pub fn maa_report_data(runtime_data: &[u8]) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(runtime_data));
    rd
}

/// A managed identity access token from IMDS for `resource` (the user-assigned identity
/// `client_id` when given).
///
/// # Errors
/// [`BrokerError::Cloud`] when IMDS refuses or cannot be reached; [`BrokerError::Protocol`]
/// when the answer has no `access_token`.
pub fn imds_token(
    client: &CloudClient,
    imds_base: &str,
    resource: &str,
    client_id: Option<&str>,
) -> Result<Zeroizing<String>, BrokerError> {
    let mut url = format!(
        "{}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={}",
        imds_base.trim_end_matches('/'),
        urlencode(resource)
    );
    if let Some(id) = client_id {
        url.push_str(&format!("&client_id={}", urlencode(id)));
    }
    let v = client
        .call("GET", &url, &[("Metadata", "true")], None, None)
        .map_err(cloud)?;
    v.get("access_token")
        .and_then(Value::as_str)
        .map(|s| Zeroizing::new(s.to_string()))
        .ok_or_else(|| proto("IMDS.access_token", "missing"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Attests an SNP report to MAA and returns the MAA token (a JWT).
///
/// `report` is the 1184-byte report whose `REPORT_DATA` is [`maa_report_data`] of
/// `runtime_data`; `vcek_chain_pem` the VCEK, ASK and ARK (PEM); `uvm_endorsement` ACI's UVM
/// reference info when on ACI.
///
/// # Errors
/// [`BrokerError::Cloud`] naming MAA and its error; [`BrokerError::Protocol`] when the answer
/// has no `token`.
pub fn maa_attest_snp(
    client: &CloudClient,
    maa_base: &str,
    report: &[u8],
    vcek_chain_pem: &str,
    runtime_data: &[u8],
    uvm_endorsement: Option<&[u8]>,
) -> Result<String, BrokerError> {
    let mut inner = json!({
        "SnpReport": URL_SAFE_NO_PAD.encode(report),
        "VcekCertChain": URL_SAFE_NO_PAD.encode(vcek_chain_pem.as_bytes()),
    });
    if let Some(u) = uvm_endorsement {
        inner["Endorsements"] = URL_SAFE_NO_PAD
            .encode(json!({"Uvm": [URL_SAFE_NO_PAD.encode(u)]}).to_string())
            .into();
    }
    let body = json!({
        "report": URL_SAFE_NO_PAD.encode(inner.to_string()),
        "runtimeData": {"data": URL_SAFE_NO_PAD.encode(runtime_data), "dataType": "JSON"},
    });
    let url = format!(
        "{}/attest/SevSnpVm?api-version={MAA_API_VERSION}",
        maa_base.trim_end_matches('/')
    );
    maa_attest(client, &url, &body)
}

fn maa_attest(client: &CloudClient, url: &str, body: &Value) -> Result<String, BrokerError> {
    let v = client
        .call("POST", url, &[], Some(body), None)
        .map_err(cloud)?;
    answer_str(&v, "/token", "MAA.token")
}

/// Attests a TD quote to MAA (`POST {maa}/attest/TdxVm?api-version=2023-04-01-preview`, body
/// `{"quote": base64url, "runtimeData": {"data": base64url, "dataType": "JSON"}}`) and returns
/// the MAA token. The quote's `REPORTDATA` must be [`maa_report_data`] of `runtime_data`.
///
/// # Errors
/// As [`maa_attest_snp`].
pub fn maa_attest_tdx(
    client: &CloudClient,
    maa_base: &str,
    quote: &[u8],
    runtime_data: &[u8],
) -> Result<String, BrokerError> {
    let body = json!({
        "quote": URL_SAFE_NO_PAD.encode(quote),
        "runtimeData": {"data": URL_SAFE_NO_PAD.encode(runtime_data), "dataType": "JSON"},
    });
    let url = format!(
        "{}/attest/TdxVm?api-version={MAA_TDX_API_VERSION}",
        maa_base.trim_end_matches('/')
    );
    maa_attest(client, &url, &body)
}

/// Imports a 32-byte AES key into Key Vault as an exportable `oct-HSM` key with a release
/// policy (Key Vault REST 7.4 "Import Key": `PUT {vault}/keys/{name}?api-version=7.4`, body
/// `{"key": {"kty": "oct-HSM", "k"}, "hsm": true, "attributes": {"exportable": true},
/// "release_policy": {"contentType": "application/json; charset=utf-8", "data": base64url}}`).
/// Returns the new key's `kid` (its URL with version). The data provider's side.
///
/// # Errors
/// [`BrokerError::Cloud`] with Key Vault's error; [`BrokerError::Protocol`] for an answer
/// without `key.kid`.
pub fn akv_import_oct(
    client: &CloudClient,
    vault_base: &str,
    name: &str,
    bearer: &str,
    key: &[u8; 32],
    release_policy: &Value,
) -> Result<String, BrokerError> {
    let jwk = json!({"kty": "oct-HSM", "k": URL_SAFE_NO_PAD.encode(key),
                     "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]});
    akv_import(client, vault_base, name, bearer, jwk, release_policy)
}

/// `PUT {vault}/keys/{name}?api-version=7.4` with the key's JWK, exportable, with the release
/// policy; returns the new key's `kid`.
fn akv_import(
    client: &CloudClient,
    vault_base: &str,
    name: &str,
    bearer: &str,
    jwk: Value,
    release_policy: &Value,
) -> Result<String, BrokerError> {
    let url = format!(
        "{}/keys/{}?api-version={AKV_API_VERSION}",
        vault_base.trim_end_matches('/'),
        urlencode(name)
    );
    let body = json!({
        "key": jwk,
        "hsm": true,
        "attributes": {"exportable": true},
        "release_policy": {"contentType": "application/json; charset=utf-8",
                           "data": URL_SAFE_NO_PAD.encode(release_policy.to_string())},
    });
    let v = client
        .call_bearer("PUT", &url, bearer, &body)
        .map_err(cloud)?;
    answer_str(&v, "/key/kid", "import.key.kid")
}

/// Imports an RSA private key into Key Vault as an exportable `RSA-HSM` key with a release
/// policy (the JWK with `n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`), as Microsoft's
/// confidential-sidecar `importkey` tool does; the DEK is then derived from it with
/// [`crate::akv::dek_from_rsa_private_key`] on both sides. Returns the key's `kid`.
///
/// # Errors
/// As [`akv_import_oct`]; [`BrokerError::Crypto`] for a key without two primes.
pub fn akv_import_rsa(
    client: &CloudClient,
    vault_base: &str,
    name: &str,
    bearer: &str,
    key: &RsaPrivateKey,
    release_policy: &Value,
) -> Result<String, BrokerError> {
    use rsa::traits::PrivateKeyParts;
    let b = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    let primes = key.primes();
    if primes.len() != 2 {
        return Err(BrokerError::Crypto(
            "the RSA key must have two primes".into(),
        ));
    }
    let (p, q) = (&primes[0], &primes[1]);
    let one = rsa::BigUint::from(1u8);
    let dp = key.d() % (p - &one);
    let dq = key.d() % (q - &one);
    let qi = key
        .crt_coefficient()
        .ok_or_else(|| BrokerError::Crypto("no CRT coefficient".into()))?;
    let jwk = json!({"kty": "RSA-HSM", "n": b(key.n()), "e": b(key.e()), "d": b(key.d()),
           "p": b(p), "q": b(q), "dp": b(&dp), "dq": b(&dq), "qi": b(&qi),
           "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]});
    akv_import(client, vault_base, name, bearer, jwk, release_policy)
}

/// Asks Key Vault to release key `name` (version `version`, empty for the latest) to the
/// environment the MAA token describes, and returns the release JWS.
///
/// # Errors
/// [`BrokerError::Cloud`] with Key Vault's error (`Forbidden` when the release policy is not
/// met, `Unauthorized` for the bearer token); [`BrokerError::Protocol`] when the answer has no
/// `value`.
pub fn akv_release(
    client: &CloudClient,
    vault_base: &str,
    name: &str,
    version: &str,
    bearer: &str,
    maa_token: &str,
) -> Result<String, BrokerError> {
    let url = format!(
        "{}/keys/{}/{}/release?api-version={AKV_API_VERSION}",
        vault_base.trim_end_matches('/'),
        urlencode(name),
        urlencode(version)
    );
    let body =
        json!({"target": maa_token, "enc": crate::akv::TransferAlg::CkmRsaAesKeyWrap.as_str()});
    let v = client
        .call_bearer("POST", &url, bearer, &body)
        .map_err(cloud)?;
    answer_str(&v, "/value", "release.value")
}

/// Verifies Key Vault's release JWS (compact, RS256): the `x5c` chain to one of `roots` (the
/// public web PKI when `None`) at
/// `now` (Unix seconds), the leaf valid for `vault_host`, and the signature with the leaf's key.
/// Returns the payload.
///
/// # Errors
/// [`BrokerError::Crypto`] naming the failing check (chain, host name, signature);
/// [`BrokerError::Protocol`] for a malformed JWS.
pub fn verify_release_jws(
    jws: &str,
    roots: Option<&[CertificateDer<'_>]>,
    vault_host: &str,
    now: u64,
) -> Result<Value, BrokerError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(proto("release JWS", "not a compact JWS"));
    };
    let dec = |f: &str, x: &str| {
        URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| proto(f, "not base64url"))
    };
    let header: Value = serde_json::from_slice(&dec("release JWS header", h)?)
        .map_err(|_| proto("release JWS header", "not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(proto("release JWS header.alg", "expected RS256"));
    }
    let x5c: Vec<CertificateDer<'static>> = header
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| proto("release JWS header.x5c", "missing"))?
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                .map(CertificateDer::from)
                .ok_or_else(|| proto("release JWS header.x5c", "not base64 DER"))
        })
        .collect::<Result<_, _>>()?;
    let leaf = x5c
        .first()
        .ok_or_else(|| proto("release JWS header.x5c", "empty"))?;
    let anchors: Vec<_> = match roots {
        Some(rs) => rs
            .iter()
            .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
            .collect(),
        None => webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| BrokerError::Crypto(format!("release JWS signing certificate: {e}")))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &x5c[1..],
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| {
        BrokerError::Crypto(format!(
            "release JWS signing certificate does not chain to a trusted root: {e}"
        ))
    })?;
    let name = ServerName::try_from(vault_host.to_string())
        .map_err(|_| proto("vault host", format!("`{vault_host}` is not a host name")))?;
    ee.verify_is_valid_for_subject_name(&name).map_err(|e| {
        BrokerError::Crypto(format!(
            "release JWS signing certificate is not for {vault_host}: {e}"
        ))
    })?;
    let sig = dec("release JWS signature", s)?;
    ee.verify_signature(
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        format!("{h}.{p}").as_bytes(),
        &sig,
    )
    .map_err(|_| BrokerError::Crypto("release JWS signature does not verify".into()))?;
    serde_json::from_slice(&dec("release JWS payload", p)?)
        .map_err(|_| proto("release JWS payload", "not JSON"))
}

/// The released key in a verified release payload: `(kty, key_hsm)` from
/// `response.key.key` (`oct-HSM` or `RSA-HSM`).
///
/// # Errors
/// [`BrokerError::Protocol`] naming the missing field.
pub fn released_key(payload: &Value) -> Result<(String, String), BrokerError> {
    let k = payload
        .pointer("/response/key/key")
        .ok_or_else(|| proto("release payload.response.key.key", "missing"))?;
    let kty = k
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| proto("release payload key.kty", "missing"))?;
    let hsm = k
        .get("key_hsm")
        .and_then(Value::as_str)
        .ok_or_else(|| proto("release payload key.key_hsm", "missing"))?;
    Ok((kty.to_string(), hsm.to_string()))
}
