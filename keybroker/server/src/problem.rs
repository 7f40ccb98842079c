//! RFC 7807 problem documents: the broker's error answers. Detail for remote clients is short;
//! internal errors go to the local log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ccr_keybroker::BrokerError;
use serde_json::json;

/// An RFC 7807 problem.
pub(crate) struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
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

pub(crate) fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        format!("{detail}: {}", ccr_keybroker::client::REDO_HANDSHAKE),
    )
}

pub(crate) fn not_found_run(run_id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "RunNotFound",
        format!("no run {run_id}"),
    )
}

pub(crate) fn conflict(e: BrokerError) -> Problem {
    match e {
        BrokerError::Conflict(d) => Problem::new(StatusCode::CONFLICT, "Conflict", d),
        other => other.into(),
    }
}
