//! The client side of the KBS protocol, with a pinned broker certificate, bounded retries and
//! timeouts.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kbs_types::{Attestation, Challenge, CompositeEvidence, Response, RuntimeData};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::BrokerError;
use crate::jwe::RuntimeKey;

/// Attempts per request (connect errors and 5xx are retried).
pub const ATTEMPTS: u32 = 3;
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The KBS protocol version this client speaks.
pub const PROTOCOL_VERSION: &str = "0.4.0";
/// The session cookie's name (as Trustee's KBS names it); the broker sets it in its `auth`
/// answer and reads it on every later call.
pub const SESSION_COOKIE: &str = "kbs-session-id";

/// Accepts exactly one server certificate, by the SHA-256 of its DER.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "broker certificate SHA-256 {} is not the pinned {}",
                hex::encode(got),
                hex::encode(self.sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A KBS client bound to one broker.
pub struct KbsClient {
    base: String,
    agent: ureq::Agent,
    session: Option<String>,
}

impl std::fmt::Debug for KbsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbsClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// How the broker ends the detail of a 401 about the session (unknown, expired, not
/// attested): the client should start a new session (`auth`, `attest`). The broker restarting
/// loses every session, so this is also how a client learns of a restart.
pub const REDO_HANDSHAKE: &str = "redo the handshake";

/// Parses a hex SHA-256 pin (64 hex characters, `:` separators allowed).
///
/// # Errors
/// [`BrokerError::Protocol`].
pub fn parse_pin(pin: &str) -> Result<[u8; 32], BrokerError> {
    let clean: String = pin.chars().filter(|c| *c != ':').collect();
    hex::decode(&clean)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| BrokerError::Protocol {
            field: "broker certificate pin".into(),
            reason: "expected 64 hex characters (SHA-256 of the certificate)".into(),
        })
}

/// A problem document from the broker, turned into an error.
fn problem(status: u16, body: &str) -> BrokerError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let detail = v
        .get("detail")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status {
        401 => BrokerError::Unauthorized(detail),
        403 => BrokerError::Denied(detail),
        404 => BrokerError::NotFound(detail),
        409 => BrokerError::Conflict(detail),
        _ => BrokerError::Remote { status, detail },
    }
}

