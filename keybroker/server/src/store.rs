//! The broker's embedded database (SQLite through `rusqlite`, bundled).
//!
//! Tables:
//! - `keys(path PRIMARY KEY, secret BLOB, contract TEXT, policy TEXT, created TEXT)`: one row
//!   per KBS resource `repo/type/tag`, with the signed contract it was registered under and the
//!   release policy (the contract's unless given);
//! - `nonces(nonce PRIMARY KEY, issued INTEGER, used INTEGER)`: every nonce handed out, so
//!   none is accepted twice even across restarts;
//! - `audit(id, time, session, resource, decision, reason, evidence_digest, claims)`: every
//!   attestation and release decision with its reason;
//! - `runs(run_id PRIMARY KEY, contract_id, contract_digest, contract, tee_pubkey,
//!   evidence_digest, started, report, report_digest, reported, output_key)`: every run that got
//!   a key, with the runtime key it attested, its signed report once sent, and (for contracts
//!   with output approvers) the escrowed output key;
//! - `budgets(contract_id, dataset, epsilon_total, delta)`: each dataset's privacy budget;
//! - `spends(contract_id, dataset, run_id, epsilon_planned, delta, epsilon_spent, time)`: the
//!   privacy ledger, one row per run and dataset (`epsilon_planned` NULL for a run without
//!   DP); a run's charge is its reported `epsilon_spent`, or its planned epsilon until then;
//! - `approvals(run_id, party, decision, reason, report_digest, time)`: the output approvers'
//!   decisions.
//!
//! The privacy ledger is spent in one `BEGIN IMMEDIATE` transaction per release
//! ([`Store::reserve`]): SQLite takes the write lock before reading the sums, so two releases,
//! even from two broker processes on one database, cannot both spend the last epsilon.
//!
//! The database file is created with mode 0600; the keys in it are as sensitive as the keys
//! themselves (protect the store folder as you would a KMS's storage).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use ccr_keybroker::BrokerError;

use crate::error::ServerError;

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

/// What a run asks of the ledger when it gets one key ([`Store::reserve`]).
#[derive(Debug, Clone)]
pub struct Reservation<'a> {
    /// The run id (from the session's run plan).
    pub run_id: &'a str,
    /// The contract's id.
    pub contract_id: &'a str,
    /// The contract digest, hex.
    pub contract_digest: &'a str,
    /// The contract JSON (kept with the run for the approval flow).
    pub contract: &'a str,
    /// The runtime key's JWK, JSON (the run report must be signed by it).
    pub tee_pubkey: &'a str,
    /// The evidence digest, hex.
    pub evidence_digest: &'a str,
    /// The contract's `maxRuns`.
    pub max_runs: Option<u32>,
    /// The dataset charged, with its budget; `None` for the output key or a dataset without one.
    pub budget: Option<Budget<'a>>,
    /// The run's planned (epsilon, delta); `None` when it trains without DP.
    pub planned: Option<(f64, f64)>,
}

/// A dataset's privacy budget as the contract states it.
#[derive(Debug, Clone, Copy)]
pub struct Budget<'a> {
    /// The dataset id.
    pub dataset: &'a str,
    /// `epsilon_threshold`: the total epsilon over all runs.
    pub epsilon_total: f64,
    /// The contract's delta (the most a run may use).
    pub delta: f64,
    /// `dp_required`.
    pub dp_required: bool,
}

/// One dataset's line of the budget report ([`Store::budget_report`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BudgetLine {
    /// The contract id.
    pub contract_id: String,
    /// The dataset id.
    pub dataset: String,
    /// The total epsilon.
    pub epsilon_total: f64,
    /// The contract's delta.
    pub delta: f64,
    /// Epsilon spent by runs that reported (their `epsilon_spent`).
    pub epsilon_spent: f64,
    /// Epsilon reserved by runs that have not reported yet (their planned epsilon).
    pub epsilon_reserved: f64,
    /// `epsilon_total - epsilon_spent - epsilon_reserved`.
    pub epsilon_remaining: f64,
    /// Runs that got this dataset's key with DP.
    pub private_runs: u64,
    /// Runs that got it without DP (only where `dp_required` is false).
    pub non_private_runs: u64,
}

/// A stored run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run id.
    pub run_id: String,
    /// The contract JSON.
    pub contract: String,
    /// The runtime key's JWK JSON.
    pub tee_pubkey: String,
    /// The evidence digest, hex.
    pub evidence_digest: String,
    /// The signed report's payload (run.json), once sent.
    pub report: Option<String>,
    /// SHA-256 of the report payload, hex.
    pub report_digest: Option<String>,
    /// The escrowed output key.
    pub output_key: Option<Zeroizing<Vec<u8>>>,
}

