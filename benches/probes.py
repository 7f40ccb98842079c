#!/usr/bin/env python3
"""Load and fault probes of the local broker and ccr-init (issue 18); figures in BENCHMARKS.md.

1. concurrency: N ccr-init runs of the breast-cancer job started at once against one broker;
   every run must succeed; p50/p99 of attest -> keys (the `attest` and `release` steps' seconds
   from each run's `step finished` log lines) and of the whole run.
2. restart: R runs started at once; the broker is killed (SIGKILL) while they run and restarted
   on the same port and store. Each run either succeeds or fails with an error naming the
   broker, leaving no output and no temporary folder; the ledger (broker.db) holds at most one
   spend per run and dataset (never a double charge), a recorded report for every run that
   succeeded and none for a run that failed (no lost charge, no key escrowed for a run without
   output).
3. malformed: M malformed requests to each broker endpoint (random bytes, truncated or deeply
   nested JSON, wrong types, bad UTF-8, a body over the size limit), over keep-alive
   connections: the broker answers every one with a 4xx (none 5xx, no reset), still serves a
   good request afterwards, and its resident memory is compared before and after.

The full-file-system and damaged/locked broker.db faults are tests (runtime/tests/faults.rs).

Usage: benches/probes.py [--runs 100] [--restart-runs 20] [--malformed 1000]
Builds nothing: run `cargo build --locked -p ccr-cli -p ccr-runtime --bins` first (dev profile,
as the tests; benches/probes.sh does both).
"""

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CCR = os.path.join(ROOT, "target", "debug", "ccr")
INIT = os.path.join(ROOT, "target", "debug", "ccr-init")


def quantile(xs, q):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * q)]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Broker:
    """`ccr keybroker serve` on the scenario's store, accepting its sim chain."""

    def __init__(self, work, port=0):
        self.work = work
        self.store = os.path.join(work, "broker")
        addr = os.path.join(self.store, "listen.addr")
        if os.path.exists(addr):
            os.remove(addr)
        self.log = open(os.path.join(work, "probe-broker.log"), "ab")
        self.proc = subprocess.Popen(
            [CCR, "keybroker", "serve", "--listen", f"127.0.0.1:{port}", "--store", self.store,
             "--sim-roots", os.path.join(work, "sim")],
            stdout=subprocess.DEVNULL, stderr=self.log)
        t = time.time()
        while not os.path.exists(addr):
            if self.proc.poll() is not None or time.time() - t > 30:
                sys.exit(f"the broker did not start (see {self.log.name})")
            time.sleep(0.02)
        time.sleep(0.05)
        with open(addr) as f:
            self.addr = f.read().strip()
        with open(os.path.join(self.store, "tls.sha256")) as f:
            self.pin = f.read().strip()
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.url = f"https://{self.addr}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def setup(work):
    """The breast-cancer scenario through `ccr scenario run` (contract, sealed images, keys at
    the broker's store); its own broker is stopped when it ends, the store stays."""
    subprocess.run([CCR, "scenario", "run", os.path.join(ROOT, "examples", "breast-cancer"),
                    "--work", work], check=True, stdout=subprocess.DEVNULL)


def start_init(work, broker, name):
    out = os.path.join(work, "outs", name)
    log = open(os.path.join(work, "logs", name + ".log"), "wb")
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    p = subprocess.Popen(
        [INIT, "--platform", "sim", "--sim-state", os.path.join(work, "sim"),
         "--contract", os.path.join(work, "contract.json"),
         "--pipeline", os.path.join(work, "pipeline_config.json"),
         "--datasets", os.path.join(work, "images"), "--out", out,
         "--broker", broker.url, "--broker-pin", broker.pin],
        stdout=subprocess.DEVNULL, stderr=log, env=env)
    return p, out, log.name


def steps(log_path):
    s = {}
    run_id = None
    with open(log_path) as f:
        for line in f:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("message") == "step finished":
                s[v["step"]] = v["seconds"]
            run_id = run_id or v.get("run")
    return s, run_id


def last_error(log_path):
    with open(log_path) as f:
        lines = [l for l in f if l.strip()]
    for line in reversed(lines):
        try:
            v = json.loads(line)
        except ValueError:
            return line.strip()[:300]
        if v.get("level") in ("ERROR", "error"):
            return (v.get("message", "") + " " + str(v.get("error", ""))).strip()[:300]
    return lines[-1].strip()[:300] if lines else ""


