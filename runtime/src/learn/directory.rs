//! Directory datasets (`dataset_config.type` `directory`), as DEPA's `DirectoryDataset` reads
//! them: image files in one folder per class (`structure_type` `nested`: classes are the folder
//! names in sorted order, a file's class its folder) or in one folder labelled by a CSV
//! (`flat` with `labels_file`, ccr's: columns `file` and `label`). Files are picked by
//! `file_pattern` (a glob on the file name, as Python's `glob` matches it: `*` does not match a
//! leading dot). Each image is decoded (PNG or JPEG), made one channel if `grayscale`, and
//! becomes torchvision's `ToTensor` of it: `[C, H, W]`, values / 255 (then 0/1 if `binarize`).
//! Every image must have the shape of the first (DEPA's DataLoader stacks them).
//!
//! The files are the decrypted plaintext in memory; nothing is written.

use std::collections::BTreeMap;

use image::DynamicImage;
use zeroize::Zeroizing;

use super::TrainError;
use super::data::Prepared;
use crate::pipeline::{ImageConfig, StructureType, TaskType, TrainConfig};

fn data_err(file: &str, what: impl std::fmt::Display) -> TrainError {
    TrainError::Data(format!("dataset file `{file}`: {what}"))
}

/// The files of a directory dataset: each file's path inside the image and its plaintext.
pub type Files = [(String, Zeroizing<Vec<u8>>)];

/// Features and labels from the files under `folder` (a path inside the image; empty for its
/// root).
///
/// # Errors
/// [`TrainError::Data`] naming the file: not a PNG or JPEG, a 16-bit or float image, a shape
/// other than the first image's, a file without a label, a label that is not a number
/// (regression), fewer than ten samples or two classes.
pub fn prepare(files: &Files, folder: &str, cfg: &TrainConfig) -> Result<Prepared, TrainError> {
    let dc = &cfg.dataset_config;
    let pattern = glob::Pattern::new(dc.file_pattern.as_deref().unwrap_or("*"))
        .map_err(|e| TrainError::Data(format!("dataset_config.file_pattern: {e}")))?;
    let prefix = match folder.trim_matches('/') {
        "" | "." => String::new(),
        f => format!("{f}/"),
    };
    let matches = |name: &str| {
        pattern.matches(name) && (!name.starts_with('.') || pattern.as_str().starts_with('.'))
    };
    // (path inside the folder, label text) of each sample, in sorted order of path.
    let mut samples: Vec<(&str, &[u8], String)> = Vec::new();
    match dc.structure_type.unwrap_or(StructureType::Flat) {
        StructureType::Nested => {
            for (path, bytes) in files {
                let Some(rel) = path.strip_prefix(&prefix) else {
                    continue;
                };
                if let Some((class, name)) = rel.split_once('/')
                    && !name.contains('/')
                    && matches(name)
                {
                    samples.push((rel, bytes, class.to_string()));
                }
            }
        }
        StructureType::Flat => {
            let labels_name = dc.labels_file.as_deref().unwrap_or_default();
            let labels = labels(files, &format!("{prefix}{labels_name}"))?;
            for (path, bytes) in files {
                let Some(rel) = path.strip_prefix(&prefix) else {
                    continue;
                };
                if rel.contains('/') || rel == labels_name || !matches(rel) {
                    continue;
                }
                let label = labels.get(rel).ok_or_else(|| {
                    data_err(path, format!("has no row in labels_file `{labels_name}`"))
                })?;
                samples.push((rel, bytes, label.clone()));
            }
        }
        StructureType::Paired => {
            return Err(TrainError::Data(
                "dataset_config.structure_type: paired directories are not supported".into(),
            ));
        }
    }
    samples.sort_by(|a, b| a.0.cmp(b.0));
    if samples.len() < 10 {
        return Err(TrainError::Data(format!(
            "directory `{folder}`: only {} image files match file_pattern `{}`",
            samples.len(),
            pattern.as_str()
        )));
    }
    let ic = dc.image_config.unwrap_or_default();
    let mut x = Vec::new();
    let mut shape: Option<(Vec<usize>, &str)> = None;
    for (rel, bytes, _) in &samples {
        let (s, values) = tensor(bytes, rel, &ic)?;
        match &shape {
            None => shape = Some((s, rel)),
            Some((first, name)) if *first != s => {
                return Err(data_err(
                    rel,
                    format!(
                        "an image of shape {s:?}, `{name}` is {first:?}: every sample must have one shape"
                    ),
                ));
            }
            Some(_) => {}
        }
        x.extend(values);
    }
    let (y, classes) = targets(&samples, cfg.task_type)?;
    Ok(Prepared {
        features: Vec::new(),
        x,
        y,
        classes,
        ids: samples.iter().map(|s| s.0.to_string()).collect(),
        sample_shape: shape.map(|s| s.0).unwrap_or_default(),
    })
}

