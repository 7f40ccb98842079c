//! `ccr scenario run`: a scenario folder end to end on this machine, every party's step in
//! order, on the sim platform (NOT confidential: for trying a scenario and one's own data).
//! Each step is the `ccr` command that party would run (printed as it runs), so a run is also
//! the script of a real deployment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::files;
use crate::io::{read_json, write_atomic};

/// What `ccr scenario run` was given.
pub(crate) struct RunArgs {
    /// The scenario folder (DEPA's layout: `scenario.json`, `config/`, `contract/`).
    pub dir: PathBuf,
    /// `dataset=PATH` pairs (a contract dataset's name, id or owner; a folder or a file).
    pub data: Vec<String>,
    /// The consumer's base model.
    pub base_model: Option<PathBuf>,
    /// The work folder (default: a new one under the temporary directory).
    pub work: Option<PathBuf>,
    /// The `ccr-init` binary (default: beside `ccr`).
    pub init: Option<PathBuf>,
}

/// The local broker, stopped on drop.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Ctx {
    ccr: PathBuf,
    env: Vec<(String, String)>,
}

impl Ctx {
    /// Runs `ccr ARGS`, printing the command; its output goes to ours.
    fn ccr(&self, who: &str, args: &[&str]) -> Result<String> {
        println!("[{who}] ccr {}", args.join(" "));
        let out = Command::new(&self.ccr)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.ccr.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            print!("{stdout}");
            bail!("`ccr {}` failed ({})", args.join(" "), out.status);
        }
        Ok(stdout)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Where each `dataset=PATH` points: `(contract dataset id, path)`.
fn data_paths(args: &RunArgs, contract: &Value) -> Result<Vec<(String, PathBuf)>> {
    let mut pairs: Vec<(String, PathBuf)> = Vec::new();
    let listed = args.dir.join("data.json");
    if listed.exists()
        && let Value::Object(m) = read_json(&listed)?
    {
        for (k, v) in m {
            if let Some(p) = v.as_str() {
                pairs.push((k, args.dir.join(p)));
            }
        }
    }
    for d in &args.data {
        let (k, p) = d
            .split_once('=')
            .with_context(|| format!("--data {d}: expected DATASET=PATH"))?;
        pairs.retain(|(x, _)| x != k);
        pairs.push((k.to_string(), PathBuf::from(p)));
    }
    let mut out = Vec::new();
    for d in contract["datasets"].as_array().into_iter().flatten() {
        let id = d["id"].as_str().unwrap_or_default();
        let names = [d["id"].as_str(), d["name"].as_str(), d["owner"].as_str()];
        let Some((_, p)) = pairs
            .iter()
            .find(|(k, _)| names.contains(&Some(k.as_str())))
        else {
            bail!(
                "no data for dataset `{}` ({}): give --data {}=PATH or list it in data.json",
                d["name"].as_str().unwrap_or(id),
                id,
                d["name"].as_str().unwrap_or(id)
            );
        };
        out.push((id.to_string(), p.clone()));
    }
    Ok(out)
}

/// What the run needs, read and made before any party acts.
struct Plan {
    ccr: PathBuf,
    init: PathBuf,
    name: String,
    work: PathBuf,
    pipeline: ccr_runtime::pipeline::Pipeline,
    pipeline_path: PathBuf,
    contract: Value,
    contract_path: PathBuf,
    output_id: String,
    data: Vec<(String, PathBuf)>,
}

/// Runs the scenario.
///
/// # Errors
/// A file or step that fails, naming it.
pub(crate) fn run(args: RunArgs) -> Result<()> {
    let plan = prepare(&args)?;
    let mut ctx = Ctx {
        ccr: plan.ccr.clone(),
        env: Vec::new(),
    };
    let (sim, store) = (plan.work.join("sim"), plan.work.join("broker"));
    let _broker = start_broker(&mut ctx, &plan.work, &sim, &store)?;
    sign(&ctx, &plan, args.base_model.as_deref())?;
    seal(&ctx, &plan)?;
    run_init(&ctx, &plan, &sim, args.base_model.as_deref())?;
    report(&ctx, &plan, &store)
}

/// The work folder, the pipeline and the contract as this run uses them, and each dataset's
/// data; DEPA's policy checked.
fn prepare(args: &RunArgs) -> Result<Plan> {
    let ccr = std::env::current_exe().context("locating ccr")?;
    let init = args
        .init
        .clone()
        .unwrap_or_else(|| ccr.with_file_name("ccr-init"));
    if !init.exists() {
        bail!("{}: no ccr-init (give --init)", init.display());
    }
    let scenario_json = args.dir.join("scenario.json");
    let scenario = scenario_json
        .exists()
        .then(|| read_json(&scenario_json))
        .transpose()?;
    let name = scenario
        .as_ref()
        .and_then(|s| s["scenario_name"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            args.dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("scenario")
                .to_string()
        });
    let work = match &args.work {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!(
            "ccr-scenario-{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )),
    };
    if work.join("output").exists() {
        bail!("{}: already holds a run's output", work.display());
    }
    for d in ["keys", "images", "plain"] {
        std::fs::create_dir_all(work.join(d))
            .with_context(|| format!("creating {}", work.display()))?;
    }
    println!("== scenario {name}: work folder {}", work.display());

    // The pipeline, as the scenario's files give it (consolidated when DEPA's are separate).
    let pipeline_json = files::scenario_pipeline(&args.dir)?;
    let pipeline_path = work.join("pipeline_config.json");
    write_atomic(
        &pipeline_path,
        &serde_json::to_vec_pretty(&pipeline_json)?,
        false,
    )?;
    let mut pipeline = ccr_runtime::pipeline::Pipeline::from_value(&pipeline_json)
        .with_context(|| format!("{}: the pipeline config", args.dir.display()))?;

    // The contract: DEPA's template with ccr's fields for this local run.
    let template = files::scenario_contract(&args.dir)?;
    let base_sha = match &args.base_model {
        Some(b) => {
            use sha2::Digest;
            let bytes = std::fs::read(b).with_context(|| format!("reading {}", b.display()))?;
            Some(hex::encode(sha2::Sha256::digest(&bytes)))
        }
        None => None,
    };
    let output_id = format!("{name}-model");
    let contract = files::local_contract(
        &template,
        scenario.as_ref(),
        &output_id,
        base_sha.as_deref(),
    )?;
    let contract_path = work.join("contract.json");
    write_atomic(
        &contract_path,
        &serde_json::to_vec_pretty(&contract)?,
        false,
    )?;
    let named: Vec<(String, String, Option<String>)> = contract["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["id"].as_str().unwrap_or_default().to_string(),
                d["name"].as_str().unwrap_or_default().to_string(),
                d["owner"].as_str().map(str::to_string),
            )
        })
        .collect();
    pipeline.bind_single(&named)?;
    let data = data_paths(args, &contract)?;
    // DEPA's own policy over the runner's input, when the scenario brings it: a denial stops
    // the run before any key is registered.
    let rego = [
        args.dir.join("policy").join("policy.rego"),
        args.dir.join("..").join("common").join("policy.rego"),
    ]
    .into_iter()
    .find(|p| p.exists());
    if let Some(r) = rego {
        let text =
            std::fs::read_to_string(&r).with_context(|| format!("reading {}", r.display()))?;
        if !ccr_policy::depa::allowed(&text, &contract, &pipeline_json)? {
            bail!(
                "{}: DEPA's policy denies this pipeline under this contract",
                r.display()
            );
        }
        println!("== DEPA's {}: allowed", r.display());
    }

