//! End to end: the command line as a user meets it (issue 15) — interruptions, file modes,
//! a closed stdout, checks before anything is prepared, bad command lines, messages about
//! bad input, output conventions, and the flags build/uv users reach for. Every exit code
//! docs/cli.md lists is produced by a named test ([`EXIT_CODES`], here, in compat.rs or
//! registry.rs); `docs.rs` checks cli.md against the binary.

mod common;

#[path = "cli/docs.rs"]
mod docs;
#[path = "cli/errors.rs"]
mod errors;

use common::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Each exit code of docs/cli.md's table and a test of this file that asserts it.
const EXIT_CODES: &[(i32, &str)] = &[
    (0, "config_json_reaches_the_backend"),
    (1, "a_cache_others_can_write_is_wasm_builds_failure"),
    (2, "bad_command_lines_exit_2_before_anything_is_prepared"),
    (
        3,
        "an_empty_folder_is_refused_before_the_interpreter_is_prepared",
    ),
    (4, "unresolvable_requirements_exit_4"),
    (5, "a_raising_hook_exits_5"),
    (6, "a_sandbox_limit_exits_6"),
    (7, "a_refused_artifact_exits_7"),
    (8, "a_c_extension_is_its_own_exit_class"),
    (10, "verify_says_identical_equivalent_or_differs"),
    (11, "verify_says_identical_equivalent_or_differs"),
    (130, "sigint_stops_the_build_and_removes_its_scratch"),
    (143, "sigterm_stops_the_build_and_removes_its_scratch"),
];

/// `build_wheel` of a backend that says it started (a file in its working folder, the
/// scratch copy in `$TMPDIR`) and then sleeps.
const SLEEPING_HOOK: &str = "open('hook-started', 'w').close()\nimport time\ntime.sleep(600)";

/// The in-tree backend's project (no index needed); with `build_wheel`, that body replaces
/// the backend's `build_wheel`.
fn intree_project(build_wheel: Option<&str>) -> tempfile::TempDir {
    let project = fixture("intree");
    if let Some(body) = build_wheel {
        let path = project.path().join("_build/backend.py");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(
            "\n\ndef build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n",
        );
        for line in body.lines() {
            text.push_str(&format!("    {line}\n"));
        }
        fs::write(path, text).unwrap();
    }
    project
}

/// A folder that exists, for a cache that must stay empty: nothing may be prepared.
fn empty_cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs `cmd`, asserts exit `code`, returns stderr.
fn exits(cmd: &mut Command, code: i32) -> String {
    let output = run(cmd);
    assert_eq!(output.status.code(), Some(code), "unexpected exit status");
    String::from_utf8(output.stderr).unwrap()
}

fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(root).ok()? {
        let entry = entry.ok()?;
        let kind = entry.file_type().ok()?;
        if entry.file_name() == name {
            return Some(entry.path());
        }
        if kind.is_dir()
            && let Some(found) = find_file(&entry.path(), name)
        {
            return Some(found);
        }
    }
    None
}

