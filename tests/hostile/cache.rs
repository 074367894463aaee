//! The cache (issue 14, item 4): it holds native code that runs outside the sandbox, so a
//! cache another user can write is refused, and what the cache holds is verified against a
//! key it does not hold. The attacker here is another local user who can write everything
//! in the cache (its checksums and seals too) but cannot read the user's seal key.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// `cmd` with its cache in `cache` (created by wasm-build if missing).
fn with_cache<'a>(cmd: &'a mut Command, cache: &Path) -> &'a mut Command {
    cmd.env("WASM_BUILD_CACHE_DIR", cache)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A cache folder another user can write, a bucket the user's group can write, a folder
/// above the cache others can write without a sticky bit, and (as root) a cache of another
/// user: each is refused before anything runs, with exit 1 and a message that names the
/// folder, what is wrong with it, and the fix.
#[test]
fn a_cache_other_users_can_write_is_refused() {
    let scene = Scene::with_backend("");
    let base = tempfile::tempdir().unwrap();
    let refused = |cache: &Path, expected: &[&str]| {
        let stderr = scene.fails(with_cache(&mut scene.wheel_cmd(&[]), cache), 1, expected);
        assert!(!stderr.contains("Built"), "{stderr}");
    };

    // World-writable, as a shared folder made with `mkdir -m 777`.
    let open = base.path().join("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    refused(
        &open,
        &[
            &format!(
                "the cache folder {} can be written by other users (mode 0777)",
                open.display()
            ),
            &format!("`chmod go-w {}`", open.display()),
            "WASM_BUILD_CACHE_DIR",
        ],
    );

    // The bucket of compiled native code, writable by the group.
    let cache = base.path().join("cache");
    let compiled = cache.join("compiled-v1");
    fs::create_dir_all(&compiled).unwrap();
    chmod(&compiled, 0o770);
    refused(
        &cache,
        &[
            &format!(
                "the cache folder {} can be written by other users (mode 0770)",
                compiled.display()
            ),
            &format!("`chmod go-w {}`", compiled.display()),
        ],
    );

    // A folder above the cache that others can write: they could rename the cache away and
    // put their own in its place.
    let shared = base.path().join("shared");
    let below = shared.join("cache");
    fs::create_dir_all(&below).unwrap();
    chmod(&shared, 0o777);
    refused(
        &below,
        &[
            &format!(
                "the folder {} above the cache folder {} can be written by other users (mode 0777, no sticky bit)",
                shared.display(),
                below.display()
            ),
            &format!("`chmod go-w {}`", shared.display()),
        ],
    );
    chmod(&shared, 0o755);

    // A cache of another user (only root can make one here).
    if fs::metadata(base.path()).unwrap().uid() == 0 {
        let theirs = base.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        refused(
            &theirs,
            &[&format!(
                "the cache folder {} belongs to uid 65534, not to you (uid 0)",
                theirs.display()
            )],
        );
    }
}

/// The files of the shared cache's `buckets` copied into `to` (a cache of this test's own,
/// which the attack may change without disturbing other tests). Lock files and leftovers of
/// writes in progress are skipped.
fn copy_buckets(to: &Path, buckets: &[wasm_build_packaging::cache::Bucket]) {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        chmod(to, 0o700);
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") || name.ends_with(".lock") {
                continue;
            }
            let (source, target) = (entry.path(), to.join(&name));
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => copy(&source, &target),
                Ok(kind) if kind.is_file() => match fs::copy(&source, &target) {
                    Ok(_) => {}
                    // Renamed away by a test running beside this one.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("copying {}: {e}", source.display()),
                },
                _ => {}
            }
        }
    }
    for bucket in buckets {
        copy(
            &shared_cache().join(bucket.dir_name()),
            &to.join(bucket.dir_name()),
        );
    }
}

/// A private cache holding the shared cache's runtimes and compiled interpreters, so that a
/// build in it starts at once and its other buckets start empty.
fn cache_with_interpreter() -> tempfile::TempDir {
    use wasm_build_packaging::cache::Bucket;
    ensure_runtime();
    let cache = tempfile::tempdir().unwrap();
    copy_buckets(cache.path(), &[Bucket::Runtimes, Bucket::Compiled]);
    cache
}

/// What the attacker writes into a record (a checksum or seal) to make it say `value`: the
/// format the record has, but without the seal key, any tag is a guess (the records of old
/// held the value alone).
fn forge_record(path: &Path, value: &str) {
    let old = fs::read_to_string(path).unwrap_or_default();
    let forged = if old.trim_end().lines().count() > 1 {
        let guess = wasm_build_packaging::cache::sha256_bytes(value.as_bytes());
        format!("{value}\n{guess}\n")
    } else {
        value.to_string()
    };
    fs::write(path, forged).unwrap();
}

