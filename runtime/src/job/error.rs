//! The job's error: each variant names its step and its input, keeps its cause, and maps to
//! the process exit status of that step.

use std::path::PathBuf;

use ccr_keybroker::release::{FailureKind, ReleaseError};

use crate::learn::TrainError;
use crate::pipeline::PipelineError;
use crate::tabular::JoinError;

/// A job error; each names its step and input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Reading an input failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input file is not what the contract or pipeline says (another digest).
    #[error("{}: {reason}", path.display())]
    Input {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The contract is malformed, unsigned, expired, or does not match the pipeline.
    #[error("contract {}: {source}", path.display())]
    Contract {
        /// The contract's path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: ccr_policy::PolicyError,
    },
    /// The pipeline config is malformed.
    #[error("{}: {source}", path.display())]
    Pipeline {
        /// The pipeline's path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: PipelineError,
    },
    /// The platform could not attest (or the sim platform's state could not be read).
    #[error("attestation: {0}")]
    Attest(#[from] ccr_attest::AttestError),
    /// No confidential-computing platform was found (ccr never falls back to sim).
    #[error("attestation: {0}")]
    NoPlatform(String),
    /// Key release failed (attestation, a refusal, or a contract naming no usable source).
    #[error("{0}")]
    Release(#[from] ReleaseError),
    /// A configuration error outside a single document.
    #[error("{0}")]
    Config(String),
    /// The base model's LUKS2 image (the contract's `baseModelImage`) failed to open or read.
    #[error("base model image: {0}")]
    ModelImage(#[source] ccr_images::ImageError),
    /// A dataset image failed to open or decrypt.
    #[error("dataset `{dataset}`: {source}")]
    Image {
        /// The dataset id.
        dataset: String,
        /// The reason (names the file and segment).
        #[source]
        source: ccr_images::ImageError,
    },
    /// The join failed.
    #[error("join: {0}")]
    Join(#[from] JoinError),
    /// Training failed.
    #[error("train: {0}")]
    Train(#[from] TrainError),
    /// A termination signal arrived; the job stopped before writing anything.
    #[error("aborted by a termination signal during {step}")]
    Aborted {
        /// The step that was running.
        step: &'static str,
    },
    /// Sealing the output failed.
    #[error("seal output {}: {source}", path.display())]
    Seal {
        /// The output path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: ccr_images::ImageError,
    },
}

impl JobError {
    /// The process exit status for this error: 2 inputs, 3 attestation, 4 key release,
    /// 5 decryption, 6 join or training, 7 sealing, 143 aborted by SIGTERM.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Read { .. }
            | Self::Input { .. }
            | Self::Contract { .. }
            | Self::Pipeline { .. }
            | Self::Config(_) => 2,
            Self::Attest(_) | Self::NoPlatform(_) => 3,
            Self::Release(e) => match e.kind() {
                FailureKind::Attestation => 3,
                FailureKind::Input => 2,
                FailureKind::Release => 4,
            },
            Self::Image { .. } | Self::ModelImage(_) => 5,
            Self::Join(_) | Self::Train(_) => 6,
            Self::Seal { .. } => 7,
            Self::Aborted { .. } => 143,
        }
    }

    /// [`JobError::Read`] of `path`.
    pub(crate) fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}
