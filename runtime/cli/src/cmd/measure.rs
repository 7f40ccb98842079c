//! `ccr measure`: auditors recompute what a release policy pins (SNP launch digest and ID
//! block, TDX MRTD and RTMR replay, ACI host_data, image digests).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub(crate) enum MeasureCmd {
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

/// Runs `ccr measure ...`.
pub(crate) fn run(m: MeasureCmd) -> Result<()> {
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
