//! A software TPM (`swtpm`, Debian's swtpm and swtpm-tools) started and stopped by the tests,
//! provisioned with `tpm2-tools` the way Azure's paravisor provisions a CVM's vTPM: an RSA AK
//! at persistent handle 0x81000003 and the HCL report in NV index 0x01400001. Plus a loopback
//! stand-in for Azure's IMDS (the THIM VCEK endpoint and the TD-quote endpoint).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Whether the swtpm and tpm2-tools programs are here; prints why not.
pub fn available() -> bool {
    for prog in ["swtpm", "tpm2_createprimary", "tpm2_nvdefine"] {
        if Command::new(prog)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var_os("CCR_REQUIRE_SWTPM").is_some() {
                panic!("{prog} is missing and CCR_REQUIRE_SWTPM is set");
            }
            eprintln!(
                "skipped: {prog} is not installed (apt-get install swtpm swtpm-tools tpm2-tools)"
            );
            return false;
        }
    }
    true
}

/// Two free consecutive loopback ports, bound: a TCTI of type swtpm talks to the TPM on `port`
/// and to its control channel on `port + 1`.
fn port_pair() -> (TcpListener, TcpListener) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p == u16::MAX {
            continue;
        }
        if let Ok(b) = TcpListener::bind(("127.0.0.1", p + 1)) {
            return (a, b);
        }
    }
}

