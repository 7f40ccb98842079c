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
    /// `broker.db` could not be opened or set up: damaged, not a database, or locked by
    /// another process past the busy timeout.
    #[error("{}: cannot open the broker database{}", path.display(), locked_hint(source))]
    Database {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// `--listen` is not `HOST:PORT`.
    #[error("--listen `{0}` is not HOST:PORT")]
    Listen(String),
    /// The listening socket failed.
    #[error("serve: {0}")]
    Serve(#[source] std::io::Error),
}

fn locked_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            " (another process holds it: is another broker serving this store?)"
        }
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            " (the file is damaged: restore it from a backup, or move it away to start empty)"
        }
        _ => "",
    }
}

impl ServerError {
    /// [`ServerError::Io`] of `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| Self::Io { path, source }
    }
}
