use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};

fn umask() -> u32 {
    // Reading the umask sets it: set it back at once (tests in this process share it).
    let mask = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(mask);
    mask.bits()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn files_are_published_whole_with_the_usual_modes() {
    let project = tempfile::tempdir().unwrap();
    let dist = project.path().join("dist");
    let out = OutputDir::open(&dist, Some(project.path())).unwrap();
    let path = out.publish_file("a.whl", &b"first"[..], 5).unwrap();
    assert_eq!(path, dist.join("a.whl"));
    out.publish_file("a.whl", &b"second"[..], 6).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(listing(&dist), ["a.whl"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask());
    let mode = std::fs::metadata(&dist).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777 & !umask());
    // A size that changed is refused, and nothing is left behind.
    assert!(out.publish_file("b.whl", &b"abc"[..], 5).is_err());
    assert_eq!(listing(&dist), ["a.whl"]);
}

#[test]
fn a_link_in_the_project_is_not_followed() {
    let project = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), project.path().join("dist")).unwrap();
    let error = OutputDir::open(&project.path().join("dist"), Some(project.path())).unwrap_err();
    assert!(
        matches!(error, PublishError::LinkInProject { .. }),
        "{error}"
    );
    let error = OutputDir::check(&project.path().join("dist"), Some(project.path())).unwrap_err();
    assert!(
        matches!(error, PublishError::LinkInProject { .. }),
        "{error}"
    );
    // A missing folder is fine to check, and the check creates nothing.
    OutputDir::check(&project.path().join("out/wheels"), Some(project.path())).unwrap();
    assert!(!project.path().join("out").exists());
    // Deeper down too, and with `..` and `.` in the path.
    std::fs::create_dir(project.path().join("build")).unwrap();
    symlink(elsewhere.path(), project.path().join("build/out")).unwrap();
    let nested = project.path().join("./build/../build/out/wheels");
    let error = OutputDir::open(&nested, Some(project.path())).unwrap_err();
    assert!(
        matches!(error, PublishError::LinkInProject { .. }),
        "{error}"
    );
    assert_eq!(listing(elsewhere.path()), Vec::<String>::new());
}

#[test]
fn a_path_outside_the_project_is_the_users() {
    let project = tempfile::tempdir().unwrap();
    let mine = tempfile::tempdir().unwrap();
    let real = mine.path().join("real");
    std::fs::create_dir(&real).unwrap();
    symlink(&real, mine.path().join("wheelhouse")).unwrap();
    let out = OutputDir::open(&mine.path().join("wheelhouse"), Some(project.path())).unwrap();
    out.publish_file("a.whl", &b"x"[..], 1).unwrap();
    assert_eq!(listing(&real), ["a.whl"]);
    let file = mine.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(
        OutputDir::open(&file, None),
        Err(PublishError::NotAFolder { .. })
    ));
}

#[test]
fn a_tree_replaces_the_older_one_whole() {
    let project = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("sub")).unwrap();
    std::fs::write(source.path().join("METADATA"), "Name: x").unwrap();
    std::fs::write(source.path().join("sub/f"), "f").unwrap();
    let dist = project.path().join("dist");
    std::fs::create_dir_all(dist.join("x-1.dist-info/old")).unwrap();
    std::fs::write(dist.join("x-1.dist-info/old/stale"), "stale").unwrap();
    let out = OutputDir::open(&dist, Some(project.path())).unwrap();
    let handle = open_dir_path(source.path()).unwrap();
    out.publish_tree("x-1.dist-info", &handle).unwrap();
    assert_eq!(listing(&dist), ["x-1.dist-info"]);
    assert_eq!(listing(&dist.join("x-1.dist-info")), ["METADATA", "sub"]);
    assert_eq!(
        std::fs::read(dist.join("x-1.dist-info/sub/f")).unwrap(),
        b"f"
    );
    // A first publish of that name works too.
    out.publish_tree("y-1.dist-info", &handle).unwrap();
    // A link in what is copied is refused, and nothing half-made stays.
    symlink("/etc/passwd", source.path().join("passwd")).unwrap();
    assert!(out.publish_tree("z-1.dist-info", &handle).is_err());
    assert_eq!(listing(&dist), ["x-1.dist-info", "y-1.dist-info"]);
}

#[test]
fn components_below_the_project_are_found_lexically() {
    let root = Path::new("/p/proj");
    assert_eq!(
        relative_below(Path::new("/p/proj/dist"), root),
        Some(vec!["dist".to_string()])
    );
    assert_eq!(
        relative_below(Path::new("/p/proj/./a/../b/c"), root),
        Some(vec!["b".to_string(), "c".to_string()])
    );
    assert_eq!(relative_below(Path::new("/p/proj"), root), None);
    assert_eq!(relative_below(Path::new("/p/other/dist"), root), None);
    assert_eq!(relative_below(Path::new("/p/projx/dist"), root), None);
}
