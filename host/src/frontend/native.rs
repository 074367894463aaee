//! Telling "this project compiles native code" apart from other backend failures: the
//! sandbox has no compiler and no processes, so such a project cannot be built here, and
//! the user gets one exit class and one message for it whatever way the backend failed.

use super::error::{BuildError, Refusal};
use crate::hooks::HookError;
use crate::protocol::{ProcessAttempt, ProcessKind};

/// Projects that document an environment variable that makes their build skip the
/// extensions and install the pure-Python code instead: (normalized name, `KEY=VALUE`).
const PURE_SWITCHES: &[(&str, &str)] = &[
    ("aiohttp", "AIOHTTP_NO_EXTENSIONS=1"),
    ("frozenlist", "FROZENLIST_NO_EXTENSIONS=1"),
    ("msgpack", "MSGPACK_PUREPYTHON=1"),
    ("multidict", "MULTIDICT_NO_EXTENSIONS=1"),
    ("propcache", "PROPCACHE_NO_EXTENSIONS=1"),
    ("sqlalchemy", "DISABLE_SQLALCHEMY_CEXT=1"),
    ("websockets", "BUILD_EXTENSION=no"),
    ("wrapt", "WRAPT_INSTALL_EXTENSIONS=false"),
    ("yarl", "YARL_NO_EXTENSIONS=1"),
];

/// The `--env` value that gives `project` (a normalized name) its documented pure build.
pub(crate) fn pure_switch(project: &str) -> Option<&'static str> {
    PURE_SWITCHES
        .iter()
        .find(|(name, _)| *name == project)
        .map(|(_, switch)| *switch)
}

/// `error` as [`BuildError::NativeCode`] when the backend failed because it could not
/// compile: it tried to start a compiler, or a thread while building an extension.
/// Sandbox failures (a limit, a crash) keep their own class.
pub(crate) fn classify_hook(error: HookError, project: Option<&str>) -> BuildError {
    if error.kind.is_sandbox_failure() {
        return error.into();
    }
    let log = String::from_utf8_lossy(&error.log);
    let extension = extension_in_log(&log).or_else(|| extension_in(&error.processes));
    let compiler = error.processes.iter().any(ProcessAttempt::is_compiler);
    let thread_in_extension_build = error.processes.iter().any(|p| p.how == ProcessKind::Thread)
        && (log.contains("build_ext") || extension.is_some());
    if !compiler && !thread_in_extension_build {
        return error.into();
    }
    native(error.into(), extension, project)
}

/// `error` as [`BuildError::NativeCode`] when the artifact was refused for its platform
/// tag: the backend built (or meant to build) extensions for the sandbox's platform.
pub(crate) fn classify_artifact(
    error: BuildError,
    processes: &[ProcessAttempt],
    project: Option<&str>,
) -> BuildError {
    match &error {
        BuildError::ArtifactRefused { source, .. }
            if matches!(source.as_ref(), Refusal::Platform { .. }) =>
        {
            native(error, extension_in(processes), project)
        }
        _ => error,
    }
}

fn native(source: BuildError, extension: Option<String>, project: Option<&str>) -> BuildError {
    BuildError::NativeCode {
        extension,
        switch: project.and_then(pure_switch).map(str::to_string),
        source: Box::new(source),
    }
}

/// setuptools announces each extension it builds: `building 'pkg._speedups' extension`.
fn extension_in_log(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("building '")?;
        let (name, tail) = rest.split_once('\'')?;
        let valid = !name.is_empty()
            && name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        (valid && tail.trim() == "extension").then(|| format!("`{name}`"))
    })
}

/// The first native source file a compiler was given, e.g. `multidict/_multidict.c`.
fn extension_in(processes: &[ProcessAttempt]) -> Option<String> {
    const SOURCES: [&str; 7] = [".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs", ".f90"];
    processes
        .iter()
        .filter(|p| p.is_compiler())
        .flat_map(|p| p.argv.iter().skip(1))
        .find(|arg| !arg.starts_with('-') && SOURCES.iter().any(|s| arg.ends_with(s)))
        .map(|source| {
            // An absolute path names a scratch folder of the backend: its last two parts
            // (`yarl/_quoting_c.c`) are what the user knows.
            let shown = if source.starts_with('/') {
                let parts: Vec<&str> = source.rsplitn(3, '/').collect();
                format!("{}/{}", parts[1], parts[0])
            } else {
                source.clone()
            };
            format!("`{shown}`")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(how: ProcessKind, argv: &[&str]) -> ProcessAttempt {
        ProcessAttempt {
            hook: "build_wheel".to_string(),
            how,
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_extension_is_named_from_the_log_or_the_compiler_line() {
        let log = "running build_ext\nbuilding 'multidict._multidict' extension\nerror: x\n";
        assert_eq!(
            extension_in_log(log).as_deref(),
            Some("`multidict._multidict`")
        );
        assert_eq!(extension_in_log("building 'a b' extension"), None);
        assert_eq!(extension_in_log("building 'wheel' for x"), None);
        let cc = attempt(
            ProcessKind::Subprocess,
            &[
                "/wasi-sdk/bin/clang",
                "-O2",
                "-c",
                "yarl/_quoting_c.c",
                "-o",
                "x.o",
            ],
        );
        assert_eq!(extension_in(&[cc]).as_deref(), Some("`yarl/_quoting_c.c`"));
        let absolute = attempt(
            ProcessKind::Subprocess,
            &["cc", "-c", "/tmp/b/src/yarl/_q.c"],
        );
        assert_eq!(extension_in(&[absolute]).as_deref(), Some("`yarl/_q.c`"));
        let git = attempt(ProcessKind::Subprocess, &["git", "add", "x.c"]);
        assert_eq!(extension_in(&[git]), None);
    }

    #[test]
    fn pure_switches_are_found_by_normalized_name() {
        assert_eq!(pure_switch("multidict"), Some("MULTIDICT_NO_EXTENSIONS=1"));
        assert_eq!(pure_switch("requests"), None);
    }
}
