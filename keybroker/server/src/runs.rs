//! Runs after the release: the runtime's signed run report (and escrowed output key), and the
//! parties' signed requests about a run (show, approve, deny, output-key).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ccr_keybroker::runs::{IAT_SKEW_SECS, PARTY_TYP, PartyRequest, REPORT_TYP};
use ccr_policy::Contract;
use kbs_types::TeePubKey;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::problem::{Problem, conflict, not_found_run};
use crate::state::{Inner, now_unix};
use crate::store::{Approval, RunRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    report: String,
    #[serde(rename = "output-key", default)]
    output_key: Option<String>,
}

pub(crate) async fn post_report(
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
    let spent = ccr_keybroker::runs::reported_spend(&report).map_err(|e| bad(e.to_string()))?;
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

pub(crate) async fn party_request(
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
    let pending: Vec<String> = contract
        .output
        .approvers
        .iter()
        .filter(|a| !approvals.iter().any(|x| &x.party == *a))
        .cloned()
        .collect();
    let action = pr.action.clone();
    let call = PartyCall {
        st: &st,
        run_id: &run_id,
        run: &run,
        contract: &contract,
        claimed: claimed.clone(),
        pr: &pr,
        approvals: &approvals,
        pending: &pending,
    };
    match action.as_str() {
        "show" => show(&call),
        "approve" | "deny" => decide(&call),
        "output-key" => output_key(&call),
        other => Err(bad(format!(
            "request payload: action `{other}` (known: show, approve, deny, output-key)"
        ))),
    }
}

/// A verified party request about a recorded run.
struct PartyCall<'a> {
    st: &'a Inner,
    run_id: &'a str,
    run: &'a RunRecord,
    contract: &'a Contract,
    /// The party that signed the request.
    claimed: String,
    pr: &'a PartyRequest,
    approvals: &'a [Approval],
    /// The approvers that have not decided.
    pending: &'a [String],
}

impl PartyCall<'_> {
    fn resource(&self) -> String {
        format!("runs/{}", self.run_id)
    }

    /// A 403 refusal, audited under the party's name.
    fn refuse(&self, reason: String) -> Problem {
        self.audit("deny", &reason);
        Problem::new(StatusCode::FORBIDDEN, "PartyRefused", reason)
    }

    fn audit(&self, decision: &str, reason: &str) {
        self.st.audit(
            &self.claimed,
            &self.resource(),
            decision,
            reason,
            &self.run.evidence_digest,
            "{}",
        );
    }
}

fn bad(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", detail)
}

fn conflict_with(detail: String) -> Problem {
    Problem::new(StatusCode::CONFLICT, "Conflict", detail)
}

/// `show`: the run's report, approvals and what is pending.
fn show(c: &PartyCall<'_>) -> Result<Response, Problem> {
    let report: Value = c
        .run
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "run": c.run_id,
        "contract_id": c.contract.id,
        "evidence_digest": c.run.evidence_digest,
        "report": report,
        "report_digest": c.run.report_digest,
        "approvers": c.contract.output.approvers,
        "approvals": c.approvals,
        "pending": c.pending,
        "output_key_escrowed": c.run.output_key.is_some(),
    }))
    .into_response())
}

/// `approve` or `deny`, by an output approver, about the report it reviewed.
fn decide(c: &PartyCall<'_>) -> Result<Response, Problem> {
    let (contract, claimed) = (c.contract, &c.claimed);
    if !contract.output.approvers.contains(claimed) {
        return Err(c.refuse(format!(
            "party {claimed} is not an output approver of contract {} (approvers: {})",
            contract.id,
            contract.output.approvers.join(", ")
        )));
    }
    let Some(digest) = &c.run.report_digest else {
        return Err(conflict_with(format!(
            "run {} has not reported yet: nothing to approve",
            c.run_id
        )));
    };
    if c.pr.report_digest.as_deref() != Some(digest.as_str()) {
        return Err(conflict_with(format!(
            "the decision is about report {}, the run's report is {digest}",
            c.pr.report_digest.as_deref().unwrap_or("(none)")
        )));
    }
    let a = Approval {
        party: claimed.clone(),
        decision: c.pr.action.clone(),
        reason: c.pr.reason.clone().unwrap_or_default(),
        report_digest: digest.clone(),
        time: chrono::Utc::now().to_rfc3339(),
    };
    c.st.store.record_approval(c.run_id, &a).map_err(conflict)?;
    c.audit(
        &a.decision,
        &format!("output {}d by {claimed}: {}", a.decision, a.reason),
    );
    Ok(Json(json!({"run": c.run_id, "party": claimed, "decision": a.decision})).into_response())
}

/// `output-key`: the escrowed output key, to the data consumer, once every approver approved.
fn output_key(c: &PartyCall<'_>) -> Result<Response, Problem> {
    let contract = c.contract;
    if c.claimed != contract.tdc {
        return Err(c.refuse(format!(
            "only the data consumer ({}) gets the output key",
            contract.tdc
        )));
    }
    if let Some(d) = c.approvals.iter().find(|a| a.decision == "deny") {
        return Err(c.refuse(format!("output denied by {}: {}", d.party, d.reason)));
    }
    if !c.pending.is_empty() {
        return Err(c.refuse(format!(
            "waiting for approval from {}",
            c.pending.join(", ")
        )));
    }
    let Some(k) = &c.run.output_key else {
        return Err(conflict_with(format!(
            "run {} escrowed no output key (no report yet, or a contract without approvers)",
            c.run_id
        )));
    };
    let tp: TeePubKey =
        c.pr.tee_pubkey
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| bad("request payload: tee-pubkey missing or not a JWK".into()))?;
    let resp = ccr_keybroker::jwe::wrap(&tp, k).map_err(|e| bad(e.to_string()))?;
    c.audit(
        "allow",
        &format!(
            "output key released to the data consumer; approved by {}",
            contract.output.approvers.join(", ")
        ),
    );
    Ok(Json(resp).into_response())
}
