use super::*;
use std::fs;
use std::os::unix::fs::symlink;

fn tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let pkg = root.path().join("src/pkg");
    fs::create_dir_all(pkg.join("sub")).unwrap();
    fs::create_dir_all(pkg.join("__pycache__")).unwrap();
    fs::write(pkg.join("__init__.py"), b"x = 1\n").unwrap();
    fs::write(pkg.join("sub/mod.py"), b"y = 2\n").unwrap();
    fs::write(pkg.join("data.txt"), b"not python").unwrap();
    fs::write(pkg.join("__pycache__/stale.py"), b"never").unwrap();
    fs::write(root.path().join("setup.py"), b"outside backend-path").unwrap();
    root
}

fn paths(sources: &[BackendSource]) -> Vec<&str> {
    sources.iter().map(|s| s.guest_path.as_str()).collect()
}

#[test]
fn collects_the_python_files_below_backend_path_keyed_by_path_and_bytes() {
    let root = tree();
    let found = collect(root.path(), "/src", &["src".into()], None).unwrap();
    assert_eq!(
        paths(&found),
        ["/src/src/pkg/__init__.py", "/src/src/pkg/sub/mod.py"]
    );
    let first = &found[0];
    assert_eq!(first.size, 6);
    assert_eq!(
        first.key,
        crate::cache::sha256_bytes(b"/src/src/pkg/__init__.py\0x = 1\n")
    );
    // The same bytes at another guest path are another key.
    let elsewhere = collect(root.path(), "/home/me/project", &["src".into()], None).unwrap();
    assert_eq!(
        elsewhere[0].guest_path,
        "/home/me/project/src/pkg/__init__.py"
    );
    assert_ne!(elsewhere[0].key, first.key);
}

#[test]
fn the_project_root_as_backend_path_and_overlapping_entries_give_each_file_once() {
    let root = tree();
    let found = collect(root.path(), "/src", &["".into(), "src".into()], None).unwrap();
    assert_eq!(
        paths(&found),
        [
            "/src/setup.py",
            "/src/src/pkg/__init__.py",
            "/src/src/pkg/sub/mod.py"
        ]
    );
}

#[test]
fn symlinks_are_never_followed_and_missing_folders_give_nothing() {
    let root = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.py"), b"secret").unwrap();
    symlink(outside.path(), root.path().join("src/pkg/linked")).unwrap();
    symlink(
        outside.path().join("secret.py"),
        root.path().join("src/pkg/file.py"),
    )
    .unwrap();
    symlink(outside.path(), root.path().join("via")).unwrap();
    let found = collect(root.path(), "/src", &["src".into()], None).unwrap();
    assert_eq!(
        paths(&found),
        ["/src/src/pkg/__init__.py", "/src/src/pkg/sub/mod.py"]
    );
    // A backend-path that is itself a link, or that is absent, holds nothing to compile.
    assert!(
        collect(root.path(), "/src", &["via".into()], None)
            .unwrap()
            .is_empty()
    );
    assert!(
        collect(root.path(), "/src", &["absent/deeper".into()], None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn too_many_files_or_bytes_are_refused() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..=MAX_SOURCES {
        fs::write(root.path().join(format!("m{i}.py")), b"").unwrap();
    }
    assert!(matches!(
        collect(root.path(), "/src", &["".into()], None),
        Err(SourcesError::TooMany)
    ));
    let root = tempfile::tempdir().unwrap();
    let big = fs::File::create(root.path().join("big.py")).unwrap();
    big.set_len(MAX_SOURCE_BYTES + 1).unwrap();
    assert!(matches!(
        collect(root.path(), "/src", &["".into()], None),
        Err(SourcesError::TooLarge)
    ));
}

#[test]
fn a_source_with_bytecode_shipped_for_the_guests_interpreter_is_left_out() {
    let root = tree();
    let cache = root.path().join("src/pkg/__pycache__");
    fs::write(cache.join("__init__.cpython-313.pyc"), b"shipped").unwrap();
    fs::write(cache.join("mod.cpython-311.pyc"), b"another interpreter's").unwrap();
    let tag = Some("cpython-313");
    let found = collect(root.path(), "/src", &["src".into()], tag).unwrap();
    assert_eq!(paths(&found), ["/src/src/pkg/sub/mod.py"]);
    // Not knowing the guest's tag, any `.pyc` of the name counts.
    let sub_cache = root.path().join("src/pkg/sub/__pycache__");
    fs::create_dir(&sub_cache).unwrap();
    fs::write(sub_cache.join("mod.cpython-311.opt-1.pyc"), b"x").unwrap();
    assert_eq!(
        paths(&collect(root.path(), "/src", &["src".into()], tag).unwrap()).len(),
        1
    );
    assert!(
        collect(root.path(), "/src", &["src".into()], None)
            .unwrap()
            .is_empty()
    );
    // A `__pycache__` that is a link may lead to any `.pyc`: its folder's sources are out.
    fs::remove_dir_all(&sub_cache).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), &sub_cache).unwrap();
    fs::remove_file(cache.join("__init__.cpython-313.pyc")).unwrap();
    let found = collect(root.path(), "/src", &["src".into()], tag).unwrap();
    assert_eq!(paths(&found), ["/src/src/pkg/__init__.py"]);
}
