//! HTTP/1.1 to local services: over a Unix socket for the Confidential Space launcher, over
//! plain TCP for Azure's IMDS (`hyper`'s client on a `tokio` stream; a current-thread runtime
//! made per call).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::error::AttestError;

/// Seconds allowed for the whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// POSTs `body` (JSON) to `path` on the server at `socket` and returns the response body of a
/// 200 answer.
///
/// # Errors
/// [`AttestError::Unavailable`] naming the socket for connection errors, timeouts, non-200
/// answers (with their body) and oversized bodies.
pub fn post_json(socket: &Path, path: &str, body: &str) -> Result<String, AttestError> {
    let fail = |reason: String| AttestError::Unavailable {
        platform: "gcp-cs".into(),
        reason: format!("{}: {reason}", socket.display()),
    };
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| fail(e.to_string()))?;
    let socket = socket.to_path_buf();
    exchange(
        async move { tokio::net::UnixStream::connect(socket).await },
        req,
        &fail,
    )
}

/// Sends `req` to the plain-HTTP server at `base` (`http://host[:port]`, such as Azure's IMDS
/// `http://169.254.169.254`; no TLS) and returns the body of a 2xx answer.
///
/// # Errors
/// As [`post_json`], naming `platform` and the URL.
pub fn tcp_request(
    platform: &str,
    base: &str,
    req: hyper::Request<Full<Bytes>>,
) -> Result<String, AttestError> {
    let url = format!("{base}{}", req.uri());
    let fail = |reason: String| AttestError::Unavailable {
        platform: platform.into(),
        reason: format!("{url}: {reason}"),
    };
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// is supported".into()))?
        .trim_end_matches('/')
        .to_string();
    let addr = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:80")
    };
    let mut req = req;
    req.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_str(&host).map_err(|e| fail(e.to_string()))?,
    );
    exchange(
        async move { tokio::net::TcpStream::connect(addr).await },
        req,
        &fail,
    )
}

/// One HTTP/1.1 exchange over the stream `connect` opens, within [`TIMEOUT`].
fn exchange<S, C>(
    connect: C,
    req: hyper::Request<Full<Bytes>>,
    fail: &dyn Fn(String) -> AttestError,
) -> Result<String, AttestError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    C: Future<Output = std::io::Result<S>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let path = req.uri().to_string();
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            let stream = connect.await.map_err(|e| fail(format!("connect: {e}")))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| fail(format!("handshake: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| fail(format!("request: {e}")))?;
            let status = resp.status();
            let bytes = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("response body: {e}")))?
                .to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(fail(format!("{path} answered {status}: {text}")));
            }
            Ok(text)
        })
        .await
        .map_err(|_| fail(format!("no answer within {} s", TIMEOUT.as_secs())))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn posts_and_reads_a_chunked_answer_and_reports_errors() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nbad aud",
            ] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let n = c.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("POST /v1/token HTTP/1.1"), "{req}");
                assert!(req.contains("\"token_type\""), "{req}");
                c.write_all(answer.as_bytes()).unwrap();
            }
        });
        let body = r#"{"audience":"a","nonces":["n"],"token_type":"OIDC"}"#;
        assert_eq!(post_json(&sock, "/v1/token", body).unwrap(), "abcde");
        let e = post_json(&sock, "/v1/token", body).unwrap_err();
        assert!(e.to_string().contains("400") && e.to_string().contains("bad aud"));
        t.join().unwrap();
        assert!(post_json(&d.path().join("none.sock"), "/v1/token", body).is_err());
    }
}
