//! `ccr`: the parties' tool. Data providers seal datasets and register keys; the data consumer
//! unseals the model; policy authors and auditors derive and check policies; operators run the
//! broker.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ccr_images::{DatasetKey, Image};
use ccr_keybroker::KbsClient;
use ccr_policy::contract::SignatureEntry;
use ccr_policy::sign::PrivateKey;
use ccr_policy::{Contract, Decision, ReleasePolicy};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "ccr",
    version,
    about = "ccr: confidential clean-room tool for data providers, consumers, auditors and broker operators"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seal and open dataset images (data providers).
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Make and register keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Run or query the local key broker.
    #[command(subcommand)]
    Keybroker(BrokerCmd),
    /// Edit, sign and verify contracts.
    #[command(subcommand)]
    Contract(ContractCmd),
    /// Derive and evaluate release policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Unseal the trained model (data consumer).
    #[command(subcommand)]
    Model(ModelCmd),
    /// The sim platform's local chain.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Privacy accounting for planners: the RDP accountant of DP-SGD (Poisson-sampled
    /// Gaussian), as the runtime uses it.
    #[command(subcommand)]
    Dp(DpCmd),
    /// Recompute what a release policy pins (auditors): SNP launch digest, TDX RTMR replay,
    /// ACI host_data, image digests.
    #[command(subcommand)]
    Measure(MeasureCmd),
    /// Build the ccr-init container image (OCI image layout, deterministic).
    #[command(subcommand)]
    Image(ImageCmd),
    /// Verify attestation evidence offline and print its claims (auditors). Exit status 0 only
    /// when every signature and chain holds (and the policy, when given, allows).
    Verify(VerifyArgs),
}

