//! Faults around the main job (issue 18): a broker store that is damaged or locked by another
//! process is a clear error when the broker starts (not a panic, not a broker that starts and
//! fails later); an output folder on a full file system fails the seal step cleanly: nothing
//! left in the folder, and no run report recorded at the broker (so no output key escrowed for
//! an output that was never written). The load, restart and malformed-request probes are in
//! `benches/probes.py` (figures in BENCHMARKS.md).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `ccr keybroker serve` on `store` and returns its output once it exits; panics if it is
/// still serving after 30 s (it should have refused to start).
fn serve_expecting_exit(store: &Path) -> Output {
    let mut child = Command::new(ccr())
        .args(["keybroker", "serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the broker started on {}", store.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn assert_clear_refusal(o: &Output, words: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "the broker started:\n{err}");
    assert_ne!(o.status.code(), Some(101), "a panic:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "`{w}` not in:\n{err}");
    }
}

/// A store made by a broker that ran once (database, TLS material, admin token).
fn used_store(dir: &Path) -> PathBuf {
    let store = dir.join("broker");
    drop(Broker::start(&store, None));
    assert!(store.join("broker.db").is_file());
    store
}

#[test]
fn a_damaged_broker_db_is_a_clear_error_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a database at all.
    let store = tmp.path().join("garbage");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("broker.db"), vec![0x5a; 8192]).unwrap();
    let o = serve_expecting_exit(&store);
    assert_clear_refusal(&o, &["broker.db", "not a database", "damaged"]);
    // A real store whose header was overwritten.
    let store = used_store(tmp.path());
    let db = store.join("broker.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..16].copy_from_slice(b"not SQLite here!");
    std::fs::write(&db, bytes).unwrap();
    let _ = std::fs::remove_file(store.join("broker.db-wal"));
    let o = serve_expecting_exit(&store);
    assert_clear_refusal(&o, &["broker.db", "damaged"]);
}

#[test]
fn a_locked_broker_db_is_a_clear_error_at_start() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 (its sqlite3 module holds the lock) is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = used_store(tmp.path());
    // Another process takes the database for itself (SQLite's exclusive locking mode, a write
    // transaction open) and holds it until its stdin closes.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('PRAGMA locking_mode=EXCLUSIVE')\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             c.execute('CREATE TABLE IF NOT EXISTS held(x)')\n\
             print('held', flush=True)\n\
             sys.stdin.read()\n",
        ])
        .arg(store.join("broker.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let o = serve_expecting_exit(&store);
    let _ = holder.stdin.take().unwrap().write_all(b"");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_clear_refusal(&o, &["broker.db", "locked", "another broker"]);
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "ccr-test"])
            .arg(dir)
            .output()
            .ok()?;
        if !o.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_output_file_system_fails_the_seal_with_nothing_written_or_recorded() {
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    // 8 KiB: the sealed model does not fit.
    let Some(fs) = Tmpfs::mount(&w.work.join("full"), "8k") else {
        return;
    };
    let out = fs.0.join("model.img");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(7),
        "the seal step's exit code:\n{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("model.img"),
        "the error names the output:\n{err}"
    );
    // Nothing left behind: no image, no temporary folder.
    let left: Vec<_> = std::fs::read_dir(&fs.0).unwrap().collect();
    assert!(left.is_empty(), "left on the full file system: {left:?}");
    // The broker released the keys but recorded no report: no run it would charge a spend
    // for as done, no output key held for it.
    let audit = w.broker.audit();
    let rows = audit.as_array().expect("audit rows");
    assert!(rows.iter().any(|r| r["decision"] == "allow"), "{audit}");
    assert!(
        !rows.iter().any(|r| r["decision"] == "report"),
        "a report was recorded for a run whose output was never written: {audit}"
    );
}

#[test]
fn a_run_asks_again_until_a_restarted_broker_answers() {
    let mut w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let listen = w.broker.url.trim_start_matches("https://").to_string();
    // The broker is down when the run asks it for keys (killed: its sessions are gone too),
    // and comes back on the same address and store once the run has said it will ask again.
    w.broker.kill();
    let out = w.work.join("restart-out");
    let mut child = init_command(&s, &w.broker.url, &w.broker.pin, &out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)) {
            let line = line.unwrap_or_default();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let t = Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(25).saturating_sub(t.elapsed()))
            .expect("ccr-init did not say it would ask the broker again within 25 s");
        if line.contains("broker unreachable or restarted: redoing the handshake") {
            break;
        }
    }
    w.broker = Broker::start_on(&w.broker.store.clone(), Some(&w.sim), &listen);
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert!(status.success(), "ccr-init failed:\n{err}");
    assert!(out.exists());
    // Charged once: one run, its report recorded once.
    let reports = w
        .broker
        .audit()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] == "report")
        .count();
    assert_eq!(reports, 1);
}
