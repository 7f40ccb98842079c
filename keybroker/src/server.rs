//! The local key broker: the KBS protocol over HTTPS (rustls), keys and audit in SQLite.
//!
//! Endpoints (KBS protocol, Trustee's `kbs/v0` API):
//! - `POST /kbs/v0/auth` — body `Request {version, tee, extra-params}` (`extra-params` carries
//!   ccr's `pipeline-digest`, which must equal the key's contract's); answers a `Challenge`
//!   `{nonce, extra-params}` and sets the cookie `kbs-session-id`. The nonce is 32 random bytes,
//!   base64, recorded in the store, single use, valid [`NONCE_TTL_SECS`].
//! - `POST /kbs/v0/attest` — body `Attestation {runtime-data {nonce, tee-pubkey},
//!   tee-evidence {primary_evidence, additional_evidence}}`; verifies the evidence, checks that
//!   `report_data` binds the nonce and `tee-pubkey`, and marks the session attested.
//! - `GET /kbs/v0/resource/{repo}/{type}/{tag}` — for an attested session: checks the key's
//!   contract (signatures, validity, `host_data` = contract digest), evaluates the release policy
//!   over the claims, and answers the key as a JWE wrapped to `tee-pubkey` ([`crate::jwe`]).
//! - `POST /kbs/v0/resource/{repo}/{type}/{tag}` — admin (`Authorization: Bearer <token>`):
//!   registers a key `{"secret": base64, "contract": {...}, "policy"?: {...}}`.
//! - `GET /kbs/v0/audit` — admin: the audit log as JSON.
//! - `POST /kbs/v0/runs/{run}/report` — the runtime's signed run report (and escrowed output
//!   key); `POST /kbs/v0/runs/{run}` — a party's signed request: show, approve, deny,
//!   output-key. See [`crate::runs`].
//!
//! The `Request`'s `extra-params.run` ([`crate::runs::RunPlan`]) names the run and its planned
//! epsilon; each dataset key's release charges that dataset's privacy budget in the store's
//! ledger, atomically, and counts the run against the contract's `maxRuns`. With output
//! approvers, the output key is never released to a runtime (it makes its own and escrows it).
//!
//! Errors are RFC 7807 problem documents (`application/problem+json`: `type`, `title`,
//! `status`, `detail`): 400 malformed request, 401 no or expired session (redo the handshake),
//! 403 denied by policy, contract, budget or approvers, 404 unknown resource or run, 409 a
//! conflict with what is recorded. Every attestation, release, report and approval decision is
//! written to the audit log with its reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ccr_attest::evidence::{Evidence, Trust};
use ccr_attest::{Platform, report_data::kbs_report_data};
use ccr_policy::{Contract, Decision, ReleasePolicy};
use kbs_types::{Attestation, Challenge, TeePubKey};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::BrokerError;
use crate::runs::{IAT_SKEW_SECS, PARTY_TYP, PartyRequest, REPORT_TYP, RunPlan};
use crate::store::{Approval, AuditRow, Budget, Reservation, Store};

/// Seconds a nonce stays valid after `auth`.
pub const NONCE_TTL_SECS: i64 = 300;
/// Seconds a session stays valid after `auth`.
pub const SESSION_TTL: Duration = Duration::from_secs(600);
/// The session cookie's name (as Trustee's KBS names it).
pub const SESSION_COOKIE: &str = "kbs-session-id";
/// The authority name of this broker's verifier in release policies.
pub const LOCAL_AUTHORITY: &str = "local";

/// Broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Store folder: `broker.db`, `tls.crt`, `tls.key`, `admin.token`.
    pub store_dir: PathBuf,
    /// What evidence verification trusts: AMD's embedded roots, the sim roots when given
    /// (`trust.sim_roots`; `None`: sim evidence is refused), cached VCEKs, TDX collateral, the
    /// Confidential Space JWKS and audiences. `trust.at` should be `None` (verify at now).
    pub trust: Trust,
}

struct Attested {
    claims: Value,
    tee_pubkey: TeePubKey,
    evidence_digest: String,
}

