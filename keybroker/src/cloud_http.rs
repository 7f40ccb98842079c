//! HTTPS calls to cloud key services (Azure Attestation, Key Vault, IMDS; GCP STS, Cloud KMS)
//! with a deadline, bounded retries and errors that name the service and say why.
//!
//! - Every call has one deadline ([`RetryPolicy::timeout`]) across all its attempts; a server
//!   that stalls makes the call fail when the deadline passes, not later.
//! - Connection errors, 429 and 5xx are retried up to [`RetryPolicy::attempts`] times, with
//!   exponential backoff from [`RetryPolicy::backoff`], or after the server's `Retry-After`
//!   (seconds or an HTTP date, RFC 9110 §10.2.3) when it gives one, capped at
//!   [`RetryPolicy::max_retry_after`] and at the deadline.
//! - Other 4xx answers are denials and are never retried.
//! - Error bodies are read in the shapes the services use: Azure's `{"error": {"code",
//!   "message"}}`, Google's `{"error": {"code", "message", "status"}}`, OAuth 2.0's
//!   `{"error", "error_description"}` (RFC 6749 §5.2, GCP STS).
//!
//! Bearer tokens and bodies are never logged or put in errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a [`CloudClient`] retries and when it gives up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Most attempts per call (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubled after each failed attempt.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Connect timeout of each attempt.
    pub connect_timeout: Duration,
    /// Deadline of the whole call, all attempts included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms first backoff, `Retry-After` up to 30 s, 5 s connect timeout, 60 s
    /// per call.
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A failed call to a cloud service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// The service could not be reached or did not answer in time (after the retries).
    #[error("{service}: unreachable after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The service (`Azure Key Vault`, `GCP STS`, ...).
        service: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure (connection refused, timed out, 503 ...).
        reason: String,
    },
    /// The service answered with a denial or another 4xx.
    #[error("{service}: {status} {code}: {message}")]
    Denied {
        /// The service.
        service: String,
        /// HTTP status.
        status: u16,
        /// The service's error code (`Forbidden`, `PERMISSION_DENIED`, `invalid_grant`, ...).
        code: String,
        /// The service's message.
        message: String,
    },
    /// The answer was not what the API returns.
    #[error("{service}: malformed answer: {reason}")]
    Malformed {
        /// The service.
        service: String,
        /// What is wrong.
        reason: String,
    },
}

/// The trust anchors of a PEM bundle (one or more `CERTIFICATE` blocks), for
/// [`CloudClient::new`]'s `roots`; `what` names the input in errors (`--cloud-ca`).
///
/// # Errors
/// [`ccr_attest::AttestError::Certificate`] naming `what` for a bundle with no certificate or
/// a block that is not DER X.509.
pub fn roots_from_pem(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ccr_attest::AttestError> {
    Ok(ccr_attest::amd::AmdCert::pem_bundle(pem, what)?
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
        .collect())
}

/// Reads `(code, message)` from an error body of any of the shapes in the module docs.
pub fn error_fields(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let s = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v.get("error") {
        Some(Value::Object(e)) => {
            let code = e
                .get("status")
                .and_then(s)
                .or_else(|| e.get("code").and_then(s))
                .unwrap_or_default();
            let message = e.get("message").and_then(s).unwrap_or_default();
            (code, message)
        }
        Some(Value::String(code)) => (
            code.clone(),
            v.get("error_description").and_then(s).unwrap_or_default(),
        ),
        _ => (String::new(), body.chars().take(200).collect()),
    }
}

fn retry_after(h: Option<&str>) -> Option<Duration> {
    let h = h?.trim();
    if let Ok(secs) = h.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(h).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An HTTPS client for one cloud service.
#[derive(Clone)]
pub struct CloudClient {
    service: String,
    agent: ureq::Agent,
    policy: RetryPolicy,
}

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl CloudClient {
    /// A client for `service` that trusts the public web PKI (`webpki-roots`), or only
    /// `roots` (DER certificates) when given — local test servers, private CAs.
    pub fn new(
        service: &str,
        policy: RetryPolicy,
        roots: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Self {
        let mut store = rustls::RootCertStore::empty();
        match roots {
            Some(rs) => {
                for r in rs {
                    // A certificate the store rejects is simply not trusted.
                    let _ = store.add(r.clone());
                }
            }
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
            .with_root_certificates(store)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(policy.connect_timeout)
            .build();
        Self {
            service: service.to_string(),
            agent,
            policy,
        }
    }

    /// [`CloudClient::call`] with `Authorization: Bearer <bearer>` and a JSON body.
    ///
    /// # Errors
    /// As [`CloudClient::call`].
    pub fn call_bearer(
        &self,
        method: &str,
        url: &str,
        bearer: &str,
        body: &Value,
    ) -> Result<Value, CloudError> {
        let auth = zeroize::Zeroizing::new(format!("Bearer {bearer}"));
        self.call(
            method,
            url,
            &[("Authorization", auth.as_str())],
            Some(body),
            None,
        )
    }

    /// The service's name, as errors give it.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Sends `method url` with `headers` and an optional JSON `body` (or a form body,
    /// `application/x-www-form-urlencoded`, when `form` is given) and returns the JSON answer
    /// of a 2xx response.
    ///
    /// # Errors
    /// [`CloudError::Unreachable`] after the retries or at the deadline;
    /// [`CloudError::Denied`] for a 4xx other than 429; [`CloudError::Malformed`] for a 2xx
    /// whose body is not JSON.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        form: Option<&[(&str, &str)]>,
    ) -> Result<Value, CloudError> {
        let start = Instant::now();
        let deadline = start + self.policy.timeout;
        let mut wait = self.policy.backoff;
        let mut last = String::new();
        let mut made = 0;
        for attempt in 1..=self.policy.attempts {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            made = attempt;
            let mut req = self.agent.request(method, url).timeout(deadline - now);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let res = match (body, form) {
                (Some(b), _) => req.send_json(b.clone()),
                (None, Some(f)) => req.send_form(f),
                (None, None) => req.call(),
            };
            let retry_in = match res {
                Ok(r) => {
                    let text = r.into_string().map_err(|e| CloudError::Malformed {
                        service: self.service.clone(),
                        reason: format!("reading the body: {e}"),
                    })?;
                    return serde_json::from_str(&text).map_err(|e| CloudError::Malformed {
                        service: self.service.clone(),
                        reason: format!("not JSON: {e}"),
                    });
                }
                Err(ureq::Error::Status(code, r)) => {
                    let after = retry_after(r.header("retry-after"));
                    let text = r.into_string().unwrap_or_default();
                    let (ecode, message) = error_fields(&text);
                    if code != 429 && code < 500 {
                        return Err(CloudError::Denied {
                            service: self.service.clone(),
                            status: code,
                            code: ecode,
                            message,
                        });
                    }
                    last = format!("{code} {ecode} {message}").trim().to_string();
                    after.map(|a| a.min(self.policy.max_retry_after))
                }
                Err(ureq::Error::Transport(t)) => {
                    last = t.to_string();
                    None
                }
            };
            if attempt == self.policy.attempts {
                break;
            }
            let pause = retry_in.unwrap_or(wait);
            wait *= 2;
            let now = Instant::now();
            if now + pause >= deadline {
                last = format!("{last}; the next attempt would pass the deadline");
                break;
            }
            std::thread::sleep(pause);
        }
        Err(CloudError::Unreachable {
            service: self.service.clone(),
            attempts: made,
            reason: format!(
                "{last} ({:.1} s of a {} s deadline)",
                start.elapsed().as_secs_f64(),
                self.policy.timeout.as_secs()
            ),
        })
    }
}
