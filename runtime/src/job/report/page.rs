//! `report.html`: one self-contained page for the data consumer (inline SVG and CSS; no scripts,
//! no external assets; readable on a phone, printable) with the run's facts from `run.json`, the
//! held-out metrics and the charts ([`super::charts`]). Everything on it is in `run.json` or
//! `metrics.json`, sealed beside it.

use std::fmt::Write;

use serde_json::Value;

use super::charts::Chart;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:0 auto;max-width:60rem;padding:1rem;color:#222;line-height:1.45}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.92rem}.t{overflow-x:auto}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.85rem;word-break:break-all}\
figure{margin:1rem 0;break-inside:avoid}figure svg{width:100%;height:auto;display:block}\
figcaption{font-size:.85rem;color:#555}.warn{background:#fdecea;border:1px solid #f5c2c0;padding:.5rem .75rem}\
.note{background:#f4f6f8;padding:.5rem .75rem;font-size:.9rem}\
@media print{body{max-width:none}h2{break-after:avoid}}";

/// The page, from `run.json`, `metrics.json` and the charts drawn from them.
pub fn report_html(run: &Value, metrics: &Value, charts: &[Chart]) -> String {
    let model = metrics["model"].as_str().unwrap_or("model");
    let names: Vec<String> = run["datasets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| text(&d["name"]) + " (" + &text(&d["id"]) + ")")
                .collect()
        })
        .unwrap_or_default();
    let title = format!("ccr run report: {model} on {}", names.join(", "));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    if run["platform"] == "sim" {
        h.push_str(
            "<p class=\"warn\"><strong>Not confidential.</strong> This run attested on the \
             <code>sim</code> platform: a local simulator, for tests and demos.</p>\n",
        );
    }
    facts(&mut h, run);
    key_release(&mut h, run);
    privacy(&mut h, run);
    timings(&mut h, run);
    held_out(&mut h, metrics);
    h.push_str("<h2>Charts</h2>\n");
    if charts.is_empty() {
        h.push_str("<p>No chart: the run logged no per-epoch values and the pipeline asked for no curve.</p>\n");
    }
    for c in charts {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">{}<figcaption>{} (<code>{}</code> in the output)</figcaption></figure>",
            escape(c.file.trim_end_matches(".svg")),
            c.svg.trim(),
            escape(&c.title),
            escape(&c.file)
        );
    }
    h.push_str(
        "<h2>What this page shows</h2>\n<p class=\"note\">Every number and every mark on this \
         page comes from <code>run.json</code> and <code>metrics.json</code>, sealed beside it; \
         the charts are drawn from those files and disclose nothing more. A DP run reports no \
         training loss (a loss over private batches is not covered by its guarantee): its charts \
         show the epsilon spent and the held-out metrics only, as its report does.</p>\n",
    );
    h.push_str("</body></html>\n");
    h
}

fn row(h: &mut String, k: &str, v: &str, code: bool) {
    let v = escape(v);
    let v = if code { format!("<code>{v}</code>") } else { v };
    let _ = writeln!(h, "<tr><th>{}</th><td>{v}</td></tr>", escape(k));
}

fn facts(h: &mut String, run: &Value) {
    h.push_str("<h2>Run</h2>\n<div class=\"t\"><table>\n");
    for (k, label, code) in [
        ("run_id", "run id", true),
        ("contract_id", "contract id", true),
        ("contract_digest", "contract digest (SHA-256)", true),
        ("pipeline_digest", "pipeline digest", true),
        ("platform", "platform", false),
        ("evidence_digest", "evidence digest", true),
        ("started", "started", false),
        ("finished", "finished", false),
        ("ccr_version", "ccr version", false),
    ] {
        row(h, label, &text(&run[k]), code);
    }
    let rows = &run["rows"];
    row(
        h,
        "rows (train / validation / test)",
        &format!(
            "{} ({} / {} / {})",
            text(&rows["total"]),
            text(&rows["train"]),
            text(&rows["val"]),
            text(&rows["test"])
        ),
        false,
    );
    h.push_str("</table></div>\n");
}

