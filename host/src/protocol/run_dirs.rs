//! The folders of one runner instance and the files the host reads back from the guest.

use super::{GIT_EMULATION, GIT_LIB, HOOK_RUNNER, Hook, HookCall, Request, guest_paths};
use crate::sandbox::Mount;
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest file the host reads back from `/wasm-build/io`.
pub(super) const MAX_IO_FILE: u64 = 4 << 20;

/// The folders of one runner instance (`out`, `tmp`, `io`, `runner`) in a scratch folder
/// of their own, with the runner written afresh, so that no guest can leave a changed
/// runner behind. Removed when dropped, at any depth the guest nested folders (a run's
/// writes are gone before the next run of the step starts).
#[derive(Debug)]
pub(crate) struct RunDirs {
    dir: PathBuf,
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        let _ = wasm_build_packaging::scratch::remove(&self.dir);
    }
}

impl RunDirs {
    /// Makes the folders under a new folder in `scratch` named `{prefix}…`.
    pub(crate) fn new(scratch: &Path, prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(scratch)
            .context("creating the run's scratch folder")?;
        // Removed by this value from here on, also where `TempDir` could not.
        let run = Self { dir: dir.keep() };
        for sub in ["out", "tmp", "io", "runner"] {
            let path = run.dir.join(sub);
            std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        std::fs::write(run.dir.join("runner/hook_runner.py"), HOOK_RUNNER)
            .context("writing the hook runner")?;
        std::fs::write(run.dir.join("runner/git_emulation.py"), GIT_EMULATION)
            .context("writing the git emulation")?;
        Ok(run)
    }

    /// The folder holding the run's folders.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The host side of the guest's `/out`.
    pub(crate) fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// The guest's command line: the runner, as `python -S` runs it.
    pub(crate) fn args() -> Vec<String> {
        vec![
            "-S".into(),
            format!("{}/hook_runner.py", guest_paths::RUNNER),
        ]
    }

    /// The mount table of this instance: the source tree at `source_guest`, its own
    /// folders, the build environment, and a git repository with the emulation's library
    /// (`(repository, dulwich's site-packages)`), read-only.
    pub(crate) fn mounts(
        &self,
        source: &Path,
        source_guest: &str,
        site_packages: &Path,
        git: Option<(&Path, &Path)>,
    ) -> Vec<Mount> {
        let run = self.path();
        let mut mounts = vec![
            Mount::read_write(source, source_guest),
            Mount::read_write(run.join("out"), guest_paths::OUT),
            Mount::read_write(run.join("tmp"), guest_paths::TMP),
            Mount::read_write(run.join("io"), guest_paths::IO),
            Mount::read_only(run.join("runner"), guest_paths::RUNNER),
            Mount::read_only(site_packages, guest_paths::ENV),
        ];
        if let Some((repository, lib)) = git {
            // A preopen inside /src: the guest resolves a path by the longest matching
            // prefix, so `/src/.git` is the repository copy, read-only.
            mounts.push(Mount::read_only(repository, &git_dir(source_guest)));
            mounts.push(Mount::read_only(lib, GIT_LIB));
        }
        mounts
    }

    /// Writes `input.json`.
    pub(crate) fn write_request(&self, request: &Request<'_>) -> Result<()> {
        let bytes = serde_json::to_vec(request).context("encoding the runner's input.json")?;
        std::fs::write(self.path().join("io/input.json"), bytes)
            .context("writing the runner's input.json")
    }

    /// `output.json`, or `None` when the guest wrote none.
    pub(crate) fn read_response<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        read_json(&self.path().join("io"), "output.json")
    }

    /// The hook the runner said it was running, should the run have ended without a
    /// result: only a hook of `calls` counts (the guest wrote the file).
    pub(crate) fn running_hook(&self, calls: &[HookCall]) -> Option<Hook> {
        let name = read_guest_file(&self.path().join("io"), "running", 64).ok()??;
        let name = String::from_utf8_lossy(&name);
        calls
            .iter()
            .map(|call| call.hook)
            .find(|hook| hook.name() == name.trim())
    }
}

/// Where the guest sees the repository of a source mounted at `source_guest`.
pub(crate) fn git_dir(source_guest: &str) -> String {
    format!("{}/.git", source_guest.trim_end_matches('/'))
}

/// A JSON file the guest wrote in `dir`, parsed; `None` when it wrote none. Errors name the
/// file.
pub(crate) fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let Some(bytes) = read_guest_file(dir, name, MAX_IO_FILE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("{name} is not the runner's format"))
}

/// The bytes of `name` in `dir` (a folder the host made, so trusted by path up to `name`),
/// opened without following a link, at most `max` bytes; `None` when there is no such file.
pub(crate) fn read_guest_file(dir: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(name))
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {name} (is it a symlink?)")),
    };
    let meta = file.metadata().with_context(|| format!("reading {name}"))?;
    anyhow::ensure!(meta.is_file(), "{name} is not a regular file");
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {name}"))?;
    anyhow::ensure!(
        bytes.len() as u64 <= max,
        "{name} is larger than {max} bytes"
    );
    Ok(Some(bytes))
}
