//! A scripted HTTPS server on loopback for client tests: a local CA, a `localhost` certificate
//! it signs, and a handler that answers each request with the next scripted reply.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;

/// One scripted reply.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a stalled server).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub struct Server {
    pub base: String,
    pub ca: CertificateDer<'static>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a server answering with `script` in order (the last reply repeats).
pub fn start(script: Vec<Reply>) -> Server {
    let (ca, ca_key) = local_ca("ccr test CA");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = localhost_cert(&leaf_key, &ca, &ca_key);
    let script = Arc::new(Mutex::new((script, 0usize)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let script = script.clone();
        let seen = seen2.clone();
        async move {
            seen.lock().unwrap().push(Seen {
                method: method.to_string(),
                uri: uri.to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let reply = {
                let mut s = script.lock().unwrap();
                let i = s.1.min(s.0.len() - 1);
                s.1 += 1;
                s.0[i].clone()
            };
            tokio::time::sleep(reply.delay).await;
            let mut r: Response = (
                StatusCode::from_u16(reply.status).unwrap(),
                reply.body.clone(),
            )
                .into_response();
            for (k, v) in &reply.headers {
                r.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            r
        }
    };
    let (base, stop) = serve(
        |_| Router::new().fallback(handler),
        vec![leaf.der().clone()],
        leaf_key.serialize_der(),
    );
    Server {
        base,
        ca: ca.der().clone(),
        seen,
        _stop: stop,
    }
}

/// A local CA: its certificate and key.
pub fn local_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (ca_params.self_signed(&ca_key).unwrap(), ca_key)
}

/// A certificate for `localhost` and 127.0.0.1 with `key`, signed by the CA.
pub fn localhost_cert(
    key: &rcgen::KeyPair,
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> rcgen::Certificate {
    rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(key, ca, ca_key)
        .unwrap()
}

/// Serves the app `make_app` builds for the base URL (`https://localhost:PORT`) over TLS with
/// `chain` and `key_der` (PKCS#8) on a loopback port, on its own runtime thread; returns the
/// base URL and the stop handle.
pub fn serve(
    make_app: impl FnOnce(&str) -> Router,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            chain,
            rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let app = make_app(&base);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let handle = axum_server::Handle::new();
                let h2 = handle.clone();
                tokio::spawn(async move {
                    let _ = rx.await;
                    h2.shutdown();
                });
                axum_server::from_tcp_rustls(
                    listener,
                    axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
                )
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .unwrap();
            });
    });
    (base, tx)
}