/// `labels_file`: file name → label text.
fn labels(files: &Files, path: &str) -> Result<BTreeMap<String, String>, TrainError> {
    let (_, bytes) = files
        .iter()
        .find(|(p, _)| p == path)
        .ok_or_else(|| data_err(path, "labels_file is not in the dataset's image"))?;
    let mut r = csv::Reader::from_reader(&bytes[..]);
    let headers = r
        .headers()
        .map_err(|e| data_err(path, format!("not CSV: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| data_err(path, format!("labels_file has no column `{name}`")))
    };
    let (fc, lc) = (col("file")?, col("label")?);
    let mut out = BTreeMap::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| data_err(path, format!("row {}: {e}", i + 1)))?;
        let (Some(f), Some(l)) = (rec.get(fc), rec.get(lc)) else {
            return Err(data_err(path, format!("row {}: a cell is missing", i + 1)));
        };
        out.insert(f.trim().to_string(), l.trim().to_string());
    }
    Ok(out)
}

/// Labels as class indices (classes in sorted order: numerically when every label is a number,
/// else by text; nested folders by name, as DEPA's `sorted(class_folders)`) or values.
fn targets(
    samples: &[(&str, &[u8], String)],
    task: TaskType,
) -> Result<(Vec<f32>, Vec<String>), TrainError> {
    if task == TaskType::Regression {
        let y = samples
            .iter()
            .map(|(rel, _, l)| {
                l.parse::<f32>()
                    .map_err(|_| data_err(rel, format!("label `{l}` is not a number")))
            })
            .collect::<Result<Vec<f32>, _>>()?;
        return Ok((y, Vec::new()));
    }
    let mut classes: Vec<String> = samples.iter().map(|s| s.2.clone()).collect();
    let numeric = classes.iter().all(|c| c.parse::<f64>().is_ok());
    classes.sort_by(|a, b| {
        if numeric {
            let (a, b) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            a.total_cmp(&b)
        } else {
            a.cmp(b)
        }
    });
    classes.dedup();
    if classes.len() < 2 {
        return Err(TrainError::Data(format!(
            "directory dataset: {} class(es) ({}): classification needs two",
            classes.len(),
            classes.join(", ")
        )));
    }
    let y = samples
        .iter()
        .map(|s| classes.iter().position(|c| *c == s.2).unwrap_or(0) as f32)
        .collect();
    Ok((y, classes))
}

