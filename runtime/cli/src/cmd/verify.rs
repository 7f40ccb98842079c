//! `ccr verify`: auditors verify evidence offline and print its claims (and a policy's decision,
//! or the differences from reference values).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use ccr_policy::{Decision, ReleasePolicy};

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Evidence file: a raw SNP report (1184 bytes), a raw TD quote, the KBS JSON of any
    /// platform (`{"report", "vek"}`, az-*-vtpm JSON, `{"quote"}`, `{"token"}`), a
    /// `{"tee", "evidence"}` envelope, or a Confidential Space token.
    pub(crate) evidence: PathBuf,
    /// Endorsements and collateral, recognised by content: VCEK/VLEK/ASK/ASVK certificates (PEM
    /// or DER), TDX collateral JSON, a JWKS, THIM JSON. Repeatable.
    #[arg(long)]
    pub(crate) collateral: Vec<PathBuf>,
    /// An ACI `UVM_SECURITY_CONTEXT_DIR` folder (VCEK chain and CCE policy).
    #[arg(long)]
    pub(crate) security_context: Option<PathBuf>,
    /// Verify at this time (RFC 3339, or Unix seconds) instead of now.
    #[arg(long)]
    pub(crate) at: Option<String>,
    /// Confidential Space: an accepted audience. Repeatable.
    #[arg(long)]
    pub(crate) audience: Vec<String>,
    /// Accept sim evidence chained to the sim ARK/ASK in this folder.
    #[arg(long)]
    pub(crate) sim_roots: Option<PathBuf>,
    /// Do not fail on a debuggable guest (it is still reported in the claims).
    #[arg(long)]
    pub(crate) allow_debug: bool,
    /// Also require report_data to start with these bytes (hex).
    #[arg(long)]
    pub(crate) report_data: Option<String>,
    /// Also evaluate this release policy over the claims (exit status 3 when it denies).
    #[arg(long)]
    pub(crate) policy: Option<PathBuf>,
    /// Also check the claims against a reference-values file (ccr-reference/1), naming each
    /// value that differs (exit status 3 when one does).
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
}

/// Runs `ccr verify`.
pub(crate) fn run(a: VerifyArgs) -> Result<()> {
    use ccr_attest::evidence::{Evidence, Trust};
    let bytes = std::fs::read(&a.evidence)
        .with_context(|| format!("reading evidence {}", a.evidence.display()))?;
    let mut trust = Trust::new();
    if let Some(t) = &a.at {
        trust.at = Some(parse_time(t)?);
    }
    for f in &a.collateral {
        trust.add_file(f)?;
    }
    if let Some(d) = &a.security_context {
        trust.security_context = Some(ccr_attest::aci::SecurityContext::load(d)?);
    }
    trust.sim_roots = a
        .sim_roots
        .as_deref()
        .map(ccr_attest::sim::load_roots)
        .transpose()?;
    trust.audiences = a.audience;
    trust.allow_debug = a.allow_debug;
    let fail = |check: String| -> ! {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"verdict": "failed", "check": check}))
                .unwrap_or_default()
        );
        std::process::exit(1)
    };
    let ev = match Evidence::sniff(&bytes) {
        Ok(e) => e,
        Err(e) => fail(format!("{}: {e}", a.evidence.display())),
    };
    let v = match ev.verify(&trust) {
        Ok(v) => v,
        Err(e) => fail(e.to_string()),
    };
    if let Some(rd) = &a.report_data {
        let want = hex::decode(rd).context("--report-data: not hex")?;
        if !v.claims().report_data.starts_with(&hex::encode(&want)) || want.is_empty() {
            fail(format!(
                "report_data {} does not start with {rd}",
                v.claims().report_data
            ));
        }
    }
    let mut out = json!({
        "verdict": "verified",
        "platform": v.claims().platform.as_str(),
        "evidence_digest": hex::encode(v.digest()),
        "claims": v.claims(),
        "policy_input": v.claims().to_policy_input(),
    });
    let mut denied = false;
    if let Some(p) = &a.policy {
        let pol = ReleasePolicy::from_json(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )?;
        out["decision"] = match pol.evaluate(&v.claims().to_policy_input(), "local") {
            Decision::Allow(al) => json!({"allow": true, "trace": al.trace()}),
            Decision::Deny(r) => {
                denied = true;
                json!({"allow": false, "reasons": r})
            }
        };
    }
    if let Some(r) = &a.reference {
        let refv = ccr_policy::reference::ReferenceValues::from_json(
            &std::fs::read(r).with_context(|| format!("reading {}", r.display()))?,
        )?;
        let diffs = refv.differences(&v.claims().to_policy_input());
        if !diffs.is_empty() {
            denied = true;
            for d in &diffs {
                eprintln!("differs from the reference: {d}");
            }
        }
        out["reference"] = json!({"matches": diffs.is_empty(), "differences": diffs});
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    if denied {
        std::process::exit(3);
    }
    Ok(())
}

fn parse_time(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    Ok(chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--at {s}: neither RFC 3339 nor Unix seconds"))?
        .timestamp())
}