/// Waits until the sleeping hook of `child` has started; returns its marker file.
fn hook_started(tmp: &Path, child: &mut Child) -> PathBuf {
    let give_up = Instant::now() + Duration::from_secs(900);
    loop {
        if let Some(marker) = find_file(tmp, "hook-started") {
            return marker;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("the build ended before its hook started: {status}\n{stderr}");
        }
        assert!(Instant::now() < give_up, "the hook never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names in `dir` that wasm-build's folders in `$TMPDIR` could have.
fn ours(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|name| name.starts_with("wasm-build-"))
        .collect()
}

/// Item 4: a build whose hook sleeps gets `signal`. While it runs, `cache prune` removes a
/// stale scratch folder of a dead process but not the live one; then the signal ends the
/// build with `code` and one line, its scratch folders are gone, the output folder as it was.
fn interrupted(signal: i32, code: i32, name: &str) {
    let project = intree_project(Some(SLEEPING_HOOK));
    let tmp = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    fs::write(outdir.path().join("keep.txt"), "mine").unwrap();
    let before = snapshot(outdir.path());
    // What a killed wasm-build leaves: a scratch folder nobody holds a lock on.
    let stale = tmp.path().join("wasm-build-Stale12345");
    fs::create_dir_all(stale.join("src/pkg")).unwrap();
    fs::write(stale.join("src/pkg/mod.py"), "x = 1\n").unwrap();
    // Not a name wasm-build makes: someone else's.
    let theirs = tmp.path().join("wasm-build-keep");
    fs::create_dir(&theirs).unwrap();

    let mut child = wasm_build()
        .env("TMPDIR", tmp.path())
        .arg(project.path())
        .args(["--wheel", "-q", "-o"])
        .arg(outdir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = hook_started(tmp.path(), &mut child);

    let cache = empty_cache();
    let pruned = run(wasm_build()
        .env("TMPDIR", tmp.path())
        .args(["cache", "prune", "--cache-dir"])
        .arg(cache.path()));
    assert!(pruned.status.success(), "cache prune failed");
    assert!(!stale.exists(), "cache prune left a dead process's scratch");
    assert!(
        theirs.is_dir(),
        "cache prune removed a folder not named as ours"
    );
    assert!(
        marker.is_file(),
        "cache prune removed a running build's scratch"
    );

    // SAFETY: sends a signal to the child we started (still running: not yet waited for).
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    eprintln!("exit: {}\n--- stderr\n{stderr}", output.status);
    assert_eq!(output.status.code(), Some(code));
    assert!(output.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{stderr}"
    );
    assert_eq!(ours(tmp.path()), ["wasm-build-keep"], "scratch left behind");
    assert_eq!(snapshot(outdir.path()), before, "the output folder changed");
}

#[test]
fn sigint_stops_the_build_and_removes_its_scratch() {
    interrupted(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn sigterm_stops_the_build_and_removes_its_scratch() {
    interrupted(libc::SIGTERM, 143, "SIGTERM");
}

/// Builds `project`'s wheel with `cmd` at `-vv`; returns the folder its scratch folder was
/// made in and why there, as the `Scratch folder:` line says, once the build is over and
/// the folder gone.
fn scratch_place(cmd: &mut Command, project: &Path) -> (PathBuf, String) {
    let outdir = tempfile::tempdir().unwrap();
    let output = run(cmd
        .arg(project)
        .args(["--wheel", "-vv", "-o"])
        .arg(outdir.path()));
    assert!(output.status.success(), "wasm-build failed");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("Scratch folder: ").map(|(_, rest)| rest))
        .expect("-vv names the scratch folder");
    let (folder, reason) = line.split_once(" (").unwrap();
    let folder = PathBuf::from(folder);
    assert!(!folder.exists(), "{} was left", folder.display());
    assert_eq!(
        listing(outdir.path()),
        ["intree_demo-0.7.0-py3-none-any.whl"]
    );
    (
        folder.parent().unwrap().to_path_buf(),
        reason.strip_suffix(')').unwrap().to_string(),
    )
}

/// Where a build's scratch folder goes (docs/cli.md, `--scratch-dir`): into memory
/// (`/dev/shm`) when it has room for what the running builds may write there, within half
/// the available memory; on disk when it has not (here: a disk limit past any machine's
/// memory); where `$TMPDIR` or `--scratch-dir` say when they say. Wherever it went, it is
/// gone after the build, and `cache prune` sweeps dead processes' folders from memory too.
#[test]
fn the_scratch_folder_goes_into_memory_only_when_the_limits_fit() {
    use wasm_build_packaging::tempdirs::place;
    let project = intree_project(None);
    let system_tmp = Path::new("/tmp");
    let plain = || {
        let mut cmd = wasm_build();
        cmd.env_remove("TMPDIR");
        cmd
    };

    // The project's sdist, made wherever.
    let sdists = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args(["--sdist", "-o"])
            .arg(sdists.path()),
    );
    let [sdist] = built.as_slice() else {
        panic!("one sdist: {built:?}")
    };

    // A wheel from an sdist, one step: its tree (2 GiB and 4 KiB for each of 100 000
    // members, more than the 64 MiB disk limit) and two artifacts' worth (16 MiB and 4 KiB
    // for each of 100 000 members: the wheel, and a copy for a metadata folder), with two
    // guests of 512 MiB; and 2 × 64 MiB for an in-tree backend's bytecode and its compile
    // run.
    let limits = [
        "--disk-limit",
        "64",
        "--artifact-limit",
        "16",
        "--memory-limit",
        "512",
    ];
    let budget = (2 << 30) + 409_600_000 + 2 * ((16 << 20) + 409_600_000) + (128 << 20);
    let (folder, reason) = scratch_place(plain().args(limits), sdist);
    match place::memory_facts() {
        // Far from the bound either way: memory, or disk.
        Ok(facts) if facts.room(1 << 30) >= 2 * budget => {
            assert_eq!(folder, Path::new(place::MEMORY_FOLDER), "{reason}");
            let expected = format!(
                "in memory: the running builds' limits, {} MiB",
                budget >> 20
            );
            assert!(reason.starts_with(&expected), "{reason}");
        }
        Ok(facts) if facts.room(1 << 30) <= budget / 2 => {
            assert_eq!(folder, system_tmp, "{reason}");
            assert!(
                reason.starts_with("not in memory: the running builds'"),
                "{facts:?} {reason}"
            );
        }
        Ok(_) => {}
        Err(why) => {
            assert_eq!(folder, system_tmp);
            assert_eq!(reason, format!("not in memory: {why}"));
        }
    }

    // 2^30 MiB (1 PiB) of disk limit fits no memory.
    let (folder, reason) =
        scratch_place(plain().args(["--disk-limit", "1073741824"]), project.path());
    assert_eq!(folder, system_tmp);
    assert!(reason.starts_with("not in memory: "), "{reason}");
    if place::memory_folder().is_some() {
        assert!(reason.contains("do not fit in /dev/shm"), "{reason}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let (folder, reason) = scratch_place(plain().env("TMPDIR", tmp.path()), project.path());
    assert_eq!((folder.as_path(), reason.as_str()), (tmp.path(), "$TMPDIR"));

    let asked = tempfile::tempdir().unwrap();
    for cmd in [
        plain()
            .env("TMPDIR", tmp.path())
            .arg("--scratch-dir")
            .arg(asked.path()),
        plain().env("WASM_BUILD_SCRATCH_DIR", asked.path()),
    ] {
        let (folder, reason) = scratch_place(cmd, project.path());
        assert_eq!(
            (folder.as_path(), reason.as_str()),
            (asked.path(), "asked for")
        );
    }
    assert!(listing(tmp.path()).is_empty() && listing(asked.path()).is_empty());

    // A dead process's scratch folder in memory (a name of ours nobody holds).
    if let Some(memory) = place::memory_folder() {
        let suffix: String = format!("{:010}", std::process::id())
            .chars()
            .map(|c| (b'a' + (c as u8 - b'0')) as char)
            .collect();
        let stale = memory.join(format!("wasm-build-{suffix}"));
        fs::create_dir_all(stale.join("src-0/pkg")).unwrap();
        fs::write(stale.join("src-0/pkg/mod.py"), "x = 1\n").unwrap();
        let cache = empty_cache();
        let pruned = run(plain()
            .env("TMPDIR", tmp.path())
            .args(["cache", "prune", "--cache-dir"])
            .arg(cache.path()));
        assert!(pruned.status.success(), "cache prune failed");
        assert!(
            !stale.exists(),
            "cache prune left a dead process's folder in memory"
        );
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Item 5: artifacts are 0666 and folders 0777, less the umask, as `python -m build` makes
/// them: an sdist, a wheel, and a `.dist-info` folder with its files, in an output folder
/// wasm-build makes.
#[test]
fn artifacts_are_created_with_the_umask() {
    let project = intree_project(None);
    for umask in [0o022, 0o002] {
        let parent = tempfile::tempdir().unwrap();
        let outdir = parent.path().join("dist");
        let meta = parent.path().join("meta");
        let mut cmd = wasm_build();
        cmd.arg(project.path()).arg("-o").arg(&outdir);
        let mut meta_cmd = wasm_build();
        meta_cmd
            .arg(project.path())
            .args(["--metadata-dir", "-o"])
            .arg(&meta);
        for cmd in [&mut cmd, &mut meta_cmd] {
            // SAFETY: umask is async-signal-safe and touches nothing else.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(umask);
                    Ok(())
                });
            }
        }
        let built = build_ok(&mut cmd);
        assert_eq!(built.len(), 2);
        for artifact in &built {
            assert_eq!(mode(artifact), 0o666 & !umask, "{}", artifact.display());
        }
        assert_eq!(mode(&outdir), 0o777 & !umask);
        let built = build_ok(&mut meta_cmd);
        assert_eq!(mode(&meta), 0o777 & !umask);
        assert_eq!(mode(&built[0]), 0o777 & !umask);
        for file in listing(&built[0]) {
            assert_eq!(mode(&built[0].join(&file)), 0o666 & !umask, "{file}");
        }
    }
}

/// Runs `cmd` with its stdout closed before it writes (`wasm-build … | head -0`).
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("$ {cmd:?}\nexit: {}\n--- stderr\n{stderr}", output.status);
    assert_ne!(output.status.code(), Some(101), "a panic");
    assert!(!stderr.contains("panicked"), "{stderr}");
    output
}

/// Item 7: a reader that went away is not a panic: help, the cache folder, the runtimes,
/// and a build whose artifact paths nobody reads (the artifact is still written).
#[test]
fn a_closed_stdout_is_no_panic() {
    for args in [&["--help"][..], &["cache", "dir"], &["runtime", "info"]] {
        let output = with_closed_stdout(wasm_build().args(args));
        assert!(output.status.success(), "{args:?}");
    }
    let project = intree_project(None);
    let outdir = tempfile::tempdir().unwrap();
    let output = with_closed_stdout(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "-o"])
            .arg(outdir.path()),
    );
    assert!(output.status.success());
    assert_eq!(
        listing(outdir.path()),
        ["intree_demo-0.7.0-py3-none-any.whl"]
    );
}

/// Item 8: an empty folder, on a cache where nothing was prepared yet, is refused at once:
/// the cache stays empty and no scratch folder was made.
#[test]
fn an_empty_folder_is_refused_before_the_interpreter_is_prepared() {
    let cache = empty_cache();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let stderr = exits(
        wasm_build()
            .env("TMPDIR", tmp.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .arg(empty.path()),
        3,
    );
    assert!(stderr.contains("is not a Python project"), "{stderr}");
    assert!(
        stderr.contains("neither pyproject.toml nor setup.py"),
        "{stderr}"
    );
    assert!(listing(cache.path()).is_empty(), "the cache was populated");
    assert!(listing(tmp.path()).is_empty(), "a scratch folder was made");
    assert!(listing(empty.path()).is_empty());
}

/// `--no-cache` and an sdist refused after the interpreter is being prepared (its
/// pyproject.toml does not parse), before any guest: the throw-away cache goes when the
/// process ends, with the stdlib the first run was unpacking into it on another thread
/// (the runtime waits for that thread before the cache's folder is removed). A few times,
/// since the race it guards against is lost only some of the time.
#[test]
fn a_build_without_a_cache_that_fails_early_leaves_nothing_in_tmpdir() {
    let dir = tempfile::tempdir().unwrap();
    let sdist = dir.path().join("broken-1.0.tar.gz");
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(&sdist).unwrap(),
        flate2::Compression::default(),
    ));
    for (name, data) in [
        ("broken-1.0/pyproject.toml", &b"[build-system\n"[..]),
        (
            "broken-1.0/PKG-INFO",
            b"Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n",
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, name, data).unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap();
    for _ in 0..6 {
        let tmp = tempfile::tempdir().unwrap();
        let outdir = dir.path().join("out");
        let stderr = exits(
            wasm_build()
                .env("TMPDIR", tmp.path())
                .arg("--no-cache")
                .arg(&sdist)
                .arg("-o")
                .arg(&outdir),
            3,
        );
        assert!(
            stderr.contains("broken-1.0.tar.gz/pyproject.toml is not valid TOML"),
            "{stderr}"
        );
        assert!(listing(tmp.path()).is_empty(), "left in TMPDIR");
        assert!(!outdir.exists());
    }
}

/// Item 8: an output folder that is a file, or below a file, is a bad command line found
/// before anything is prepared.
#[test]
fn an_output_folder_that_is_a_file_is_refused_before_anything_is_prepared() {
    let project = intree_project(None);
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("out");
    fs::write(&file, "a file").unwrap();
    for (outdir, expected) in [
        (file.clone(), "is a file"),
        (file.join("dist"), "cannot be made"),
    ] {
        let cache = empty_cache();
        let stderr = exits(
            wasm_build()
                .arg("--cache-dir")
                .arg(cache.path())
                .arg(project.path())
                .arg("-o")
                .arg(&outdir),
            2,
        );
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains(outdir.to_str().unwrap()), "{stderr}");
        assert!(listing(cache.path()).is_empty(), "the cache was populated");
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), "a file");
}

