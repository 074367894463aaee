use super::*;
use crate::test_support::{
    ZipEntry, patch_unix_mode, record_for, wheel_files, wheel_zip, write_file, zip_bytes,
};

const NAME: &str = "demo-1.0-py3-none-any.whl";

/// Compares two wheels given as bytes, both named `NAME` unless `given_name` says otherwise.
fn compare(built: &[u8], given: &[u8], given_name: &str) -> Result<WheelComparison, CompareError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    let a = write_file(&dir.path().join("a"), NAME, built);
    let b = write_file(&dir.path().join("b"), given_name, given);
    compare_wheels(
        (&File::open(a).unwrap(), NAME),
        (&File::open(b).unwrap(), given_name),
        &ArtifactLimits::default(),
    )
}

fn files() -> Vec<(String, Vec<u8>)> {
    wheel_files("demo", "1.0")
}

fn set(files: &mut [(String, Vec<u8>)], path: &str, data: &[u8]) {
    files.iter_mut().find(|(p, _)| p == path).unwrap().1 = data.to_vec();
}

#[test]
fn the_same_bytes_are_identical() {
    let wheel = wheel_zip(&files(), "demo-1.0.dist-info");
    let result = compare(&wheel, &wheel, NAME).unwrap();
    assert_eq!(result.verdict, Verdict::Identical);
    assert!(result.differences.is_empty());
}

#[test]
fn order_compression_generator_record_order_and_field_order_are_equivalent() {
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    // Members in another order, stored instead of deflated, another Generator, RECORD rows
    // in another order, WHEEL fields in another order, folder entries.
    let mut theirs = files();
    theirs.reverse();
    set(
        &mut theirs,
        "demo-1.0.dist-info/WHEEL",
        b"Wheel-Version: 1.0\nTag: py3-none-any\nRoot-Is-Purelib: true\nGenerator: other 9\n",
    );
    let record_path = "demo-1.0.dist-info/RECORD";
    let record = String::from_utf8(record_for(&theirs, record_path)).unwrap();
    let mut rows: Vec<&str> = record.lines().collect();
    rows.reverse();
    let mut entries = vec![ZipEntry::Dir("demo/".into())];
    entries.extend(theirs.iter().map(|(p, d)| ZipEntry::file(p.clone(), d)));
    entries.push(ZipEntry::file(record_path, rows.join("\n") + "\n"));
    let theirs = zip_bytes(&entries);
    assert_ne!(ours, theirs);
    let result = compare(&ours, &theirs, NAME).unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Equivalent,
        "{:?}",
        result.differences
    );
}

#[test]
fn one_changed_byte_differs_and_names_the_member() {
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    let mut changed = files();
    set(&mut changed, "demo/__init__.py", b"print('hellO')\n");
    let theirs = wheel_zip(&changed, "demo-1.0.dist-info");
    let result = compare(&ours, &theirs, NAME).unwrap();
    assert_eq!(result.verdict, Verdict::Differs);
    let members: Vec<(&str, DifferenceKind)> = result
        .differences
        .iter()
        .map(|d| (d.member.as_str(), d.kind))
        .collect();
    assert_eq!(
        members,
        [
            ("demo-1.0.dist-info/RECORD", DifferenceKind::Record),
            ("demo-1.0.dist-info/RECORD", DifferenceKind::Record),
            ("demo/__init__.py", DifferenceKind::Content),
        ]
    );
    assert!(result.differences[2].detail.contains("both 15 bytes"));
}

#[test]
fn metadata_is_compared_field_by_field() {
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    let mut changed = files();
    set(
        &mut changed,
        "demo-1.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: extra\n\nbody\n",
    );
    let theirs = wheel_zip(&changed, "demo-1.0.dist-info");
    let result = compare(&ours, &theirs, NAME).unwrap();
    let metadata: Vec<&str> = result
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::Metadata)
        .map(|d| d.detail.as_str())
        .collect();
    assert_eq!(metadata.len(), 2, "{metadata:?}");
    assert!(metadata[0].contains("`summary`: absent built, `extra` given"));
    assert!(metadata[1].contains("description"));
}

#[test]
fn missing_and_extra_members_executable_bits_and_names_differ() {
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    let mut more = files();
    more.push(("demo/extra.py".into(), b"x = 1\n".to_vec()));
    let theirs = wheel_zip(&more, "demo-1.0.dist-info");
    let result = compare(&ours, &theirs, NAME).unwrap();
    assert!(
        result
            .differences
            .iter()
            .any(|d| d.member == "demo/extra.py" && d.kind == DifferenceKind::OnlyInGiven)
    );
    let result = compare(&theirs, &ours, NAME).unwrap();
    assert!(
        result
            .differences
            .iter()
            .any(|d| d.member == "demo/extra.py" && d.kind == DifferenceKind::OnlyInBuilt)
    );

    let mut executable = ours.clone();
    patch_unix_mode(&mut executable, "demo/__init__.py", 0o100_755);
    let result = compare(&ours, &executable, NAME).unwrap();
    assert_eq!(result.verdict, Verdict::Differs);
    assert_eq!(result.differences[0].kind, DifferenceKind::Executable);

    let result = compare(&ours, &ours, "demo-1.0-py2.py3-none-any.whl").unwrap();
    assert_eq!(result.verdict, Verdict::Differs);
    assert_eq!(result.differences[0].kind, DifferenceKind::FileName);
}

#[test]
fn a_wheel_the_verifier_refuses_is_not_compared() {
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    // RECORD does not match a member.
    let mut entries: Vec<ZipEntry> = files()
        .iter()
        .map(|(p, d)| ZipEntry::file(p.clone(), d))
        .collect();
    entries.push(ZipEntry::file(
        "demo-1.0.dist-info/RECORD",
        "demo/__init__.py,sha256=AAAA,1\n",
    ));
    let bad = zip_bytes(&entries);
    match compare(&ours, &bad, NAME).unwrap_err() {
        CompareError::Given(error) => assert_eq!(error.artifact, NAME),
        other => panic!("the given wheel is the one refused: {other:?}"),
    }
    assert!(matches!(
        compare(&bad, &ours, NAME).unwrap_err(),
        CompareError::Built(_)
    ));
}

#[test]
fn differences_past_the_cap_are_counted() {
    let mut many = files();
    for i in 0..(MAX_DIFFERENCES + 10) {
        many.push((format!("demo/m{i}.py"), b"x\n".to_vec()));
    }
    let ours = wheel_zip(&files(), "demo-1.0.dist-info");
    let theirs = wheel_zip(&many, "demo-1.0.dist-info");
    let result = compare(&ours, &theirs, NAME).unwrap();
    assert_eq!(result.differences.len(), MAX_DIFFERENCES);
    assert!(result.more_differences > 0);
}
