//! `loss_curve.svg`: the training loss per epoch as a line chart.

use crate::learn::EpochLog;

/// The training loss per epoch as an SVG line chart (`loss_curve.svg` in the output; 640×360,
/// epochs on x, loss on y from 0 to the largest loss; DP runs also draw epsilon spent, dashed,
/// on its own scale from 0 to its last value).
pub fn loss_curve_svg(epochs: &[EpochLog]) -> String {
    let (w, h, m) = (640.0, 360.0, 48.0);
    let n = epochs.len().max(2) as f64 - 1.0;
    let x = |i: usize| m + (w - 2.0 * m) * i as f64 / n;
    let line = |vals: Vec<f64>, color: &str, dash: &str| {
        let top = vals.iter().copied().fold(0.0, f64::max).max(1e-12);
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), h - m - (h - 2.0 * m) * v / top))
            .collect();
        (
            format!(
                r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                pts.join(" ")
            ),
            top,
        )
    };
    let losses: Vec<f64> = epochs.iter().filter_map(|e| e.train_loss).collect();
    let (loss, top) = if losses.is_empty() {
        (String::new(), 0.0)
    } else {
        line(losses, "#1f77b4", "")
    };
    let eps: Vec<f64> = epochs.iter().filter_map(|e| e.epsilon).collect();
    let (eps_line, eps_top) = if eps.len() == epochs.len() && !eps.is_empty() {
        let (l, t) = line(eps, "#d62728", r#" stroke-dasharray="6 4""#);
        (l, Some(t))
    } else {
        (String::new(), None)
    };
    let eps_label = eps_top
        .map(|t| {
            format!(
                r##"<text x="{}" y="{}" font-size="12" fill="#d62728" text-anchor="end">epsilon (dashed), 0 to {t:.3}</text>"##,
                w - m,
                m - 8.0
            )
        })
        .unwrap_or_default();
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<rect width="100%" height="100%" fill="white"/>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{tb}" font-size="12" text-anchor="middle">epoch (1 to {ne})</text>
<text x="{m}" y="{ty}" font-size="12">{loss_label}</text>
{eps_label}
{loss}
{eps_line}
</svg>
"#,
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        tb = h - 12.0,
        ne = epochs.len(),
        ty = m - 8.0,
        loss_label = if loss.is_empty() {
            "training loss not shown: DP run".to_string()
        } else {
            format!("training loss, 0 to {top:.4}")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_curve_is_svg_with_one_point_per_epoch() {
        let log = |epoch, train_loss: f64, epsilon: Option<f64>| EpochLog {
            epoch,
            train_loss: epsilon.is_none().then_some(train_loss),
            epsilon,
            val_metric: None,
        };
        let svg = loss_curve_svg(&[log(1, 2.0, None), log(2, 1.0, None), log(3, 0.5, None)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains(r#"points="48.0,48.0 320.0,180.0 592.0,246.0""#),
            "{svg}"
        );
        assert!(!svg.contains("epsilon"));
        let svg = loss_curve_svg(&[log(1, 1.0, Some(0.5)), log(2, 0.8, Some(1.0))]);
        assert!(svg.contains("epsilon (dashed), 0 to 1.000"), "{svg}");
        assert!(svg.contains("training loss not shown: DP run"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1);
    }
}