/// One image as `ToTensor` makes it: `[C, H, W]` and the values.
fn tensor(
    bytes: &[u8],
    file: &str,
    ic: &ImageConfig,
) -> Result<(Vec<usize>, Vec<f32>), TrainError> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| data_err(file, format!("not a PNG or JPEG image: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    // Interleaved 8-bit pixels and their channel count.
    let (c, pixels): (usize, Vec<u8>) = if ic.use_cv2 {
        // cv2.imread: three channels in BGR order (alpha dropped, gray replicated); with
        // grayscale, cv2.cvtColor's BGR2GRAY (0.299, 0.587, 0.114 in 14-bit fixed point).
        let rgb = eight_bit(&img, file)?.to_rgb8().into_raw();
        if ic.grayscale {
            let gray = rgb
                .chunks_exact(3)
                .map(|p| {
                    let v =
                        u32::from(p[0]) * 4899 + u32::from(p[1]) * 9617 + u32::from(p[2]) * 1868;
                    ((v + (1 << 13)) >> 14) as u8
                })
                .collect();
            (1, gray)
        } else {
            let bgr = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect();
            (3, bgr)
        }
    } else if ic.grayscale {
        // PIL's convert("L"): ITU-R 601-2 luma, (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16.
        let img = eight_bit(&img, file)?;
        let gray = match img {
            DynamicImage::ImageLuma8(g) => g.into_raw(),
            DynamicImage::ImageLumaA8(g) => g.into_raw().chunks_exact(2).map(|p| p[0]).collect(),
            other => other
                .to_rgb8()
                .into_raw()
                .chunks_exact(3)
                .map(|p| {
                    let v =
                        u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
                    ((v + (1 << 15)) >> 16) as u8
                })
                .collect(),
        };
        (1, gray)
    } else {
        match eight_bit(&img, file)? {
            DynamicImage::ImageLuma8(g) => (1, g.into_raw()),
            DynamicImage::ImageLumaA8(g) => (2, g.into_raw()),
            DynamicImage::ImageRgb8(g) => (3, g.into_raw()),
            DynamicImage::ImageRgba8(g) => (4, g.into_raw()),
            _ => unreachable!("eight_bit returns 8-bit layouts"),
        }
    };
    // HWC bytes → CHW values / 255.
    let mut out = vec![0f32; c * h * w];
    for (i, px) in pixels.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            let f = f32::from(v) / 255.0;
            out[k * h * w + i] = if ic.binarize {
                f32::from(u8::from(f64::from(f) > ic.binarize_threshold))
            } else {
                f
            };
        }
    }
    Ok((vec![c, h, w], out))
}

