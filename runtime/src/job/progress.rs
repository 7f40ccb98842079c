//! Training progress: a bar on a terminal, one structured log line per epoch otherwise (the
//! container case). DP runs show epsilon spent, never a loss (outside the DP guarantee).

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use crate::learn::EpochLog;

/// Where epoch progress goes.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
}

impl Progress {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub(crate) fn new(total: usize) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "train [{bar:30}] epoch {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Self { bar, total }
    }

    /// One epoch done.
    pub(crate) fn epoch(&self, e: &EpochLog) {
        match &self.bar {
            Some(b) => {
                let eps = e
                    .epsilon
                    .map(|x| format!(" epsilon {x:.3}"))
                    .unwrap_or_default();
                let loss = e
                    .train_loss
                    .map(|l| format!("loss {l:.4}"))
                    .unwrap_or_default();
                b.set_message(format!("{loss}{eps}"));
                b.inc(1);
            }
            None => {
                info!(epoch = e.epoch, epochs = self.total, train_loss = ?e.train_loss, epsilon = ?e.epsilon, val_metric = ?e.val_metric, "epoch");
            }
        }
    }

    /// Training ended.
    pub(crate) fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
