//! The broker's shared state: the store, the KBS sessions, the trust material and the admin
//! token; the audit helper and the admin check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ccr_attest::Platform;
use ccr_attest::evidence::Trust;
use ccr_keybroker::client::SESSION_COOKIE;
use ccr_keybroker::runs::RunPlan;
use kbs_types::TeePubKey;
use rand::RngCore;
use serde_json::Value;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::problem::Problem;
use crate::store::{AuditRow, Store};

pub(crate) struct Attested {
    pub(crate) claims: Value,
    pub(crate) tee_pubkey: TeePubKey,
    pub(crate) evidence_digest: String,
}

pub(crate) struct Session {
    pub(crate) nonce: String,
    /// The `pipeline-digest` the runtime named in its `Request`'s `extra-params`.
    pub(crate) pipeline_digest: Option<String>,
    /// The run plan (`extra-params.run`); without one the run id is the session id and the run
    /// plans no DP.
    pub(crate) run: RunPlan,
    pub(crate) platform: Platform,
    pub(crate) created: Instant,
    pub(crate) attested: Option<Attested>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) sessions: Mutex<HashMap<String, Session>>,
    pub(crate) trust: Trust,
    pub(crate) admin_token: Zeroizing<String>,
}

pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    STANDARD.encode(b)
}

pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

impl Inner {
    pub(crate) fn audit(
        &self,
        session: &str,
        resource: &str,
        decision: &str,
        reason: &str,
        digest: &str,
        claims: &str,
    ) {
        tracing::info!(session, resource, decision, reason, "broker decision");
        let row = AuditRow {
            time: chrono::Utc::now().to_rfc3339(),
            session: session.into(),
            resource: resource.into(),
            decision: decision.into(),
            reason: reason.into(),
            evidence_digest: digest.into(),
        };
        if let Err(e) = self.store.audit(&row, claims) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }

    pub(crate) fn check_admin(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if got.as_bytes().ct_eq(self.admin_token.as_bytes()).into() {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "admin token required",
            ))
        }
    }
}