struct Session {
    nonce: String,
    /// The `pipeline-digest` the runtime named in its `Request`'s `extra-params`.
    pipeline_digest: Option<String>,
    /// The run plan (`extra-params.run`); without one the run id is the session id and the run
    /// plans no DP.
    run: RunPlan,
    platform: Platform,
    created: Instant,
    attested: Option<Attested>,
}

struct Inner {
    store: Store,
    sessions: Mutex<HashMap<String, Session>>,
    trust: Trust,
    admin_token: Zeroizing<String>,
}

/// An RFC 7807 problem.
struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://ccr.invalid/kbs/errors/{}", self.kind),
            "title": self.kind,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

impl From<BrokerError> for Problem {
    fn from(e: BrokerError) -> Self {
        tracing::error!(error = %e, "broker internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "internal error",
        )
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    STANDARD.encode(b)
}

fn session_id(headers: &HeaderMap) -> Option<String> {
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
    fn audit(
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

    fn check_admin(&self, headers: &HeaderMap) -> Result<(), Problem> {
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

#[derive(Deserialize)]
struct AuthRequest {
    version: String,
    tee: String,
    #[serde(rename = "extra-params", default)]
    extra_params: Value,
}

async fn auth(State(st): State<Arc<Inner>>, body: Bytes) -> Result<Response, Problem> {
    let req: AuthRequest = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("Request: {e}"),
        )
    })?;
    if !req.version.starts_with("0.") {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("unsupported protocol version {}", req.version),
        ));
    }
    let platform = Platform::parse(&req.tee)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "UnsupportedTee", e.to_string()))?;
    let plan = RunPlan::from_extra_params(&req.extra_params)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    let nonce = random_b64(32);
    st.store.issue_nonce(&nonce, now_unix())?;
    let mut sid = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut sid);
    let sid = hex::encode(sid);
    let run = plan.unwrap_or_else(|| RunPlan {
        id: sid.clone(),
        epsilon: None,
        delta: None,
    });
    {
        let mut s = st.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, v| v.created.elapsed() < SESSION_TTL);
        s.insert(
            sid.clone(),
            Session {
                nonce: nonce.clone(),
                pipeline_digest: req
                    .extra_params
                    .get("pipeline-digest")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                run,
                platform,
                created: Instant::now(),
                attested: None,
            },
        );
    }
    let challenge = Challenge {
        nonce,
        extra_params: json!({}),
    };
    let mut r = Json(challenge).into_response();
    let cookie = format!(
        "{SESSION_COOKIE}={sid}; Path=/kbs; Secure; HttpOnly; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    Ok(r)
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        format!("{detail}: redo the handshake"),
    )
}

async fn attest(
    State(st): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let sid = session_id(&headers).ok_or_else(|| unauthorized("no session cookie"))?;
    let (nonce, platform) = {
        let s = st.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let sess = s.get(&sid).ok_or_else(|| unauthorized("unknown session"))?;
        if sess.created.elapsed() >= SESSION_TTL {
            return Err(unauthorized("session expired"));
        }
        (sess.nonce.clone(), sess.platform)
    };
    let att: Attestation = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("Attestation: {e}"),
        )
    })?;
    if att.runtime_data.nonce != nonce {
        st.audit(
            &sid,
            "attest",
            "deny",
            "runtime-data.nonce is not this session's nonce",
            "",
            "{}",
        );
        return Err(unauthorized(
            "runtime-data.nonce is not this session's nonce",
        ));
    }
    if st
        .store
        .consume_nonce(&nonce, now_unix(), NONCE_TTL_SECS)
        .is_err()
    {
        st.audit(
            &sid,
            "attest",
            "deny",
            "nonce already used or expired (replay)",
            "",
            "{}",
        );
        return Err(unauthorized("nonce already used or expired"));
    }
    let verified = (|| {
        let ev = Evidence::from_kbs(platform.as_str(), &att.tee_evidence.primary_evidence)?;
        let v = ev.verify(&st.trust)?;
        let tee_pubkey_json =
            serde_json::to_value(&att.runtime_data.tee_pubkey).unwrap_or(Value::Null);
        let expected = kbs_report_data(
            &nonce,
            &tee_pubkey_json,
            &att.tee_evidence.additional_evidence,
        );
        v.expect_report_data(&expected)?;
        Ok::<_, ccr_attest::AttestError>(v)
    })();
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            st.audit(&sid, "attest", "deny", &format!("evidence: {e}"), "", "{}");
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "AttestationFailed",
                format!("evidence: {e}"),
            ));
        }
    };
    let claims = v.claims().to_policy_input();
    let digest = hex::encode(v.digest());
    st.audit(
        &sid,
        "attest",
        "allow",
        "evidence verified",
        &digest,
        &claims.to_string(),
    );
    {
        let mut s = st.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sess) = s.get_mut(&sid) {
            sess.attested = Some(Attested {
                claims,
                tee_pubkey: att.runtime_data.tee_pubkey,
                evidence_digest: digest.clone(),
            });
        }
    }
    Ok(Json(json!({"platform": platform.as_str(), "evidence_digest": digest})).into_response())
}

