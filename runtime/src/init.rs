//! PID 1 duties of `ccr-init`: turn SIGTERM (and SIGINT) into a clean abort, and reap orphaned
//! children when running as PID 1.
//!
//! A termination request sets an [`Abort`] flag that the job checks between steps and after
//! every training epoch; the job then returns an error, its destructors remove any temporary
//! output, and nothing is left half-written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set once a termination signal arrived.
#[derive(Debug, Clone, Default)]
pub struct Abort(Arc<AtomicBool>);

impl Abort {
    /// Whether termination was requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Requests termination (as a signal would).
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Installs the signal handling thread. As PID 1 it also reaps every exited child.
///
/// # Errors
/// When the signal handlers cannot be registered.
pub fn install() -> std::io::Result<Abort> {
    let abort = Abort::default();
    let flag = abort.clone();
    let pid1 = std::process::id() == 1;
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGCHLD])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGCHLD if pid1 => reap(),
                SIGCHLD => {}
                _ => {
                    tracing::warn!(signal = sig, "termination requested: aborting after the current step; no output will be written");
                    flag.request();
                }
            }
        }
    })?;
    Ok(abort)
}

fn reap() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