/// Exit 1: wasm-build itself cannot work, here because the cache folder is writable by
/// others (a cache anyone could fill with code is never used).
#[test]
fn a_cache_others_can_write_is_wasm_builds_failure() {
    let cache = empty_cache();
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let project = intree_project(None);
    let outdir = tempfile::tempdir().unwrap();
    let stderr = exits(
        wasm_build()
            .arg("--cache-dir")
            .arg(cache.path())
            .arg(project.path())
            .arg("-o")
            .arg(outdir.path()),
        1,
    );
    assert!(stderr.contains(cache.path().to_str().unwrap()), "{stderr}");
    assert!(listing(cache.path()).is_empty());
    assert!(listing(outdir.path()).is_empty());
}

/// Exit 4: a build requirement no index or folder has.
#[test]
fn unresolvable_requirements_exit_4() {
    let project = intree_project(None);
    let pyproject = project.path().join("pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap().replace(
        "requires = []",
        r#"requires = ["wasm-build-surely-missing>=1"]"#,
    );
    fs::write(&pyproject, text).unwrap();
    let wheels = tempfile::tempdir().unwrap();
    let stderr = exits(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "--no-index", "-f"])
            .arg(wheels.path()),
        4,
    );
    assert!(stderr.contains("wasm-build-surely-missing"), "{stderr}");
}

