//! Step 2, attest: pick the platform (probed, named, or the sim platform by explicit request
//! only) and make the run's fresh runtime key. The evidence itself is asked for during key
//! release, bound to each broker's nonce and this key.

use std::path::Path;
use std::sync::Arc;

use ccr_attest::Platform;
use ccr_attest::attester::{self, Attester, SimAttester};
use ccr_attest::sim::{SimAuthority, sim_measurement};
use ccr_keybroker::RuntimeKey;
use ccr_policy::VerifiedContract;
use tracing::info;

use super::inputs::file_sha384;
use super::{JobConfig, JobError};

/// Which platform to attest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformChoice {
    /// Probe the hardware; never falls back to sim.
    Auto,
    /// The software simulator, by explicit request only.
    Sim,
    /// A real platform named by the operator (detection skipped).
    Named(Platform),
}

/// The platform's attester and the run's runtime key.
///
/// # Errors
/// [`JobError::Attest`] when the platform cannot be opened, [`JobError::NoPlatform`] when
/// none is found, [`JobError::Config`] for sim without its state folder.
pub fn attest(
    cfg: &JobConfig,
    contract: &VerifiedContract,
) -> Result<(Arc<dyn Attester>, RuntimeKey), JobError> {
    let a: Arc<dyn Attester> = Arc::from(platform_attester(cfg, contract)?);
    let rk = RuntimeKey::generate();
    info!(platform = %a.platform(), runtime_key = %rk.fingerprint(), "runtime key made");
    Ok((a, rk))
}

fn platform_attester(
    cfg: &JobConfig,
    contract: &VerifiedContract,
) -> Result<Box<dyn Attester>, JobError> {
    match cfg.platform {
        PlatformChoice::Sim => {
            let dir = cfg
                .sim_state
                .clone()
                .ok_or_else(|| JobError::Config("--platform sim needs --sim-state DIR".into()))?;
            let authority = SimAuthority::load_or_create(&dir)?;
            let m = sim_measurement(
                &file_sha384(&cfg.init_binary)?,
                &contract.contract().launch_digest(),
            );
            info!(measurement = %hex::encode(m), host_data = %hex::encode(contract.digest()), "sim report values");
            Ok(Box::new(SimAttester::new(authority, m, contract.digest())))
        }
        PlatformChoice::Named(p) => {
            Ok(attester::for_platform(Path::new("/"), p, &cfg.cs_audience)?)
        }
        PlatformChoice::Auto => {
            let d = attester::detect(Path::new("/"));
            for p in &d.probes {
                info!(probe = %p, "platform detection");
            }
            match d.platform {
                Some(p) => {
                    info!(platform = %p, found = %d.found.as_deref().unwrap_or(Path::new("")).display(), "platform detected");
                    Ok(attester::for_platform(Path::new("/"), p, &cfg.cs_audience)?)
                }
                None => Err(JobError::NoPlatform(
                    "no confidential-computing platform found (probed the Confidential Space launcher, configfs-tsm, /dev/sev-guest, /dev/tdx_guest, the Azure vTPM); \
                     ccr never falls back to sim: pass --platform sim for a local, non-confidential run"
                        .into(),
                )),
            }
        }
    }
}
