//! A DEPA scenario whose dataset is a directory of images: DEPA's published cifar10 scenario
//! (`../shared/depa/cifar10`) with only its `dataset_config` and `paths.input_dataset_path`
//! changed to a `directory` dataset of PNG files in one folder per class (the layout DEPA's
//! `DirectoryDataset` reads with `structure_type` `nested`), sealed like any other dataset and
//! run end to end with `ccr scenario run`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use image::{ImageBuffer, Rgb};
use serde_json::{Value, json};

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// `n` 32×32 RGB PNGs per class in `dir/<class>/`: noise, and a square whose place and colour
/// are the class (as tests/fixtures/depa/make_data.py draws cifar10's).
fn write_images(dir: &Path, per_class: u32) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8 / 4
    };
    for k in 0..10u32 {
        let class = dir.join(format!("class_{k}"));
        std::fs::create_dir_all(&class).unwrap();
        let (r0, c0) = ((k / 4) * 8 + 1, (k % 4) * 8 + 1);
        for i in 0..per_class {
            let img = ImageBuffer::from_fn(32, 32, |x, y| {
                let inside = (r0..r0 + 8).contains(&y) && (c0..c0 + 8).contains(&x);
                let mut ch = |c: u32| {
                    if inside {
                        128 + 127 * ((k >> c) & 1) as u8
                    } else {
                        noise()
                    }
                };
                Rgb([ch(0), ch(1), ch(2)])
            });
            img.save(class.join(format!("{i:03}.png"))).unwrap();
        }
    }
    // Not samples: a file outside the class folders and one the pattern does not match.
    std::fs::write(dir.join("README.txt"), "cifar10-like images").unwrap();
    std::fs::write(dir.join("class_0/notes.txt"), "not an image").unwrap();
}

#[test]
fn a_directory_dataset_of_png_class_folders_runs_end_to_end() {
    let depa = repo_root().join("../shared/depa/cifar10");
    if !depa.exists() {
        println!("skipped: ../shared/depa is absent");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("cifar10-png");
    copy_dir(&depa, &scenario);
    let config = scenario.join("config/pipeline_config.json");
    let mut p: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let c = &mut p["pipeline"][0]["config"];
    c["paths"]["input_dataset_path"] = json!("/mnt/remote/cifar10/images/");
    let splits = c["dataset_config"]["splits"].clone();
    c["dataset_config"] = json!({
        "type": "directory", "data_type": "image", "structure_type": "nested",
        "file_pattern": "*.png", "image_config": {"to_tensor": true}, "splits": splits,
    });
    c["total_epochs"] = json!(6);
    std::fs::write(&config, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    let data = tmp.path().join("data");
    write_images(&data.join("images"), 80);

    let work = tmp.path().join("work");
    let base = repo_root().join("tests/fixtures/depa/cifar10/model.safetensors");
    let out = Command::new(ccr())
        .args(["scenario", "run"])
        .arg(&scenario)
        .arg("--data")
        .arg(format!("cifar10={}", data.display()))
        .arg("--base-model")
        .arg(&base)
        .arg("--work")
        .arg(&work)
        .arg("--init")
        .arg(ccr_init())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(work.join("ccr-init.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{}\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // 800 images decrypted from the sealed image (the two text files too, not taken).
    assert!(log.contains(r#""files":802"#), "{log}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(work.join("unsealed/metrics.json")).unwrap())
            .unwrap();
    let acc = m["test"]["accuracy"].as_f64().unwrap();
    // Ten classes: chance is 0.1; the test asks three times that.
    assert!(acc > 0.3, "held-out accuracy {acc}: {m}");
    println!(
        "cifar10 as PNG class folders: held-out accuracy {acc:.4} (n {})",
        m["test"]["n"]
    );
}
