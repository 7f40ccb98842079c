//! Step 7, seal: the model files, `metrics.json`, `run.json` and `run.jws` (the report signed
//! with the runtime key, ES256), the charts and `report.html` drawn from those two documents,
//! sealed with the output key into a new image, written through a temporary name. The brokers
//! record the report (and hold an escrowed output key) before the output is committed: an
//! output nobody could ever open is never written.

use std::path::Path;

use ccr_images::ImageBuilder;
use ccr_keybroker::RuntimeKey;
use ccr_keybroker::release::Released;
use ccr_policy::Contract;
use serde_json::Value;
use tracing::info;

use super::{JobConfig, JobError};

/// The report page's file name in the output.
pub const REPORT_HTML: &str = "report.html";

/// What goes into the sealed output.
pub struct Output<'a> {
    /// The model files, by name.
    pub files: &'a [(String, Vec<u8>)],
    /// `metrics.json`.
    pub metrics: &'a Value,
    /// `run.json`.
    pub report: &'a Value,
}

/// Seals the output with the released (or escrowed) output key and commits it.
///
/// # Errors
/// [`JobError::Seal`], or [`JobError::Release`] when a broker does not record the report.
pub fn seal(
    cfg: &JobConfig,
    contract: &Contract,
    run_id: &str,
    released: &Released,
    runtime_key: &RuntimeKey,
    out: &Output<'_>,
) -> Result<(), JobError> {
    let serr = |source| JobError::Seal {
        path: cfg.out.clone(),
        source,
    };
    let kid = released.output_kid(contract, run_id);
    let mut b =
        ImageBuilder::new(&cfg.out, &contract.output.id, &kid, &released.output).map_err(serr)?;
    let m = serde_json::to_vec_pretty(out.metrics).unwrap_or_default();
    let r = serde_json::to_vec_pretty(out.report).unwrap_or_default();
    let signed = runtime_key.sign_report(&r);
    for (name, bytes) in out.files {
        b.add_file(name, Path::new("<model>"), &bytes[..])
            .map_err(serr)?;
    }
    b.add_file("metrics.json", Path::new("<metrics>"), &m[..])
        .map_err(serr)?;
    b.add_file("run.json", Path::new("<run report>"), &r[..])
        .map_err(serr)?;
    b.add_file(
        "run.jws",
        Path::new("<signed run report>"),
        signed.as_bytes(),
    )
    .map_err(serr)?;
    // The charts and report.html, drawn from metrics.json and run.json alone.
    let charts = super::report::charts::charts(out.report, out.metrics);
    for c in &charts {
        b.add_file(&c.file, Path::new("<chart>"), c.svg.as_bytes())
            .map_err(serr)?;
    }
    let page = super::report::page::report_html(out.report, out.metrics, &charts);
    b.add_file(REPORT_HTML, Path::new("<report page>"), page.as_bytes())
        .map_err(serr)?;
    // Everything is on disk before the brokers hear of the run: what is left (a rename) needs
    // no space, so a full file system fails here with no report recorded and no key escrowed.
    b.prepare().map_err(serr)?;
    released.record_run(run_id, &signed)?;
    b.commit().map_err(serr)?;
    info!(out = %cfg.out.display(), "output sealed");
    Ok(())
}
