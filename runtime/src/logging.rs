//! Structured logs with `tracing`: human-readable on a terminal, one JSON object per line
//! otherwise (the container case). Levels from `CCR_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr.
pub fn init() {
    let filter = EnvFilter::try_from_env("CCR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::io::stderr().is_terminal() {
        b.init();
    } else {
        b.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    }
}