/// Exit 5: a hook raised.
#[test]
fn a_raising_hook_exits_5() {
    let project = intree_project(Some("raise RuntimeError('no wheel today')"));
    let stderr = exits(wasm_build().arg(project.path()).arg("--wheel"), 5);
    assert!(stderr.contains("RuntimeError: no wheel today"), "{stderr}");
    assert!(!project.path().join("dist").exists());
}

/// Exit 6: the sandbox stopped the backend at a limit, and the message names its flag.
#[test]
fn a_sandbox_limit_exits_6() {
    let project = intree_project(Some(SLEEPING_HOOK));
    let stderr = exits(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "--timeout", "2"]),
        6,
    );
    assert!(stderr.contains("--timeout"), "{stderr}");
}

/// Exit 7: verification refused what the backend returned (not a zip).
#[test]
fn a_refused_artifact_exits_7() {
    let project = intree_project(Some(
        "name = 'intree_demo-0.7.0-py3-none-any.whl'\n\
         open(wheel_directory + '/' + name, 'wb').write(b'not a zip')\n\
         return name",
    ));
    let stderr = exits(wasm_build().arg(project.path()).arg("--wheel"), 7);
    assert!(
        stderr.contains("intree_demo-0.7.0-py3-none-any.whl"),
        "{stderr}"
    );
    assert!(!project.path().join("dist").exists());
}