def concurrency(work, n):
    broker = Broker(work)
    rss0 = rss_kib(broker.proc.pid)
    t0 = time.time()
    runs = [start_init(work, broker, f"c{i}") for i in range(n)]
    codes = [p.wait() for p, _, _ in runs]
    wall = time.time() - t0
    rss1 = rss_kib(broker.proc.pid)
    broker.stop()
    ok = [log for (p, _, log), c in zip(runs, codes) if c == 0]
    failed = [(c, last_error(log)) for (_, _, log), c in zip(runs, codes) if c != 0]
    keys, sim, totals = [], [], []
    for log in ok:
        s, _ = steps(log)
        keys.append(s.get("release", 0))
        sim.append(s.get("attest", 0))
        totals.append(sum(s.values()))
    print(f"concurrency: {n} ccr-init at once, one broker: {len(ok)} succeeded, {len(failed)} failed; "
          f"wall {wall:.1f} s")
    if keys:
        print(f"  attest -> keys (the release step: evidence for each broker nonce, KBS auth/attest, "
              f"every key): p50 {quantile(keys, 0.5):.3f} s, p99 {quantile(keys, 0.99):.3f} s, "
              f"max {max(keys):.3f} s")
        print(f"  the attest step before it (sim: SHA-384 of the ccr-init binary for the measurement, "
              f"and the runtime key): p50 {quantile(sim, 0.5):.2f} s, p99 {quantile(sim, 0.99):.2f} s; "
              f"whole run p50 {quantile(totals, 0.5):.2f} s, p99 {quantile(totals, 0.99):.2f} s")
    print(f"  broker RSS {rss0} KiB before, {rss1} KiB after")
    for c, e in failed[:5]:
        print(f"  failed (exit {c}): {e}")
    return not failed


def ledger(store):
    db = sqlite3.connect(f"file:{os.path.join(store, 'broker.db')}?mode=ro", uri=True)
    dup = db.execute("SELECT count(*) FROM (SELECT 1 FROM spends GROUP BY contract_id, dataset, "
                     "run_id HAVING count(*) > 1)").fetchone()[0]
    reported = {r[0] for r in db.execute("SELECT run_id FROM runs WHERE report IS NOT NULL")}
    spends = {}
    for run_id, spent in db.execute("SELECT run_id, epsilon_spent FROM spends"):
        spends.setdefault(run_id, []).append(spent)
    db.close()
    return dup, reported, spends


def released(log_path):
    with open(log_path) as f:
        return '"step":"release"' in f.read()


def restart(work, n, kill_after, down_for):
    broker = Broker(work)
    port = broker.port
    runs = [start_init(work, broker, f"r{i}") for i in range(n)]
    # Kill it once the first run holds its keys: the others are before, in or after release.
    t = time.time()
    while not any(released(log) for _, _, log in runs) and time.time() - t < 120:
        time.sleep(0.01)
    time.sleep(kill_after)
    in_release = sum(released(log) for _, _, log in runs)
    broker.kill()
    time.sleep(down_for)
    broker = Broker(work, port)
    codes = [p.wait() for p, _, _ in runs]
    broker.stop()
    dup, reported, spends = ledger(broker.store)
    ok, failed, problems, retried = 0, [], [], 0
    for (p, out, log), c in zip(runs, codes):
        with open(log) as f:
            retried += "redoing the handshake" in f.read()
        _, run_id = steps(log)
        parent = os.path.dirname(out)
        tmp_left = [f for f in os.listdir(parent) if f.startswith("." + os.path.basename(out) + ".tmp")]
        if c == 0:
            ok += 1
            if not os.path.exists(out):
                problems.append(f"{out}: succeeded without output")
            if run_id and run_id not in reported:
                problems.append(f"run {run_id}: succeeded but its report (charge) is not recorded")
        else:
            failed.append((c, last_error(log)))
            if os.path.exists(out) or tmp_left:
                problems.append(f"{out}: failed run left output {tmp_left}")
            if run_id and run_id in reported:
                problems.append(f"run {run_id}: failed but a report is recorded")
    print(f"restart: {n} runs, broker SIGKILLed {kill_after:.2f} s after the first run held its keys "
          f"({in_release} of {n} past the release step then) and restarted {down_for:.1f} s later on "
          f"port {port}: {ok} succeeded ({retried} of them asked again), {len(failed)} failed cleanly; "
          f"double spends {dup}; ledger problems (a success without its recorded report, a "
          f"failure with one, output left by a failure) {len(problems)}")
    reasons = {}
    for c, e in failed:
        k = (c, e[:200])
        reasons[k] = reasons.get(k, 0) + 1
    for (c, e), k in sorted(reasons.items(), key=lambda x: -x[1]):
        print(f"  {k} x exit {c}: {e}")
    for pr in problems[:10]:
        print(f"  PROBLEM: {pr}")
    return not problems and dup == 0


