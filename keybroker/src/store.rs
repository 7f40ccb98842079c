//! The broker's embedded database (SQLite through `rusqlite`, bundled).
//!
//! Tables:
//! - `keys(path PRIMARY KEY, secret BLOB, contract TEXT, policy TEXT, created TEXT)`: one row
//!   per KBS resource `repo/type/tag`, with the signed contract it was registered under and the
//!   release policy (the contract's unless given);
//! - `nonces(nonce PRIMARY KEY, issued INTEGER, used INTEGER)`: every nonce handed out, so
//!   none is accepted twice even across restarts;
//! - `audit(id, time, session, resource, decision, reason, evidence_digest, claims)`: every
//!   attestation and release decision with its reason.
//!
//! The database file is created with mode 0600; the keys in it are as sensitive as the keys
//! themselves (protect the store folder as you would a KMS's storage).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::BrokerError;

/// A registered key.
pub struct KeyRecord {
    /// The secret (the DEK), zeroized on drop.
    pub secret: Zeroizing<Vec<u8>>,
    /// The contract JSON it was registered under.
    pub contract: String,
    /// The release policy JSON.
    pub policy: String,
}

/// One audit-log row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    /// RFC 3339 time.
    pub time: String,
    /// Session id.
    pub session: String,
    /// Resource path or `attest`.
    pub resource: String,
    /// `allow`, `deny` or `error`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// SHA-384 of the evidence report, hex (empty when none).
    pub evidence_digest: String,
}

/// The store. Thread-safe (one connection behind a mutex; SQLite serialises writers anyway).
pub struct Store {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> BrokerError {
    BrokerError::Store(e.to_string())
}

impl Store {
    /// Opens (or creates) `dir/broker.db`.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn open(dir: &Path) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BrokerError::Store(format!("{}: {e}", dir.display())))?;
        let path = dir.join("broker.db");
        let conn = Connection::open(&path).map_err(db_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS keys(path TEXT PRIMARY KEY, secret BLOB NOT NULL,
                 contract TEXT NOT NULL, policy TEXT NOT NULL, created TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS nonces(nonce TEXT PRIMARY KEY, issued INTEGER NOT NULL,
                 used INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL,
                 session TEXT NOT NULL, resource TEXT NOT NULL, decision TEXT NOT NULL,
                 reason TEXT NOT NULL, evidence_digest TEXT NOT NULL, claims TEXT NOT NULL);",
        )
        .map_err(db_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or replaces) a key.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn put_key(
        &self,
        path: &str,
        secret: &[u8],
        contract: &str,
        policy: &str,
    ) -> Result<(), BrokerError> {
        self.conn()
            .execute(
                "INSERT INTO keys(path, secret, contract, policy, created) VALUES(?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(path) DO UPDATE SET secret=excluded.secret, contract=excluded.contract,
                 policy=excluded.policy, created=excluded.created",
                params![path, secret, contract, policy, chrono::Utc::now().to_rfc3339()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Looks a key up.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn get_key(&self, path: &str) -> Result<Option<KeyRecord>, BrokerError> {
        self.conn()
            .query_row(
                "SELECT secret, contract, policy FROM keys WHERE path = ?1",
                params![path],
                |r| {
                    Ok(KeyRecord {
                        secret: Zeroizing::new(r.get(0)?),
                        contract: r.get(1)?,
                        policy: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// Records a newly issued nonce.
    ///
    /// # Errors
    /// [`BrokerError::Store`] (also if the nonce was issued before).
    pub fn issue_nonce(&self, nonce: &str, now: i64) -> Result<(), BrokerError> {
        self.conn()
            .execute(
                "INSERT INTO nonces(nonce, issued) VALUES(?1, ?2)",
                params![nonce, now],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Marks a nonce used, atomically: succeeds once per nonce, and only within `ttl_secs` of
    /// its issue.
    ///
    /// # Errors
    /// [`BrokerError::Nonce`] when the nonce is unknown, used or expired.
    pub fn consume_nonce(&self, nonce: &str, now: i64, ttl_secs: i64) -> Result<(), BrokerError> {
        let n = self
            .conn()
            .execute(
                "UPDATE nonces SET used = 1 WHERE nonce = ?1 AND used = 0 AND issued >= ?2",
                params![nonce, now - ttl_secs],
            )
            .map_err(db_err)?;
        if n != 1 {
            return Err(BrokerError::Nonce);
        }
        Ok(())
    }

    /// Appends an audit row.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn audit(&self, row: &AuditRow, claims: &str) -> Result<(), BrokerError> {
        self.conn()
            .execute(
                "INSERT INTO audit(time, session, resource, decision, reason, evidence_digest, claims)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.time,
                    row.session,
                    row.resource,
                    row.decision,
                    row.reason,
                    row.evidence_digest,
                    claims
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Every audit row, oldest first.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn audit_log(&self) -> Result<Vec<AuditRow>, BrokerError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT time, session, resource, decision, reason, evidence_digest FROM audit ORDER BY id")
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| {
                Ok(AuditRow {
                    time: r.get(0)?,
                    session: r.get(1)?,
                    resource: r.get(2)?,
                    decision: r.get(3)?,
                    reason: r.get(4)?,
                    evidence_digest: r.get(5)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_single_use_and_expires() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.issue_nonce("n1", 1000).unwrap();
        s.consume_nonce("n1", 1010, 300).unwrap();
        assert!(matches!(
            s.consume_nonce("n1", 1011, 300),
            Err(BrokerError::Nonce)
        ));
        s.issue_nonce("n2", 1000).unwrap();
        assert!(matches!(
            s.consume_nonce("n2", 1400, 300),
            Err(BrokerError::Nonce)
        ));
        assert!(matches!(
            s.consume_nonce("never", 1000, 300),
            Err(BrokerError::Nonce)
        ));
        assert!(
            s.issue_nonce("n1", 2000).is_err(),
            "a nonce is never issued twice"
        );
    }
}
