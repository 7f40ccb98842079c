//! The local broker on loopback and signed test contracts, shared by the broker tests.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use ccr_attest::evidence::Trust;
use ccr_keybroker_server::{Broker, BrokerConfig};
use ccr_policy::sign::PrivateKey;
use serde_json::{Value, json};

/// A signed one-party-per-role contract with `policy` as its release policy: dataset `d1`
/// (key `r/k/d1`), output `o` (key `r/k/o`), pipeline digest of zeros. Returns the contract and
/// its digest.
pub fn contract(policy: Value) -> (Value, [u8; 32]) {
    let s = contract_with(policy, |_| {});
    (s.value, s.digest)
}

/// A signed contract as [`contract`] makes it, with the parties' keys.
pub struct Signed {
    pub value: Value,
    pub digest: [u8; 32],
    /// The data provider `tdp`'s signing key.
    pub tdp: PrivateKey,
    /// The data consumer `tdc`'s signing key.
    pub tdc: PrivateKey,
}

/// As [`contract`], with `edit` applied before signing (privacy budgets, maxRuns, approvers).
pub fn contract_with(policy: Value, edit: impl FnOnce(&mut Value)) -> Signed {
    let tdp = PrivateKey::generate("ed25519").unwrap();
    let tdc = PrivateKey::generate("p256").unwrap();
    let mut c = json!({
        "id": "c1", "schemaVersion": "0.1",
        "startTime": "2026-01-01T00:00:00Z", "expiryTime": "2031-01-01T00:00:00Z",
        "tdc": "tdc", "tdps": ["tdp"],
        "parties": [
            {"id": "tdp", "role": "tdp", "publicKey": tdp.public_key().to_jwk()},
            {"id": "tdc", "role": "tdc", "publicKey": tdc.public_key().to_jwk()}
        ],
        "datasets": [{"id": "d1", "name": "d1", "provider": "tdp",
            "key": {"type": "ccr", "properties": {"kid": "r/k/d1", "authority": {"endpoint": "local"}}}}],
        "purpose": "TRAINING",
        "pipelineDigest": format!("sha256:{}", "00".repeat(32)),
        "output": {"id": "o", "key": {"type": "ccr", "properties": {"kid": "r/k/o", "authority": {"endpoint": "local"}}}},
        "releasePolicy": policy,
        "signatures": []
    });
    edit(&mut c);
    let d = ccr_policy::Contract::from_json(c.to_string().as_bytes())
        .unwrap()
        .digest();
    c["signatures"] = json!([
        {"party": "tdp", "jws": tdp.sign_detached("tdp", &d)},
        {"party": "tdc", "jws": tdc.sign_detached("tdc", &d)}
    ]);
    Signed {
        value: c,
        digest: d,
        tdp,
        tdc,
    }
}

pub struct Running {
    pub url: String,
    pub pin: [u8; 32],
    pub token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub fn start(dir: &Path, trust: Trust) -> Running {
    let broker = Broker::new(BrokerConfig {
        store_dir: dir.to_path_buf(),
        trust,
    })
    .unwrap();
    let pin = ccr_keybroker::client::parse_pin(broker.fingerprint()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(broker.serve(listener, async {
                let _ = rx.await;
            }))
            .unwrap();
    });
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    Running {
        url,
        pin,
        token,
        _stop: tx,
    }
}
