//! `ccr policy`: policy authors derive, check, format, translate and evaluate release policies.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use ccr_policy::{Decision, ReleasePolicy};

use crate::io::{load_contract, read_json};

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
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
        /// azure: the MAA authority (`https://NAME.REGION.attest.azure.net`).
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

/// Runs `ccr policy ...`.
pub(crate) fn run(cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Derive {
            target: None,
            reference: Some(r),
            ..
        } => {
            let refv = ccr_policy::reference::ReferenceValues::from_json(
                &std::fs::read(&r).with_context(|| format!("reading {}", r.display()))?,
            )
            .with_context(|| r.display().to_string())?;
            println!("{}", serde_json::to_string_pretty(&refv.to_policy()?)?);
        }
        d @ PolicyCmd::Derive { .. } => derive(d)?,
        PolicyCmd::Check { policy } => {
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
        PolicyCmd::Fmt { policy, write } => {
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
        PolicyCmd::ToRego { policy } => {
            let p = ReleasePolicy::from_json(
                &std::fs::read(&policy).with_context(|| format!("reading {}", policy.display()))?,
            )?;
            print!("{}", ccr_policy::to_rego(&p));
        }
        PolicyCmd::Eval {
            policy,
            claims,
            authority,
            contract,
            request,
        } if policy.extension().is_some_and(|e| e == "rego") => {
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
        PolicyCmd::Eval {
            policy,
            claims,
            authority,
            contract: _,
            request: _,
        } => {
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
    }
    Ok(())
}

/// `ccr policy derive --for ...`: a policy for a platform, a Key Vault release policy, or a
/// workload identity provider's attribute condition.
fn derive(cmd: PolicyCmd) -> Result<()> {
    let PolicyCmd::Derive {
        target,
        contract,
        init,
        measurement,
        min_tcb,
        maa,
        host_data,
        image_digest,
        ..
    } = cmd
    else {
        return Ok(());
    };
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
    Ok(())
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
