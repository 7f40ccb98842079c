//! The KBS protocol's handlers: `auth` (nonce and session), `attest` (evidence verified, bound
//! to the nonce and the runtime key), `resource` (contract, policy and ledger checks, then the
//! key wrapped to the runtime key), and the admin endpoints (register a key, the audit log).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ccr_attest::evidence::Evidence;
use ccr_attest::{Platform, report_data::kbs_report_data};
use ccr_keybroker::BrokerError;
use ccr_keybroker::client::SESSION_COOKIE;
use ccr_keybroker::runs::RunPlan;
use ccr_policy::contract::KeyKind;
use ccr_policy::{Contract, Decision, ReleasePolicy};
use kbs_types::{Attestation, Challenge};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::decision::{KeyPolicy, contract_binding};
use crate::problem::{Problem, unauthorized};
use crate::state::{Attested, Inner, Session, now_unix, random_b64, session_id};
use crate::store::{Budget, Reservation};
use crate::{NONCE_TTL_SECS, SESSION_TTL};

#[derive(Deserialize)]
struct AuthRequest {
    version: String,
    tee: String,
    #[serde(rename = "extra-params", default)]
    extra_params: Value,
}

pub(crate) async fn auth(State(st): State<Arc<Inner>>, body: Bytes) -> Result<Response, Problem> {
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

pub(crate) async fn attest(
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

pub(crate) async fn get_resource(
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
            let is_output = contract.output.key.kind == KeyKind::Ccr
                && contract.output.key.properties.kid == path;
            if is_output && !contract.output.approvers.is_empty() {
                return Err(deny(format!(
                    "contract {} names output approvers ({}): its output key goes only to the data consumer, after they approve",
                    contract.id,
                    contract.output.approvers.join(", ")
                )));
            }
            let dataset = contract.datasets.iter().find(|d| d.key.ccr_releases(&path));
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
            let resp = ccr_keybroker::jwe::wrap(&tee_pubkey, &rec.secret).map_err(|e| {
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

pub(crate) async fn put_resource(
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

pub(crate) async fn audit_log(
    State(st): State<Arc<Inner>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.check_admin(&headers)?;
    Ok(Json(st.store.audit_log()?).into_response())
}