/// A running swtpm on loopback; killed on drop.
pub struct Swtpm {
    child: Child,
    _state: tempfile::TempDir,
    pub port: u16,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Swtpm {
    /// Starts a fresh TPM 2.0 (manufactured, started up) on two free loopback ports.
    pub fn start() -> Self {
        for _ in 0..5 {
            let state = tempfile::tempdir().unwrap();
            let (a, b) = port_pair();
            let (port, ctrl) = (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            );
            drop((a, b));
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", state.path().display()))
                .args([
                    "--server",
                    &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
                ])
                .args([
                    "--ctrl",
                    &format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"),
                ])
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm starts");
            let mut t = Self {
                child,
                _state: state,
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if t.child.try_wait().unwrap().is_some() {
                    break; // a port was taken: try two others
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return t;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("swtpm did not start");
    }

    /// The TCTI configuration string for this TPM (`CCR_TPM_TCTI`, `TPM2TOOLS_TCTI`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against this TPM; panics with its output on failure.
    pub fn tool(&self, prog: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(prog)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{prog} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Makes an RSA-2048 restricted signing key (RSASSA SHA-256, as Azure's AK) and makes it
    /// persistent at 0x81000003.
    pub fn provision_ak(&self, dir: &Path) {
        let ctx = dir.join("ak.ctx");
        self.tool(
            "tpm2_createprimary",
            &[
                "-C",
                "o",
                "-G",
                "rsa2048:rsassa-sha256:null",
                "-a",
                "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda",
                "-c",
                ctx.to_str().unwrap(),
            ],
        );
        self.tool(
            "tpm2_evictcontrol",
            &["-C", "o", "-c", ctx.to_str().unwrap(), "0x81000003"],
        );
    }

    /// The AK's modulus and exponent (big endian), as `tpm2_readpublic` prints them.
    pub fn ak_public(&self) -> (Vec<u8>, Vec<u8>) {
        let out = String::from_utf8(self.tool("tpm2_readpublic", &["-c", "0x81000003"])).unwrap();
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("tpm2_readpublic printed no `{name}`: {out}"))
                .trim()
                .to_string()
        };
        let n = hex::decode(field("rsa:")).unwrap();
        let e: u32 = field("exponent:").parse().unwrap();
        let e = e.to_be_bytes();
        let first = e.iter().position(|&b| b != 0).unwrap_or(3);
        (n, e[first..].to_vec())
    }

    /// Defines NV index 0x01400001 (owner read/write) and writes `hcl` into it.
    pub fn provision_hcl(&self, dir: &Path, hcl: &[u8]) {
        let f = dir.join("hcl.bin");
        std::fs::write(&f, hcl).unwrap();
        self.tool(
            "tpm2_nvdefine",
            &[
                "0x01400001",
                "-C",
                "o",
                "-s",
                &hcl.len().to_string(),
                "-a",
                "ownerread|ownerwrite|authread|authwrite",
            ],
        );
        self.tool(
            "tpm2_nvwrite",
            &["0x01400001", "-C", "o", "-i", f.to_str().unwrap()],
        );
    }
}

/// Azure's HCL runtime data (the JSON the paravisor puts after `IgvmRequestData`), with `ak`
/// (modulus, exponent) as the `HCLAkPub` JWK.
pub fn runtime_data(n: &[u8], e: &[u8]) -> Vec<u8> {
    let jwk = |kid: &str| {
        json!({"kid": kid, "key_ops": ["sign"], "kty": "RSA",
               "e": URL_SAFE_NO_PAD.encode(e), "n": URL_SAFE_NO_PAD.encode(n)})
    };
    serde_json::to_vec(&json!({
        "keys": [jwk("HCLAkPub")],
        "vm-configuration": {"console-enabled": false, "root-cert-thumbprint": "", "secure-boot": true,
                             "tpm-enabled": true, "tpm-persisted": true, "vmUniqueId": "ccr-swtpm-test"},
        "user-data": "00".repeat(64),
    }))
    .unwrap()
}

/// An HCL report (header `HCLA`, the hardware report in its 1184-byte slot, `IgvmRequestData`
/// with SHA-256 as the report-data hash, then the runtime data). `report_type`: 2 SNP, 4 TDX.
pub fn hcl_report(hw: &[u8], report_type: u32, runtime: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"HCLA");
    b.extend_from_slice(&2u32.to_le_bytes()); // version
    b.extend_from_slice(&(1184u32).to_le_bytes()); // report size
    b.extend_from_slice(&2u32.to_le_bytes()); // request type
    b.extend_from_slice(&[0u8; 16]); // status, reserved
    let mut slot = vec![0u8; 1184];
    slot[..hw.len()].copy_from_slice(hw);
    b.extend_from_slice(&slot);
    let rt_len = u32::try_from(runtime.len()).unwrap();
    b.extend_from_slice(&(20 + rt_len).to_le_bytes()); // data size
    b.extend_from_slice(&1u32.to_le_bytes()); // version
    b.extend_from_slice(&report_type.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // SHA-256
    b.extend_from_slice(&rt_len.to_le_bytes());
    b.extend_from_slice(runtime);
    b
}

/// The 64-byte report_data binding the runtime data: SHA-256 of it, then zeros.
pub fn runtime_binding(runtime: &[u8]) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(runtime));
    rd
}

/// A loopback stand-in for Azure's IMDS: `GET /metadata/THIM/amd/certification` (only with the
/// `Metadata: true` header, else 400 as IMDS answers) and `POST /acc/tdquote`; records each
/// request line.
pub struct Imds {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Imds {
    /// Serves `vcek_pem` as THIM's `vcekCert` and `td_quote` (raw) as the TD quote.
    pub fn start(vcek_pem: String, td_quote: Vec<u8>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut metadata = false;
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if lower.starts_with("metadata:") && lower.contains("true") {
                        metadata = true;
                    }
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                seen.lock().unwrap().push(line.trim().to_string());
                let (status, answer) = if line.starts_with("GET /metadata/THIM/amd/certification ")
                {
                    if metadata {
                        (
                            "200 OK",
                            json!({"vcekCert": vcek_pem, "certificateChain": "", "tcbm": "DB18000000000004", "cacheControl": "86400"}),
                        )
                    } else {
                        (
                            "400 Bad Request",
                            json!({"error": "Bad request. Required metadata header not specified"}),
                        )
                    }
                } else if line.starts_with("POST /acc/tdquote ") {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if v.get("report").and_then(Value::as_str).is_some() {
                        (
                            "200 OK",
                            json!({"quote": URL_SAFE_NO_PAD.encode(&td_quote)}),
                        )
                    } else {
                        ("400 Bad Request", json!({"error": "report missing"}))
                    }
                } else {
                    ("404 Not Found", json!({"error": "not found"}))
                };
                let body = answer.to_string();
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, requests }
    }
}

/// `TPM2_NV_ReadPublic` (TPM 2.0 Library Part 3 §31.6).
const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
/// `TPM2_NV_Read` (Part 3 §31.13).
const TPM_CC_NV_READ: u32 = 0x0000_014e;
/// `TPM_RC_NV_RANGE`.
const TPM_RC_NV_RANGE: u32 = 0x0000_0146;

/// A TPM in front of a [`Swtpm`] that holds NV index 0x01400001 itself, with contents larger
/// than swtpm allows: libtpms' `MAX_NV_INDEX_SIZE` is 2048 bytes, and Azure's HCL reports are
/// 2600 (the NV index of Azure's vTPM is that large). It answers `TPM2_NV_ReadPublic` and
/// `TPM2_NV_Read` for that index as a TPM does (an ordinary index, owner and auth read/write,
/// written; its Name the SHA-256 of its public area, Part 1 §16) and passes every other command
/// to swtpm unchanged, so the AK, the quote and the PCRs stay swtpm's. The control channel is
/// relayed as is.
pub struct NvProxy {
    pub port: u16,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn response(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tag.to_be_bytes());
    r.extend_from_slice(&u32::try_from(10 + body.len()).unwrap().to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn read_message(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 10];
    c.read_exact(&mut head).ok()?;
    let size = u32_at(&head, 2)? as usize;
    if !(10..=1 << 20).contains(&size) {
        return None;
    }
    let mut m = head.to_vec();
    m.resize(size, 0);
    c.read_exact(&mut m[10..]).ok()?;
    Some(m)
}

impl NvProxy {
    /// Serves `contents` as NV index 0x01400001 in front of `tpm`.
    pub fn start(tpm: &Swtpm, contents: Vec<u8>) -> Self {
        const INDEX: u32 = 0x0140_0001;
        let (data, ctrl) = port_pair();
        let port = data.local_addr().unwrap().port();
        let (tpm_port, tpm_ctrl) = (tpm.port, tpm.port + 1);
        // TPMS_NV_PUBLIC: index, nameAlg SHA-256, TPMA_NV (OWNERWRITE | AUTHWRITE | OWNERREAD
        // | AUTHREAD | WRITTEN; type ordinary), empty authPolicy, dataSize.
        let mut public = Vec::new();
        public.extend_from_slice(&INDEX.to_be_bytes());
        public.extend_from_slice(&0x000bu16.to_be_bytes());
        public.extend_from_slice(&0x2006_0006u32.to_be_bytes());
        public.extend_from_slice(&0u16.to_be_bytes());
        public.extend_from_slice(&u16::try_from(contents.len()).unwrap().to_be_bytes());
        let mut name = 0x000bu16.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&public));
        let contents = Arc::new(contents);
        std::thread::spawn(move || {
            for c in ctrl.incoming() {
                let Ok(c) = c else { continue };
                let Ok(up) = TcpStream::connect(("127.0.0.1", tpm_ctrl)) else {
                    continue;
                };
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (mut c, mut up) = (c, up);
                // Each side's end is passed on: swtpm serves one control connection at a time.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        std::thread::spawn(move || {
            for c in data.incoming() {
                let Ok(mut c) = c else { continue };
                let (public, name, contents) = (public.clone(), name.clone(), contents.clone());
                std::thread::spawn(move || {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", tpm_port)) else {
                        return;
                    };
                    while let Some(cmd) = read_message(&mut c) {
                        let cc = u32_at(&cmd, 6).unwrap_or(0);
                        let answer =
                            if cc == TPM_CC_NV_READ_PUBLIC && u32_at(&cmd, 10) == Some(INDEX) {
                                let mut body = Vec::new();
                                body.extend_from_slice(
                                    &u16::try_from(public.len()).unwrap().to_be_bytes(),
                                );
                                body.extend_from_slice(&public);
                                body.extend_from_slice(
                                    &u16::try_from(name.len()).unwrap().to_be_bytes(),
                                );
                                body.extend_from_slice(&name);
                                response(0x8001, 0, &body)
                            } else if cc == TPM_CC_NV_READ && u32_at(&cmd, 14) == Some(INDEX) {
                                // Authorization area: size, then sessionHandle, nonce, attributes,
                                // hmac; the parameters (size, offset) follow it.
                                let auth_size = u32_at(&cmd, 18).unwrap_or(0) as usize;
                                let nonce_len = u16_at(&cmd, 26).unwrap_or(0) as usize;
                                let attrs = cmd.get(28 + nonce_len).copied().unwrap_or(1);
                                let p = 22 + auth_size;
                                let (size, offset) = (
                                    u16_at(&cmd, p).unwrap_or(0) as usize,
                                    u16_at(&cmd, p + 2).unwrap_or(0) as usize,
                                );
                                if offset + size > contents.len() {
                                    response(0x8001, TPM_RC_NV_RANGE, &[])
                                } else {
                                    let mut params =
                                        u16::try_from(size).unwrap().to_be_bytes().to_vec();
                                    params.extend_from_slice(&contents[offset..offset + size]);
                                    let mut body =
                                        u32::try_from(params.len()).unwrap().to_be_bytes().to_vec();
                                    body.extend_from_slice(&params);
                                    // The password session's response: empty nonce, its
                                    // attributes, empty hmac.
                                    body.extend_from_slice(&[0, 0, attrs, 0, 0]);
                                    response(0x8002, 0, &body)
                                }
                            } else {
                                if up.write_all(&cmd).is_err() {
                                    return;
                                }
                                match read_message(&mut up) {
                                    Some(r) => r,
                                    None => return,
                                }
                            };
                        if c.write_all(&answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port }
    }

    /// The TCTI configuration string for this TPM.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}