/// The byte range of the `.text` section (the machine code) of a compiled module (ELF64).
fn text_section(elf: &[u8]) -> std::ops::Range<usize> {
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..4], b"\x7fELF", "a compiled module is an ELF file");
    let (table, size, count) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let header = |i: usize| table + i * size;
    let names = u64_at(header(u16_at(0x3e)) + 24);
    (0..count)
        .map(header)
        .find(|&h| elf[names + u32_at(h)..].starts_with(b".text\0"))
        .map(|h| u64_at(h + 24)..u64_at(h + 24) + u64_at(h + 32))
        .expect("a compiled module has a .text section")
}

/// The attack of the issue: every compiled module in the cache gets other machine code
/// (here `int3` throughout its `.text`, which traps wherever it runs; the attacker put a
/// shell there), with a checksum that matches it and a seal renewed for the new file. None
/// is loaded: the records were not made with the user's seal key, so each module the build
/// needs is compiled again, and the build succeeds.
#[test]
fn a_compiled_module_replaced_with_its_checksum_and_seal_is_not_loaded() {
    use wasm_build_packaging::cache::{Bucket, sha256_bytes};
    let cache = cache_with_interpreter();
    let compiled = cache.path().join(Bucket::Compiled.dir_name());
    let mut forged = Vec::new();
    for name in listing(&compiled) {
        let Some(stem) = name.strip_suffix(".cwasm") else {
            continue;
        };
        let artifact = compiled.join(&name);
        let mut bytes = fs::read(&artifact).unwrap();
        let text = text_section(&bytes);
        bytes[text].fill(0xcc);
        fs::write(&artifact, &bytes).unwrap();
        forge_record(
            &compiled.join(format!("{stem}.sha256")),
            &sha256_bytes(&bytes),
        );
        forge_record(
            &compiled.join(format!("{name}.seal")),
            &wasm_build::integrity::file_fingerprint(&artifact).unwrap(),
        );
        forged.push((artifact, bytes));
    }
    assert!(
        !forged.is_empty(),
        "the shared cache holds compiled modules"
    );

    let scene = Scene::with_backend(
        r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return finish_wheel(wheel_directory, {"ran": "in the sandbox"})
"#,
    );
    let report = scene.report(with_cache(&mut scene.wheel_cmd(&[]), cache.path()));
    assert_eq!(report["ran"], "in the sandbox");
    // The modules this build ran were made again; a forged one would have trapped.
    let remade = forged
        .iter()
        .filter(|(path, bytes)| fs::read(path).unwrap() != *bytes)
        .count();
    assert!(remade > 0, "no forged module was replaced");
}

/// The same for a build environment: the attacker changes a module in it (and drops its
/// bytecode, so that the source is what runs), then writes the content manifest of the
/// changed tree and renews its seal. The environment is made again, and the backend
/// imports the helper as the wheel shipped it.
#[test]
fn a_build_environment_changed_with_its_manifest_and_seal_is_made_again() {
    let wheels = helper_wheel_dir("14.0");
    let build = || {
        let scene = Scene::build(|scene| {
            let hostile = r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import hostile_helper
    return finish_wheel(wheel_directory, {"helper": hostile_helper.VALUE})
"#;
            write_project(&scene.project(), hostile, &["hostile-helper==14.0"]);
        });
        scene.report(&mut scene.offline_cmd(&wheels))
    };
    assert_eq!(build()["helper"], "pristine");

    let site_packages = helper_environment("14.0");
    let env = site_packages.parent().unwrap();
    let package = site_packages.join("hostile_helper");
    let module = package.join("__init__.py");
    chmod(&module, 0o644);
    fs::write(&module, "VALUE = 'tampered'\n").unwrap();
    let bytecode = package.join("__pycache__");
    if bytecode.exists() {
        chmod(&bytecode, 0o755);
        fs::remove_dir_all(&bytecode).unwrap();
    }
    let manifest = wasm_build::integrity::manifest(&site_packages).unwrap();
    forge_record(&env.join("manifest.sha256"), &manifest.sha256);
    forge_record(
        &env.with_extension("seal"),
        &wasm_build::integrity::fingerprint(&site_packages).unwrap(),
    );

    assert_eq!(build()["helper"], "pristine");
    assert_eq!(
        fs::read_to_string(&module).unwrap(),
        "VALUE = \"pristine\"\n",
        "the environment was made again from the wheel"
    );
}