/// One approver's decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    /// The party id.
    pub party: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// The party's reason (may be empty).
    pub reason: String,
    /// The report digest the party saw.
    pub report_digest: String,
    /// RFC 3339 time.
    pub time: String,
}

/// Tolerance on budget sums (floating-point sums of epsilons).
const EPSILON_SLACK: f64 = 1e-9;

/// The store. Thread-safe (one connection behind a mutex; SQLite serialises writers anyway).
pub struct Store {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> BrokerError {
    BrokerError::Store(Box::new(e))
}

impl Store {
    /// Opens (or creates) `dir/broker.db`.
    ///
    /// # Errors
    /// [`ServerError::Io`] for the folder, [`ServerError::Database`] naming `broker.db` when it is
    /// damaged, not a database, or locked past the busy timeout (5 s).
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(dir).map_err(ServerError::io(dir))?;
        let path = dir.join("broker.db");
        let database = |source| ServerError::Database {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(database)?;
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
                 reason TEXT NOT NULL, evidence_digest TEXT NOT NULL, claims TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, contract_id TEXT NOT NULL,
                 contract_digest TEXT NOT NULL, contract TEXT NOT NULL, tee_pubkey TEXT NOT NULL,
                 evidence_digest TEXT NOT NULL, started TEXT NOT NULL, report TEXT,
                 report_digest TEXT, reported TEXT, output_key BLOB);
             CREATE TABLE IF NOT EXISTS budgets(contract_id TEXT NOT NULL, dataset TEXT NOT NULL,
                 epsilon_total REAL NOT NULL, delta REAL NOT NULL,
                 PRIMARY KEY(contract_id, dataset));
             CREATE TABLE IF NOT EXISTS spends(contract_id TEXT NOT NULL, dataset TEXT NOT NULL,
                 run_id TEXT NOT NULL, epsilon_planned REAL, delta REAL, epsilon_spent REAL,
                 time TEXT NOT NULL, PRIMARY KEY(contract_id, dataset, run_id));
             CREATE TABLE IF NOT EXISTS approvals(run_id TEXT NOT NULL, party TEXT NOT NULL,
                 decision TEXT NOT NULL, reason TEXT NOT NULL, report_digest TEXT NOT NULL,
                 time TEXT NOT NULL, PRIMARY KEY(run_id, party));",
        )
        .map_err(database)?;
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

impl Store {
    /// Records a dataset's budget (kept when it exists: the contract is signed, so the same
    /// contract id always carries the same budget).
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn put_budget(&self, contract_id: &str, b: &Budget<'_>) -> Result<(), BrokerError> {
        put_budget(&self.conn(), contract_id, b)
    }

