//! Where the cloud key services are (Azure IMDS, GCP STS and Cloud KMS, the Confidential Space
//! launcher) and which TLS roots to trust for them.

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::cloud_http::{CloudClient, RetryPolicy};
use crate::{azure, gcp};

/// Where the cloud services are and what TLS roots to trust (defaults: the public endpoints and
/// the web PKI).
#[derive(Clone)]
pub struct CloudOptions {
    /// Trust only these roots (DER) for cloud endpoints and Key Vault's release JWS; `None`:
    /// the public web PKI.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// The IMDS base URL.
    pub imds: String,
    /// A user-assigned managed identity's client id.
    pub azure_client_id: Option<String>,
    /// A Key Vault bearer token given in the environment (`CCR_AZURE_TOKEN`), used instead of
    /// IMDS.
    pub azure_token: Option<Zeroizing<String>>,
    /// The GCP STS base URL.
    pub sts: String,
    /// The Cloud KMS base URL (a key's `endpoint` overrides it).
    pub kms: String,
    /// The Confidential Space launcher socket.
    pub cs_socket: PathBuf,
}

impl std::fmt::Debug for CloudOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("CloudOptions")
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("imds", &self.imds)
            .field("azure_client_id", &self.azure_client_id)
            .field("azure_token", &self.azure_token.as_ref().map(|_| "<set>"))
            .field("sts", &self.sts)
            .field("kms", &self.kms)
            .field("cs_socket", &self.cs_socket)
            .finish()
    }
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            roots: None,
            imds: azure::IMDS_BASE.into(),
            azure_client_id: None,
            azure_token: None,
            sts: gcp::STS_BASE.into(),
            kms: gcp::KMS_BASE.into(),
            cs_socket: ccr_attest::attester::CS_SOCKET.into(),
        }
    }
}

impl CloudOptions {
    pub(crate) fn client(&self, service: &str) -> CloudClient {
        CloudClient::new(service, RetryPolicy::default(), self.roots.as_deref())
    }
}

pub(crate) fn url(s: &str) -> String {
    if s.contains("://") {
        s.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", s.trim_end_matches('/'))
    }
}

pub(crate) fn host(u: &str) -> String {
    let rest = u.split("://").nth(1).unwrap_or(u);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}