/// Item 14: the summary line; `-vv` and `--no-progress` are accepted; `-q` prints only the
/// paths.
#[test]
fn summary_line_verbosity_and_progress() {
    let project = intree_project(None);
    let outdir = tempfile::tempdir().unwrap();
    let output = run(wasm_build()
        .arg(project.path())
        .args(["--no-progress", "-o"])
        .arg(outdir.path()));
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.lines().any(|l| l
            == "Successfully built intree_demo-0.7.0.tar.gz and intree_demo-0.7.0-py3-none-any.whl"),
        "{stderr}"
    );
    let output = run(wasm_build()
        .arg(project.path())
        .args(["--wheel", "-vv", "-o"])
        .arg(outdir.path()));
    assert!(output.status.success());
    let output = run(wasm_build()
        .arg(project.path())
        .args(["--wheel", "-q", "-o"])
        .arg(outdir.path()));
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "-q printed more than errors");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        outdir
            .path()
            .join("intree_demo-0.7.0-py3-none-any.whl")
            .to_str()
            .unwrap()
    );
}

/// Runs `cmd` with its stderr on a new pseudo-terminal; returns what reached it.
fn on_a_terminal(cmd: &mut Command) -> String {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors into the locals; no name or settings.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (mut master, slave) = unsafe {
        use std::os::fd::FromRawFd;
        (
            fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The slave's last copy is the child's: reading ends (EIO) when it exits.
    cmd.stderr(Stdio::null());
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match master.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
        }
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&text).into_owned()
}