    /// Registers the run (first key) and charges the dataset's budget, atomically, in one
    /// `BEGIN IMMEDIATE` transaction. A run already charged for the dataset is not charged again.
    ///
    /// # Errors
    /// [`BrokerError::Denied`] naming the limit (maxRuns reached, DP required, delta above the
    /// contract's, not enough epsilon left: with the figures), or [`BrokerError::Store`]. On
    /// error nothing is recorded.
    pub fn reserve(&self, r: &Reservation<'_>) -> Result<(), BrokerError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let known: Option<String> = tx
            .query_row(
                "SELECT tee_pubkey FROM runs WHERE run_id = ?1",
                params![r.run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_err)?;
        match known {
            Some(k) if k != r.tee_pubkey => {
                return Err(BrokerError::Denied(format!(
                    "run {} was started by another runtime key",
                    r.run_id
                )));
            }
            Some(_) => {}
            None => {
                if let Some(max) = r.max_runs {
                    let n: i64 = tx
                        .query_row(
                            "SELECT COUNT(*) FROM runs WHERE contract_id = ?1",
                            params![r.contract_id],
                            |row| row.get(0),
                        )
                        .map_err(db_err)?;
                    if n >= i64::from(max) {
                        return Err(BrokerError::Denied(format!(
                            "contract {}: maxRuns {max} reached ({n} runs)",
                            r.contract_id
                        )));
                    }
                }
                tx.execute(
                    "INSERT INTO runs(run_id, contract_id, contract_digest, contract, tee_pubkey,
                     evidence_digest, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        r.run_id,
                        r.contract_id,
                        r.contract_digest,
                        r.contract,
                        r.tee_pubkey,
                        r.evidence_digest,
                        chrono::Utc::now().to_rfc3339()
                    ],
                )
                .map_err(db_err)?;
            }
        }
        if let Some(b) = &r.budget {
            put_budget(&tx, r.contract_id, b)?;
            let charged: bool = tx
                .query_row(
                    "SELECT 1 FROM spends WHERE contract_id = ?1 AND dataset = ?2 AND run_id = ?3",
                    params![r.contract_id, b.dataset, r.run_id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or(false);
            if !charged {
                let total: f64 = tx
                    .query_row(
                        "SELECT epsilon_total FROM budgets WHERE contract_id = ?1 AND dataset = ?2",
                        params![r.contract_id, b.dataset],
                        |row| row.get(0),
                    )
                    .map_err(db_err)?;
                let (epsilon, delta) = match r.planned {
                    None if b.dp_required => {
                        return Err(BrokerError::Denied(format!(
                            "dataset {} requires DP and run {} plans no epsilon",
                            b.dataset, r.run_id
                        )));
                    }
                    None => (None, None),
                    Some((e, d)) => {
                        if !(e.is_finite() && e > 0.0) {
                            return Err(BrokerError::Denied(format!(
                                "run {}: planned epsilon {e} is not a positive number",
                                r.run_id
                            )));
                        }
                        if !(d > 0.0 && d <= b.delta) {
                            return Err(BrokerError::Denied(format!(
                                "dataset {}: run {} plans delta {d}, the contract allows at most {}",
                                b.dataset, r.run_id, b.delta
                            )));
                        }
                        let used: f64 = tx
                            .query_row(
                                "SELECT COALESCE(SUM(COALESCE(epsilon_spent, epsilon_planned)), 0)
                                 FROM spends WHERE contract_id = ?1 AND dataset = ?2",
                                params![r.contract_id, b.dataset],
                                |row| row.get(0),
                            )
                            .map_err(db_err)?;
                        if used + e > total + EPSILON_SLACK {
                            return Err(BrokerError::Denied(format!(
                                "dataset {}: run {} asks for epsilon {e}, {:.6} of {total} remains",
                                b.dataset,
                                r.run_id,
                                (total - used).max(0.0)
                            )));
                        }
                        (Some(e), Some(d))
                    }
                };
                tx.execute(
                    "INSERT INTO spends(contract_id, dataset, run_id, epsilon_planned, delta, time)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        r.contract_id,
                        b.dataset,
                        r.run_id,
                        epsilon,
                        delta,
                        chrono::Utc::now().to_rfc3339()
                    ],
                )
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// The run, if known.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, BrokerError> {
        self.conn()
            .query_row(
                "SELECT run_id, contract, tee_pubkey, evidence_digest, report, report_digest,
                 output_key FROM runs WHERE run_id = ?1",
                params![run_id],
                |r| {
                    Ok(RunRecord {
                        run_id: r.get(0)?,
                        contract: r.get(1)?,
                        tee_pubkey: r.get(2)?,
                        evidence_digest: r.get(3)?,
                        report: r.get(4)?,
                        report_digest: r.get(5)?,
                        output_key: r.get::<_, Option<Vec<u8>>>(6)?.map(Zeroizing::new),
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// Records a run's verified report: the report, its digest, the epsilon spent per dataset
    /// and the escrowed output key, in one transaction; once per run.
    ///
    /// # Errors
    /// [`BrokerError::Conflict`] when the run has reported already; [`BrokerError::Store`].
    pub fn record_report(
        &self,
        run_id: &str,
        report: &str,
        report_digest: &str,
        spent: &[(String, Option<f64>)],
        output_key: Option<&[u8]>,
    ) -> Result<(), BrokerError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let n = tx
            .execute(
                "UPDATE runs SET report = ?2, report_digest = ?3, reported = ?4, output_key = ?5
                 WHERE run_id = ?1 AND report IS NULL",
                params![
                    run_id,
                    report,
                    report_digest,
                    chrono::Utc::now().to_rfc3339(),
                    output_key
                ],
            )
            .map_err(db_err)?;
        if n != 1 {
            return Err(BrokerError::Conflict(format!(
                "run {run_id} has reported already"
            )));
        }
        for (dataset, eps) in spent {
            tx.execute(
                "UPDATE spends SET epsilon_spent = ?3 WHERE run_id = ?1 AND dataset = ?2
                 AND epsilon_planned IS NOT NULL",
                params![run_id, dataset, eps],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Records an approver's decision, once per party and run.
    ///
    /// # Errors
    /// [`BrokerError::Conflict`] when the party has decided already; [`BrokerError::Store`].
    pub fn record_approval(&self, run_id: &str, a: &Approval) -> Result<(), BrokerError> {
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO approvals(run_id, party, decision, reason, report_digest, time)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run_id,
                    a.party,
                    a.decision,
                    a.reason,
                    a.report_digest,
                    a.time
                ],
            )
            .map_err(db_err)?;
        if n != 1 {
            return Err(BrokerError::Conflict(format!(
                "party {} has decided on run {run_id} already",
                a.party
            )));
        }
        Ok(())
    }

    /// The approvers' decisions on a run, in the order they came.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn approvals(&self, run_id: &str) -> Result<Vec<Approval>, BrokerError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT party, decision, reason, report_digest, time FROM approvals
                 WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![run_id], |r| {
                Ok(Approval {
                    party: r.get(0)?,
                    decision: r.get(1)?,
                    reason: r.get(2)?,
                    report_digest: r.get(3)?,
                    time: r.get(4)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// Spent, reserved and remaining epsilon per contract and dataset.
    ///
    /// # Errors
    /// [`BrokerError::Store`].
    pub fn budget_report(&self) -> Result<Vec<BudgetLine>, BrokerError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT b.contract_id, b.dataset, b.epsilon_total, b.delta,
                   COALESCE(SUM(s.epsilon_spent), 0),
                   COALESCE(SUM(CASE WHEN s.epsilon_spent IS NULL THEN s.epsilon_planned END), 0),
                   COUNT(s.epsilon_planned),
                   COUNT(s.run_id) - COUNT(s.epsilon_planned)
                 FROM budgets b LEFT JOIN spends s
                   ON s.contract_id = b.contract_id AND s.dataset = b.dataset
                 GROUP BY b.contract_id, b.dataset ORDER BY b.contract_id, b.dataset",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([], |r| {
                let total: f64 = r.get(2)?;
                let spent: f64 = r.get(4)?;
                let reserved: f64 = r.get(5)?;
                Ok(BudgetLine {
                    contract_id: r.get(0)?,
                    dataset: r.get(1)?,
                    epsilon_total: total,
                    delta: r.get(3)?,
                    epsilon_spent: spent,
                    epsilon_reserved: reserved,
                    epsilon_remaining: total - spent - reserved,
                    private_runs: r.get(6)?,
                    non_private_runs: r.get(7)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

fn put_budget(conn: &Connection, contract_id: &str, b: &Budget<'_>) -> Result<(), BrokerError> {
    conn.execute(
        "INSERT OR IGNORE INTO budgets(contract_id, dataset, epsilon_total, delta)
         VALUES(?1, ?2, ?3, ?4)",
        params![contract_id, b.dataset, b.epsilon_total, b.delta],
    )
    .map_err(db_err)?;
    Ok(())
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

    fn res<'a>(run: &'a str, planned: Option<(f64, f64)>, b: Budget<'a>) -> Reservation<'a> {
        Reservation {
            run_id: run,
            contract_id: "c",
            contract_digest: "00",
            contract: "{}",
            tee_pubkey: run,
            evidence_digest: "",
            max_runs: Some(4),
            budget: Some(b),
            planned,
        }
    }

    #[test]
    fn ledger_charges_once_per_run_and_refuses_past_the_budget_runs_and_delta() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let b = Budget {
            dataset: "d",
            epsilon_total: 2.5,
            delta: 1e-5,
            dp_required: true,
        };
        s.reserve(&res("r1", Some((1.0, 1e-5)), b)).unwrap();
        s.reserve(&res("r1", Some((1.0, 1e-5)), b)).unwrap(); // a retry is not a second charge
        s.reserve(&res("r2", Some((1.0, 1e-6)), b)).unwrap();
        let e = s
            .reserve(&res("r3", Some((1.0, 1e-5)), b))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("asks for epsilon 1") && e.contains("0.500000 of 2.5 remains"),
            "{e}"
        );
        let e = s.reserve(&res("r3", None, b)).unwrap_err().to_string();
        assert!(e.contains("requires DP"), "{e}");
        let e = s
            .reserve(&res("r3", Some((0.1, 1e-4)), b))
            .unwrap_err()
            .to_string();
        assert!(e.contains("delta 0.0001"), "{e}");
        // A denied release records nothing: r3 is no run yet.
        assert!(s.run("r3").unwrap().is_none());
        // The report's epsilon replaces the plan: r1 spent 0.25, which frees 0.75.
        s.record_report("r1", "{}", "ab", &[("d".into(), Some(0.25))], None)
            .unwrap();
        assert!(s.record_report("r1", "{}", "ab", &[], None).is_err());
        let line = &s.budget_report().unwrap()[0];
        assert_eq!((line.epsilon_spent, line.epsilon_reserved), (0.25, 1.0));
        assert!((line.epsilon_remaining - 1.25).abs() < 1e-12);
        s.reserve(&res("r3", Some((1.0, 1e-5)), b)).unwrap();
        let mut r = res("r4", Some((0.1, 1e-5)), b);
        r.budget = None;
        s.reserve(&r).unwrap();
        let e = s
            .reserve(&res("r5", Some((0.1, 1e-5)), b))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxRuns 4 reached"), "{e}");
        let mut other_key = res("r1", Some((1.0, 1e-5)), b);
        other_key.tee_pubkey = "someone else";
        assert!(
            s.reserve(&other_key)
                .unwrap_err()
                .to_string()
                .contains("another runtime key")
        );
    }
}