/// The image, if its samples are 8-bit (PNG and JPEG's usual; 16-bit and float are refused).
fn eight_bit(img: &DynamicImage, file: &str) -> Result<DynamicImage, TrainError> {
    match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => Ok(img.clone()),
        _ => Err(data_err(
            file,
            format!(
                "{:?} pixels: only 8-bit images are read (PIL's ToTensor scales 16-bit ones differently)",
                img.color()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb};

    fn png(img: DynamicImage) -> Zeroizing<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        Zeroizing::new(out.into_inner())
    }

    fn cfg(dc: serde_json::Value) -> TrainConfig {
        serde_json::from_value(serde_json::json!({
            "dataset_config": dc,
            "model_config": {"name": "CNN"},
        }))
        .unwrap()
    }

    /// Ten 2×3 RGB images in two class folders, and files that are not samples.
    fn nested() -> Vec<(String, Zeroizing<Vec<u8>>)> {
        let mut files = Vec::new();
        for i in 0..10u8 {
            let class = if i % 2 == 0 { "cat" } else { "dog" };
            let img = ImageBuffer::from_fn(3, 2, |x, y| Rgb([i, x as u8 * 10, y as u8 * 100]));
            files.push((
                format!("data/{class}/{i}.png"),
                png(DynamicImage::ImageRgb8(img)),
            ));
        }
        files.push(("data/cat/.hidden.png".into(), Zeroizing::new(b"x".to_vec())));
        files.push(("data/readme.txt".into(), Zeroizing::new(b"x".to_vec())));
        files.push(("other/cat/1.png".into(), Zeroizing::new(b"x".to_vec())));
        files
    }

    #[test]
    fn class_folders_become_labels_and_images_to_tensor_values() {
        let c = cfg(
            serde_json::json!({"type": "directory", "structure_type": "nested",
                                       "file_pattern": "*.png"}),
        );
        let p = prepare(&nested(), "data/", &c).unwrap();
        assert_eq!(p.classes, ["cat", "dog"]);
        assert_eq!(p.sample_shape, [3, 2, 3]);
        assert_eq!(p.n(), 10);
        // Sorted by path: cat/0, cat/2, … then dog/1, …
        assert_eq!(p.ids[0], "cat/0.png");
        assert_eq!(p.ids[5], "dog/1.png");
        assert_eq!(&p.y[..], &[0., 0., 0., 0., 0., 1., 1., 1., 1., 1.]);
        // dog/1.png: R = 1 everywhere, G = 10·x, B = 100·y, CHW over 255.
        let s = &p.x[5 * 18..6 * 18];
        assert_eq!(s[0], 1.0 / 255.0);
        assert_eq!(s[6 + 2], 20.0 / 255.0);
        assert_eq!(s[12 + 3], 100.0 / 255.0);
    }

    #[test]
    fn grayscale_binarize_and_cv2s_channel_order_are_applied() {
        let mut c = cfg(
            serde_json::json!({"type": "directory", "structure_type": "nested",
            "file_pattern": "*.png", "image_config": {"grayscale": true}}),
        );
        let p = prepare(&nested(), "data", &c).unwrap();
        assert_eq!(p.sample_shape, [1, 2, 3]);
        // dog/1.png pixel (x 2, y 1): RGB (1, 20, 100), PIL's luma.
        let want = ((19595 + 20 * 38470 + 100 * 7471 + (1 << 15)) >> 16) as f32 / 255.0;
        assert_eq!(p.x[5 * 6 + 5], want);
        c.dataset_config.image_config = Some(ImageConfig {
            use_cv2: true,
            ..ImageConfig::default()
        });
        let p = prepare(&nested(), "data", &c).unwrap();
        // BGR: the first plane is blue (100·y).
        assert_eq!(p.x[5 * 18 + 3], 100.0 / 255.0);
        c.dataset_config.image_config = Some(ImageConfig {
            binarize: true,
            binarize_threshold: 0.05,
            ..ImageConfig::default()
        });
        let p = prepare(&nested(), "data", &c).unwrap();
        assert!(p.x.iter().all(|&v| v == 0.0 || v == 1.0));
    }

    #[test]
    fn a_flat_folder_takes_its_labels_from_the_labels_file() {
        let mut files: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
        let mut csv = String::from("file,label\n");
        for i in 0..12u8 {
            let img = ImageBuffer::from_fn(2, 2, |_, _| Luma([i * 20]));
            files.push((format!("{i}.png"), png(DynamicImage::ImageLuma8(img))));
            csv.push_str(&format!("{i}.png,{}\n", f32::from(i) * 0.5));
        }
        files.push(("labels.csv".into(), Zeroizing::new(csv.into_bytes())));
        let mut c = cfg(
            serde_json::json!({"type": "directory", "structure_type": "flat",
                                           "labels_file": "labels.csv"}),
        );
        c.task_type = TaskType::Regression;
        let p = prepare(&files, "", &c).unwrap();
        assert_eq!(p.sample_shape, [1, 2, 2]);
        assert_eq!(p.ids[0], "0.png");
        assert_eq!(p.ids[2], "10.png");
        assert_eq!(p.y[2], 5.0);
        // A file the labels do not name is refused, naming it.
        files.push(("12.png".into(), files[0].1.clone()));
        let e = prepare(&files, "", &c).unwrap_err().to_string();
        assert!(e.contains("`12.png`") && e.contains("labels.csv"), "{e}");
    }

    #[test]
    fn bad_images_are_refused_naming_the_file() {
        let mut files = nested();
        files[3].1 = Zeroizing::new(b"\x89PNG not really".to_vec());
        let c = cfg(
            serde_json::json!({"type": "directory", "structure_type": "nested",
                                       "file_pattern": "*.png"}),
        );
        let e = prepare(&files, "data", &c).unwrap_err().to_string();
        assert!(
            e.contains("data/dog/3.png") || e.contains("dog/3.png"),
            "{e}"
        );
        let mut files = nested();
        let small = ImageBuffer::from_fn(2, 2, |_, _| Rgb([0u8, 0, 0]));
        files[4].1 = png(DynamicImage::ImageRgb8(small));
        let e = prepare(&files, "data", &c).unwrap_err().to_string();
        assert!(e.contains("cat/4.png") && e.contains("one shape"), "{e}");
    }
}
