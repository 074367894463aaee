//! Support for the end-to-end tests: the real `wasm-build` binary, the real interpreter,
//! real backends from the real index. One cache is shared by all tests of a run (under
//! cargo's target folder), so the interpreter is compiled and each wheel downloaded once.

#![allow(dead_code)]

pub mod python;
pub mod wheel;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture projects.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The cache shared by the tests of one `cargo test` run.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-build-cache")
}

/// The `XDG_STATE_HOME` of every test: the shared cache's seal key lives there (outside the
/// cache, and the same for every test whatever `HOME` it sets).
pub fn shared_state() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-build-state")
}

/// The shared cache's seal key file, for tests that open the cache in-process.
pub fn shared_seal_key() -> PathBuf {
    shared_state()
        .join("wasm-build")
        .join(wasm_build_packaging::cache::SEAL_KEY_FILE)
}

/// A scratch copy of fixture `name` (the fixtures themselves are never built in place).
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join(name), dir.path());
    dir
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The `wasm-build` binary with the shared cache and nothing else from the caller's
/// environment that could change its behaviour.
pub fn wasm_build() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasm-build"));
    cmd.env("WASM_BUILD_CACHE_DIR", shared_cache())
        .env("XDG_STATE_HOME", shared_state())
        .env_remove("WASM_BUILD_RUNTIME")
        .env_remove("WASM_BUILD_PYTHON_WASM")
        .env_remove("WASM_BUILD_INDEX_URL")
        .env_remove("WASM_BUILD_SCRATCH_DIR")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs `cmd` and returns its output, printing it for failing tests.
pub fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("running wasm-build");
    eprintln!(
        "$ {cmd:?}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `cmd`, asserts success and returns the artifact paths it printed.
pub fn build_ok(cmd: &mut Command) -> Vec<PathBuf> {
    let output = run(cmd);
    assert!(output.status.success(), "wasm-build failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Runs `cmd`, asserts it failed with `code`, returns stderr.
pub fn build_fails(cmd: &mut Command, code: i32) -> String {
    let output = run(cmd);
    assert_eq!(output.status.code(), Some(code), "unexpected exit status");
    assert!(output.stdout.is_empty(), "a failed build printed artifacts");
    String::from_utf8(output.stderr).unwrap()
}

/// The member names of a wheel (zip), sorted.
pub fn zip_names(path: &Path) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
        .collect();
    names.sort();
    names
}

/// One member of a zip.
pub fn zip_member(path: &Path, name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
    let mut member = zip.by_name(name).unwrap();
    let mut bytes = Vec::new();
    member.read_to_end(&mut bytes).unwrap();
    bytes
}

/// The unix mode a zip member carries in its external attributes.
pub fn zip_mode(path: &Path, name: &str) -> u32 {
    let mut zip = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
    let member = zip.by_name(name).unwrap();
    member
        .unix_mode()
        .unwrap_or_else(|| panic!("{name} has no unix mode"))
}

/// The mode of an sdist member.
pub fn tar_mode(path: &Path, name: &str) -> u32 {
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(path).unwrap()));
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == name {
            return entry.header().mode().unwrap();
        }
    }
    panic!("{name} is not in {}", path.display())
}

/// A find-links folder holding one pure-Python wheel of `name` (a distribution name such as
/// `hostile-helper`) at `version`, with `files` (path in the wheel, contents) besides its
/// METADATA, WHEEL and RECORD.
pub fn wheel_dir(name: &str, version: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let stem = name.replace('-', "_");
    let info = format!("{stem}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    let mut members: Vec<(String, &[u8])> = files
        .iter()
        .map(|(path, data)| (path.to_string(), *data))
        .collect();
    members.push((format!("{info}/METADATA"), metadata.as_bytes()));
    members.push((
        format!("{info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: wasm-build tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    ));
    let path = dir
        .path()
        .join(format!("{stem}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    let mut record = String::new();
    for (member, data) in &members {
        zip.start_file(member.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
        record.push_str(&format!("{member},,\n"));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), options).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    dir
}

/// The folders of an sdist (tar.gz) with their modes.
pub fn tar_folder_modes(path: &Path) -> Vec<(String, u32)> {
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(path).unwrap()));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_dir())
        .map(|e| {
            let name = e.path().unwrap().to_string_lossy().into_owned();
            (name, e.header().mode().unwrap())
        })
        .collect()
}

/// The member names of an sdist (tar.gz), sorted.
pub fn tar_names(path: &Path) -> Vec<String> {
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(path).unwrap()));
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `(Name, Version)` of a wheel's METADATA.
pub fn wheel_name_version(path: &Path, dist_info: &str) -> (String, String) {
    let metadata = zip_member(path, &format!("{dist_info}/METADATA"));
    let text = String::from_utf8(metadata).unwrap();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in METADATA:\n{text}"))
            .to_string()
    };
    (field("Name"), field("Version"))
}

/// Every entry of a tree with its kind, mode, and contents hash: equal snapshots mean an
/// unchanged tree.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            let desc = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if !meta.is_file() {
                // A FIFO, socket or device: opening it could block or have effects.
                format!("special {mode:o} {:?}", meta.modified().unwrap())
            } else {
                let bytes = fs::read(&path).unwrap();
                format!(
                    "file {mode:o} {:?} {}",
                    meta.modified().unwrap(),
                    sha(&bytes)
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn sha(bytes: &[u8]) -> String {
    wasm_build_packaging::cache::sha256_bytes(bytes)
}

/// File names in a folder (empty if it does not exist).
pub fn listing(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What `-vv` said of an in-tree backend's bytecode in the step ("In-tree backend bytecode:
/// C of N files cached, I modules imported from it, K compiled for later builds in T s, S
/// seen for the first time"), as `[C, N, I, K, S]`; `None` when stderr has no such line.
pub fn bytecode_counts(stderr: &str) -> Option<[u64; 5]> {
    let line = stderr.lines().find_map(|line| {
        line.split_once("In-tree backend bytecode: ")
            .map(|(_, rest)| rest)
    })?;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter_map(|word| word.parse().ok())
        .collect();
    numbers.get(..5)?.try_into().ok()
}