    Ok(Plan {
        ccr,
        init,
        name,
        work,
        pipeline,
        pipeline_path,
        contract,
        contract_path,
        output_id,
        data,
    })
}

/// The broker operator: the sim chain and the local broker on a free loopback port; the
/// parties' environment names it.
fn start_broker(ctx: &mut Ctx, work: &Path, sim: &Path, store: &Path) -> Result<Broker> {
    // Broker operator: the sim chain and the local broker on a free loopback port.
    ctx.ccr("broker operator", &["sim", "init", "--state", s(sim)])?;
    println!(
        "[broker operator] ccr keybroker serve --listen 127.0.0.1:0 --store {} --sim-roots {}",
        store.display(),
        sim.display()
    );
    let log = std::fs::File::create(work.join("broker.log"))?;
    let broker = Broker(
        Command::new(&ctx.ccr)
            .args([
                "keybroker",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                s(store),
                "--sim-roots",
                s(sim),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the broker")?,
    );
    let addr = store.join("listen.addr");
    for _ in 0..200 {
        if std::fs::metadata(&addr).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let listen =
        std::fs::read_to_string(&addr).context("the broker did not start (see broker.log)")?;
    let pin = std::fs::read_to_string(store.join("tls.sha256"))?;
    ctx.env = vec![
        ("CCR_BROKER".into(), format!("https://{}", listen.trim())),
        ("CCR_BROKER_PIN".into(), pin.trim().to_string()),
        (
            "CCR_ADMIN_TOKEN_FILE".into(),
            s(&store.join("admin.token")).to_string(),
        ),
    ];

    Ok(broker)
}

/// Every party: a signing key, the contract filled in and signed.
fn sign(ctx: &Ctx, plan: &Plan, base_model: Option<&Path>) -> Result<()> {
    let (work, contract) = (&plan.work, &plan.contract);
    let (contract_path, pipeline_path, init) =
        (&plan.contract_path, &plan.pipeline_path, &plan.init);
    let c = s(contract_path);
    let parties = files::parties(contract);
    for (party, _) in &parties {
        let key = work.join("keys").join(format!("{party}.sign.pem"));
        ctx.ccr(party, &["contract", "keygen", "--out", s(&key)])?;
        ctx.ccr(
            party,
            &[
                "contract",
                "set-party",
                "--contract",
                c,
                "--party",
                party,
                "--key",
                s(&key),
            ],
        )?;
    }
    ctx.ccr(
        "tdc",
        &[
            "contract",
            "set-pipeline",
            "--contract",
            c,
            "--pipeline",
            s(pipeline_path),
        ],
    )?;
    if let Some(b) = base_model {
        ctx.ccr(
            "tdc",
            &[
                "contract",
                "set-base-model",
                "--contract",
                c,
                "--model",
                s(b),
            ],
        )?;
    }
    let policy = ctx.ccr(
        "tdc",
        &[
            "policy",
            "derive",
            "--for",
            "sim",
            "--contract",
            c,
            "--init",
            s(init),
        ],
    )?;
    let policy_path = work.join("policy.json");
    write_atomic(&policy_path, policy.as_bytes(), false)?;
    ctx.ccr(
        "tdc",
        &[
            "contract",
            "set-policy",
            "--contract",
            c,
            "--policy",
            s(&policy_path),
        ],
    )?;
    for (party, _) in &parties {
        let key = work.join("keys").join(format!("{party}.sign.pem"));
        ctx.ccr(
            party,
            &[
                "contract",
                "sign",
                "--contract",
                c,
                "--party",
                party,
                "--key",
                s(&key),
            ],
        )?;
    }
    ctx.ccr(
        "tdc",
        &[
            "contract",
            "verify",
            "--contract",
            c,
            "--pipeline",
            s(pipeline_path),
        ],
    )?;

    Ok(())
}

/// Each data provider seals its data and registers the key; the consumer registers the output
/// key.
fn seal(ctx: &Ctx, plan: &Plan) -> Result<()> {
    let (work, contract, pipeline) = (&plan.work, &plan.contract, &plan.pipeline);
    let c = s(&plan.contract_path);
    let output_id = &plan.output_id;
    for (id, path) in &plan.data {
        let d = pipeline.join.config().datasets.iter().find(|d| &d.id == id);
        let Some(d) = d else {
            println!("== dataset {id}: not read by this pipeline, not sealed");
            continue;
        };
        let owner = contract["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["id"].as_str() == Some(id))
            .and_then(|x| x["owner"].as_str())
            .unwrap_or("tdp")
            .to_string();
        let folder = if path.is_dir() {
            path.clone()
        } else {
            let f = work.join("plain").join(&d.name);
            std::fs::create_dir_all(&f)?;
            std::fs::copy(path, f.join(&d.file))
                .with_context(|| format!("copying {}", path.display()))?;
            f
        };
        let dek = work.join("keys").join(format!("{id}.dek"));
        let kid = format!("ccr/dataset/{id}");
        ctx.ccr(&owner, &["keys", "generate", s(&dek)])?;
        ctx.ccr(
            &owner,
            &[
                "dataset",
                "seal",
                "--id",
                id,
                "--kid",
                &kid,
                "--key",
                s(&dek),
                s(&folder),
                s(&work.join("images").join(&d.name)),
            ],
        )?;
        ctx.ccr(
            &owner,
            &[
                "keys",
                "put",
                "--kid",
                &kid,
                "--key",
                s(&dek),
                "--contract",
                c,
            ],
        )?;
    }
    let _ = std::fs::remove_dir_all(work.join("plain"));
    let out_dek = work.join("keys").join(format!("{output_id}.dek"));
    ctx.ccr("tdc", &["keys", "generate", s(&out_dek)])?;
    ctx.ccr(
        "tdc",
        &[
            "keys",
            "put",
            "--kid",
            &format!("ccr/output/{output_id}"),
            "--key",
            s(&out_dek),
            "--contract",
            c,
        ],
    )?;

    Ok(())
}

/// The CCR runs the job (sim: NOT confidential).
fn run_init(ctx: &Ctx, plan: &Plan, sim: &Path, base_model: Option<&Path>) -> Result<()> {
    let (work, init) = (&plan.work, &plan.init);
    let (c, pipeline_path) = (s(&plan.contract_path), &plan.pipeline_path);
    // CCR_INIT_WRAPPER prefixes the command (BENCHMARKS.md uses "/usr/bin/time -v").
    let wrapper: Vec<String> = std::env::var("CCR_INIT_WRAPPER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut cmd = match wrapper.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(init);
            c
        }
        None => Command::new(init),
    };
    cmd.args([
        "--platform",
        "sim",
        "--sim-state",
        s(sim),
        "--contract",
        c,
        "--pipeline",
        s(pipeline_path),
        "--datasets",
        s(&work.join("images")),
        "--out",
        s(&work.join("output")),
    ]);
    if let Some(b) = base_model {
        cmd.args(["--base-model", s(b)]);
    }
    println!(
        "[ccr] ccr-init --platform sim ... --out {}",
        work.join("output").display()
    );
    let init_log = work.join("ccr-init.log");
    let status = cmd
        .envs(ctx.env.iter().map(|(k, v)| (k, v)))
        .stderr(std::fs::File::create(&init_log)?)
        .status()
        .context("running ccr-init")?;
    if !status.success() {
        let log = std::fs::read_to_string(&init_log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        bail!(
            "ccr-init failed ({status}); {}:\n{}",
            init_log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    if !wrapper.is_empty() {
        let log = std::fs::read_to_string(&init_log).unwrap_or_default();
        for l in log
            .lines()
            .filter(|l| l.contains("Elapsed") || l.contains("Maximum resident"))
        {
            println!("[ccr] {}", l.trim());
        }
    }

    Ok(())
}

/// The data consumer unseals the model and reads the metrics; the broker operator prints the
/// ledger.
fn report(ctx: &Ctx, plan: &Plan, store: &Path) -> Result<()> {
    let (work, name, output_id) = (&plan.work, &plan.name, &plan.output_id);
    let out_dek = work.join("keys").join(format!("{output_id}.dek"));
    let unsealed = work.join("unsealed");
    ctx.ccr(
        "tdc",
        &[
            "model",
            "unseal",
            "--id",
            output_id,
            "--key",
            s(&out_dek),
            s(&work.join("output")),
            s(&unsealed),
        ],
    )?;
    let m = read_json(&unsealed.join("metrics.json"))?;
    let test = &m["test"];
    let summary: Vec<String> = test
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "n")
        .filter_map(|(k, v)| v.as_f64().map(|x| format!("{k}={x:.4}")))
        .collect();
    println!("== {name}: held-out {}", summary.join(", "));
    print!(
        "{}",
        ctx.ccr(
            "broker operator",
            &["keybroker", "budget", "--store", s(store)]
        )?
    );
    println!(
        "== {name}: done; the unsealed model and metrics are in {}",
        unsealed.display()
    );
    println!(
        "== {name}: the run report: {}",
        unsealed.join("report.html").display()
    );
    Ok(())
}
