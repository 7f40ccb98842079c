//! Errors of the broker's setup and serving (its requests answer RFC 7807 problems instead,
//! see `problem`).

use std::path::PathBuf;

use ccr_keybroker::BrokerError;

/// A broker setup or serving error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file or folder of the store could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The self-signed TLS certificate could not be made.
    #[error("TLS certificate: {0}")]
    Certificate(#[source] rcgen::Error),
    /// The TLS configuration was refused (the stored key does not fit the certificate).
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// The database could not be opened or set up.
    #[error("{0}")]
    Store(#[from] BrokerError),
    /// `--listen` is not `HOST:PORT`.
    #[error("--listen `{0}` is not HOST:PORT")]
    Listen(String),
    /// The listening socket failed.
    #[error("serve: {0}")]
    Serve(#[source] std::io::Error),
}

impl ServerError {
    /// [`ServerError::Io`] of `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| Self::Io { path, source }
    }
}