#[derive(Args2)]
struct VerifyArgs {
    /// Evidence file: a raw SNP report (1184 bytes), a raw TD quote, the KBS JSON of any
    /// platform (`{"report", "vek"}`, az-*-vtpm JSON, `{"quote"}`, `{"token"}`), a
    /// `{"tee", "evidence"}` envelope, or a Confidential Space token.
    evidence: PathBuf,
    /// Endorsements and collateral, recognised by content: VCEK/VLEK/ASK/ASVK certificates (PEM
    /// or DER), TDX collateral JSON, a JWKS, THIM JSON. Repeatable.
    #[arg(long)]
    collateral: Vec<PathBuf>,
    /// An ACI `UVM_SECURITY_CONTEXT_DIR` folder (VCEK chain and CCE policy).
    #[arg(long)]
    security_context: Option<PathBuf>,
    /// Verify at this time (RFC 3339, or Unix seconds) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Confidential Space: an accepted audience. Repeatable.
    #[arg(long)]
    audience: Vec<String>,
    /// Accept sim evidence chained to the sim ARK/ASK in this folder.
    #[arg(long)]
    sim_roots: Option<PathBuf>,
    /// Do not fail on a debuggable guest (it is still reported in the claims).
    #[arg(long)]
    allow_debug: bool,
    /// Also require report_data to start with these bytes (hex).
    #[arg(long)]
    report_data: Option<String>,
    /// Also evaluate this release policy over the claims (exit status 3 when it denies).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Also check the claims against a reference-values file (ccr-reference/1), naming each
    /// value that differs (exit status 3 when one does).
    #[arg(long)]
    reference: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DatasetCmd {
    /// Seal a file or folder into a new image.
    Seal {
        /// Dataset id (the contract's datasets[].id).
        #[arg(long)]
        id: String,
        /// Key id at the broker (the contract's key.properties.kid).
        #[arg(long)]
        kid: String,
        /// The 32-byte key file (`ccr keys generate`).
        #[arg(long)]
        key: PathBuf,
        /// File or folder to seal.
        source: PathBuf,
        /// Image folder to create.
        image: PathBuf,
    },
    /// Decrypt an image into a new folder (for the data owner).
    Open {
        /// Dataset id the image must be for.
        #[arg(long)]
        id: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The image folder.
        image: PathBuf,
        /// Folder to create with the plaintext files.
        out: PathBuf,
    },
}

#[derive(Args2)]
struct BrokerConn {
    /// Broker URL (https://127.0.0.1:PORT).
    #[arg(long, env = "CCR_BROKER")]
    broker: String,
    /// SHA-256 (hex) of the broker's TLS certificate.
    #[arg(long, env = "CCR_BROKER_PIN")]
    pin: String,
    /// File holding the broker's admin token.
    #[arg(long, env = "CCR_ADMIN_TOKEN_FILE")]
    admin_token: PathBuf,
}

use clap::Args as Args2;

#[derive(Subcommand)]
enum KeysCmd {
    /// Write a fresh random 32-byte key (mode 0600).
    Generate {
        /// Key file to create.
        out: PathBuf,
    },
    /// Register a key with the local broker under a signed contract.
    Put {
        #[command(flatten)]
        conn: BrokerConn,
        /// KBS resource path `repo/type/tag` (the contract's kid).
        #[arg(long)]
        kid: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The signed contract the key is released under.
        #[arg(long)]
        contract: PathBuf,
        /// A release policy to use instead of the contract's: the JSON grammar, or Rego when
        /// the file ends in .rego.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Import a dataset key into Azure Key Vault as an exportable oct-HSM key with a release
    /// policy (Secure Key Release). The bearer token comes from CCR_AZURE_TOKEN, or from IMDS
    /// (a managed identity) with --imds.
    Import {
        /// Azure Key Vault (the only import target).
        #[arg(long, required = true)]
        azure: bool,
        /// The vault URL (https://NAME.vault.azure.net).
        #[arg(long)]
        vault: String,
        /// The key's name in the vault (the contract's kid).
        #[arg(long)]
        name: String,
        /// The 32-byte key file: imported as an oct-HSM key.
        #[arg(long, required_unless_present = "rsa_key", conflicts_with = "rsa_key")]
        key: Option<PathBuf>,
        /// An RSA private key (PKCS#8 PEM, as importkey makes): imported as an RSA-HSM key; the
        /// DEK is HKDF-SHA256 of its private exponent with --salt and --label, written to
        /// --dek-out (seal the dataset with it).
        #[arg(long, requires_all = ["salt", "dek_out"])]
        rsa_key: Option<PathBuf>,
        /// RSA-HSM: the public HKDF salt (hex; the contract's key `salt`).
        #[arg(long)]
        salt: Option<String>,
        /// RSA-HSM: the HKDF label (default: --name; the contract's key `label`).
        #[arg(long)]
        label: Option<String>,
        /// RSA-HSM: where to write the derived 32-byte DEK (must not exist).
        #[arg(long)]
        dek_out: Option<PathBuf>,
        /// The Key Vault release policy (`ccr policy derive --for azure`).
        #[arg(long)]
        policy: PathBuf,
        /// Get the token from this IMDS base URL (http://169.254.169.254 on Azure).
        #[arg(long)]
        imds: Option<String>,
        /// Trust only these CA certificates (PEM) for the vault.
        #[arg(long, env = "CCR_CLOUD_CA")]
        cloud_ca: Option<PathBuf>,
    },
    /// Wrap a dataset key with a Cloud KMS key into the image's wrapped_dek.json (envelope
    /// encryption; the dataset id is the additional authenticated data). The bearer token comes
    /// from CCR_GCP_TOKEN (`gcloud auth print-access-token`).
    Wrap {
        /// Cloud KMS (the only wrap target).
        #[arg(long, required = true)]
        gcp: bool,
        /// The KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K; the contract's kid).
        #[arg(long)]
        kms_key: String,
        /// The dataset id.
        #[arg(long)]
        dataset: String,
        /// The 32-byte key file.
        #[arg(long)]
        key: PathBuf,
        /// The dataset image folder (wrapped_dek.json is written there).
        #[arg(long)]
        image: PathBuf,
        /// The Cloud KMS base URL.
        #[arg(long, default_value = ccr_keybroker::gcp::KMS_BASE)]
        kms: String,
        /// Trust only these CA certificates (PEM) for KMS.
        #[arg(long, env = "CCR_CLOUD_CA")]
        cloud_ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BrokerCmd {
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

/// A party talking to the broker about a run.
#[derive(Args2)]
struct PartyConn {
    /// Broker URL (https://127.0.0.1:PORT).
    #[arg(long, env = "CCR_BROKER")]
    broker: String,
    /// SHA-256 (hex) of the broker's TLS certificate.
    #[arg(long, env = "CCR_BROKER_PIN")]
    pin: String,
    /// Your party id in the contract.
    #[arg(long)]
    party: String,
    /// Your contract signing key (PKCS#8 PEM, from `ccr contract keygen`).
    #[arg(long)]
    key: PathBuf,
}

#[derive(Subcommand)]
enum ContractCmd {
    /// Make a party signing key (PKCS#8 PEM, mode 0600) and print its public JWK.
    Keygen {
        /// `ed25519` or `p256`.
        #[arg(long, default_value = "ed25519")]
        alg: String,
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Set a party's public key from its private key file (removes existing signatures).
    SetParty {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        party: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Set pipelineDigest from a pipeline config (removes existing signatures).
    SetPipeline {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: PathBuf,
    },
    /// Set releasePolicy from a policy file (removes existing signatures).
    SetPolicy {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Sign the contract digest as a party (adds or replaces its signature).
    Sign {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        party: String,
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a contract (and its pipeline config) while editing: JSON Schema errors with their
    /// JSON pointer, then the semantic checks; prints the signature status without failing on
    /// missing signatures. Exit status 2 on an error.
    Check {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Verify signatures and validity (and the pipeline digest when given).
    Verify {
        #[arg(long)]
        contract: PathBuf,
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
    /// Print the contract digest (what the parties sign; the sim host_data).
    Digest { contract: PathBuf },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Print a release policy for a platform: the platform, the measurement, debugging off,
    /// VMPL 0 (SNP family) or TCB status UpToDate (TDX).
    Derive {
        /// `sim`, `snp`, `tdx`, `az-snp-vtpm`, `az-tdx-vtpm`, `gcp-cs` (the local broker's
        /// policies), `azure` (a Key Vault release policy) or `gcp` (the workload identity
        /// provider's attribute condition).
        #[arg(long = "for", required_unless_present = "reference")]
        target: Option<String>,
        /// Derive the local broker's policy from a reference-values file (ccr-reference/1):
        /// the platform and every value it lists.
        #[arg(long, conflicts_with = "target")]
        reference: Option<PathBuf>,
        /// sim: the contract (its launch digest is part of the sim measurement).
        #[arg(long)]
        contract: Option<PathBuf>,
        /// sim: the ccr-init binary that will run.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Real platforms: the reference measurement (hex: SNP MEASUREMENT, TDX MRTD, the
        /// Confidential Space image digest).
        #[arg(long)]
        measurement: Option<String>,
        /// SNP family: the minimum TCB, as `bootloader=N,tee=N,snp=N,microcode=N` (any subset);
        /// each becomes an `atLeast` condition on `tcb.<part>`.
        #[arg(long)]
        min_tcb: Option<String>,
        /// azure: the MAA authority (https://NAME.REGION.attest.azure.net).
        #[arg(long)]
        maa: Option<String>,
        /// azure: the HOST_DATA to pin (hex; default: the contract digest, from --contract; on
        /// ACI: SHA-256 of the CCE policy).
        #[arg(long)]
        host_data: Option<String>,
        /// gcp: the container image digest (sha256:...) to pin.
        #[arg(long)]
        image_digest: Option<String>,
    },
    /// Check a release policy: JSON syntax (line and column), structure (clause path), claims no
    /// verifier produces (with a did-you-mean), clauses that can never hold. A .rego file is
    /// parsed (errors with line and column). Exit status 2 on an error, 0 otherwise (warnings
    /// are printed).
    Check {
        #[arg(long)]
        policy: PathBuf,
    },
    /// Print a JSON release policy in canonical form (2-space indentation; `version`, then the
    /// clauses, each `claim` before its comparison).
    Fmt {
        #[arg(long)]
        policy: PathBuf,
        /// Rewrite the file in place (atomically) instead of printing.
        #[arg(long)]
        write: bool,
    },
    /// Translate a JSON release policy into an equivalent Rego module (package ccr, rule
    /// allow; input {"claims", "authority"}).
    ToRego {
        #[arg(long)]
        policy: PathBuf,
    },
    /// Evaluate a policy (JSON grammar, or Rego when the file ends in .rego) over a claims JSON
    /// object.
    Eval {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        claims: PathBuf,
        /// The verifier's authority name.
        #[arg(long, default_value = "local")]
        authority: String,
        /// Rego: the contract, as `input.contract` (signatures dropped).
        #[arg(long)]
        contract: Option<PathBuf>,
        /// Rego: the request, as `input.request` (`{"resource", "platform",
        /// "pipeline_digest", "run": {"id", "epsilon", "delta"}}`).
        #[arg(long)]
        request: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Decrypt the sealed output into a new folder. With output approvers (manifest `kid`
    /// `runs/<id>`), the output key comes from the broker once they approved: give
    /// --broker/--pin/--party/--signing-key instead of --key.
    Unseal {
        /// The output id (the contract's output.id).
        #[arg(long)]
        id: String,
        /// The output key file.
        #[arg(long, required_unless_present = "broker")]
        key: Option<PathBuf>,
        /// Broker URL holding the escrowed output key (not read from CCR_BROKER: a consumer's
        /// own key stays the default).
        #[arg(long, requires_all = ["pin", "party", "signing_key"])]
        broker: Option<String>,
        /// SHA-256 (hex) of the broker's TLS certificate.
        #[arg(long, env = "CCR_BROKER_PIN")]
        pin: Option<String>,
        /// Your party id (the contract's tdc).
        #[arg(long)]
        party: Option<String>,
        /// Your contract signing key (PKCS#8 PEM).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        image: PathBuf,
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DpCmd {
    /// The epsilon spent by STEPS steps of DP-SGD at sampling rate Q and noise multiplier S.
    Epsilon {
        /// Poisson sampling rate q (expected batch size / training rows), in [0, 1].
        #[arg(long)]
        sampling_rate: f64,
        /// Noise multiplier σ (noise standard deviation / max_grad_norm).
        #[arg(long)]
        noise_multiplier: f64,
        /// Number of steps (epochs × rows / expected batch size).
        #[arg(long)]
        steps: u64,
        /// Target delta, in (0, 1).
        #[arg(long)]
        delta: f64,
    },
    /// The smallest noise multiplier that keeps STEPS steps at sampling rate Q within E.
    NoiseMultiplier {
        /// The epsilon budget for the whole run.
        #[arg(long)]
        target_epsilon: f64,
        /// Poisson sampling rate q, in [0, 1].
        #[arg(long)]
        sampling_rate: f64,
        /// Number of steps.
        #[arg(long)]
        steps: u64,
        /// Target delta, in (0, 1).
        #[arg(long)]
        delta: f64,
    },
}

#[derive(Subcommand)]
enum MeasureCmd {
    /// The SEV-SNP launch digest (MEASUREMENT) for a firmware, vCPUs and guest features (and a
    /// kernel, initrd and command line for direct boot), as sev-snp-measure --mode snp computes it.
    Snp {
        /// OVMF with SEV metadata.
        #[arg(long)]
        ovmf: PathBuf,
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// QEMU's vCPU model: EPYC-v4, EPYC-Milan, EPYC-Genoa, ...
        #[arg(long, default_value = "EPYC-v4")]
        vcpu_type: String,
        /// The VMSA's SEV_FEATURES, hex (0x1 SNPActive; 0x21 adds DebugSwap).
        #[arg(long, default_value = "0x1")]
        guest_features: String,
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[arg(long)]
        initrd: Option<PathBuf>,
        #[arg(long)]
        append: Option<String>,
        /// qemu or ec2.
        #[arg(long)]
        vmm_type: Option<String>,
    },
    /// Make and sign an SNP ID block and its ID authentication information (ECDSA P-384 ID and
    /// author keys, PKCS#8 PEM) for a launch digest; prints them base64 (QEMU's
    /// sev-snp-guest id-block= and id-auth=) with the ID_KEY_DIGEST and AUTHOR_KEY_DIGEST the
    /// report will carry.
    SnpIdBlock {
        /// The launch digest (96 hex), from ccr measure snp.
        #[arg(long)]
        ld: String,
        #[arg(long)]
        id_key: PathBuf,
        #[arg(long)]
        author_key: PathBuf,
        /// FAMILY_ID, 32 hex (default zeros).
        #[arg(long)]
        family_id: Option<String>,
        /// IMAGE_ID, 32 hex (default zeros).
        #[arg(long)]
        image_id: Option<String>,
        #[arg(long, default_value_t = 0)]
        guest_svn: u32,
        /// The guest POLICY, hex (default 0x30000).
        #[arg(long, default_value = "0x30000")]
        policy: String,
    },
    /// TDX MRTD of a TDVF image (its TDVF metadata sections, TDH.MEM.PAGE.ADD and
    /// TDH.MR.EXTEND), in the VMM's page order: single (per page, as Linux KVM with upstream
    /// QEMU) or two-pass.
    TdxMrtd {
        #[arg(long)]
        tdvf: PathBuf,
        #[arg(long, default_value = "single")]
        order: String,
    },
    /// Parse a TDX event log (the CCEL log area), print its events and the replayed RTMRs; with
    /// --quote, compare them with the quote's RTMRs (exit 1 naming each that differs).
    TdxRtmr {
        #[arg(long)]
        ccel: PathBuf,
        /// A TD quote (v4/v5) whose RTMRs to compare (its signature: check with ccr verify).
        #[arg(long)]
        quote: Option<PathBuf>,
    },
    /// The host_data an ACI confidential container group's SNP report carries for a CCE policy
    /// (SHA-256 of the base64-decoded policy).
    AciHostData {
        /// The base64 CCE policy (ccePolicy of the ARM template, security-policy-base64).
        #[arg(long)]
        policy: PathBuf,
    },
    /// The digests of an OCI image layout made by ccr image build (manifest, config, layer,
    /// and the ccr-init binary's SHA-256 and SHA-384), each blob checked against its name.
    Image { dir: PathBuf },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Write an OCI image layout holding ccr-init (/usr/local/bin/ccr-init, the entrypoint);
    /// the same binary and SOURCE_DATE_EPOCH (default 0) give the same manifest digest.
    Build {
        /// The ccr-init binary.
        #[arg(long)]
        binary: PathBuf,
        /// The new image layout folder (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "latest")]
        tag: String,
    },
}

#[derive(Subcommand)]
enum SimCmd {
    /// Make (or load) the sim chain in a state folder and print where its roots are.
    Init {
        #[arg(long)]
        state: PathBuf,
    },
}

fn read_key(path: &Path) -> Result<DatasetKey> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("key file {}", path.display()))?,
    );
    DatasetKey::from_slice(&bytes).with_context(|| format!("key file {}", path.display()))
}

/// Writes `data` to `path` through a temporary name and a rename; `private` sets mode 0600.
fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn write_new_private(path: &Path, data: &[u8]) -> Result<()> {
    if path.exists() {
        bail!("{}: already exists, refusing to overwrite", path.display());
    }
    write_atomic(path, data, true)
}

fn cloud_client(
    service: &str,
    ca: Option<&Path>,
) -> Result<ccr_keybroker::cloud_http::CloudClient> {
    let roots = match ca {
        None => None,
        Some(p) => {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                ccr_attest::amd::AmdCert::pem_bundle(&b, "--cloud-ca")?
                    .iter()
                    .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
                    .collect::<Vec<_>>(),
            )
        }
    };
    Ok(ccr_keybroker::cloud_http::CloudClient::new(
        service,
        ccr_keybroker::cloud_http::RetryPolicy::default(),
        roots.as_deref(),
    ))
}

fn read_json(path: &Path) -> Result<Value> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("{}: not JSON", path.display()))
}

fn load_contract(path: &Path) -> Result<Contract> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Contract::from_json(&b).with_context(|| format!("contract {}", path.display()))
}

/// Edits a contract's JSON (as a value, so fields keep their form), dropping signatures.
fn edit_contract(
    path: &Path,
    f: impl FnOnce(&mut serde_json::Map<String, Value>) -> Result<()>,
) -> Result<()> {
    let mut v = read_json(path)?;
    let m = v.as_object_mut().context("contract is not a JSON object")?;
    f(m)?;
    if m.get("signatures")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        eprintln!(
            "note: contract changed; existing signatures removed, every party must sign again"
        );
    }
    m.insert("signatures".into(), json!([]));
    write_atomic(path, &serde_json::to_vec_pretty(&v)?, false)
}

fn private_key(path: &Path) -> Result<PrivateKey> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("key file {}", path.display()))?,
    );
    PrivateKey::from_pkcs8_pem(&pem).with_context(|| format!("key file {}", path.display()))
}

fn client(conn: &BrokerConn) -> Result<(KbsClient, Zeroizing<String>)> {
    let pin = ccr_keybroker::client::parse_pin(&conn.pin)?;
    let token = Zeroizing::new(
        std::fs::read_to_string(&conn.admin_token)
            .with_context(|| format!("admin token file {}", conn.admin_token.display()))?
            .trim()
            .to_string(),
    );
    Ok((KbsClient::new(&conn.broker, pin), token))
}

/// Reads a claims file: a flat JSON object (claim name → string, number, boolean or null), or
/// `ccr verify`'s output (its `policy_input` is used).
fn claims_object(path: &Path) -> Result<Value> {
    let v = read_json(path)?;
    let v = match v.get("policy_input") {
        Some(p) if v.get("verdict").is_some() => p.clone(),
        _ => v,
    };
    let m = v.as_object().with_context(|| {
        format!(
            "claims {}: expected a JSON object of claims (as `ccr verify` prints in policy_input)",
            path.display()
        )
    })?;
    for (k, x) in m {
        if x.is_object() || x.is_array() {
            bail!(
                "claims {}: claim `{k}` is {}, expected a string, number, boolean or null (claims are flat: nested parts are named with dots, such as `tcb.snp`)",
                path.display(),
                if x.is_object() {
                    "an object"
                } else {
                    "an array"
                }
            );
        }
    }
    Ok(v)
}

fn measure(m: MeasureCmd) -> Result<()> {
    match m {
        MeasureCmd::Snp {
            ovmf,
            vcpus,
            vcpu_type,
            guest_features,
            kernel,
            initrd,
            append,
            vmm_type,
        } => {
            let gf = u64::from_str_radix(guest_features.trim_start_matches("0x"), 16)
                .with_context(|| format!("--guest-features `{guest_features}` is not hex"))?;
            let d = ccr_measurements::snp::launch_digest(&ccr_measurements::snp::SnpInputs {
                ovmf,
                vcpus,
                vcpu_type,
                guest_features: gf,
                kernel,
                initrd,
                append,
                vmm_type,
            })?;
            println!("{}", hex::encode(d));
        }
        MeasureCmd::TdxRtmr { ccel, quote } => {
            let b = std::fs::read(&ccel).with_context(|| format!("reading {}", ccel.display()))?;
            let log =
                ccr_measurements::ccel::parse(&b).with_context(|| format!("{}", ccel.display()))?;
            let replayed = ccr_measurements::ccel::replay(&log.events);
            let rtmr: Vec<String> = replayed.iter().map(hex::encode).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"algorithms": log.algorithms, "events": log.events, "rtmr": rtmr})
                )?
            );
            if let Some(q) = quote {
                let qb = std::fs::read(&q).with_context(|| format!("reading {}", q.display()))?;
                let c = ccr_attest::tdx::TdQuote::parse(&qb)
                    .with_context(|| format!("quote {}", q.display()))?
                    .claims(ccr_attest::Platform::Tdx, None, Vec::new());
                let tdx = c.tdx.context("not a TD quote")?;
                let mut from_quote = [[0u8; 48]; 4];
                for (i, r) in tdx.rtmr.iter().enumerate() {
                    hex::decode_to_slice(r, &mut from_quote[i])?;
                }
                match ccr_measurements::ccel::check_against(&replayed, &from_quote) {
                    Ok(()) => eprintln!("the replayed RTMRs equal the quote's"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
        MeasureCmd::SnpIdBlock {
            ld,
            id_key,
            author_key,
            family_id,
            image_id,
            guest_svn,
            policy,
        } => {
            use base64::Engine;
            use p384::pkcs8::DecodePrivateKey;
            let fixed = |h: &str, what: &str, out: &mut [u8]| {
                hex::decode_to_slice(h, out)
                    .with_context(|| format!("--{what}: expected {} hex characters", out.len() * 2))
            };
            let mut block = ccr_measurements::idblock::IdBlock::new([0u8; 48]);
            fixed(&ld, "ld", &mut block.ld)?;
            if let Some(f) = &family_id {
                fixed(f, "family-id", &mut block.family_id)?;
            }
            if let Some(i) = &image_id {
                fixed(i, "image-id", &mut block.image_id)?;
            }
            block.guest_svn = guest_svn;
            block.policy = u64::from_str_radix(policy.trim_start_matches("0x"), 16)
                .with_context(|| format!("--policy `{policy}` is not hex"))?;
            let load = |p: &Path| -> Result<p384::ecdsa::SigningKey> {
                let pem = Zeroizing::new(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                );
                p384::ecdsa::SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("{}: not a P-384 PKCS#8 key: {e}", p.display()))
            };
            let s = ccr_measurements::idblock::sign(&block, &load(&id_key)?, &load(&author_key)?);
            let b64 = base64::engine::general_purpose::STANDARD;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "id_block": b64.encode(s.id_block),
                    "id_auth": b64.encode(&s.auth_info),
                    "id_key_digest": hex::encode(s.id_key_digest),
                    "author_key_digest": hex::encode(s.author_key_digest),
                }))?
            );
        }
        MeasureCmd::TdxMrtd { tdvf, order } => {
            let img =
                std::fs::read(&tdvf).with_context(|| format!("reading {}", tdvf.display()))?;
            let order = match order.as_str() {
                "single" => ccr_measurements::tdvf::PageAddOrder::SinglePass,
                "two-pass" => ccr_measurements::tdvf::PageAddOrder::TwoPass,
                o => bail!("--order `{o}`: single or two-pass"),
            };
            let secs = ccr_measurements::tdvf::sections(&img)
                .with_context(|| tdvf.display().to_string())?;
            let m = ccr_measurements::tdvf::mrtd(&img, order)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"mrtd": hex::encode(m), "sections": secs}))?
            );
        }
        MeasureCmd::AciHostData { policy } => {
            let p = std::fs::read_to_string(&policy)
                .with_context(|| format!("reading {}", policy.display()))?;
            println!("{}", hex::encode(ccr_measurements::aci::host_data(&p)?));
        }
        MeasureCmd::Image { dir } => {
            let d = ccr_measurements::oci::inspect(&dir)?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
    }
    Ok(())
}

