use super::*;
use wasm_build_packaging::cache::SealKey;

fn runtime() -> Runtime {
    Runtime {
        id: "test".into(),
        python_version: "3.13".into(),
        module_path: PathBuf::from("/nonexistent/python.wasm"),
        module_sha256: "ab".repeat(32),
        stdlib: None,
    }
}

/// A staged tree with an in-tree backend, its cache and scratch folder.
struct Scene {
    cache: Cache,
    tree: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir(tree.path().join("_build")).unwrap();
        fs::write(tree.path().join("_build/backend.py"), "VALUE = 1\n").unwrap();
        Scene {
            cache: Cache::temporary().unwrap(),
            tree,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    fn gather(&self) -> StepBytecode {
        StepBytecode::gather(
            &self.cache,
            &runtime(),
            self.tree.path(),
            "/src",
            &["_build".into()],
            self.scratch.path(),
        )
        .unwrap()
    }

    /// The source key of `_build/backend.py` and its cache entry with its label.
    fn entry(&self) -> (String, PathBuf, String) {
        let step = self.gather();
        let key = step.sources[0].key.clone();
        let (path, label) = step.entry(&key);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        (key, path, label)
    }
}

#[test]
fn a_backend_from_the_environment_or_without_python_files_has_no_bytecode() {
    let scene = Scene::new();
    let gather = |backend_path: &[String]| {
        StepBytecode::gather(
            &scene.cache,
            &runtime(),
            scene.tree.path(),
            "/src",
            backend_path,
            scene.scratch.path(),
        )
        .err()
    };
    assert_eq!(gather(&[]).unwrap(), "the backend is not in the tree");
    fs::create_dir(scene.tree.path().join("empty")).unwrap();
    assert_eq!(
        gather(&["empty".into()]).unwrap(),
        "no Python files below backend-path"
    );
}

#[test]
fn only_entries_tagged_with_the_users_key_for_that_source_reach_the_guest() {
    let scene = Scene::new();
    let step = scene.gather();
    assert_eq!(step.counts(), (1, 0));
    assert_eq!(fs::read_dir(step.folder.path()).unwrap().count(), 0);

    let (key, entry, label) = scene.entry();
    let seal_key = scene.cache.seal_key().unwrap();
    cache::write_tagged_bytes(&entry, seal_key, &label, b"code").unwrap();
    let step = scene.gather();
    assert_eq!(step.counts(), (1, 1));
    assert_eq!(fs::read(step.folder.path().join(&key)).unwrap(), b"code");

    // An empty entry only says an earlier build saw the source.
    cache::write_tagged_bytes(&entry, seal_key, &label, b"").unwrap();
    let step = scene.gather();
    assert_eq!(step.counts(), (1, 0));
    assert!(step.seen.contains(&key));
    assert!(!step.folder.path().join(&key).exists());
    cache::write_tagged_bytes(&entry, seal_key, &label, b"code").unwrap();

    // The payload changed behind its header.
    let mut bytes = fs::read(&entry).unwrap();
    *bytes.last_mut().unwrap() = b'!';
    fs::write(&entry, &bytes).unwrap();
    assert_eq!(scene.gather().counts(), (1, 0));

    // A whole entry written with another key (another user's cache, an attacker's guess).
    let other = SealKey::ephemeral().unwrap();
    cache::write_tagged_bytes(&entry, &other, &label, b"evil").unwrap();
    let step = scene.gather();
    assert_eq!(step.counts(), (1, 0));
    assert!(!step.folder.path().join(&key).exists());

    // The user's own entry of another source, copied over this one.
    cache::write_tagged_bytes(&entry, seal_key, "bytecode of something else", b"evil").unwrap();
    assert_eq!(scene.gather().counts(), (1, 0));
}

#[test]
fn a_changed_source_or_another_runtime_is_another_entry() {
    let scene = Scene::new();
    let (key, entry, _) = scene.entry();
    fs::write(scene.tree.path().join("_build/backend.py"), "VALUE = 2\n").unwrap();
    let step = scene.gather();
    assert_ne!(step.sources[0].key, key);
    assert_ne!(step.entry(&step.sources[0].key).0, entry);
    let mut other = step;
    other.module_sha256 = "cd".repeat(32);
    assert_ne!(other.entry(&key).0, entry);
}

#[test]
fn prune_removes_entries_unused_for_the_age_given() {
    let scene = Scene::new();
    let (_, entry, label) = scene.entry();
    let seal_key = scene.cache.seal_key().unwrap();
    cache::write_tagged_bytes(&entry, seal_key, &label, b"code").unwrap();
    assert_eq!(prune(&scene.cache, Duration::from_secs(3600)).unwrap(), 0);
    assert!(entry.exists());
    let old = SystemTime::now() - Duration::from_secs(7200);
    File::options()
        .append(true)
        .open(&entry)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(prune(&scene.cache, Duration::from_secs(3600)).unwrap() > 0);
    assert!(!entry.exists());
    assert!(
        !entry.parent().unwrap().exists(),
        "the emptied shard goes too"
    );
}
