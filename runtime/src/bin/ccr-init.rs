//! `ccr-init`: the container entrypoint. Verifies the contract, attests, gets the keys released,
//! decrypts, joins, trains and seals the output. Every flag has an environment-variable twin.

use std::path::PathBuf;

use ccr_attest::Platform;
use ccr_runtime::job::{self, JobConfig, PlatformChoice};
use clap::{Parser, ValueEnum};

/// mimalloc rather than glibc's malloc: freed Arrow batches (the datasets after the join, the
/// joined table after the features are built) go back to the OS instead of staying in glibc's
/// per-thread arenas, so that the job's peak memory follows its data.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlatformArg {
    /// Probe, in order: the Confidential Space launcher socket, configfs-tsm, /dev/sev-guest,
    /// /dev/tdx_guest, the Azure vTPM; never falls back to sim.
    Auto,
    /// The software simulator: NOT confidential, for local runs and tests only.
    Sim,
    /// AMD SEV-SNP (configfs-tsm or /dev/sev-guest; ACI when UVM_SECURITY_CONTEXT_DIR is set).
    Snp,
    /// Intel TDX (configfs-tsm).
    Tdx,
    /// Azure CVM on SEV-SNP (vTPM).
    AzSnpVtpm,
    /// Azure CVM on TDX (vTPM).
    AzTdxVtpm,
    /// GCP Confidential Space (launcher token).
    GcpCs,
}

/// Run ccr's main job inside a confidential VM.
#[derive(Parser, Debug)]
#[command(name = "ccr-init", version)]
struct Args {
    /// The signed contract (contract.json).
    #[arg(long, env = "CCR_CONTRACT")]
    contract: PathBuf,
    /// The pipeline config (pipeline_config.json); its digest must be the contract's.
    #[arg(long, env = "CCR_PIPELINE")]
    pipeline: PathBuf,
    /// Folder holding one sealed image per dataset, named by the dataset's `name`
    /// (default: each dataset's `mount_path`).
    #[arg(long, env = "CCR_DATASETS")]
    datasets: Option<PathBuf>,
    /// Path of the sealed output image to write (must not exist).
    #[arg(long, env = "CCR_OUT")]
    out: PathBuf,
    /// The consumer's base model (safetensors) when the pipeline's model_config names
    /// model_format Safetensors (default: its model_path); its SHA-256 must be model_sha256.
    #[arg(long, env = "CCR_BASE_MODEL")]
    base_model: Option<PathBuf>,
    /// The consumer's base model as a LUKS2 image (DEPA's model.img), when the contract names a
    /// baseModelImage (default: that image's file name in the folder of the pipeline's base
    /// model path, e.g. /mnt/remote/model/model.img).
    #[arg(long, env = "CCR_BASE_MODEL_IMAGE")]
    base_model_image: Option<PathBuf>,
    /// Key broker URL for keys of type `ccr` (default: each key's `endpoint`).
    #[arg(long, env = "CCR_BROKER")]
    broker: Option<String>,
    /// SHA-256 (hex) of the broker's TLS certificate, as `ccr keybroker serve` prints it.
    #[arg(long, env = "CCR_BROKER_PIN")]
    broker_pin: Option<String>,
    /// Attestation platform.
    #[arg(long, env = "CCR_PLATFORM", value_enum, default_value = "auto")]
    platform: PlatformArg,
    /// State folder of the sim platform's local ARK/ASK/VCEK chain (with --platform sim).
    #[arg(long, env = "CCR_SIM_STATE")]
    sim_state: Option<PathBuf>,
    /// Confidential Space: the audience of the attestation token (what the broker accepts).
    #[arg(long, env = "CCR_CS_AUDIENCE", default_value = "ccr-kbs")]
    cs_audience: String,
    /// Confidential Space: the launcher's socket (tokens for GCP STS come from it).
    #[arg(long, env = "CCR_CS_SOCKET", default_value = ccr_attest::attester::CS_SOCKET)]
    cs_socket: PathBuf,
    /// Trust only the CA certificates in this PEM file for Azure and GCP endpoints and Key
    /// Vault's release signature (default: the public web PKI).
    #[arg(long, env = "CCR_CLOUD_CA")]
    cloud_ca: Option<PathBuf>,
    /// Azure IMDS base URL.
    #[arg(long, env = "CCR_AZURE_IMDS", default_value = ccr_keybroker::azure::IMDS_BASE)]
    azure_imds: String,
    /// Azure: the client id of a user-assigned managed identity.
    #[arg(long, env = "CCR_AZURE_CLIENT_ID")]
    azure_client_id: Option<String>,
    /// GCP STS base URL.
    #[arg(long, env = "CCR_GCP_STS", default_value = ccr_keybroker::gcp::STS_BASE)]
    gcp_sts: String,
    /// GCP Cloud KMS base URL (a key's `endpoint` overrides it).
    #[arg(long, env = "CCR_GCP_KMS", default_value = ccr_keybroker::gcp::KMS_BASE)]
    gcp_kms: String,
}

