//! Sealed images: renames, swaps, truncation and tampering are detected, with the file named.

use std::fs;
use std::path::Path;

use ccr_images::{DatasetKey, Image, ImageError, StreamError, seal_path};

fn sealed(dir: &Path, id: &str, key: &DatasetKey) -> Image {
    let src = dir.join(format!("src-{id}"));
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.csv"), b"id,x\n1,2\n").unwrap();
    fs::write(src.join("sub/b.csv"), vec![7u8; 3 << 20]).unwrap();
    let img = dir.join(format!("img-{id}"));
    seal_path(&src, &img, id, "kid", key).unwrap();
    Image::load(&img).unwrap()
}

#[test]
fn folder_round_trips_and_extract_writes_every_file() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    let paths: Vec<_> = img
        .manifest()
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(paths, vec!["a.csv", "sub/b.csv"]);
    let out = d.path().join("out");
    img.extract_to(&out, "ds", &k).unwrap();
    assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"id,x\n1,2\n");
    assert_eq!(fs::read(out.join("sub/b.csv")).unwrap().len(), 3 << 20);
}

#[test]
fn renamed_file_fails_authentication() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    // Swap the two ciphertexts and their manifest entries' paths: sizes and digests still match
    // the files, but each file's associated data names the other path.
    let dir = img.dir();
    fs::rename(dir.join("data/a.csv"), dir.join("tmp")).unwrap();
    fs::rename(dir.join("data/sub/b.csv"), dir.join("data/a.csv")).unwrap();
    fs::rename(dir.join("tmp"), dir.join("data/sub/b.csv")).unwrap();
    let m = fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m = m
        .replace("\"a.csv\"", "\"@\"")
        .replace("\"sub/b.csv\"", "\"a.csv\"")
        .replace("\"@\"", "\"sub/b.csv\"");
    fs::write(dir.join("manifest.json"), m).unwrap();
    let img = Image::load(dir).unwrap();
    let entry = img
        .manifest()
        .files
        .iter()
        .find(|f| f.path == "a.csv")
        .unwrap()
        .clone();
    match img.read_file(&entry, "ds", &k) {
        Err(ImageError::Stream {
            file,
            source: StreamError::Authentication { index: 0 },
        }) => {
            assert!(file.ends_with("data/a.csv"), "{}", file.display());
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[test]
fn file_moved_to_another_dataset_fails_authentication() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    // Same key for both datasets: only the dataset id in the associated data differs.
    let one = sealed(d.path(), "one", &k);
    let entry = one.manifest().files[0].clone();
    let e = one.read_file(&entry, "two", &k).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::Stream {
                source: StreamError::Authentication { index: 0 },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tampered_second_segment_names_segment_1() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    let p = img.dir().join("data/sub/b.csv");
    let mut b = fs::read(&p).unwrap();
    b[(1 << 20) + 5] ^= 0x80;
    fs::write(&p, &b).unwrap();
    // Keep the manifest consistent so the stream check is what fails.
    let m = fs::read_to_string(img.dir().join("manifest.json")).unwrap();
    let old = img.manifest().files[1].ciphertext_sha256.clone();
    use sha2::Digest;
    let new = hex::encode(sha2::Sha256::digest(&b));
    fs::write(img.dir().join("manifest.json"), m.replace(&old, &new)).unwrap();
    let img = Image::load(img.dir()).unwrap();
    let e = img
        .read_file(&img.manifest().files[1], "ds", &k)
        .unwrap_err();
    assert!(
        e.to_string().contains("segment 1 failed authentication"),
        "{e}"
    );
    assert!(e.to_string().contains("b.csv"), "{e}");
}

#[test]
fn malformed_manifests_name_their_field() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    let m = img.dir().join("manifest.json");
    let orig = fs::read_to_string(&m).unwrap();
    for (from, to, field) in [
        ("\"ccr-sealed-image/1\"", "\"ccr-sealed-image/9\"", "format"),
        ("\"a.csv\"", "\"../a.csv\"", "files[0].path"),
        (
            "\"kid\": \"kid\"",
            "\"kid\": \"kid\", \"extra\": 1",
            "extra",
        ),
    ] {
        fs::write(&m, orig.replacen(from, to, 1)).unwrap();
        let e = Image::load(img.dir()).unwrap_err();
        assert!(
            matches!(&e, ImageError::Manifest { field: f, .. } if f == field),
            "{from} -> {to}: {e}"
        );
    }
    fs::write(&m, "{not json").unwrap();
    assert!(matches!(
        Image::load(img.dir()),
        Err(ImageError::Manifest { .. })
    ));
}

#[test]
fn existing_target_is_never_overwritten_and_failures_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    let e = seal_path(&d.path().join("src-ds"), img.dir(), "ds", "kid", &k).unwrap_err();
    assert!(matches!(e, ImageError::Exists(_)));
    let missing = seal_path(
        &d.path().join("nope"),
        &d.path().join("new"),
        "ds",
        "kid",
        &k,
    );
    assert!(missing.is_err());
    let names: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains("new")),
        "{names:?}"
    );
}

#[test]
fn keyless_digest_check_names_the_changed_file() {
    let d = tempfile::tempdir().unwrap();
    let k = DatasetKey::generate();
    let img = sealed(d.path(), "ds", &k);
    img.verify_digests().unwrap();
    let p = img.dir().join("data/a.csv");
    let mut b = fs::read(&p).unwrap();
    b[45] ^= 1;
    fs::write(&p, &b).unwrap();
    match img.verify_digests() {
        Err(ImageError::Digest {
            file,
            what: "sha256",
            ..
        }) => assert!(file.ends_with("data/a.csv")),
        other => panic!("{other:?}"),
    }
}