MALFORMED = [
    ("random bytes", lambda r: bytes(r.getrandbits(8) for _ in range(r.randint(1, 512)))),
    ("truncated JSON", lambda r: b'{"tee": "sim", "extra-params": {"a": [1, 2'),
    ("deep nesting", lambda r: b"[" * 100000 + b"]" * 100000),
    ("wrong types", lambda r: json.dumps({"tee": 7, "runtime-data": [], "tee-evidence": None,
                                          "report": 1, "version": {}}).encode()),
    ("bad UTF-8", lambda r: b'{"tee": "\xff\xfe\xfd"}'),
    ("empty", lambda r: b""),
    ("over the limit", lambda r: b'{"x": "' + b"a" * (3 << 20) + b'"}'),
]

ENDPOINTS = [
    ("POST", "/kbs/v0/auth"),
    ("POST", "/kbs/v0/attest"),
    ("GET", "/kbs/v0/resource/ccr/dataset/bc-hospital-a"),
    ("POST", "/kbs/v0/resource/ccr/dataset/probe"),
    ("GET", "/kbs/v0/audit"),
    ("POST", "/kbs/v0/runs/probe-run/report"),
    ("POST", "/kbs/v0/runs/probe-run"),
]


def malformed(work, m):
    broker = Broker(work)
    ctx = ssl._create_unverified_context()  # the probe does not pin; ccr's clients do
    rng = random.Random(18)
    rss0 = rss_kib(broker.proc.pid)
    peak = rss0
    ok = True
    for method, path in ENDPOINTS:
        statuses = {}
        conn = http.client.HTTPSConnection("127.0.0.1", broker.port, context=ctx, timeout=30)
        for i in range(m):
            name, make = MALFORMED[i % len(MALFORMED)]
            over = name == "over the limit"
            body = make(rng)
            headers = {"Content-Type": "application/json" if i % 3 else "text/plain",
                       "Cookie": "kbs-session-id=" + ("x" * (i % 50)),
                       "Authorization": "Bearer " + "A" * (i % 40)}
            try:
                conn.request(method, path, body=body if method == "POST" else None, headers=headers)
                r = conn.getresponse()
                r.read()
                key = r.status
                statuses[key] = statuses.get(key, 0) + 1
                # After a refused oversized body the server may close the connection without
                # reading the rest: start a new one, as any client would.
                if over or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPSConnection("127.0.0.1", broker.port, context=ctx, timeout=30)
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                # The server may answer 413 and close before a 3 MiB body is sent: the client
                # then sees the connection closed. Anything else closing it is a failure.
                key = "closed while sending an oversized body" if over else type(e).__name__
                statuses[key] = statuses.get(key, 0) + 1
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", broker.port, context=ctx, timeout=30)
            if i % 100 == 0:
                peak = max(peak, rss_kib(broker.proc.pid))
        conn.close()
        bad = {k: v for k, v in statuses.items()
               if not (isinstance(k, int) and 400 <= k < 500) and not str(k).startswith("closed while")}
        ok &= not bad
        print(f"malformed: {m} x {method} {path}: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
    alive = broker.proc.poll() is None
    conn = http.client.HTTPSConnection("127.0.0.1", broker.port, context=ctx, timeout=30)
    conn.request("POST", "/kbs/v0/auth", body=json.dumps({"version": "0.4.0", "tee": "sim", "extra-params": ""}),
                 headers={"Content-Type": "application/json"})
    good = conn.getresponse().status
    rss1 = rss_kib(broker.proc.pid)
    broker.stop()
    print(f"  broker alive after {m * len(ENDPOINTS)} malformed requests: {alive}; a good auth then "
          f"answers {good}; RSS {rss0} KiB before, peak {peak} KiB, {rss1} KiB after")
    return ok and alive and good == 200


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--restart-runs", type=int, default=20)
    ap.add_argument("--kill-after", type=float, default=0.05)
    ap.add_argument("--down-for", type=float, default=1.0)
    ap.add_argument("--malformed", type=int, default=1000)
    ap.add_argument("--only", choices=["concurrency", "restart", "malformed"])
    a = ap.parse_args()
    for b in (CCR, INIT):
        if not os.path.exists(b):
            sys.exit(f"{b} is not built: cargo build --locked -p ccr-cli -p ccr-runtime --bins")
    work = tempfile.mkdtemp(prefix="ccr-probes.")
    setup(work)
    os.makedirs(os.path.join(work, "outs"))
    os.makedirs(os.path.join(work, "logs"))
    print(f"== work folder {work}")
    good = True
    if a.only in (None, "concurrency"):
        good &= concurrency(work, a.runs)
    if a.only in (None, "restart"):
        good &= restart(work, a.restart_runs, a.kill_after, a.down_for)
    if a.only in (None, "malformed"):
        good &= malformed(work, a.malformed)
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
