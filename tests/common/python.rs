//! A Python virtual environment with pypa/build, jsonschema and dulwich from PyPI, made once
//! for all tests of a `cargo test` run (under cargo's target folder): the reference `python
//! -m build`, the validator of the report's JSON Schema, and the git emulation's library
//! (the version the host pins, `frontend/git.rs`) for comparing it with git natively.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What the venv holds.
const PACKAGES: &[&str] = &["build==1.6.1", "jsonschema==4.26.0", "dulwich==1.2.21"];

/// The venv's `python`, made (once per run, under a lock shared by test binaries) if
/// missing.
pub fn tools_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-build-pytools");
            fs::create_dir_all(&root).unwrap();
            let lock = fs::File::create(root.join(".lock")).unwrap();
            lock.lock().unwrap();
            let venv = root.join("venv");
            let python = venv.join("bin/python");
            let marker = root.join(format!("ready-{}", PACKAGES.join("-")));
            if !marker.exists() {
                let _ = fs::remove_dir_all(&venv);
                run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
                run_ok(
                    Command::new(&python)
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                        ])
                        .args(PACKAGES),
                );
                fs::write(&marker, "").unwrap();
            }
            python
        })
        .clone()
}

/// Validates the JSON document at `path` against the JSON Schema at `schema` (draft
/// 2020-12), panicking with the validator's message.
pub fn validate_json(path: &Path, schema: &Path) {
    validate(path, schema, None);
}

/// Validates each line of the JSON Lines file at `path` against the definition `def` of
/// the JSON Schema at `schema` (`#/$defs/{def}`).
pub fn validate_json_lines(path: &Path, schema: &Path, def: &str) {
    validate(path, schema, Some(def));
}

fn validate(path: &Path, schema: &Path, lines_of: Option<&str>) {
    let output = Command::new(tools_python())
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[2]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             text = open(sys.argv[1]).read()\n\
             if sys.argv[3]:\n\
             \x20   schema = dict(schema['$defs'][sys.argv[3]], **{'$defs': schema['$defs']})\n\
             \x20   docs = [json.loads(line) for line in text.splitlines() if line]\n\
             else:\n\
             \x20   docs = [json.loads(text)]\n\
             for doc in docs:\n\
             \x20   jsonschema.Draft202012Validator(schema).validate(doc)\n",
        ])
        .arg(path)
        .arg(schema)
        .arg(lines_of.unwrap_or(""))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} does not validate against {}:\n{}",
        path.display(),
        schema.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
