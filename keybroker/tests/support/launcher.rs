//! A stand-in for the Confidential Space launcher: `POST /v1/token` over a Unix socket, body
//! `{"audience", "nonces", "token_type": "OIDC"}`, answering a token signed by the test issuer
//! with the configured container image digest (HTTP/1.1, one request per connection).

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::google::{Issuer, cs_claims};

pub struct Launcher {
    pub socket: PathBuf,
}

pub fn start(dir: &Path, issuer: Arc<Issuer>, image_digest: &str) -> Launcher {
    let socket = dir.join("teeserver.sock");
    let l = UnixListener::bind(&socket).unwrap();
    let digest = image_digest.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (status, text) = if !line.starts_with("POST /v1/token ") {
                ("404 Not Found", "not found".to_string())
            } else if req["token_type"] != "OIDC" || !req["audience"].is_string() {
                (
                    "400 Bad Request",
                    "token_type OIDC and an audience are required".to_string(),
                )
            } else {
                let nonce = req["nonces"][0].as_str().unwrap_or("").to_string();
                let claims = cs_claims(
                    req["audience"].as_str().unwrap(),
                    &nonce,
                    &digest,
                    json!({}),
                );
                ("200 OK", issuer.token(&claims))
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Launcher { socket }
}
