//! Test harness: real binaries, a real broker on loopback, the bundled example data.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `ccr` binary (package ccr-cli).
pub fn ccr() -> PathBuf {
    binary(option_env!("CARGO_BIN_EXE_ccr"), "ccr")
}

/// The `ccr-init` binary (package ccr-runtime).
pub fn ccr_init() -> PathBuf {
    binary(option_env!("CARGO_BIN_EXE_ccr-init"), "ccr-init")
}

/// This package's binary, or the other package's beside it in the target folder: the system
/// tests use both binaries, which live in two packages (so that ccr-init links no broker
/// server code); `cargo test --workspace` builds both before any test runs.
fn binary(own: Option<&str>, name: &str) -> PathBuf {
    if let Some(p) = own {
        return PathBuf::from(p);
    }
    let this = option_env!("CARGO_BIN_EXE_ccr")
        .or(option_env!("CARGO_BIN_EXE_ccr-init"))
        .expect("a test package with a binary");
    let p = Path::new(this).with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is not built: run the tests with `cargo test --workspace`, which builds ccr and ccr-init",
        p.display()
    );
    p
}

/// The workspace root (the folder of Cargo.lock).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("Cargo.lock").is_file())
        .expect("the workspace root")
        .to_path_buf()
}

pub fn examples() -> PathBuf {
    repo_root().join("examples")
}

/// Runs `ccr` with args and the broker environment; panics with its output on failure.
pub fn ccr_ok(env: &[(&str, String)], args: &[&str]) -> String {
    let out = Command::new(ccr())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ccr {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Broker {
    child: Child,
    pub url: String,
    pub pin: String,
    pub store: PathBuf,
}

impl Broker {
    /// Starts `ccr keybroker serve` on a free loopback port, accepting sim evidence chained to
    /// `sim_roots`.
    pub fn start(store: &Path, sim_roots: Option<&Path>) -> Self {
        Self::start_on(store, sim_roots, "127.0.0.1:0")
    }

    /// [`Broker::start`] listening on `listen` (`HOST:PORT`).
    pub fn start_on(store: &Path, sim_roots: Option<&Path>, listen: &str) -> Self {
        let _ = std::fs::remove_file(store.join("listen.addr"));
        let mut cmd = Command::new(ccr());
        cmd.args(["keybroker", "serve", "--listen", listen, "--store"])
            .arg(store);
        if let Some(r) = sim_roots {
            cmd.arg("--sim-roots").arg(r);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.with_extension("log"))
            .unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let addr_file = store.join("listen.addr");
        let t = Instant::now();
        while !addr_file.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "broker did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!(
            "https://{}",
            std::fs::read_to_string(&addr_file).unwrap().trim()
        );
        let pin = std::fs::read_to_string(store.join("tls.sha256"))
            .unwrap()
            .trim()
            .to_string();
        Self {
            child,
            url,
            pin,
            store: store.to_path_buf(),
        }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CCR_BROKER", self.url.clone()),
            ("CCR_BROKER_PIN", self.pin.clone()),
            (
                "CCR_ADMIN_TOKEN_FILE",
                self.store.join("admin.token").display().to_string(),
            ),
        ]
    }

    /// Kills the broker (SIGKILL: no shutdown, sessions lost).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn audit(&self) -> Value {
        serde_json::from_str(&ccr_ok(&self.env(), &["keybroker", "audit"])).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// name, dataset id, owner, file
pub type Provider = (&'static str, &'static str, &'static str, &'static str);

pub const BREAST_CANCER: &[Provider] = &[
    (
        "hospital_a",
        "bc-hospital-a",
        "hospital-a",
        "breast_cancer_hospital_a.csv",
    ),
    (
        "hospital_b",
        "bc-hospital-b",
        "hospital-b",
        "breast_cancer_hospital_b.csv",
    ),
];

pub const DIGITS: &[Provider] = &[
    (
        "clinic_1",
        "digits-clinic-1",
        "clinic-1",
        "digits_clinic_1.csv",
    ),
    (
        "clinic_2",
        "digits-clinic-2",
        "clinic-2",
        "digits_clinic_2.csv",
    ),
    (
        "clinic_3",
        "digits-clinic-3",
        "clinic-3",
        "digits_clinic_3.csv",
    ),
];

pub struct Scenario {
    pub dir: PathBuf,
    pub contract: PathBuf,
    pub pipeline: PathBuf,
    pub images: PathBuf,
    pub keys: PathBuf,
    pub output_id: String,
    pub sim: PathBuf,
}

pub struct Setup<'a> {
    pub scenario: &'static str,
    pub providers: &'static [Provider],
    pub output_id: &'static str,
    /// Edits the pipeline before it is digested into the contract.
    pub edit_pipeline: &'a dyn Fn(&mut Value),
    /// Edits the contract before signing (after the sim policy is set).
    pub edit_contract: &'a dyn Fn(&mut Value),
    /// Edits the contract before the sim policy is derived (changes that move the launch
    /// digest, and so the sim measurement, such as key references).
    pub edit_contract_early: &'a dyn Fn(&mut Value),
}