fn key_release(h: &mut String, run: &Value) {
    let Some(keys) = run["key_release"].as_array() else {
        return;
    };
    h.push_str(
        "<h2>Who released which key</h2>\n<div class=\"t\"><table>\n<tr><th>key</th><th>service</th><th>key id</th><th>shares</th></tr>\n",
    );
    for k in keys {
        let shares = k["shares"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|x| {
                        format!(
                            "{} {}: {}",
                            text(&x["index"]),
                            text(&x["service"]),
                            text(&x["outcome"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .map(|s| format!("{} of: {s}", text(&k["k"])))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&text(&k["key"])),
            escape(&text(&k["type"])),
            escape(&text(&k["kid"])),
            escape(&shares)
        );
    }
    h.push_str("</table></div>\n");
}

fn privacy(h: &mut String, run: &Value) {
    let Some(p) = run["privacy"].as_object() else {
        return;
    };
    h.push_str(
        "<h2>Privacy spent</h2>\n<div class=\"t\"><table>\n<tr><th>dataset</th><th>DP</th><th>epsilon planned</th>\
         <th>epsilon spent</th><th>delta</th><th>contract threshold</th><th>left after this run</th></tr>\n",
    );
    for (d, v) in p {
        let left = match (v["epsilon_threshold"].as_f64(), v["epsilon_spent"].as_f64()) {
            (Some(t), Some(s)) => format!("{:.4}", t - s),
            (Some(t), None) => format!("{t:.4}"),
            _ => "—".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(d),
            if v["dp"] == true { "yes" } else { "no" },
            escape(&text(&v["epsilon_planned"])),
            escape(&text(&v["epsilon_spent"])),
            escape(&text(&v["delta"])),
            escape(&text(&v["epsilon_threshold"])),
            escape(&left)
        );
    }
    h.push_str(
        "</table></div>\n<p class=\"note\">\"Left after this run\" is the contract's threshold less \
         this run's spend; the broker's ledger (<code>ccr keybroker budget</code>) holds what \
         every run together has spent.</p>\n",
    );
}

fn timings(h: &mut String, run: &Value) {
    let Some(t) = run["timings_ms"].as_object() else {
        return;
    };
    h.push_str("<h2>Time per step</h2>\n<div class=\"t\"><table>\n<tr><th>step</th><th>milliseconds</th></tr>\n");
    for step in ["start", "attest", "release", "decrypt", "join", "train"] {
        if let Some(v) = t.get(step) {
            let _ = writeln!(
                h,
                "<tr><td>{step}</td><td class=\"n\">{}</td></tr>",
                escape(&text(v))
            );
        }
    }
    h.push_str("</table></div>\n");
}

fn held_out(h: &mut String, metrics: &Value) {
    let Some(t) = metrics["test"].as_object() else {
        return;
    };
    h.push_str("<h2>Held-out metrics</h2>\n<div class=\"t\"><table>\n<tr><th>metric</th><th>value</th></tr>\n");
    for (k, v) in t {
        if v.is_number() || v.is_string() || v.is_null() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(k),
                escape(&text(v))
            );
        }
    }
    h.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_escapes_what_it_quotes_and_warns_about_sim() {
        let run = json!({"platform": "sim", "run_id": "r1",
            "datasets": [{"id": "d1", "name": "<script>alert(1)</script>"}],
            "privacy": {"d1": {"dp": true, "epsilon_planned": 2.0, "epsilon_spent": 1.5,
                               "delta": 1e-5, "epsilon_threshold": 4.0}}});
        let metrics = json!({"model": "MLP", "classes": ["<script>", "b"],
            "test": {"n": 10, "accuracy": 0.9, "confusion_matrix": [[1, 2], [3, 4]]}});
        // The charts quote the dataset and class names too (plotters escapes its text).
        let charts = super::super::charts::charts(&run, &metrics);
        assert_eq!(charts.len(), 1);
        let h = report_html(&run, &metrics, &charts);
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("Not confidential."));
        // Threshold 4 less this run's 1.5.
        assert!(h.contains("<td class=\"n\">2.5000</td>"), "{h}");
        assert!(
            h.contains("<td>accuracy</td><td class=\"n\">0.9000</td>"),
            "{h}"
        );
        let real = json!({"platform": "snp", "datasets": []});
        assert!(!report_html(&real, &metrics, &[]).contains("Not confidential."));
    }
}
