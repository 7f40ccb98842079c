//! `ccr`: the parties' tool. Data providers seal datasets and register keys; the data consumer
//! unseals the model; policy authors and auditors derive and check policies; operators run the
//! broker.
//!
//! One module per subcommand under `cmd/`, its clap types beside its handler; `main` only
//! parses and dispatches. Errors print as `error: ...` with their causes, exit status 1 (some
//! subcommands document their own: 2 for a malformed input, 3 for a denial).

mod cmd;
mod io;

use clap::{Parser, Subcommand};

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
    Dataset(cmd::dataset::DatasetCmd),
    /// Make and register keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Run or query the local key broker.
    #[command(subcommand)]
    Keybroker(cmd::keybroker::BrokerCmd),
    /// Edit, sign and verify contracts.
    #[command(subcommand)]
    Contract(cmd::contract::ContractCmd),
    /// Derive and evaluate release policies.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCmd),
    /// Unseal the trained model (data consumer).
    #[command(subcommand)]
    Model(cmd::model::ModelCmd),
    /// The sim platform's local chain.
    #[command(subcommand)]
    Sim(cmd::sim::SimCmd),
    /// Privacy accounting for planners: the RDP accountant of DP-SGD (Poisson-sampled
    /// Gaussian), as the runtime uses it.
    #[command(subcommand)]
    Dp(cmd::dp::DpCmd),
    /// Recompute what a release policy pins (auditors): SNP launch digest, TDX RTMR replay,
    /// ACI host_data, image digests.
    #[command(subcommand)]
    Measure(cmd::measure::MeasureCmd),
    /// Build the ccr-init container image (OCI image layout, deterministic).
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
    /// DEPA-Training scenarios: write one from DEPA's scenario input, run one end to end on
    /// this machine (sim platform).
    #[command(subcommand)]
    Scenario(cmd::scenario::ScenarioCmd),
    /// Verify attestation evidence offline and print its claims (auditors). Exit status 0 only
    /// when every signature and chain holds (and the policy, when given, allows).
    Verify(cmd::verify::VerifyArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Dataset(c) => cmd::dataset::run(c),
        Cmd::Keys(c) => cmd::keys::run(c),
        Cmd::Keybroker(c) => cmd::keybroker::run(c),
        Cmd::Contract(c) => cmd::contract::run(c),
        Cmd::Policy(c) => cmd::policy::run(c),
        Cmd::Model(c) => cmd::model::run(c),
        Cmd::Sim(c) => cmd::sim::run(c),
        Cmd::Dp(c) => cmd::dp::run(c),
        Cmd::Measure(c) => cmd::measure::run(c),
        Cmd::Image(c) => cmd::image::run(c),
        Cmd::Scenario(c) => cmd::scenario::run(c),
        Cmd::Verify(a) => cmd::verify::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