impl KbsClient {
    /// A client for `base` (`https://host:port`) that accepts only the certificate whose
    /// SHA-256 is `pin`.
    pub fn new(base: &str, pin: [u8; 32]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha256: pin,
                provider,
            }))
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build();
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent,
            session: None,
        }
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<String, BrokerError> {
        let url = format!("{}{path}", self.base);
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            let mut req = self.agent.request(method, &url);
            if let Some(s) = &self.session {
                req = req.set("Cookie", &format!("{}={s}", SESSION_COOKIE));
            }
            if let Some(t) = bearer {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            let res = match body {
                Some(b) => req.send_json(b.clone()),
                None => req.call(),
            };
            match res {
                Ok(r) => {
                    if let Some(c) = r.header("set-cookie")
                        && let Some(v) = c
                            .split(';')
                            .next()
                            .and_then(|kv| kv.trim().strip_prefix(&format!("{}=", SESSION_COOKIE)))
                    {
                        self.session = Some(v.to_string());
                    }
                    return r.into_string().map_err(|e| BrokerError::Transport {
                        url: url.clone(),
                        reason: e.to_string(),
                    });
                }
                Err(ureq::Error::Status(code, r)) => {
                    let body = r.into_string().unwrap_or_default();
                    if code >= 500 {
                        last = Some(problem(code, &body));
                        continue;
                    }
                    return Err(problem(code, &body));
                }
                Err(ureq::Error::Transport(t)) => {
                    last = Some(BrokerError::Transport {
                        url: url.clone(),
                        reason: t.to_string(),
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| BrokerError::Transport {
            url,
            reason: "no attempt made".into(),
        }))
    }

    fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, BrokerError> {
        serde_json::from_str(body).map_err(|e| BrokerError::Protocol {
            field: what.into(),
            reason: format!("broker answered malformed JSON: {e}"),
        })
    }

    /// `POST /kbs/v0/auth`: starts a session for `tee` and returns the broker's nonce.
    /// `extra_params` is the `Request`'s `extra-params` (ccr sends `{"pipeline-digest": ...}`).
    ///
    /// # Errors
    /// [`BrokerError`] for transport failures, problem answers or a malformed `Challenge`.
    pub fn auth(&mut self, tee: &str, extra_params: Value) -> Result<Challenge, BrokerError> {
        self.session = None;
        let body = json!({"version": PROTOCOL_VERSION, "tee": tee, "extra-params": extra_params});
        let r = self.call("POST", "/kbs/v0/auth", Some(&body), None)?;
        let c: Challenge = Self::parse("Challenge", &r)?;
        if self.session.is_none() {
            return Err(BrokerError::Protocol {
                field: "Set-Cookie".into(),
                reason: "broker set no session cookie".into(),
            });
        }
        Ok(c)
    }

    /// `POST /kbs/v0/attest` with `evidence` (the platform's primary evidence JSON).
    ///
    /// # Errors
    /// As [`KbsClient::auth`]; [`BrokerError::Unauthorized`] when the broker rejects the evidence.
    pub fn attest(
        &mut self,
        nonce: &str,
        runtime_key: &RuntimeKey,
        evidence: Value,
    ) -> Result<Value, BrokerError> {
        let att = Attestation {
            init_data: None,
            runtime_data: RuntimeData {
                nonce: nonce.to_string(),
                tee_pubkey: runtime_key.tee_pubkey(),
            },
            tee_evidence: CompositeEvidence {
                primary_evidence: evidence,
                additional_evidence: String::new(),
            },
        };
        let body = serde_json::to_value(&att).unwrap_or(Value::Null);
        let r = self.call("POST", "/kbs/v0/attest", Some(&body), None)?;
        Self::parse("attest response", &r)
    }

    /// `GET /kbs/v0/resource/{path}` and unwraps the key with the runtime key.
    ///
    /// # Errors
    /// [`BrokerError::Denied`] with the broker's reason, [`BrokerError::NotFound`], ...
    pub fn get_resource(
        &mut self,
        path: &str,
        runtime_key: &RuntimeKey,
    ) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
        let r = self.call("GET", &format!("/kbs/v0/resource/{path}"), None, None)?;
        let resp: Response = Self::parse("Response", &r)?;
        runtime_key.unwrap(&resp)
    }

    /// Admin: registers `secret` at `path` under `contract` (and an optional policy).
    ///
    /// # Errors
    /// [`BrokerError`].
    pub fn put_resource(
        &mut self,
        admin_token: &str,
        path: &str,
        secret: &[u8],
        contract: &Value,
        policy: Option<&Value>,
    ) -> Result<(), BrokerError> {
        let mut body = json!({"secret": STANDARD.encode(secret), "contract": contract});
        if let Some(p) = policy {
            body["policy"] = p.clone();
        }
        self.call(
            "POST",
            &format!("/kbs/v0/resource/{path}"),
            Some(&body),
            Some(admin_token),
        )?;
        Ok(())
    }

    /// `POST /kbs/v0/runs/{run_id}/report`: the run report signed by the runtime key
    /// ([`RuntimeKey::sign_report`]) and, for contracts with output approvers, the output key to
    /// escrow. Answers `{"run", "report_digest"}`.
    ///
    /// # Errors
    /// [`BrokerError::Denied`] (signature), [`BrokerError::Conflict`] (reported already),
    /// [`BrokerError::NotFound`] (unknown run), transport errors.
    pub fn post_report(
        &mut self,
        run_id: &str,
        signed_report: &str,
        output_key: Option<&[u8]>,
    ) -> Result<Value, BrokerError> {
        let mut body = json!({"report": signed_report});
        if let Some(k) = output_key {
            body["output-key"] = json!(STANDARD.encode(k));
        }
        let r = self.call(
            "POST",
            &format!("/kbs/v0/runs/{run_id}/report"),
            Some(&body),
            None,
        )?;
        Self::parse("report answer", &r)
    }

    /// `POST /kbs/v0/runs/{run_id}`: a party's signed request ([`crate::runs::PartyRequest`]).
    /// Answers the action's JSON (for `output-key`, a KBS `Response`).
    ///
    /// # Errors
    /// [`BrokerError::Denied`] with the broker's reason, [`BrokerError::Conflict`],
    /// [`BrokerError::NotFound`], transport errors.
    pub fn party_request(&mut self, run_id: &str, signed: &str) -> Result<Value, BrokerError> {
        let r = self.call(
            "POST",
            &format!("/kbs/v0/runs/{run_id}"),
            Some(&json!({"request": signed})),
            None,
        )?;
        Self::parse("run answer", &r)
    }

    /// Admin: the audit log.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub fn audit_log(&mut self, admin_token: &str) -> Result<Value, BrokerError> {
        let r = self.call("GET", "/kbs/v0/audit", None, Some(admin_token))?;
        Self::parse("audit log", &r)
    }
}