/// Signs and sends a party request about `run`.
fn party_call(
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

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Dataset(DatasetCmd::Seal {
            id,
            kid,
            key,
            source,
            image,
        }) => {
            let k = read_key(&key)?;
            let m = ccr_images::seal_path(&source, &image, &id, &kid, &k)?;
            println!(
                "sealed {} file(s) of dataset {id} into {}",
                m.files.len(),
                image.display()
            );
        }
        Cmd::Model(ModelCmd::Unseal {
            id,
            key,
            broker,
            pin,
            party,
            signing_key,
            image,
            out,
        }) => {
            let img = Image::load(&image)?;
            img.expect_dataset(&id)?;
            let k = match (key, broker) {
                (Some(k), _) => read_key(&k)?,
                (None, Some(broker)) => {
                    let kid = &img.manifest().kid;
                    let run = kid.strip_prefix("runs/").with_context(|| {
                        format!("image {}: kid `{kid}` is not runs/<run id>: this output's key is not escrowed; use --key", image.display())
                    })?;
                    let conn = PartyConn {
                        broker,
                        pin: pin.unwrap_or_default(),
                        party: party.unwrap_or_default(),
                        key: signing_key.unwrap_or_default(),
                    };
                    let ephemeral = ccr_keybroker::RuntimeKey::generate();
                    let ans = party_call(&conn, run, "output-key", |r| {
                        r.tee_pubkey = Some(ephemeral.tee_pubkey_json())
                    })?;
                    let secret = ephemeral.unwrap_json(&ans)?;
                    DatasetKey::from_slice(&secret).context("the escrowed output key")?
                }
                (None, None) => bail!("--key or --broker is required"),
            };
            img.extract_to(&out, &id, &k)?;
            println!(
                "opened {} file(s) into {}",
                img.manifest().files.len(),
                out.display()
            );
        }
        Cmd::Dataset(DatasetCmd::Open {
            id,
            key,
            image,
            out,
        }) => {
            let k = read_key(&key)?;
            let img = Image::load(&image)?;
            img.expect_dataset(&id)?;
            img.extract_to(&out, &id, &k)?;
            println!(
                "opened {} file(s) into {}",
                img.manifest().files.len(),
                out.display()
            );
        }
        Cmd::Keys(KeysCmd::Generate { out }) => {
            let k = DatasetKey::generate();
            write_new_private(&out, k.as_bytes())?;
            println!("wrote a 32-byte key to {}", out.display());
        }
        Cmd::Keys(KeysCmd::Put {
            conn,
            kid,
            key,
            contract,
            policy,
        }) => {
            let k = read_key(&key)?;
            load_contract(&contract)?;
            let c = read_json(&contract)?;
            let p = match policy.as_deref() {
                // A Rego module travels as a JSON string.
                Some(p) if p.extension().is_some_and(|e| e == "rego") => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    ccr_policy::RegoPolicy::from_source(&p.display().to_string(), &text)?;
                    Some(Value::String(text))
                }
                Some(p) => Some(read_json(p)?),
                None => None,
            };
            let (mut cl, token) = client(&conn)?;
            cl.put_resource(&token, &kid, k.as_bytes(), &c, p.as_ref())?;
            println!("registered {kid}");
        }
        Cmd::Keys(KeysCmd::Import {
            azure: _,
            vault,
            name,
            key,
            rsa_key,
            salt,
            label,
            dek_out,
            policy,
            imds,
            cloud_ca,
        }) => {
            let p = read_json(&policy)?;
            ReleasePolicy::from_json(p.to_string().as_bytes())
                .with_context(|| format!("release policy {}", policy.display()))?;
            let client = cloud_client("Azure", cloud_ca.as_deref())?;
            let token = match imds {
                Some(base) => ccr_keybroker::azure::imds_token(
                    &client,
                    &base,
                    ccr_keybroker::azure::VAULT_RESOURCE,
                    None,
                )?,
                None => Zeroizing::new(std::env::var("CCR_AZURE_TOKEN").context(
                    "no Key Vault token: set CCR_AZURE_TOKEN (az account get-access-token --resource https://vault.azure.net) or pass --imds",
                )?),
            };
            let kid = match (key, rsa_key) {
                (Some(key), _) => {
                    let k = read_key(&key)?;
                    ccr_keybroker::azure::akv_import_oct(
                        &client,
                        &vault,
                        &name,
                        &token,
                        k.as_bytes(),
                        &p,
                    )?
                }
                (None, Some(pem)) => {
                    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                    let text = Zeroizing::new(
                        std::fs::read_to_string(&pem)
                            .with_context(|| format!("reading {}", pem.display()))?,
                    );
                    let rk = rsa::RsaPrivateKey::from_pkcs8_pem(&text).with_context(|| {
                        format!("{}: not a PKCS#8 RSA private key", pem.display())
                    })?;
                    let salt =
                        hex::decode(salt.as_deref().unwrap_or("")).context("--salt: not hex")?;
                    let label = label.unwrap_or_else(|| name.clone());
                    let der = rk.to_pkcs8_der().context("encoding the RSA key")?;
                    let dek = ccr_keybroker::akv::dek_from_rsa_private_key(
                        der.as_bytes(),
                        &salt,
                        label.as_bytes(),
                    )?;
                    let out = dek_out.context("--dek-out is required with --rsa-key")?;
                    let kid = ccr_keybroker::azure::akv_import_rsa(
                        &client, &vault, &name, &token, &rk, &p,
                    )?;
                    write_new_private(&out, &dek[..])?;
                    println!("derived the DEK into {}", out.display());
                    kid
                }
                (None, None) => bail!("give --key or --rsa-key"),
            };
            println!("imported {kid}");
        }
        Cmd::Keys(KeysCmd::Wrap {
            gcp: _,
            kms_key,
            dataset,
            key,
            image,
            kms,
            cloud_ca,
        }) => {
            let k = read_key(&key)?;
            Image::load(&image)
                .and_then(|i| i.expect_dataset(&dataset))
                .with_context(|| format!("image {}", image.display()))?;
            let client = cloud_client("GCP", cloud_ca.as_deref())?;
            let token = Zeroizing::new(std::env::var("CCR_GCP_TOKEN").context(
                "no Cloud KMS token: set CCR_GCP_TOKEN (gcloud auth print-access-token)",
            )?);
            let ct = ccr_keybroker::gcp::kms_encrypt(
                &client,
                &kms,
                &kms_key,
                &token,
                k.as_bytes(),
                dataset.as_bytes(),
            )?;
            let w = ccr_keybroker::gcp::WrappedDek {
                kms_key,
                dataset,
                ciphertext: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ct),
            };
            let path = image.join(ccr_runtime::cloud::WRAPPED_DEK_FILE);
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&w)?)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        Cmd::Keybroker(BrokerCmd::Serve {
            listen,
            store,
            sim_roots,
            trust,
            audience,
        }) => serve(&listen, &store, sim_roots.as_deref(), &trust, audience)?,
        Cmd::Keybroker(BrokerCmd::Audit { conn }) => {
            let (mut cl, token) = client(&conn)?;
            println!("{}", serde_json::to_string_pretty(&cl.audit_log(&token)?)?);
        }
        Cmd::Keybroker(BrokerCmd::Budget { store, json }) => {
            if !store.join("broker.db").is_file() {
                bail!("--store {}: no broker.db there", store.display());
            }
            let lines = ccr_keybroker::store::Store::open(&store)?.budget_report()?;
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
        Cmd::Keybroker(BrokerCmd::Run { run, party }) => {
            let ans = party_call(&party, &run, "show", |_| {})?;
            println!("{}", serde_json::to_string_pretty(&ans)?);
        }
        Cmd::Keybroker(BrokerCmd::Approve {
            run,
            party,
            report_digest,
            deny,
            reason,
        }) => {
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
        Cmd::Contract(ContractCmd::Keygen { alg, out }) => {
            let k = PrivateKey::generate(&alg)?;
            write_new_private(&out, k.to_pkcs8_pem().as_bytes())?;
            println!("{}", k.public_key().to_jwk());
        }
        Cmd::Contract(ContractCmd::SetParty {
            contract,
            party,
            key,
        }) => {
            let jwk = private_key(&key)?.public_key().to_jwk();
            edit_contract(&contract, |m| {
                let parties = m
                    .get_mut("parties")
                    .and_then(Value::as_array_mut)
                    .context("contract has no parties[]")?;
                let p = parties
                    .iter_mut()
                    .find(|p| p.get("id").and_then(Value::as_str) == Some(party.as_str()))
                    .with_context(|| format!("party `{party}` is not in parties[]"))?;
                p["publicKey"] = jwk;
                Ok(())
            })?;
        }
        Cmd::Contract(ContractCmd::SetPipeline { contract, pipeline }) => {
            let d = ccr_policy::pipeline_digest(&read_json(&pipeline)?);
            edit_contract(&contract, |m| {
                m.insert("pipelineDigest".into(), json!(d));
                Ok(())
            })?;
            println!("{d}");
        }
        Cmd::Contract(ContractCmd::SetPolicy { contract, policy }) => {
            let b =
                std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?;
            ReleasePolicy::from_json(&b)?;
            let p: Value = serde_json::from_slice(&b)?;
            edit_contract(&contract, |m| {
                m.insert("releasePolicy".into(), p);
                Ok(())
            })?;
        }
        Cmd::Contract(ContractCmd::Sign {
            contract,
            party,
            key,
        }) => {
            let c = load_contract(&contract)?;
            if !c.parties.iter().any(|p| p.id == party) {
                bail!("`{party}` is not a party to contract {}", c.id);
            }
            let k = private_key(&key)?;
            let pk = ccr_policy::sign::PublicKey::from_jwk(
                &c.parties
                    .iter()
                    .find(|p| p.id == party)
                    .map(|p| p.public_key.clone())
                    .unwrap_or_default(),
            )?;
            if pk.to_jwk() != k.public_key().to_jwk() {
                bail!(
                    "key {} is not party `{party}`'s key in the contract",
                    key.display()
                );
            }
            let jws = k.sign_detached(&party, &c.digest());
            let mut v = read_json(&contract)?;
            let sigs = v
                .as_object_mut()
                .context("contract is not a JSON object")?
                .entry("signatures")
                .or_insert(json!([]));
            let arr = sigs.as_array_mut().context("signatures is not a list")?;
            arr.retain(|s| s.get("party").and_then(Value::as_str) != Some(party.as_str()));
            arr.push(serde_json::to_value(SignatureEntry {
                party: party.clone(),
                jws,
            })?);
            write_atomic(&contract, &serde_json::to_vec_pretty(&v)?, false)?;
            println!("signed contract {} as {party}", c.id);
        }
        Cmd::Contract(ContractCmd::Check { contract, pipeline }) => {
            let mut errors = Vec::new();
            let cv = read_json(&contract)?;
            for e in ccr_policy::schema::contract_errors(&cv) {
                errors.push(format!("{}: {e}", contract.display()));
            }
            let pv = pipeline.as_deref().map(read_json).transpose()?;
            if let (Some(p), Some(v)) = (&pipeline, &pv) {
                for e in ccr_policy::schema::errors(ccr_runtime::pipeline::SCHEMA, v) {
                    errors.push(format!("{}: {e}", p.display()));
                }
            }
            if errors.is_empty() {
                match load_contract(&contract) {
                    Ok(c) => {
                        if let (Some(p), Some(v)) = (&pipeline, &pv) {
                            if let Err(e) = ccr_runtime::pipeline::Pipeline::from_value(v) {
                                errors.push(format!("{}: {e}", p.display()));
                            } else if ccr_policy::pipeline_digest(v) != c.pipeline_digest {
                                errors.push(format!(
                                    "{}: pipelineDigest {} is not the pipeline's {}",
                                    contract.display(),
                                    c.pipeline_digest,
                                    ccr_policy::pipeline_digest(v)
                                ));
                            }
                        }
                        match c.verify(chrono::Utc::now()) {
                            Ok(_) => println!("signatures: all parties signed, valid now"),
                            Err(e) => println!("signatures: {e}"),
                        }
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            for e in &errors {
                eprintln!("{e}");
            }
            if !errors.is_empty() {
                std::process::exit(2);
            }
            println!("{}: ok", contract.display());
        }
        Cmd::Contract(ContractCmd::Verify { contract, pipeline }) => {
            let c = load_contract(&contract)?;
            let vc = c.verify(chrono::Utc::now())?;
            if let Some(p) = pipeline {
                vc.check_pipeline(&read_json(&p)?)?;
            }
            println!(
                "contract {} verified: {} signatures, digest {}",
                c.id,
                c.signatures.len(),
                hex::encode(vc.digest())
            );
        }
        Cmd::Contract(ContractCmd::Digest { contract }) => {
            println!("{}", hex::encode(load_contract(&contract)?.digest()))
        }
        Cmd::Policy(PolicyCmd::Derive {
            target: None,
            reference: Some(r),
            ..
        }) => {
            let refv = ccr_policy::reference::ReferenceValues::from_json(
                &std::fs::read(&r).with_context(|| format!("reading {}", r.display()))?,
            )
            .with_context(|| r.display().to_string())?;
            println!("{}", serde_json::to_string_pretty(&refv.to_policy()?)?);
        }
        Cmd::Policy(PolicyCmd::Derive {
            target,
            reference: _,
            contract,
            init,
            measurement,
            min_tcb,
            maa,
            host_data,
            image_digest,
        }) => {
            let target = target.unwrap_or_default();
            if target == "gcp" {
                let d = image_digest.context("--for gcp needs --image-digest")?;
                println!("{}", ccr_keybroker::gcp::attribute_condition(&d));
                return Ok(());
            }
            if target == "azure" {
                let maa = maa.context("--for azure needs --maa (the MAA authority URL)")?;
                let hd = match (host_data, contract) {
                    (Some(h), _) => h,
                    (None, Some(c)) => hex::encode(load_contract(&c)?.digest()),
                    (None, None) => bail!("--for azure needs --host-data or --contract"),
                };
                let mut all = vec![
                    json!({"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}),
                    json!({"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"}),
                    json!({"claim": "x-ms-sevsnpvm-hostdata", "equals": hd}),
                    json!({"claim": "x-ms-sevsnpvm-vmpl", "equals": 0}),
                    json!({"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false}),
                ];
                if let Some(m) = measurement {
                    all.push(json!({"claim": "x-ms-sevsnpvm-launchmeasurement", "equals": m}));
                }
                let p = json!({"version": "1.0.0", "anyOf": [{"authority": maa, "allOf": all}]});
                ReleasePolicy::from_json(p.to_string().as_bytes())?;
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            ccr_attest::Platform::parse(&target)?;
            let m = if target == "sim" {
                let (Some(contract), Some(init)) = (contract, init) else {
                    bail!("--for sim needs --contract and --init");
                };
                let c = load_contract(&contract)?;
                let init_sha = ccr_runtime::job::file_sha384(&init)?;
                hex::encode(ccr_attest::sim::sim_measurement(
                    &init_sha,
                    &c.launch_digest(),
                ))
            } else {
                measurement.with_context(|| {
                    format!("--for {target} needs --measurement (the reference value auditors reproduce)")
                })?
            };
            let mut p = serde_json::to_value(ReleasePolicy::for_platform(&target, &m))?;
            if let Some(spec) = min_tcb {
                for part in spec.split(',').filter(|s| !s.is_empty()) {
                    let (k, v) = part
                        .split_once('=')
                        .with_context(|| format!("--min-tcb: `{part}` is not PART=N"))?;
                    if !["bootloader", "tee", "snp", "microcode"].contains(&k) {
                        bail!("--min-tcb: unknown part `{k}` (bootloader, tee, snp, microcode)");
                    }
                    let n: u8 = v
                        .parse()
                        .with_context(|| format!("--min-tcb {k}: `{v}` is not 0..255"))?;
                    if let Some(all) = p["anyOf"][0]["allOf"].as_array_mut() {
                        all.push(json!({"claim": format!("tcb.{k}"), "atLeast": n}));
                    }
                }
            }
            ReleasePolicy::from_json(p.to_string().as_bytes())?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
        Cmd::Policy(PolicyCmd::Check { policy }) => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("reading {}", policy.display()))?;
            if policy.extension().is_some_and(|e| e == "rego") {
                ccr_policy::RegoPolicy::from_source(&policy.display().to_string(), &text)?;
                println!("{}: Rego parses", policy.display());
                return Ok(());
            }
            let p = match serde_json::from_str::<Value>(&text) {
                Err(e) => {
                    eprintln!("{}:{}:{}: {e}", policy.display(), e.line(), e.column());
                    std::process::exit(2);
                }
                Ok(_) => match ReleasePolicy::from_json(text.as_bytes()) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("{}: {e}", policy.display());
                        std::process::exit(2);
                    }
                },
            };
            let warnings = p.lint(&ccr_attest::is_claim_name, ccr_attest::CLAIM_NAMES);
            for w in &warnings {
                println!("{}: warning: {w}", policy.display());
            }
            println!("{}: ok, {} warning(s)", policy.display(), warnings.len());
        }
        Cmd::Policy(PolicyCmd::Fmt { policy, write }) => {
            let p = ReleasePolicy::from_json(
                &std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?,
            )?;
            let v = serde_json::to_value(&p)?;
            let text = serde_json::to_string_pretty(&v)? + "\n";
            if write {
                let tmp = policy.with_extension("json.tmp");
                std::fs::write(&tmp, &text)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &policy)
                    .with_context(|| format!("writing {}", policy.display()))?;
            } else {
                print!("{text}");
            }
        }
        Cmd::Policy(PolicyCmd::ToRego { policy }) => {
            let p = ReleasePolicy::from_json(
                &std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?,
            )?;
            print!("{}", ccr_policy::to_rego(&p));
        }
        Cmd::Policy(PolicyCmd::Eval {
            policy,
            claims,
            authority,
            contract,
            request,
        }) if policy.extension().is_some_and(|e| e == "rego") => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("reading {}", policy.display()))?;
            let r = ccr_policy::RegoPolicy::from_source(&policy.display().to_string(), &text)?;
            let mut input = json!({"claims": claims_object(&claims)?, "authority": authority});
            if let Some(c) = contract {
                let mut v = serde_json::to_value(load_contract(&c)?)?;
                if let Value::Object(m) = &mut v {
                    m.remove("signatures");
                }
                input["contract"] = v;
            }
            if let Some(rq) = request {
                input["request"] = read_json(&rq)?;
            }
            match r.decide(&input) {
                Decision::Allow(a) => println!("allow\n{}", a.trace().join("\n")),
                Decision::Deny(r) => {
                    println!("deny\n{}", r.join("\n"));
                    std::process::exit(3);
                }
            }
        }
        Cmd::Policy(PolicyCmd::Eval {
            policy,
            claims,
            authority,
            contract: _,
            request: _,
        }) => {
            let p = ReleasePolicy::from_json(
                &std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?,
            )?;
            let c = claims_object(&claims)?;
            match p.evaluate(&c, &authority) {
                Decision::Allow(a) => println!("allow\n{}", a.trace().join("\n")),
                Decision::Deny(r) => {
                    println!("deny\n{}", r.join("\n"));
                    std::process::exit(3);
                }
            }
        }
        Cmd::Verify(args) => verify(args)?,
        Cmd::Measure(m) => measure(m)?,
        Cmd::Image(ImageCmd::Build { binary, out, tag }) => {
            let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v
                    .trim()
                    .parse::<u64>()
                    .with_context(|| format!("SOURCE_DATE_EPOCH `{v}` is not Unix seconds"))?,
                Err(_) => 0,
            };
            let d = ccr_measurements::oci::build(&binary, &out, &tag, mtime)?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        Cmd::Dp(DpCmd::Epsilon {
            sampling_rate,
            noise_multiplier,
            steps,
            delta,
        }) => {
            let (eps, order) =
                ccr_runtime::dp::epsilon(sampling_rate, noise_multiplier, steps, delta)?;
            println!(
                "{}",
                json!({"epsilon": eps, "delta": delta, "order": order, "sampling_rate": sampling_rate,
                       "noise_multiplier": noise_multiplier, "steps": steps, "accountant": "rdp"})
            );
        }
        Cmd::Dp(DpCmd::NoiseMultiplier {
            target_epsilon,
            sampling_rate,
            steps,
            delta,
        }) => {
            let (sigma, eps) =
                ccr_runtime::dp::noise_multiplier(target_epsilon, sampling_rate, steps, delta)?;
            println!(
                "{}",
                json!({"noise_multiplier": sigma, "epsilon": eps, "target_epsilon": target_epsilon,
                       "delta": delta, "sampling_rate": sampling_rate, "steps": steps, "accountant": "rdp"})
            );
        }
        Cmd::Sim(SimCmd::Init { state }) => {
            let a = ccr_attest::sim::SimAuthority::load_or_create(&state)?;
            println!(
                "sim chain in {} (ark.pem, ask.pem, vcek.pem)",
                a.dir().display()
            );
        }
    }
    Ok(())
}

fn serve(
    listen: &str,
    store: &Path,
    sim_roots: Option<&Path>,
    trust_files: &[PathBuf],
    audience: Vec<String>,
) -> Result<()> {
    ccr_runtime::logging::init();
    let addr = ccr_keybroker::server::parse_listen(listen)?;
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
    let broker = ccr_keybroker::server::Broker::new(ccr_keybroker::server::BrokerConfig {
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

fn parse_time(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    Ok(chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--at {s}: neither RFC 3339 nor Unix seconds"))?
        .timestamp())
}

fn verify(a: VerifyArgs) -> Result<()> {
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