/// Item 14: colour on a terminal, none with `NO_COLOR` or `--color never`, and `--color
/// always` colours a pipe too.
#[test]
fn colour_follows_the_terminal_no_color_and_the_flag() {
    let empty = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut cmd = wasm_build();
        cmd.env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .arg(empty.path());
        cmd
    };
    let coloured = on_a_terminal(&mut cmd());
    assert!(coloured.contains("\x1b[1;31merror:"), "{coloured:?}");
    let plain = on_a_terminal(cmd().env("NO_COLOR", "1"));
    assert!(
        plain.contains("error:") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let plain = on_a_terminal(cmd().args(["--color", "never"]));
    assert!(
        plain.contains("error:") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let piped = exits(cmd().env("NO_COLOR", "1"), 3);
    assert!(!piped.contains('\x1b'), "{piped:?}");
    let forced = exits(cmd().args(["--color", "always"]), 3);
    assert!(forced.contains("\x1b[1;31merror:"), "{forced:?}");
}

/// Item 15: `--cache-dir` wins over `WASM_BUILD_CACHE_DIR`.
#[test]
fn cache_dir_flag_names_the_cache() {
    let unused = empty_cache();
    let output = run(wasm_build()
        .env("WASM_BUILD_CACHE_DIR", unused.path())
        .args(["cache", "dir", "--cache-dir"])
        .arg(shared_cache()));
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        shared_cache().to_str().unwrap()
    );
    let project = intree_project(None);
    let outdir = tempfile::tempdir().unwrap();
    build_ok(
        wasm_build()
            .env("WASM_BUILD_CACHE_DIR", unused.path())
            .arg("--cache-dir")
            .arg(shared_cache())
            .arg(project.path())
            .args(["--wheel", "-o"])
            .arg(outdir.path()),
    );
    assert!(
        listing(unused.path()).is_empty(),
        "the environment's cache was used"
    );
}

/// Item 15: `--config-json` passes nested values to the hooks.
#[test]
fn config_json_reaches_the_backend() {
    let project = intree_project(None);
    let outdir = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args([
                "--wheel",
                "--config-json",
                r#"{"mode": "fast", "flags": ["a", "b"]}"#,
                "-o",
            ])
            .arg(outdir.path()),
    );
    let metadata = zip_member(&built[0], "intree_demo-0.7.0.dist-info/METADATA");
    let text = String::from_utf8(metadata).unwrap();
    assert!(text.contains("config-setting:mode=fast"), "{text}");
    assert!(text.contains("config-setting:flags=['a', 'b']"), "{text}");
}

/// Item 15: a project folder named like a command is built with `build`; the command alone
/// says how.
#[test]
fn a_folder_named_cache_is_built_with_the_build_subcommand() {
    let here = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("intree"), &here.path().join("cache"));
    let built = build_ok(
        wasm_build()
            .current_dir(here.path())
            .args(["build", "cache", "--wheel"]),
    );
    assert_eq!(
        built,
        [PathBuf::from(
            "cache/dist/intree_demo-0.7.0-py3-none-any.whl"
        )]
    );
    assert!(here.path().join(&built[0]).is_file());
    let stderr = exits(wasm_build().current_dir(here.path()).arg("cache"), 2);
    assert!(stderr.contains("wasm-build build cache"), "{stderr}");
}