fn main() {
    let args = Args::parse();
    ccr_runtime::logging::init();
    match args.platform {
        PlatformArg::Sim => tracing::warn!(
            platform = "sim",
            "PLATFORM IS SIM: this is NOT a confidential VM; evidence is simulated by a local chain and only a release policy that names sim will release keys to it"
        ),
        PlatformArg::Auto => tracing::info!(
            platform = "auto",
            "ccr-init starting; detecting the platform"
        ),
        named => tracing::info!(platform = ?named, "ccr-init starting on the named platform"),
    }
    let abort = match ccr_runtime::init::install() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            std::process::exit(2);
        }
    };
    let init_binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let roots = match &args.cloud_ca {
        None => None,
        Some(p) => match std::fs::read(p).map_err(|e| e.to_string()).and_then(|b| {
            ccr_keybroker::cloud_http::roots_from_pem(&b, "--cloud-ca").map_err(|e| e.to_string())
        }) {
            Ok(certs) => Some(certs),
            Err(e) => {
                tracing::error!(error = %e, path = %p.display(), "--cloud-ca");
                std::process::exit(2);
            }
        },
    };
    let cloud = ccr_keybroker::release::CloudOptions {
        roots,
        imds: args.azure_imds,
        azure_client_id: args.azure_client_id,
        azure_token: std::env::var("CCR_AZURE_TOKEN")
            .ok()
            .map(zeroize::Zeroizing::new),
        sts: args.gcp_sts,
        kms: args.gcp_kms,
        cs_socket: args.cs_socket,
    };
    let cfg = JobConfig {
        contract: args.contract,
        pipeline: args.pipeline,
        datasets: args.datasets,
        out: args.out,
        base_model: args.base_model,
        base_model_image: args.base_model_image,
        broker: args.broker,
        broker_pin: args.broker_pin,
        platform: match args.platform {
            PlatformArg::Auto => PlatformChoice::Auto,
            PlatformArg::Sim => PlatformChoice::Sim,
            PlatformArg::Snp => PlatformChoice::Named(Platform::Snp),
            PlatformArg::Tdx => PlatformChoice::Named(Platform::Tdx),
            PlatformArg::AzSnpVtpm => PlatformChoice::Named(Platform::AzSnpVtpm),
            PlatformArg::AzTdxVtpm => PlatformChoice::Named(Platform::AzTdxVtpm),
            PlatformArg::GcpCs => PlatformChoice::Named(Platform::GcpCs),
        },
        sim_state: args.sim_state,
        cs_audience: args.cs_audience,
        cloud,
        init_binary,
        abort,
    };
    match job::run(&cfg) {
        Ok(s) => {
            tracing::info!(metrics = %s.metrics["test"], out = %cfg.out.display(), "training complete");
        }
        Err(e) => {
            tracing::error!(error = %e, exit_code = e.exit_code(), "ccr-init failed; no output written");
            std::process::exit(e.exit_code());
        }
    }
}