async fn get_resource(
    State(st): State<Arc<Inner>>,
    headers: HeaderMap,
    UrlPath((repo, kind, tag)): UrlPath<(String, String, String)>,
) -> Result<Response, Problem> {
    let path = format!("{repo}/{kind}/{tag}");
    let sid = session_id(&headers).ok_or_else(|| unauthorized("no session cookie"))?;
    let (claims, tee_pubkey, digest, pipeline_digest, run) = {
        let s = st.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let sess = s.get(&sid).ok_or_else(|| unauthorized("unknown session"))?;
        if sess.created.elapsed() >= SESSION_TTL {
            return Err(unauthorized("session expired"));
        }
        let a = sess
            .attested
            .as_ref()
            .ok_or_else(|| unauthorized("session not attested"))?;
        (
            a.claims.clone(),
            a.tee_pubkey.clone(),
            a.evidence_digest.clone(),
            sess.pipeline_digest.clone(),
            sess.run.clone(),
        )
    };
    let claims_s = claims.to_string();
    let deny = |reason: String| {
        st.audit(&sid, &path, "deny", &reason, &digest, &claims_s);
        Problem::new(StatusCode::FORBIDDEN, "PolicyDeny", reason)
    };
    let Some(rec) = st.store.get_key(&path)? else {
        st.audit(&sid, &path, "deny", "unknown resource", &digest, &claims_s);
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("no key at {path}"),
        ));
    };
    let contract =
        Contract::from_json(rec.contract.as_bytes()).map_err(|e| deny(format!("contract: {e}")))?;
    let vc = contract
        .verify(chrono::Utc::now())
        .map_err(|e| deny(e.to_string()))?;
    let contract_digest = hex::encode(vc.digest());
    contract_binding(&claims, &contract_digest).map_err(deny)?;
    // The runtime checks the pipeline against the contract before it attests (that code is
    // what the measurement covers); the broker also refuses a session that names another one.
    if pipeline_digest.as_deref() != Some(contract.pipeline_digest.as_str()) {
        return Err(deny(format!(
            "the session's pipeline-digest {} is not the contract's pipelineDigest {}",
            pipeline_digest.as_deref().unwrap_or("(none)"),
            contract.pipeline_digest
        )));
    }
    let policy = KeyPolicy::parse(&rec.policy).map_err(|e| deny(format!("release policy: {e}")))?;
    let request = json!({
        "resource": path,
        "platform": claims.get("platform"),
        "pipeline_digest": pipeline_digest,
        "run": run,
    });
    match policy.decide(&claims, &contract, &request) {
        Decision::Deny(reasons) => Err(deny(format!("release policy: {}", reasons.join("; ")))),
        Decision::Allow(allow) => {
            let is_output =
                contract.output.key.kind == "ccr" && contract.output.key.properties.kid == path;
            if is_output && !contract.output.approvers.is_empty() {
                return Err(deny(format!(
                    "contract {} names output approvers ({}): its output key goes only to the data consumer, after they approve",
                    contract.id,
                    contract.output.approvers.join(", ")
                )));
            }
            let dataset = contract
                .datasets
                .iter()
                .find(|d| d.key.kind == "ccr" && d.key.properties.kid == path);
            let budget = dataset.and_then(|d| {
                contract.privacy_for(&d.id).map(|p| Budget {
                    dataset: &d.id,
                    epsilon_total: p.epsilon_threshold,
                    delta: p.delta,
                    dp_required: p.dp_required,
                })
            });
            let tee_pubkey_s = serde_json::to_string(&tee_pubkey).unwrap_or_default();
            let reservation = Reservation {
                run_id: &run.id,
                contract_id: &contract.id,
                contract_digest: &contract_digest,
                contract: &rec.contract,
                tee_pubkey: &tee_pubkey_s,
                evidence_digest: &digest,
                max_runs: contract.max_runs,
                budget,
                planned: run.epsilon.zip(run.delta),
            };
            match st.store.reserve(&reservation) {
                Ok(()) => {}
                Err(BrokerError::Denied(reason)) => return Err(deny(reason)),
                Err(e) => return Err(e.into()),
            }
            let resp = crate::jwe::wrap(&tee_pubkey, &rec.secret).map_err(|e| {
                st.audit(&sid, &path, "error", &e.to_string(), &digest, &claims_s);
                Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string())
            })?;
            let charge = match (budget, run.epsilon) {
                (Some(b), Some(e)) => {
                    format!("; run {} charged epsilon {e} to {}", run.id, b.dataset)
                }
                (Some(b), None) => format!("; run {} reads {} without DP", run.id, b.dataset),
                (None, _) => format!("; run {}", run.id),
            };
            st.audit(
                &sid,
                &path,
                "allow",
                &format!("release policy held: {}{charge}", allow.trace().join("; ")),
                &digest,
                &claims_s,
            );
            Ok(Json(resp).into_response())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutKey {
    secret: String,
    contract: Value,
    #[serde(default)]
    policy: Option<Value>,
}

async fn put_resource(
    State(st): State<Arc<Inner>>,
    headers: HeaderMap,
    UrlPath((repo, kind, tag)): UrlPath<(String, String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    st.check_admin(&headers)?;
    let path = format!("{repo}/{kind}/{tag}");
    let bad = |d: String| Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", d);
    let req: PutKey = serde_json::from_slice(&body).map_err(|e| bad(format!("body: {e}")))?;
    let secret = Zeroizing::new(
        STANDARD
            .decode(&req.secret)
            .map_err(|_| bad("secret: not base64".into()))?,
    );
    let contract_s = req.contract.to_string();
    let contract = Contract::from_json(contract_s.as_bytes()).map_err(|e| bad(e.to_string()))?;
    contract
        .verify(chrono::Utc::now())
        .map_err(|e| bad(e.to_string()))?;
    let policy_s = match req.policy {
        Some(Value::String(rego)) => {
            KeyPolicy::parse(&rego).map_err(|e| bad(format!("policy: {e}")))?;
            rego
        }
        Some(p) => {
            let s = p.to_string();
            ReleasePolicy::from_json(s.as_bytes()).map_err(|e| bad(e.to_string()))?;
            s
        }
        None => serde_json::to_string(&contract.release_policy).unwrap_or_default(),
    };
    st.store.put_key(&path, &secret, &contract_s, &policy_s)?;
    for d in &contract.datasets {
        if let Some(p) = contract.privacy_for(&d.id) {
            st.store.put_budget(
                &contract.id,
                &Budget {
                    dataset: &d.id,
                    epsilon_total: p.epsilon_threshold,
                    delta: p.delta,
                    dp_required: p.dp_required,
                },
            )?;
        }
    }
    st.audit(
        "admin",
        &path,
        "register",
        &format!("key registered under contract {}", contract.id),
        "",
        "{}",
    );
    Ok((StatusCode::OK, Json(json!({"registered": path}))).into_response())
}

async fn audit_log(State(st): State<Arc<Inner>>, headers: HeaderMap) -> Result<Response, Problem> {
    st.check_admin(&headers)?;
    Ok(Json(st.store.audit_log()?).into_response())
}

fn not_found_run(run_id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "RunNotFound",
        format!("no run {run_id}"),
    )
}

fn conflict(e: BrokerError) -> Problem {
    match e {
        BrokerError::Conflict(d) => Problem::new(StatusCode::CONFLICT, "Conflict", d),
        other => other.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    report: String,
    #[serde(rename = "output-key", default)]
    output_key: Option<String>,
}

async fn post_report(
    State(st): State<Arc<Inner>>,
    UrlPath(run_id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let bad = |d: String| Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", d);
    let resource = format!("runs/{run_id}/report");
    let run = st
        .store
        .run(&run_id)?
        .ok_or_else(|| not_found_run(&run_id))?;
    let req: ReportBody = serde_json::from_slice(&body).map_err(|e| bad(format!("body: {e}")))?;
    let refuse = |reason: String| {
        st.audit(
            "runtime",
            &resource,
            "deny",
            &reason,
            &run.evidence_digest,
            "{}",
        );
        Problem::new(StatusCode::FORBIDDEN, "ReportRefused", reason)
    };
    let key_jwk: Value = serde_json::from_str(&run.tee_pubkey).unwrap_or(Value::Null);
    let key = ccr_policy::sign::PublicKey::from_jwk(&key_jwk)
        .map_err(|e| refuse(format!("the run's runtime key: {e}")))?;
    let payload = ccr_policy::sign::verify_compact(&key, REPORT_TYP, &req.report).map_err(|e| {
        refuse(format!(
            "report: {e} (it must be signed by the runtime key run {run_id} attested)"
        ))
    })?;
    let report: Value =
        serde_json::from_slice(&payload).map_err(|e| bad(format!("report payload: {e}")))?;
    if report.get("run_id").and_then(Value::as_str) != Some(run_id.as_str()) {
        return Err(bad(format!("report payload: run_id is not {run_id}")));
    }
    let spent = crate::runs::reported_spend(&report).map_err(|e| bad(e.to_string()))?;
    let contract = Contract::from_json(run.contract.as_bytes())
        .map_err(|e| refuse(format!("contract: {e}")))?;
    let output_key = match (&req.output_key, contract.output.approvers.is_empty()) {
        (Some(k), false) => {
            let k = Zeroizing::new(
                STANDARD
                    .decode(k)
                    .map_err(|_| bad("output-key: not base64".into()))?,
            );
            if k.len() != 32 {
                return Err(bad("output-key: not 32 bytes".into()));
            }
            Some(k)
        }
        (None, false) => {
            return Err(bad(format!(
                "output-key: contract {} names approvers, so the run must escrow its output key",
                contract.id
            )));
        }
        (Some(_), true) => {
            return Err(bad(format!(
                "output-key: contract {} names no approvers; the broker keeps no output key for it",
                contract.id
            )));
        }
        (None, true) => None,
    };
    let report_s = String::from_utf8_lossy(&payload).into_owned();
    let report_digest = hex::encode(Sha256::digest(&payload));
    st.store
        .record_report(
            &run_id,
            &report_s,
            &report_digest,
            &spent,
            output_key.as_deref().map(|k| &k[..]),
        )
        .map_err(conflict)?;
    let spent_s = spent
        .iter()
        .map(|(d, e)| match e {
            Some(e) => format!("{d}: epsilon spent {e}"),
            None => format!("{d}: no DP"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    st.audit(
        "runtime",
        &resource,
        "report",
        &format!(
            "signed report recorded ({spent_s}){}",
            if output_key.is_some() {
                "; output key escrowed until the approvers agree"
            } else {
                ""
            }
        ),
        &run.evidence_digest,
        "{}",
    );
    Ok(Json(json!({"run": run_id, "report_digest": report_digest})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyBody {
    request: String,
}

async fn party_request(
    State(st): State<Arc<Inner>>,
    UrlPath(run_id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let bad = |d: String| Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", d);
    let run = st
        .store
        .run(&run_id)?
        .ok_or_else(|| not_found_run(&run_id))?;
    let req: PartyBody = serde_json::from_slice(&body).map_err(|e| bad(format!("body: {e}")))?;
    let claimed =
        ccr_policy::sign::jws_kid(&req.request).map_err(|e| bad(format!("request: {e}")))?;
    let resource = format!("runs/{run_id}");
    let refuse = |who: &str, reason: String| {
        st.audit(who, &resource, "deny", &reason, &run.evidence_digest, "{}");
        Problem::new(StatusCode::FORBIDDEN, "PartyRefused", reason)
    };
    let contract = Contract::from_json(run.contract.as_bytes())
        .map_err(|e| refuse(&claimed, format!("contract: {e}")))?;
    let Some(party) = contract.parties.iter().find(|p| p.id == claimed) else {
        return Err(refuse(
            &claimed,
            format!("`{claimed}` is not a party to contract {}", contract.id),
        ));
    };
    let key = ccr_policy::sign::PublicKey::from_jwk(&party.public_key)
        .map_err(|e| refuse(&claimed, format!("party {claimed}'s key: {e}")))?;
    let payload = ccr_policy::sign::verify_compact(&key, PARTY_TYP, &req.request)
        .map_err(|e| refuse(&claimed, format!("request signed as {claimed}: {e}")))?;
    let pr: PartyRequest =
        serde_json::from_slice(&payload).map_err(|e| bad(format!("request payload: {e}")))?;
    if pr.run != run_id {
        return Err(bad(format!("request payload: run is not {run_id}")));
    }
    if (pr.iat - now_unix()).abs() > IAT_SKEW_SECS {
        return Err(refuse(
            &claimed,
            format!(
                "request iat {} is more than {IAT_SKEW_SECS} s from the broker's clock",
                pr.iat
            ),
        ));
    }
    let approvals = st.store.approvals(&run_id)?;
    let pending: Vec<&String> = contract
        .output
        .approvers
        .iter()
        .filter(|a| !approvals.iter().any(|x| &x.party == *a))
        .collect();
    match pr.action.as_str() {
        "show" => {
            let report: Value = run
                .report
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            Ok(Json(json!({
                "run": run_id,
                "contract_id": contract.id,
                "evidence_digest": run.evidence_digest,
                "report": report,
                "report_digest": run.report_digest,
                "approvers": contract.output.approvers,
                "approvals": approvals,
                "pending": pending,
                "output_key_escrowed": run.output_key.is_some(),
            }))
            .into_response())
        }
        "approve" | "deny" => {
            if !contract.output.approvers.contains(&claimed) {
                return Err(refuse(
                    &claimed,
                    format!(
                        "party {claimed} is not an output approver of contract {} (approvers: {})",
                        contract.id,
                        contract.output.approvers.join(", ")
                    ),
                ));
            }
            let Some(digest) = &run.report_digest else {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("run {run_id} has not reported yet: nothing to approve"),
                ));
            };
            if pr.report_digest.as_deref() != Some(digest.as_str()) {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "the decision is about report {}, the run's report is {digest}",
                        pr.report_digest.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
            let a = Approval {
                party: claimed.clone(),
                decision: pr.action.clone(),
                reason: pr.reason.clone().unwrap_or_default(),
                report_digest: digest.clone(),
                time: chrono::Utc::now().to_rfc3339(),
            };
            st.store.record_approval(&run_id, &a).map_err(conflict)?;
            st.audit(
                &claimed,
                &resource,
                &a.decision,
                &format!("output {}d by {claimed}: {}", a.decision, a.reason),
                &run.evidence_digest,
                "{}",
            );
            Ok(
                Json(json!({"run": run_id, "party": claimed, "decision": a.decision}))
                    .into_response(),
            )
        }
        "output-key" => {
            if claimed != contract.tdc {
                return Err(refuse(
                    &claimed,
                    format!(
                        "only the data consumer ({}) gets the output key",
                        contract.tdc
                    ),
                ));
            }
            if let Some(d) = approvals.iter().find(|a| a.decision == "deny") {
                return Err(refuse(
                    &claimed,
                    format!("output denied by {}: {}", d.party, d.reason),
                ));
            }
            if !pending.is_empty() {
                return Err(refuse(
                    &claimed,
                    format!(
                        "waiting for approval from {}",
                        pending
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let Some(k) = &run.output_key else {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "run {run_id} escrowed no output key (no report yet, or a contract without approvers)"
                    ),
                ));
            };
            let tp: TeePubKey = pr
                .tee_pubkey
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| bad("request payload: tee-pubkey missing or not a JWK".into()))?;
            let resp = crate::jwe::wrap(&tp, k).map_err(|e| bad(e.to_string()))?;
            st.audit(
                &claimed,
                &resource,
                "allow",
                &format!(
                    "output key released to the data consumer; approved by {}",
                    contract.output.approvers.join(", ")
                ),
                &run.evidence_digest,
                "{}",
            );
            Ok(Json(resp).into_response())
        }
        other => Err(bad(format!(
            "request payload: action `{other}` (known: show, approve, deny, output-key)"
        ))),
    }
}

/// A broker ready to serve: its TLS material and admin token are in the store folder.
pub struct Broker {
    inner: Arc<Inner>,
    tls: Arc<rustls::ServerConfig>,
    fingerprint: String,
}

/// Loads or makes the TLS certificate (self-signed, SAN `localhost` and `127.0.0.1`) and
/// returns the certificate DER, key DER.
fn load_or_make_tls(dir: &Path) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), BrokerError> {
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let io = |p: &Path, e: std::io::Error| BrokerError::Store(format!("{}: {e}", p.display()));
    if crt.exists() && key.exists() {
        let c = std::fs::read(&crt).map_err(|e| io(&crt, e))?;
        let k = Zeroizing::new(std::fs::read(&key).map_err(|e| io(&key, e))?);
        return Ok((c, k));
    }
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(|e| BrokerError::Crypto(format!("certificate: {e}")))?;
    let c = ck.cert.der().to_vec();
    let k = Zeroizing::new(ck.key_pair.serialize_der());
    write_private(&key, &k)?;
    std::fs::write(&crt, &c).map_err(|e| io(&crt, e))?;
    Ok((c, k))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), BrokerError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .map_err(|e| BrokerError::Store(format!("{}: {e}", tmp.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| BrokerError::Store(format!("{}: {e}", tmp.display())))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| BrokerError::Store(format!("{}: {e}", path.display())))
}

/// Reads the admin token from the store folder (`admin.token`), making one on first use.
///
/// # Errors
/// [`BrokerError::Store`].
pub fn admin_token(dir: &Path) -> Result<Zeroizing<String>, BrokerError> {
    let p = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        return Ok(Zeroizing::new(t.trim().to_string()));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BrokerError::Store(format!("{}: {e}", dir.display())))?;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let t = Zeroizing::new(hex::encode(b));
    write_private(&p, t.as_bytes())?;
    Ok(t)
}

impl Broker {
    /// Opens the store and TLS material (made on first start).
    ///
    /// # Errors
    /// [`BrokerError::Store`] or [`BrokerError::Crypto`].
    pub fn new(config: BrokerConfig) -> Result<Self, BrokerError> {
        let store = Store::open(&config.store_dir)?;
        let (cert, key) = load_or_make_tls(&config.store_dir)?;
        let fingerprint = hex::encode(Sha256::digest(&cert));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Crypto(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
            )
            .map_err(|e| BrokerError::Crypto(e.to_string()))?;
        let inner = Arc::new(Inner {
            store,
            sessions: Mutex::new(HashMap::new()),
            trust: config.trust,
            admin_token: admin_token(&config.store_dir)?,
        });
        Ok(Self {
            inner,
            tls: Arc::new(tls),
            fingerprint,
        })
    }

    /// SHA-256 of the TLS certificate (DER), hex: what clients pin.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/kbs/v0/auth", post(auth))
            .route("/kbs/v0/attest", post(attest))
            .route(
                "/kbs/v0/resource/{repo}/{kind}/{tag}",
                get(get_resource).post(put_resource),
            )
            .route("/kbs/v0/audit", get(audit_log))
            .route("/kbs/v0/runs/{run}/report", post(post_report))
            .route("/kbs/v0/runs/{run}", post(party_request))
            .with_state(self.inner.clone())
    }

    /// Serves on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// [`BrokerError::Store`] for socket errors.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BrokerError> {
        listener
            .set_nonblocking(true)
            .map_err(|e| BrokerError::Store(e.to_string()))?;
        let handle = axum_server::Handle::new();
        let h2 = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            h2.graceful_shutdown(Some(Duration::from_secs(2)));
        });
        let app = self.router();
        axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(self.tls),
        )
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(|e| BrokerError::Store(format!("serve: {e}")))
    }
}

/// A key's release policy as stored: the JSON grammar ([`ReleasePolicy`]) or a Rego module
/// ([`ccr_policy::RegoPolicy`], stored as its source text, registered as a JSON string).
pub enum KeyPolicy {
    /// The JSON grammar.
    Json(ReleasePolicy),
    /// Rego, with `data.ccr.allow`.
    Rego(Box<ccr_policy::RegoPolicy>),
}

impl KeyPolicy {
    /// Parses stored policy text: a JSON object is the JSON grammar, anything else Rego.
    ///
    /// # Errors
    /// [`ccr_policy::PolicyError`] from either parser (Rego errors give line and column).
    pub fn parse(text: &str) -> Result<Self, ccr_policy::PolicyError> {
        if text.trim_start().starts_with('{') {
            ReleasePolicy::from_json(text.as_bytes()).map(Self::Json)
        } else {
            ccr_policy::RegoPolicy::from_source("release.rego", text)
                .map(|r| Self::Rego(Box::new(r)))
        }
    }

    /// The decision over verified `claims`; Rego gets the input `{"claims", "authority",
    /// "contract", "request"}`, where `request` is `{"resource", "platform",
    /// "pipeline_digest", "run"}`. A Rego evaluation error is a denial naming it.
    pub fn decide(&self, claims: &Value, contract: &Contract, request: &Value) -> Decision {
        match self {
            Self::Json(p) => release_decision(p, claims),
            Self::Rego(r) => {
                let mut c = serde_json::to_value(contract).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut c {
                    m.remove("signatures");
                }
                let input = json!({
                    "claims": claims,
                    "authority": LOCAL_AUTHORITY,
                    "contract": c,
                    "request": request,
                });
                r.decide(&input)
            }
        }
    }
}

/// The broker's release decision: `policy` evaluated over verified `claims` (as
/// [`ccr_attest::Claims::to_policy_input`] makes them) for this broker's authority
/// ([`LOCAL_AUTHORITY`]). The resource handler calls it after the contract checks; tests call it
/// with the claims of real evidence.
pub fn release_decision(policy: &ReleasePolicy, claims: &Value) -> Decision {
    policy.evaluate(claims, LOCAL_AUTHORITY)
}

/// Checks that verified `claims` (as [`ccr_attest::Claims::to_policy_input`] makes them) bind
/// the contract whose digest is `contract_digest` (64 hex), and says through which claim:
/// - `host_data` equal to the digest (SNP `HOST_DATA`, sim; 32 bytes);
/// - `host_data` starting with the digest and zero after it (TDX `MRCONFIGID`, 48 bytes);
/// - `aci.ccr_contract_digest`: on ACI, `HOST_DATA` is SHA-256 of the CCE policy, verified
///   against the policy given, and the policy fixes `CCR_CONTRACT_DIGEST` for the container;
/// - `submods.container.env.CCR_CONTRACT_DIGEST` (or `env_override`): a Confidential Space
///   token's attested container environment.
///
/// # Errors
/// A reason naming what was compared, when none binds it.
pub fn contract_binding(claims: &Value, contract_digest: &str) -> Result<&'static str, String> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if let Some(hd) = s("host_data") {
        if hd == contract_digest {
            return Ok("host_data");
        }
        if hd.len() == 96 && hd.starts_with(contract_digest) && hd[64..].bytes().all(|b| b == b'0')
        {
            return Ok("host_data (MRCONFIGID)");
        }
    }
    if s("aci.ccr_contract_digest") == Some(contract_digest) {
        return Ok("aci.ccr_contract_digest");
    }
    for k in [
        "submods.container.env.CCR_CONTRACT_DIGEST",
        "submods.container.env_override.CCR_CONTRACT_DIGEST",
    ] {
        if s(k) == Some(contract_digest) {
            return Ok("submods.container.env.CCR_CONTRACT_DIGEST");
        }
    }
    Err(format!(
        "the evidence does not bind the contract this key is registered under ({contract_digest}): host_data is {}",
        s("host_data").unwrap_or("absent")
    ))
}

/// Parses `--listen` (`127.0.0.1:PORT`).
///
/// # Errors
/// [`BrokerError::Protocol`].
pub fn parse_listen(s: &str) -> Result<SocketAddr, BrokerError> {
    s.parse().map_err(|_| BrokerError::Protocol {
        field: "--listen".into(),
        reason: format!("`{s}` is not HOST:PORT"),
    })
}
