//! # ccr-keybroker-server: the local key broker (`ccr keybroker serve`)
//!
//! The host side of key release: the KBS protocol over HTTPS (rustls), keys and audit in SQLite.
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
//!   over the claims, and answers the key as a JWE wrapped to `tee-pubkey` ([`ccr_keybroker::jwe`]).
//! - `POST /kbs/v0/resource/{repo}/{type}/{tag}` — admin (`Authorization: Bearer <token>`):
//!   registers a key `{"secret": base64, "contract": {...}, "policy"?: {...}}`.
//! - `GET /kbs/v0/audit` — admin: the audit log as JSON.
//! - `POST /kbs/v0/runs/{run}/report` — the runtime's signed run report (and escrowed output
//!   key); `POST /kbs/v0/runs/{run}` — a party's signed request: show, approve, deny,
//!   output-key. See [`ccr_keybroker::runs`].
//!
//! The `Request`'s `extra-params.run` ([`ccr_keybroker::runs::RunPlan`]) names the run and its planned
//! epsilon; each dataset key's release charges that dataset's privacy budget in the store's
//! ledger, atomically, and counts the run against the contract's `maxRuns`. With output
//! approvers, the output key is never released to a runtime (it makes its own and escrows it).
//!
//! Errors are RFC 7807 problem documents (`application/problem+json`: `type`, `title`,
//! `status`, `detail`): 400 malformed request, 401 no or expired session (redo the handshake),
//! 403 denied by policy, contract, budget or approvers, 404 unknown resource or run, 409 a
//! conflict with what is recorded. Every attestation, release, report and approval decision is
//! written to the audit log with its reason.

//!
//! Modules: [`store`] (SQLite: keys, nonces, audit log, privacy ledger, runs and approvals),
//! `kbs` (the KBS handlers), `runs` (run reports and party requests), [`decision`] (release
//! policies and the contract binding), `tls` (the self-signed certificate and the admin token).
//! The runtime's side of the protocol is `ccr_keybroker::client`; `ccr-init` never links this
//! crate.

#![forbid(unsafe_code)]

mod error;
mod kbs;
mod problem;
mod runs;
mod state;
mod tls;

pub mod decision;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use ccr_attest::evidence::Trust;
use sha2::{Digest, Sha256};

pub use ccr_keybroker::client::SESSION_COOKIE;
pub use decision::{KeyPolicy, LOCAL_AUTHORITY, contract_binding, release_decision};
pub use error::ServerError;
pub use tls::admin_token;

use state::Inner;
use store::Store;

/// Seconds a nonce stays valid after `auth`.
pub const NONCE_TTL_SECS: i64 = 300;
/// Seconds a session stays valid after `auth`.
pub const SESSION_TTL: Duration = Duration::from_secs(600);

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

/// A broker ready to serve: its TLS material and admin token are in the store folder.
pub struct Broker {
    inner: Arc<Inner>,
    tls: Arc<rustls::ServerConfig>,
    fingerprint: String,
}

impl Broker {
    /// Opens the store and TLS material (made on first start).
    ///
    /// # Errors
    /// [`ServerError`]: the store, the TLS material or the admin token.
    pub fn new(config: BrokerConfig) -> Result<Self, ServerError> {
        let store = Store::open(&config.store_dir)?;
        let (cert, key) = tls::load_or_make_tls(&config.store_dir)?;
        let fingerprint = hex::encode(Sha256::digest(&cert));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ServerError::Tls)?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
            )
            .map_err(ServerError::Tls)?;
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
            .route("/kbs/v0/auth", post(kbs::auth))
            .route("/kbs/v0/attest", post(kbs::attest))
            .route(
                "/kbs/v0/resource/{repo}/{kind}/{tag}",
                get(kbs::get_resource).post(kbs::put_resource),
            )
            .route("/kbs/v0/audit", get(kbs::audit_log))
            .route("/kbs/v0/runs/{run}/report", post(runs::post_report))
            .route("/kbs/v0/runs/{run}", post(runs::party_request))
            .with_state(self.inner.clone())
    }

    /// Serves on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// [`ServerError::Serve`] for socket errors.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        listener.set_nonblocking(true).map_err(ServerError::Serve)?;
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
        .map_err(ServerError::Serve)
    }
}

/// Parses `--listen` (`127.0.0.1:PORT`).
///
/// # Errors
/// [`ServerError::Listen`].
pub fn parse_listen(s: &str) -> Result<SocketAddr, ServerError> {
    s.parse().map_err(|_| ServerError::Listen(s.to_string()))
}
