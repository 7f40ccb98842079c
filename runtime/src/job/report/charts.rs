//! The charts of the sealed output, drawn with `plotters` (SVG backend, text left to the viewer's
//! fonts) from `metrics.json` and `run.json` alone: every mark on a chart is a value those files
//! already disclose, so a DP run's charts show nothing its report does not (no training loss;
//! held-out metrics and epsilon, as today).
//!
//! | file | when | from |
//! | --- | --- | --- |
//! | `loss_curve.svg` | a loss was logged for two epochs or more (not DP) | `epochs[].train_loss`, `epochs[].val_metric` |
//! | `epsilon.svg` | DP-SGD epochs | `epochs[].epsilon`, `privacy.*.epsilon_threshold` |
//! | `roc_curve.svg` | the pipeline asks for `roc_auc` (binary) | `test.roc_curve`, `test.roc_auc` |
//! | `precision_recall.svg` | the pipeline asks for `precision_recall_curve` | `test.precision_recall_curve` |
//! | `confusion_matrix.svg` | the pipeline asks for `confusion_matrix` | `test.confusion_matrix`, `classes` |
//! | `residuals.svg` | regression with `export_test_predictions` | `test_predictions[]` |

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// One chart: its file name in the output, its title and the SVG document.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name (`loss_curve.svg`, ...).
    pub file: String,
    /// The chart's title (also its caption in the SVG).
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// Width and height of every chart, in SVG user units (pixels at 100 %).
pub const SIZE: (u32, u32) = (720, 420);
/// The series colours, in order (the Tableau 10 palette's first four).
pub const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn f64s(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Value::as_f64).collect()
}

fn draw(file: &str, title: String, f: impl FnOnce(&Area<'_>, &str) -> Drawn) -> Option<Chart> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        if let Err(e) = f(&root, &title) {
            tracing::warn!(chart = file, error = %e, "chart not drawn");
            return None;
        }
        root.present().ok()?;
    }
    Some(Chart {
        file: file.to_string(),
        title,
        svg,
    })
}

/// A chart's frame: its caption and the label areas (x 44, y `y_area` user units).
fn frame<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    y_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(y_area);
    b
}

/// The series legend at `pos`, on a translucent white box with a black border.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    pos: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// "model on dataset, dataset" for titles.
fn subject(run: &Value, metrics: &Value) -> String {
    let model = metrics["model"].as_str().unwrap_or("model");
    let names: Vec<&str> = run["datasets"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        model.to_string()
    } else {
        format!("{model} on {}", names.join(" + "))
    }
}

/// Every chart the two documents allow, in the order of the module table.
pub fn charts(run: &Value, metrics: &Value) -> Vec<Chart> {
    let who = subject(run, metrics);
    let test = &metrics["test"];
    let n_test = test["n"].as_u64().unwrap_or(0);
    [
        loss(metrics, &who),
        epsilon(run, metrics, &who),
        roc(test, &who, n_test),
        precision_recall(test, &who, n_test),
        confusion(test, metrics, &who),
        residuals(metrics, &who),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn loss(metrics: &Value, who: &str) -> Option<Chart> {
    let epochs = metrics["epochs"].as_array()?;
    let pts: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|e| Some((e["epoch"].as_f64()?, e["train_loss"].as_f64()?)))
        .collect();
    // One value (a solver's final loss) is not a curve: metrics.json has it.
    if pts.len() < 2 {
        return None;
    }
    let val: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|e| Some((e["epoch"].as_f64()?, e["val_metric"].as_f64()?)))
        .collect();
    let val_name = if metrics["task"] == "regression" {
        "validation MSE"
    } else {
        "validation accuracy"
    };
    let last = pts.last().map_or(1.0, |p| p.0).max(2.0);
    let top = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.05;
    draw(
        "loss_curve.svg",
        format!("Training loss per epoch: {who}"),
        |root, title| {
            let mut chart = frame(root, title, 64)
                .right_y_label_area_size(if val.is_empty() { 0 } else { 64 })
                .build_cartesian_2d(1f64..last, 0f64..top)
                .map_err(err)?
                .set_secondary_coord(
                    1f64..last,
                    0f64..val.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.05,
                );
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .x_labels(pts.len().min(10))
                .y_desc("training loss (mean per example)")
                .draw()
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(pts.clone(), COLORS[0].stroke_width(2)))
                .map_err(err)?
                .label("training loss")
                .legend(legend_line(COLORS[0]));
            if !val.is_empty() {
                chart
                    .configure_secondary_axes()
                    .y_desc(val_name)
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_secondary_series(LineSeries::new(val.clone(), COLORS[1].stroke_width(2)))
                    .map_err(err)?
                    .label(val_name)
                    .legend(legend_line(COLORS[1]));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)
        },
    )
}

