//! `report.html` in a real browser (issue 19): Debian's Chromium, driven over WebDriver by
//! chromedriver on loopback, opens the breast-cancer run's page from the unsealed output. The
//! page has no console error, every chart is there and drawn, it loads nothing and runs no
//! script, it fits a phone's width, and a screenshot is taken (into the test's temporary
//! folder). Skipped with the reason where chromium or chromedriver is missing, unless
//! `CCR_REQUIRE_CHROMIUM` is set (CI installs both).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Option<Self> {
        for p in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(p).exists() {
                assert!(
                    std::env::var_os("CCR_REQUIRE_CHROMIUM").is_none(),
                    "{p} is missing and CCR_REQUIRE_CHROMIUM is set"
                );
                eprintln!("skipped: {p} is missing (apt-get install chromium chromium-driver)");
                return None;
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let t = Instant::now();
        while ureq::get(&format!("{}/status", d.url)).call().is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = ureq::request(method, &format!("{}{path}", self.url));
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match r {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
}

#[test]
fn the_breast_cancer_report_page_renders_in_chromium_without_errors() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let out = w.work.join("bc-out");
    let o = run_init(&s, &w.broker.url, &w.broker.pin, &out);
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    let dir = unseal(&s, &out);
    let page = dir.join("report.html");
    let charts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.ends_with(".svg").then_some(n)
        })
        .collect();
    assert!(charts.contains(&"roc_curve.svg".to_string()), "{charts:?}");

    let profile = w.work.join("chromium-profile");
    let session = driver.call(
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", format!("--user-data-dir={}", profile.display())]}}}})),
    );
    let id = session["sessionId"].as_str().unwrap().to_string();
    let at = |p: &str| format!("/session/{id}{p}");
    driver.call(
        "POST",
        &at("/window/rect"),
        Some(json!({"width": 900, "height": 1200})),
    );
    driver.call(
        "POST",
        &at("/url"),
        Some(json!({"url": format!("file://{}", page.display())})),
    );
    let probe = json!({"script": "return {
        title: document.title,
        svgs: [...document.querySelectorAll('figure svg')].map(s => {
            const r = s.getBoundingClientRect();
            return {w: r.width, h: r.height, paths: s.querySelectorAll('polyline, rect, circle').length};
        }),
        images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length,
        scripts: document.scripts.length,
        external: document.querySelectorAll('[src], link[href]').length,
        width: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        text: document.body.innerText
    };", "args": []});
    let v = driver.call("POST", &at("/execute/sync"), Some(probe.clone()));
    assert_eq!(
        v["title"],
        "ccr run report: LogisticRegression on hospital_a (bc-hospital-a), hospital_b (bc-hospital-b)"
    );
    let svgs = v["svgs"].as_array().unwrap();
    assert_eq!(svgs.len(), charts.len(), "one figure per chart: {v}");
    for s in svgs {
        assert!(
            s["w"].as_f64().unwrap() > 300.0 && s["h"].as_f64().unwrap() > 150.0,
            "{s}"
        );
        assert!(s["paths"].as_u64().unwrap() > 10, "{s}");
    }
    assert_eq!(v["images"], 0, "an image did not load");
    assert_eq!(v["scripts"], 0);
    assert_eq!(v["external"], 0, "the page loads something: {v}");
    let text = v["text"].as_str().unwrap();
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    for fact in ["run_id", "contract_digest", "evidence_digest"] {
        assert!(
            text.contains(run[fact].as_str().unwrap()),
            "{fact} not on the page"
        );
    }
    assert!(text.contains("Not confidential."));
    // A phone's width: nothing wider than the screen (wide tables scroll in their own box).
    driver.call(
        "POST",
        &at("/window/rect"),
        Some(json!({"width": 390, "height": 844})),
    );
    let v = driver.call("POST", &at("/execute/sync"), Some(probe));
    assert!(
        v["width"].as_f64().unwrap() <= v["viewport"].as_f64().unwrap(),
        "the page is {} wide in a {} viewport",
        v["width"],
        v["viewport"]
    );
    // No console message at level SEVERE (errors).
    let logs = driver.call("POST", &at("/se/log"), Some(json!({"type": "browser"})));
    let errors: Vec<&Value> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let shot = driver.call("GET", &at("/screenshot"), None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::write(w.work.join("report.png"), &png).unwrap();
    driver.call("DELETE", &format!("/session/{id}"), None);
}
