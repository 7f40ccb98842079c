//! `ccr keybroker`: operators serve the local broker and read its audit log and budgets;
//! parties look at a run and approve or deny its output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use zeroize::Zeroizing;

use ccr_keybroker::KbsClient;

use crate::io::{private_key, write_atomic};

#[derive(Args)]
pub(crate) struct BrokerConn {
    /// Broker URL (https://127.0.0.1:PORT).
    #[arg(long, env = "CCR_BROKER")]
    pub(crate) broker: String,
    /// SHA-256 (hex) of the broker's TLS certificate.
    #[arg(long, env = "CCR_BROKER_PIN")]
    pub(crate) pin: String,
    /// File holding the broker's admin token.
    #[arg(long, env = "CCR_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token: PathBuf,
}

/// A party talking to the broker about a run.
#[derive(Args)]
pub(crate) struct PartyConn {
    /// Broker URL (https://127.0.0.1:PORT).
    #[arg(long, env = "CCR_BROKER")]
    pub(crate) broker: String,
    /// SHA-256 (hex) of the broker's TLS certificate.
    #[arg(long, env = "CCR_BROKER_PIN")]
    pub(crate) pin: String,
    /// Your party id in the contract.
    #[arg(long)]
    pub(crate) party: String,
    /// Your contract signing key (PKCS#8 PEM, from `ccr contract keygen`).
    #[arg(long)]
    pub(crate) key: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum BrokerCmd {
    /// Serve the KBS protocol over HTTPS.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// Store folder (database, TLS certificate, admin token).
        #[arg(long)]
        store: PathBuf,
        /// Accept sim evidence chained to the sim ARK/ASK in this folder (tests and demos only).
        #[arg(long)]
        sim_roots: Option<PathBuf>,
        /// Endorsements and collateral for real platforms, recognised by content (cached
        /// VCEKs, ASVK/ASK, TDX collateral, Confidential Space JWKS, THIM JSON). Repeatable.
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// Confidential Space: an accepted token audience. Repeatable.
        #[arg(long)]
        audience: Vec<String>,
    },
    /// Print the audit log.
    Audit {
        #[command(flatten)]
        conn: BrokerConn,
    },
    /// Print the privacy budget per contract and dataset: total, spent (reported by runs),
    /// reserved (planned by runs that have not reported), remaining. Reads the store.
    Budget {
        /// Store folder of the broker (`--store` of `serve`).
        #[arg(long)]
        store: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A party: show a run's report, approvals and what is pending.
    Run {
        /// The run id (`runs/<id>` in the sealed output's manifest, `run_id` in run.json).
        run: String,
        #[command(flatten)]
        party: PartyConn,
    },
    /// An output approver: approve (or with --deny, refuse) a run's output after seeing its
    /// report; the decision is signed with the party's contract key and covers the report's
    /// digest.
    Approve {
        /// The run id.
        run: String,
        #[command(flatten)]
        party: PartyConn,
        /// The report digest you reviewed (from `ccr keybroker run`); refused if the run's
        /// report is another. Default: the report shown now.
        #[arg(long)]
        report_digest: Option<String>,
        /// Refuse the output, with this reason.
        #[arg(long, conflicts_with = "reason")]
        deny: Option<String>,
        /// The reason for an approval (recorded).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs `ccr keybroker ...`.
pub(crate) fn run(cmd: BrokerCmd) -> Result<()> {
    match cmd {
        BrokerCmd::Serve {
            listen,
            store,
            sim_roots,
            trust,
            audience,
        } => serve(&listen, &store, sim_roots.as_deref(), &trust, audience)?,
        BrokerCmd::Audit { conn } => {
            let (mut cl, token) = client(&conn)?;
            println!("{}", serde_json::to_string_pretty(&cl.audit_log(&token)?)?);
        }
        BrokerCmd::Budget { store, json } => {
            if !store.join("broker.db").is_file() {
                bail!("--store {}: no broker.db there", store.display());
            }
            let lines = ccr_keybroker_server::store::Store::open(&store)?.budget_report()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else {
                println!(
                    "{:<36} {:<20} {:>10} {:>10} {:>10} {:>10} {:>6} {:>6}",
                    "contract", "dataset", "total", "spent", "reserved", "remaining", "dp", "no-dp"
                );
                for l in lines {
                    println!(
                        "{:<36} {:<20} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>6} {:>6}",
                        l.contract_id,
                        l.dataset,
                        l.epsilon_total,
                        l.epsilon_spent,
                        l.epsilon_reserved,
                        l.epsilon_remaining,
                        l.private_runs,
                        l.non_private_runs
                    );
                }
            }
        }
        BrokerCmd::Run { run, party } => {
            let ans = party_call(&party, &run, "show", |_| {})?;
            println!("{}", serde_json::to_string_pretty(&ans)?);
        }
        BrokerCmd::Approve {
            run,
            party,
            report_digest,
            deny,
            reason,
        } => {
            let shown = party_call(&party, &run, "show", |_| {})?;
            let current = shown["report_digest"]
                .as_str()
                .with_context(|| format!("run {run} has not reported yet: nothing to approve"))?
                .to_string();
            if let Some(d) = &report_digest
                && d != &current
            {
                bail!(
                    "run {run}: the report is now {current}, not the {d} you reviewed; review it again (ccr keybroker run)"
                );
            }
            eprintln!(
                "run {run}, report {current}:\n{}",
                serde_json::to_string_pretty(&shown["report"])?
            );
            let action = if deny.is_some() { "deny" } else { "approve" };
            let ans = party_call(&party, &run, action, |r| {
                r.report_digest = Some(current.clone());
                r.reason = deny.clone().or(reason.clone());
            })?;
            println!("{}", serde_json::to_string(&ans)?);
        }
    }
    Ok(())
}

pub(crate) fn client(conn: &BrokerConn) -> Result<(KbsClient, Zeroizing<String>)> {
    let pin = ccr_keybroker::client::parse_pin(&conn.pin)?;
    let token = Zeroizing::new(
        std::fs::read_to_string(&conn.admin_token)
            .with_context(|| format!("admin token file {}", conn.admin_token.display()))?
            .trim()
            .to_string(),
    );
    Ok((KbsClient::new(&conn.broker, pin), token))
}

/// Signs and sends a party request about `run`.
pub(crate) fn party_call(
    conn: &PartyConn,
    run: &str,
    action: &str,
    edit: impl FnOnce(&mut ccr_keybroker::runs::PartyRequest),
) -> Result<Value> {
    let key = private_key(&conn.key)?;
    let mut req = ccr_keybroker::runs::PartyRequest {
        run: run.to_string(),
        action: action.to_string(),
        iat: chrono::Utc::now().timestamp(),
        report_digest: None,
        reason: None,
        tee_pubkey: None,
    };
    edit(&mut req);
    let pin = ccr_keybroker::client::parse_pin(&conn.pin)?;
    let mut cl = KbsClient::new(&conn.broker, pin);
    Ok(cl.party_request(run, &req.sign(&conn.party, &key))?)
}

fn serve(
    listen: &str,
    store: &Path,
    sim_roots: Option<&Path>,
    trust_files: &[PathBuf],
    audience: Vec<String>,
) -> Result<()> {
    ccr_runtime::logging::init();
    let addr = ccr_keybroker_server::parse_listen(listen)?;
    let mut trust = ccr_attest::evidence::Trust::new();
    trust.sim_roots = sim_roots.map(ccr_attest::sim::load_roots).transpose()?;
    if trust.sim_roots.is_some() {
        tracing::warn!("this broker accepts sim evidence (--sim-roots): for tests and demos only");
    }
    for f in trust_files {
        let what = trust.add_file(f)?;
        tracing::info!(file = %f.display(), what, "trust material loaded");
    }
    trust.audiences = audience;
    let broker = ccr_keybroker_server::Broker::new(ccr_keybroker_server::BrokerConfig {
        store_dir: store.to_path_buf(),
        trust,
    })?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let fp = broker.fingerprint().to_string();
    write_atomic(&store.join("tls.sha256"), fp.as_bytes(), false)?;
    write_atomic(
        &store.join("listen.addr"),
        local.to_string().as_bytes(),
        false,
    )?;
    println!("listening on https://{local}");
    println!("certificate sha256 {fp}");
    println!("admin token in {}", store.join("admin.token").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; }, None => std::future::pending::<()>().await } } => {},
            }
        };
        broker.serve(listener, shutdown).await
    })?;
    Ok(())
}