fn epsilon(run: &Value, metrics: &Value, who: &str) -> Option<Chart> {
    let pts: Vec<(f64, f64)> = metrics["epochs"]
        .as_array()?
        .iter()
        .filter_map(|e| Some((e["epoch"].as_f64()?, e["epsilon"].as_f64()?)))
        .collect();
    if pts.is_empty() {
        return None;
    }
    let thresholds: Vec<(String, f64)> = run["privacy"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(d, p)| Some((d.clone(), p["epsilon_threshold"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let last = pts.last().map_or(1.0, |p| p.0).max(2.0);
    let top = pts
        .iter()
        .map(|p| p.1)
        .chain(thresholds.iter().map(|t| t.1))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    draw(
        "epsilon.svg",
        format!("Privacy spent per epoch: {who}"),
        |root, title| {
            let mut chart = frame(root, title, 64)
                .build_cartesian_2d(1f64..last, 0f64..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .x_labels(pts.len().min(10))
                .y_desc("epsilon spent (RDP accountant)")
                .draw()
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(pts.clone(), COLORS[0].stroke_width(2)))
                .map_err(err)?
                .label("epsilon spent")
                .legend(legend_line(COLORS[0]));
            for (i, (d, t)) in thresholds.iter().enumerate() {
                let c = COLORS[1 + i % 3];
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(1.0, *t), (last, *t)],
                        8,
                        5,
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(format!("{d} threshold {t}"))
                    .legend(legend_line(c));
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight)
        },
    )
}

type UnitChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart over [0, 1] × [0, 1.02] with six ticks on each axis.
fn unit_square<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    x: &str,
    y: &str,
) -> Result<UnitChart<'a, 'b>, String> {
    let mut chart = frame(root, title, 56)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .x_labels(6)
        .y_labels(6)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

fn roc(test: &Value, who: &str, n: u64) -> Option<Chart> {
    let c = &test["roc_curve"];
    let (fpr, tpr) = (f64s(&c["fpr"])?, f64s(&c["tpr"])?);
    let auc = test["roc_auc"].as_f64()?;
    let title = format!("ROC curve, held-out split ({n} rows): {who}");
    draw("roc_curve.svg", title, |root, title| {
        let mut chart = unit_square(root, title, "false positive rate", "true positive rate")?;
        chart
            .draw_series(LineSeries::new(
                fpr.iter().copied().zip(tpr.iter().copied()),
                COLORS[0].stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("ROC (AUC {auc:.3})"))
            .legend(legend_line(COLORS[0]));
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                RGBColor(0x88, 0x88, 0x88).stroke_width(1),
            ))
            .map_err(err)?
            .label("chance (AUC 0.5)")
            .legend(legend_line(RGBColor(0x88, 0x88, 0x88)));
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Area under the precision-recall points by the trapezoidal rule over recall.
pub fn pr_auc(precision: &[f64], recall: &[f64]) -> f64 {
    precision
        .windows(2)
        .zip(recall.windows(2))
        .map(|(p, r)| (r[0] - r[1]).abs() * (p[0] + p[1]) / 2.0)
        .sum()
}

fn precision_recall(test: &Value, who: &str, n: u64) -> Option<Chart> {
    let c = &test["precision_recall_curve"];
    let (p, r) = (f64s(&c["precision"])?, f64s(&c["recall"])?);
    let auc = pr_auc(&p, &r);
    let title = format!("Precision-recall curve, held-out split ({n} rows): {who}");
    draw("precision_recall.svg", title, |root, title| {
        let mut chart = unit_square(root, title, "recall", "precision")?;
        chart
            .draw_series(LineSeries::new(
                r.iter().copied().zip(p.iter().copied()),
                COLORS[0].stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("precision-recall (AUC {auc:.3})"))
            .legend(legend_line(COLORS[0]));
        legend(&mut chart, SeriesLabelPosition::LowerLeft)
    })
}

fn confusion(test: &Value, metrics: &Value, who: &str) -> Option<Chart> {
    let cm: Vec<Vec<u64>> = test["confusion_matrix"]
        .as_array()?
        .iter()
        .map(|r| r.as_array()?.iter().map(Value::as_u64).collect())
        .collect::<Option<_>>()?;
    let k = cm.len();
    if k == 0 || cm.iter().any(|r| r.len() != k) {
        return None;
    }
    let classes: Vec<String> = (0..k)
        .map(|i| {
            metrics["classes"][i]
                .as_str()
                .map_or_else(|| i.to_string(), str::to_string)
        })
        .collect();
    let max = cm.iter().flatten().copied().max().unwrap_or(0).max(1);
    let title = format!("Confusion matrix, held-out split: {who}");
    draw("confusion_matrix.svg", title, |root, title| {
        let ki = k as i32;
        let mut chart = frame(root, title, 64)
            .build_cartesian_2d((0..ki - 1).into_segmented(), (0..ki - 1).into_segmented())
            .map_err(err)?;
        let name = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => classes.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        // Row i (true class) is drawn top to bottom, as scikit-learn's display does.
        let row_name = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => classes
                .get((ki - 1 - *i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&name)
            .y_label_formatter(&row_name)
            .draw()
            .map_err(err)?;
        let cells = cm
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &n)| (i, j, n)));
        chart
            .draw_series(cells.clone().map(|(i, j, n)| {
                let t = n as f64 / max as f64;
                let shade = |c: u8| (255.0 - (255.0 - f64::from(c)) * t) as u8;
                let y = ki - 1 - i as i32;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(j as i32), SegmentValue::Exact(y)),
                        (
                            SegmentValue::Exact(j as i32 + 1),
                            SegmentValue::Exact(y + 1),
                        ),
                    ],
                    RGBColor(shade(0x1f), shade(0x77), shade(0xb4)).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(cells.map(|(i, j, n)| {
                let y = ki - 1 - i as i32;
                let dark = n as f64 / max as f64 > 0.5;
                Text::new(
                    n.to_string(),
                    (SegmentValue::CenterOf(j as i32), SegmentValue::CenterOf(y)),
                    ("sans-serif", 20)
                        .into_font()
                        .color(if dark { &WHITE } else { &BLACK })
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

fn residuals(metrics: &Value, who: &str) -> Option<Chart> {
    if metrics["task"] != "regression" {
        return None;
    }
    let pts: Vec<(f64, f64)> = metrics["test_predictions"]
        .as_array()?
        .iter()
        .filter_map(|r| {
            let p = r["prediction"].as_f64()?;
            Some((p, r["label"].as_f64()? - p))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let (lo, hi) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let r = pts.iter().map(|p| p.1.abs()).fold(0.0, f64::max).max(1e-9) * 1.1;
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let title = format!("Residuals, held-out split ({} rows): {who}", pts.len());
    draw("residuals.svg", title, |root, title| {
        let mut chart = frame(root, title, 64)
            .build_cartesian_2d(lo - pad..hi + pad, -r..r)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("prediction")
            .y_desc("residual (label - prediction)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 3, COLORS[0].mix(0.6).filled())),
            )
            .map_err(err)?
            .label("held-out row")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, COLORS[0].filled()));
        chart
            .draw_series(LineSeries::new(
                vec![(lo - pad, 0.0), (hi + pad, 0.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> Value {
        json!({"datasets": [{"id": "a", "name": "clinic_a"}, {"id": "b", "name": "clinic_b"}],
               "privacy": {"a": {"epsilon_threshold": 4.0}, "b": {"epsilon_threshold": 6.0}}})
    }

    /// The `<text>` contents of an SVG, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').and_then(|(_, r)| r.split_once("</text>")))
            .map(|(t, _)| t.trim().to_string())
            .collect()
    }

    fn polylines_in(svg: &str, color: &RGBColor) -> usize {
        let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
        svg.split("<polyline")
            .skip(1)
            .filter(|p| p.split('>').next().unwrap_or("").contains(&hex))
            .count()
    }

    #[test]
    fn the_loss_chart_has_its_axes_ticks_legend_and_one_line_per_series() {
        let m = json!({"model": "MLP", "task": "classification",
            "epochs": [{"epoch": 1, "train_loss": 0.9, "val_metric": 0.6},
                       {"epoch": 2, "train_loss": 0.5, "val_metric": 0.8},
                       {"epoch": 3, "train_loss": 0.3, "val_metric": 0.9}],
            "test": {"n": 10}});
        let c = charts(&run(), &m);
        assert_eq!(c.len(), 1, "only the loss chart: no curve was asked for");
        let (svg, t) = (&c[0].svg, texts(&c[0].svg));
        assert_eq!(c[0].file, "loss_curve.svg");
        assert!(t.contains(&"Training loss per epoch: MLP on clinic_a + clinic_b".to_string()));
        for label in [
            "epoch",
            "training loss (mean per example)",
            "validation accuracy",
            "training loss",
        ] {
            assert!(t.contains(&label.to_string()), "{label} not in {t:?}");
        }
        for tick in ["1", "2", "3", "0.0", "0.5"] {
            assert!(t.contains(&tick.to_string()), "tick {tick} not in {t:?}");
        }
        // One line per series (and its legend sample), three points each.
        assert_eq!(polylines_in(svg, &COLORS[0]), 2);
        assert_eq!(polylines_in(svg, &COLORS[1]), 2);
        let series = svg
            .split("<polyline")
            .find(|p| p.contains("#1F77B4") && p.contains("stroke-width=\"2\""))
            .unwrap();
        let points = series
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split_whitespace().count(), 3, "{points}");
    }

    #[test]
    fn a_dp_run_draws_no_loss_and_its_epsilon_against_each_threshold() {
        let m = json!({"model": "MLP", "task": "classification",
            "epochs": [{"epoch": 1, "epsilon": 1.5}, {"epoch": 2, "epsilon": 2.5}],
            "test": {"n": 10}});
        let c = charts(&run(), &m);
        let files: Vec<&str> = c.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(files, ["epsilon.svg"]);
        let t = texts(&c[0].svg);
        for label in [
            "epsilon spent (RDP accountant)",
            "epsilon spent",
            "a threshold 4",
            "b threshold 6",
        ] {
            assert!(t.contains(&label.to_string()), "{label} not in {t:?}");
        }
        // The thresholds are dashed: drawn as segments, never as the solid series colour.
        assert_eq!(polylines_in(&c[0].svg, &COLORS[0]), 2);
    }

    #[test]
    fn roc_and_precision_recall_curves_carry_their_auc() {
        let m = json!({"model": "LogisticRegression", "task": "classification",
            "test": {"n": 4, "roc_auc": 0.75,
                     "roc_curve": {"fpr": [0.0, 0.0, 0.5, 1.0], "tpr": [0.0, 0.5, 1.0, 1.0]},
                     "precision_recall_curve": {"precision": [0.5, 1.0, 1.0], "recall": [1.0, 0.5, 0.0],
                                                "thresholds": [0.1, 0.8]}}});
        let c = charts(&run(), &m);
        let files: Vec<&str> = c.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(files, ["roc_curve.svg", "precision_recall.svg"]);
        let roc = texts(&c[0].svg);
        for label in [
            "false positive rate",
            "true positive rate",
            "ROC (AUC 0.750)",
            "chance (AUC 0.5)",
            "0.0",
            "0.2",
            "1.0",
        ] {
            assert!(roc.contains(&label.to_string()), "{label} not in {roc:?}");
        }
        assert!(
            roc[0].starts_with("ROC curve, held-out split (4 rows)"),
            "{roc:?}"
        );
        assert_eq!(polylines_in(&c[0].svg, &COLORS[0]), 2);
        let pr = texts(&c[1].svg);
        // Trapezoids: 0.5 x (0.5 + 1) / 2 + 0.5 x (1 + 1) / 2 = 0.875.
        assert!(
            pr.contains(&"precision-recall (AUC 0.875)".to_string()),
            "{pr:?}"
        );
        assert!(pr.contains(&"recall".to_string()) && pr.contains(&"precision".to_string()));
    }

    #[test]
    fn the_confusion_matrix_is_a_heat_map_with_its_counts() {
        let m = json!({"model": "MLP", "task": "classification", "classes": ["benign", "malignant"],
            "test": {"n": 10, "confusion_matrix": [[5, 1], [0, 4]]}});
        let c = charts(&run(), &m);
        assert_eq!(c[0].file, "confusion_matrix.svg");
        let (svg, t) = (&c[0].svg, texts(&c[0].svg));
        assert!(
            t.contains(&"predicted class".to_string()) && t.contains(&"true class".to_string())
        );
        // The class names on both axes, once each.
        assert_eq!(t.iter().filter(|x| *x == "benign").count(), 2, "{t:?}");
        assert_eq!(t.iter().filter(|x| *x == "malignant").count(), 2, "{t:?}");
        // The counts, in the cells: the last four texts, rows top to bottom (true class 0 first).
        assert_eq!(t[t.len() - 4..], ["5", "1", "0", "4"]);
        // Four cells, the fullest the darkest, an empty one white.
        let cells: Vec<&str> = svg
            .split("<rect")
            .skip(2)
            .filter_map(|r| r.split("fill=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(cells, ["#1F77B4", "#D2E3F0", "#FFFFFF", "#4B92C3"]);
    }

    #[test]
    fn residuals_need_exported_predictions() {
        let mut m = json!({"model": "LinearRegression", "task": "regression", "test": {"n": 3}});
        assert!(charts(&run(), &m).is_empty());
        m["test_predictions"] = json!([{"label": 1.0, "prediction": 1.5},
            {"label": 2.0, "prediction": 1.0}, {"label": 3.0, "prediction": 3.0}]);
        let c = charts(&run(), &m);
        assert_eq!(c[0].file, "residuals.svg");
        let t = texts(&c[0].svg);
        assert!(
            t.contains(&"residual (label - prediction)".to_string()),
            "{t:?}"
        );
        assert!(t[0].starts_with("Residuals, held-out split (3 rows)"));
        // One dot per row and one in the legend.
        assert_eq!(c[0].svg.matches("<circle").count(), 4);
    }
}