impl Setup<'static> {
    pub fn breast_cancer() -> Self {
        Self {
            scenario: "breast-cancer",
            providers: BREAST_CANCER,
            output_id: "bc-model",
            edit_pipeline: &|_| {},
            edit_contract: &|_| {},
            edit_contract_early: &|_| {},
        }
    }
    pub fn digits() -> Self {
        Self {
            scenario: "digits",
            providers: DIGITS,
            output_id: "digits-model",
            edit_pipeline: &|_| {},
            edit_contract: &|_| {},
            edit_contract_early: &|_| {},
        }
    }
}

fn edit_json(path: &Path, f: &dyn Fn(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Prepares a scenario as the parties would: keys, contract, signatures, sealed images,
/// registered keys.
pub fn setup(work: &Path, sim: &Path, broker: &Broker, s: &Setup<'_>) -> Scenario {
    setup_from(work, sim, broker, s, &examples().join(s.scenario))
}

/// [`setup`] from the example folder `example` (its `contract.template.json` and
/// `pipeline_config.json`).
pub fn setup_from(
    work: &Path,
    sim: &Path,
    broker: &Broker,
    s: &Setup<'_>,
    example: &Path,
) -> Scenario {
    let dir = work.join(s.scenario);
    let keys = dir.join("keys");
    let images = dir.join("images");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let contract = dir.join("contract.json");
    let pipeline = dir.join("pipeline_config.json");
    std::fs::copy(example.join("contract.template.json"), &contract).unwrap();
    std::fs::copy(example.join("pipeline_config.json"), &pipeline).unwrap();
    edit_json(&pipeline, s.edit_pipeline);
    let env = broker.env();
    let c = contract.to_str().unwrap();
    let mut parties = vec!["research-lab"];
    parties.extend(s.providers.iter().map(|p| p.2));
    for party in &parties {
        let k = keys.join(format!("{party}.sign.pem"));
        ccr_ok(&env, &["contract", "keygen", "--out", k.to_str().unwrap()]);
        ccr_ok(
            &env,
            &[
                "contract",
                "set-party",
                "--contract",
                c,
                "--party",
                party,
                "--key",
                k.to_str().unwrap(),
            ],
        );
    }
    ccr_ok(
        &env,
        &[
            "contract",
            "set-pipeline",
            "--contract",
            c,
            "--pipeline",
            pipeline.to_str().unwrap(),
        ],
    );
    edit_json(&contract, s.edit_contract_early);
    let policy = ccr_ok(
        &env,
        &[
            "policy",
            "derive",
            "--for",
            "sim",
            "--contract",
            c,
            "--init",
            ccr_init().to_str().unwrap(),
        ],
    );
    let pfile = dir.join("policy.json");
    std::fs::write(&pfile, policy).unwrap();
    ccr_ok(
        &env,
        &[
            "contract",
            "set-policy",
            "--contract",
            c,
            "--policy",
            pfile.to_str().unwrap(),
        ],
    );
    edit_json(&contract, s.edit_contract);
    for party in &parties {
        let k = keys.join(format!("{party}.sign.pem"));
        ccr_ok(
            &env,
            &[
                "contract",
                "sign",
                "--contract",
                c,
                "--party",
                party,
                "--key",
                k.to_str().unwrap(),
            ],
        );
    }
    for (name, id, _owner, file) in s.providers {
        let dek = keys.join(format!("{id}.dek"));
        // A test may have made the key already (to split it before the contract is signed).
        if !dek.exists() {
            ccr_ok(&env, &["keys", "generate", dek.to_str().unwrap()]);
        }
        let kid = format!("ccr/dataset/{id}");
        ccr_ok(
            &env,
            &[
                "dataset",
                "seal",
                "--id",
                id,
                "--kid",
                &kid,
                "--key",
                dek.to_str().unwrap(),
                examples().join("data").join(file).to_str().unwrap(),
                images.join(name).to_str().unwrap(),
            ],
        );
        ccr_ok(
            &env,
            &[
                "keys",
                "put",
                "--kid",
                &kid,
                "--key",
                dek.to_str().unwrap(),
                "--contract",
                c,
            ],
        );
    }
    let out_dek = keys.join(format!("{}.dek", s.output_id));
    ccr_ok(&env, &["keys", "generate", out_dek.to_str().unwrap()]);
    ccr_ok(
        &env,
        &[
            "keys",
            "put",
            "--kid",
            &format!("ccr/output/{}", s.output_id),
            "--key",
            out_dek.to_str().unwrap(),
            "--contract",
            c,
        ],
    );
    Scenario {
        dir,
        contract,
        pipeline,
        images,
        keys,
        output_id: s.output_id.to_string(),
        sim: sim.to_path_buf(),
    }
}

/// Runs ccr-init on the scenario (platform sim) writing to `out`.
pub fn run_init(s: &Scenario, broker_url: &str, pin: &str, out: &Path) -> Output {
    init_command(s, broker_url, pin, out).output().unwrap()
}

/// The ccr-init command for the scenario (platform sim) writing to `out`, to add to.
pub fn init_command(s: &Scenario, broker_url: &str, pin: &str, out: &Path) -> Command {
    let mut c = job_command(s, broker_url, pin, out);
    c.args(["--platform", "sim", "--sim-state"]).arg(&s.sim);
    c
}

/// The ccr-init command for the scenario writing to `out`, naming no platform (`auto`).
pub fn job_command(s: &Scenario, broker_url: &str, pin: &str, out: &Path) -> Command {
    let mut c = Command::new(ccr_init());
    c.arg("--contract")
        .arg(&s.contract)
        .arg("--pipeline")
        .arg(&s.pipeline)
        .arg("--datasets")
        .arg(&s.images)
        .arg("--out")
        .arg(out)
        .args(["--broker", broker_url, "--broker-pin", pin]);
    c
}

/// A certificate's DER as PEM.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Unseals an output image and returns the folder.
pub fn unseal(s: &Scenario, out: &Path) -> PathBuf {
    let dest = out.with_extension("unsealed");
    ccr_ok(
        &[],
        &[
            "model",
            "unseal",
            "--id",
            &s.output_id,
            "--key",
            s.keys
                .join(format!("{}.dek", s.output_id))
                .to_str()
                .unwrap(),
            out.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
    );
    dest
}

/// The last log line of a run (JSON), parsed.
pub fn last_log_line(out: &Output) -> Value {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or(Value::Null)
}

/// Whether the Python interop dependencies are importable; when they are not and
/// `CCR_REQUIRE_PYTHON=1`, panics.
pub fn python_ready() -> bool {
    python_with("tink, safetensors, numpy")
}

/// Whether python3 imports `modules` (comma-separated, as in `import`); as [`python_ready`].
pub fn python_with(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CCR_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("CCR_REQUIRE_PYTHON=1 but python3 cannot import {modules}");
        }
        eprintln!(
            "skipping the Python part: python3 cannot import {modules} (pip install -r tests/requirements.txt)"
        );
    }
    ok
}

/// Runs `PY SCRIPT ARGS…` (the script a path under the repository) with `input` as JSON on its
/// standard input and returns the JSON it prints; panics with its standard error when it fails.
pub fn python_json(py: &str, script: &str, args: &[&Path], input: &Value) -> Value {
    use std::io::Write;
    let mut child = Command::new(py)
        .arg(repo_root().join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A temporary work folder, the sim chain and a broker accepting it.
pub struct World {
    pub _tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub sim: PathBuf,
    pub broker: Broker,
}

/// A fresh [`World`].
pub fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let sim = work.join("sim");
    ccr_ok(&[], &["sim", "init", "--state", sim.to_str().unwrap()]);
    let broker = Broker::start(&work.join("broker"), Some(&sim));
    World {
        _tmp: tmp,
        work,
        sim,
        broker,
    }
}

/// `metrics.json` of an opened output folder.
pub fn metrics(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

/// A process's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scenario set up in a [`World`]: sealed datasets, keys at its broker, a signed contract.
pub fn setup_scenario(w: &World, s: &Setup<'_>) -> Scenario {
    setup(&w.work, &w.sim, &w.broker, s)
}

/// Makes hospital A's key in `keys/` and splits it 2-of-3 with `ccr keys split` into
/// `keys/shares/share-{1,2,3}.key` (before the contract is signed: the scenario's setup then
/// seals with that key); returns the shares' commitments, in order.
pub fn split_hospital_a_key(keys: &Path) -> Vec<String> {
    std::fs::create_dir_all(keys).unwrap();
    let dek = keys.join("bc-hospital-a.dek");
    ccr_ok(&[], &["keys", "generate", dek.to_str().unwrap()]);
    let out = ccr_ok(
        &[],
        &[
            "keys",
            "split",
            "--key",
            dek.to_str().unwrap(),
            "--k",
            "2",
            "--n",
            "3",
            "--out-dir",
            keys.join("shares").to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["type"], "threshold");
    assert_eq!(v["properties"]["k"], 2);
    v["properties"]["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["commitment"].as_str().unwrap().to_string())
        .collect()
}