/// A project whose in-tree backend reports `VALUE` of its own module `_build/{module}.py`
/// (which holds `VALUE = 'pristine'`); with `-C rewrite=1` the backend first rewrites that
/// module to say `rewritten`.
fn bytecode_scene(module: &str) -> Scene {
    Scene::build(|scene| {
        let hostile = format!(
            r#"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import os
    if (config_settings or {{}}).get("rewrite"):
        here = os.path.dirname(os.path.abspath(__file__))
        write(os.path.join(here, "{module}.py"), b"VALUE = 'rewritten'\n")
    import {module}
    return finish_wheel(wheel_directory, {{"helper": {module}.VALUE}})
"#
        );
        write_project(&scene.project(), &hostile, &[]);
        fs::write(
            scene.project().join(format!("_build/{module}.py")),
            "VALUE = 'pristine'\n",
        )
        .unwrap();
    })
}

/// Builds [`bytecode_scene`] with `args` and `-vv` in `cache`: what the backend reported,
/// and the step's bytecode counts (`[cached, sources, imported, compiled, first seen]`).
fn bytecode_build(module: &str, cache: &Path, args: &[&str]) -> (String, [u64; 5]) {
    let scene = bytecode_scene(module);
    let mut cmd = scene.wheel_cmd(&[&["-vv"], args].concat());
    let (report, stderr) = scene.report_and_stderr(with_cache(&mut cmd, cache));
    let counts = bytecode_counts(&stderr).expect("-vv reports the in-tree bytecode");
    (report["helper"].clone(), counts)
}

/// Builds [`bytecode_scene`] until the cache holds the bytecode of its backend and helper:
/// the first build sees them, the second compiles them, the third imports them.
fn cache_bytecode(module: &str, cache: &Path) {
    let expected = [[0, 2, 0, 0, 2], [0, 2, 0, 2, 0], [2, 2, 2, 0, 0]];
    for counts in expected {
        assert_eq!(
            bytecode_build(module, cache, &[]),
            ("pristine".into(), counts)
        );
    }
}

/// In-tree backends' bytecode (`bytecode-v1/`): the attacker changes what a cached module
/// does (the same bytecode with another constant: the helper now says `tampered`), with a
/// header whose sha256 matches the new payload and a tag guessed without the seal key. The
/// guest never gets it: the helper is imported from its source, and the build reports what
/// the source says.
#[test]
fn in_tree_bytecode_changed_in_the_cache_is_not_used() {
    use wasm_build_packaging::cache::{Bucket, sha256_bytes};
    let cache = cache_with_interpreter();
    cache_bytecode("tampered_helper", cache.path());

    let bucket = cache.path().join(Bucket::Bytecode.dir_name());
    let mut forged = 0;
    for shard in listing(&bucket) {
        for name in listing(&bucket.join(&shard)) {
            let entry = bucket.join(&shard).join(name);
            let bytes = fs::read(&entry).unwrap();
            let mut lines = bytes.splitn(3, |&b| b == b'\n');
            let (_, _, payload) = (lines.next(), lines.next(), lines.next().unwrap());
            let mut payload = payload.to_vec();
            let Some(at) = payload.windows(8).position(|w| w == b"pristine") else {
                continue;
            };
            payload[at..at + 8].copy_from_slice(b"tampered");
            let sha256 = sha256_bytes(&payload);
            let guess = sha256_bytes(sha256.as_bytes());
            let mut forged_bytes = format!("{sha256}\n{guess}\n").into_bytes();
            forged_bytes.extend_from_slice(&payload);
            fs::write(&entry, forged_bytes).unwrap();
            forged += 1;
        }
    }
    assert_eq!(forged, 1, "the helper's cached bytecode holds its constant");
    // Only the backend, which the attacker left alone, comes from bytecode.
    assert_eq!(
        bytecode_build("tampered_helper", cache.path(), &[]),
        ("pristine".into(), [1, 2, 1, 0, 1])
    );
}

/// Bytecode is taken only for the bytes it was compiled from: a backend that rewrites one
/// of its own modules before importing it gets its new code, not the bytecode an earlier
/// build cached for that path (as the import system would find a stale `.pyc` by its path).
#[test]
fn in_tree_bytecode_is_not_used_for_a_module_the_backend_changed() {
    let cache = cache_with_interpreter();
    cache_bytecode("changed_helper", cache.path());
    let (helper, [_, _, imported, _, _]) =
        bytecode_build("changed_helper", cache.path(), &["-C", "rewrite=1"]);
    assert_eq!(helper, "rewritten");
    assert_eq!(imported, 1, "only the backend itself came from bytecode");
}
