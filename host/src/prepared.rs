//! Prepared backends: the hook runner with the build backend already imported, kept as a
//! memory image per build environment, backend and guest environment, so that hook runs do
//! not import the same backend again (docs/runtime.md, "The prepared backend").
//!
//! Importing the backend is most of a small build (`import setuptools` is ~60 % of a small
//! `build_wheel`), and a build runs the backend in two or more instances (the sdist, the
//! wheel from it, metadata), a registry in thousands. The first hook run of a backend in an
//! environment therefore starts with a prepare run: the runner sets up and imports the
//! backend in the pre-initialized interpreter with an empty source tree and the hook runs'
//! mount table, returns without finalizing, and the sandbox keeps the pages of memory that
//! the import changed ([`MemoryImage`]). Every hook run of that backend, environment and
//! guest environment then starts from the image.
//!
//! What runs before the image is taken is exactly the code the hook runs would run first:
//! the runner and the environment's backend, nothing of the project. The image is data for
//! the guest's own memory, so it cannot widen what a guest may do; it does decide what the
//! guest computes, so it is kept like a build environment: written by the host into its
//! private cache, checked by sha256 (recorded with a tag under the cache's seal key) and
//! sealed, and checked before reuse. A backend whose
//! import prints, fails or leaves a file open is not prepared (remembered, so the attempt is
//! made once; a prepare run stopped by a limit is not remembered); its hook runs import it
//! as before. In-tree backends (`backend-path`) and editable builds, whose source is mounted
//! elsewhere, are never prepared.

use crate::integrity::SealedFile;
use crate::protocol::{Action, HOOK_RUNNER, PrepareResponse, Request, RunDirs, guest_paths};
use crate::sandbox::{
    Determinism, GuestRun, ImageFile, LogSink, MemoryImage, Sandbox, SandboxError,
};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wasm_build_packaging::cache::{self, Bucket, Cache, FileLock, SealKey};
use wasm_build_packaging::tempdirs::{HeldDir, TempKind, place};

/// Bumped whenever what goes into an image changes, so old images are not reused.
const FORMAT: &str = "prepared-backend-1";

/// The images of one process: found in, or made into, the cache's `prepared` bucket; each
/// looked up once per process.
pub(crate) struct PreparedBackends {
    dir: PathBuf,
    /// What the images' records are checked with.
    seal_key: SealKey,
    /// Key → the image, or why the backend is not prepared.
    loaded: Mutex<HashMap<String, Result<MemoryImage, String>>>,
}

/// What a hook run needs to find its image: its environment and its run.
pub(crate) struct Wanted<'a> {
    pub sandbox: &'a Sandbox,
    /// The build environment's cache key.
    pub env_key: &'a str,
    pub site_packages: &'a Path,
    pub backend: &'a str,
    /// The hook run itself: its arguments, environment and limits are the prepare run's.
    pub run: &'a GuestRun,
    /// Where the prepare run's folders go (in a scratch folder of their own there):
    /// `--scratch-dir`, else the temporary folder, never memory.
    pub scratch_dir: Option<&'a Path>,
}

impl PreparedBackends {
    /// The prepared backends kept in `cache`.
    pub(crate) fn new(cache: &Cache) -> Result<Self> {
        Ok(Self {
            dir: cache.bucket(Bucket::Prepared)?,
            seal_key: cache.seal_key()?.clone(),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The image a hook run of `wanted` starts from: cached, or made now. `Err(why)` when
    /// the backend cannot be prepared (then the run imports it itself).
    pub(crate) fn image(&self, wanted: &Wanted<'_>) -> Result<Result<MemoryImage, String>> {
        let Some(base) = wanted.sandbox.image_base(wanted.run) else {
            return Ok(Err(
                "the interpreter cannot keep a prepared instance for this run".into(),
            ));
        };
        let key = image_key(&base, wanted.env_key, wanted.backend, wanted.run);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = loaded.get(&key) {
            return Ok(found.clone());
        }
        let image = self.find_or_make(&key, wanted)?;
        loaded.insert(key, image.clone());
        Ok(image)
    }

    fn find_or_make(&self, key: &str, wanted: &Wanted<'_>) -> Result<Result<MemoryImage, String>> {
        let path = self.dir.join(format!("{key}.image"));
        let checksum = self.dir.join(format!("{key}.sha256"));
        let label = format!("sha256 of prepared backend {key}.image");
        let verify = || load_verified(&path, &checksum, &self.seal_key, &label);
        let refused = self.dir.join(format!("{key}.refused"));
        if refused.exists() {
            return Ok(Err(refusal(&refused)));
        }
        if let Some(image) = verify()? {
            return Ok(Ok(image));
        }
        let _lock = FileLock::acquire(self.dir.join(format!("{key}.lock")))?;
        if refused.exists() {
            return Ok(Err(refusal(&refused)));
        }
        if let Some(image) = verify()? {
            return Ok(Ok(image));
        }
        let staging = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".image")
            .tempfile_in(&self.dir)
            .context("creating a file for the memory image")?
            .into_temp_path();
        match prepare(wanted, &staging)? {
            Outcome::Made => {
                staging
                    .persist(&path)
                    .with_context(|| format!("moving the memory image to {}", path.display()))?;
                let file = ImageFile::read(&path)?;
                cache::write_tagged(&checksum, &self.seal_key, &label, &file.sha256())?;
                SealedFile::beside(&path, &self.seal_key).seal_as(&file.identity)?;
                Ok(Ok(file.decode(false)?))
            }
            Outcome::Refused(reason) => {
                cache::write_atomic(&refused, reason.as_bytes())?;
                Ok(Err(reason))
            }
            Outcome::NotThisTime => Ok(Err(
                "the prepare run met a limit or crashed; this run imports the backend itself"
                    .into(),
            )),
        }
    }
}

/// Why a backend was not prepared, as its `.refused` record says (the first 1 KiB of it,
/// for a report: the record is this user's own cache file).
fn refusal(record: &Path) -> String {
    use std::io::Read;
    let mut text = Vec::new();
    let read = std::fs::File::open(record).and_then(|f| f.take(1024).read_to_end(&mut text));
    match read {
        Ok(_) if !text.is_empty() => String::from_utf8_lossy(&text).into_owned(),
        _ => "an earlier attempt to prepare it failed".into(),
    }
}

/// How a prepare run ended.
enum Outcome {
    /// The image is written.
    Made,
    /// The backend cannot be prepared, for a reason that does not change: the attempt is
    /// not made again for this key.
    Refused(String),
    /// The run met a limit or crashed, which the same limits in the hook runs will report;
    /// another process with other limits may try again.
    NotThisTime,
}

/// The image's cache key: `{env key}-{hash of everything the import could depend on}`.
fn image_key(base: &str, env_key: &str, backend: &str, run: &GuestRun) -> String {
    let mut text = format!(
        "{FORMAT}\n{base}\n{env_key}\n{backend}\n{}\n",
        cache::sha256_bytes(HOOK_RUNNER.as_bytes())
    );
    let mut env = run.env.clone();
    env.sort();
    for (k, v) in &env {
        text.push_str(&format!("{k}={v}\0"));
    }
    text.push('\n');
    for arg in &run.args {
        text.push_str(&format!("{arg}\0"));
    }
    if run.determinism.is_some() {
        text.push_str("\ndeterministic");
    }
    format!("{env_key}-{}", &cache::sha256_bytes(text.as_bytes())[..32])
}

/// The image at `path`, if it is the user's own file and matches its checksum (by content
/// once, then by its seal: a sealed file is not hashed again); both records must carry a
/// valid tag under `key`.
fn load_verified(
    path: &Path,
    checksum: &Path,
    key: &SealKey,
    label: &str,
) -> Result<Option<MemoryImage>> {
    let Ok(file) = ImageFile::read(path) else {
        return Ok(None);
    };
    let sealed = SealedFile::beside(path, key);
    if !sealed.holds(&file.identity) {
        match cache::read_tagged(checksum, key, label) {
            Some(expected) if expected == file.sha256() => sealed.seal_as(&file.identity)?,
            _ => return Ok(None),
        }
    }
    Ok(file.decode(false).ok())
}

/// Runs the prepare run into `image`.
fn prepare(wanted: &Wanted<'_>, image: &Path) -> Result<Outcome> {
    // Declared first, so removed after the run's folders in it.
    let parent = HeldDir::new_in(&place::off_memory(wanted.scratch_dir), TempKind::Scratch)
        .context("creating the prepare run's scratch folder")?;
    let run_dirs = RunDirs::new(parent.path(), "prepare-")?;
    let src = run_dirs.path().join("src");
    std::fs::create_dir(&src).with_context(|| format!("creating {}", src.display()))?;
    let run = GuestRun {
        mounts: run_dirs.mounts(&src, guest_paths::SOURCE, wanted.site_packages, None),
        log: LogSink::Capture,
        // The image serves every source: in a deterministic build it is made with a clock
        // and randomness of no source's.
        determinism: wanted.run.determinism.map(|_| Determinism::for_prepare()),
        ..wanted.run.clone()
    };
    run_dirs.write_request(&Request {
        backend: wanted.backend,
        backend_path: Vec::new(),
        source_dir: guest_paths::SOURCE,
        env_dir: guest_paths::ENV,
        executables: &[],
        seed: None,
        git: None,
        bytecode: None,
        action: Action::prepare(wanted.sandbox.descriptors(&run)),
    })?;
    let exit = match wanted.sandbox.prepare(&run, image) {
        Ok(exit) => exit,
        Err(SandboxError::Limit { .. } | SandboxError::Trap { .. }) => {
            return Ok(Outcome::NotThisTime);
        }
        Err(SandboxError::Setup(error)) => return Err(error),
    };
    let refused = |reason: String| Ok(Outcome::Refused(reason));
    if exit.code != 0 {
        return refused(format!("the prepare run exited with status {}", exit.code));
    }
    if !exit.log.is_empty() {
        return refused(format!(
            "importing the backend printed output, which hook runs would not show:\n{}",
            String::from_utf8_lossy(&exit.log)
        ));
    }
    match run_dirs.read_response::<PrepareResponse>() {
        Ok(Some(response)) if response.prepared => {
            if !image.is_file() {
                bail!("the prepare run left no memory image");
            }
            Ok(Outcome::Made)
        }
        Ok(Some(response)) => refused(format!(
            "the backend was not prepared: {}",
            response.refusal()
        )),
        Ok(None) => refused("the prepare run wrote no result".into()),
        Err(error) => refused(format!("{error:#}")),
    }
}

/// Removes the images whose build environment is gone from `cache`; the bytes freed.
pub(crate) fn prune(cache: &Cache) -> Result<u64> {
    let mut freed = 0;
    for (name, path) in crate::cache_files::entries(&cache.bucket(Bucket::Prepared)?)? {
        // `<env key>-<image key>.<ext>`: an image goes with its environment.
        let env_key = name.split('-').next().unwrap_or_default();
        if !name.starts_with('.') && !crate::env::exists(cache, env_key)? {
            freed += crate::cache_files::remove(&path)?;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::file_fingerprint;
    use crate::sandbox::Limits;

    fn run(env: &[(&str, &str)], args: &[&str]) -> GuestRun {
        GuestRun {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mounts: Vec::new(),
            limits: Limits::default(),
            log: LogSink::Capture,
            determinism: None,
        }
    }

    const LABEL: &str = "sha256 of prepared backend k.image";

    /// An image of a 64 KiB memory with no changed page, `k.image` in `dir`, and its
    /// checksum recorded under a new key: the key, the image, the checksum, the bytes.
    fn checked_image(dir: &Path) -> (SealKey, PathBuf, PathBuf, Vec<u8>) {
        let key = SealKey::ephemeral().unwrap();
        let (path, checksum) = (dir.join("k.image"), dir.join("k.sha256"));
        let mut bytes = b"wasm-build-mem-1".to_vec();
        bytes.extend_from_slice(&(64u64 << 10).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        cache::write_tagged(&checksum, &key, LABEL, &cache::sha256_bytes(&bytes)).unwrap();
        (key, path, checksum, bytes)
    }

    /// Whoever can write the cache can write an image, its checksum and its seal; without
    /// the seal key, neither record is the host's, and the image is not used.
    #[test]
    fn an_image_with_a_forged_checksum_and_seal_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let (key, path, checksum, bytes) = checked_image(dir.path());
        let label = LABEL;
        assert!(
            load_verified(&path, &checksum, &key, label)
                .unwrap()
                .is_some()
        );

        // Another image (one page changed), with its checksum and a renewed seal written
        // as the host writes them, but with the attacker's key.
        let mut theirs = bytes.clone();
        theirs[24..28].copy_from_slice(&1u32.to_le_bytes());
        theirs.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
        theirs.extend_from_slice(&[0x90; 4096]);
        std::fs::write(&path, &theirs).unwrap();
        assert!(MemoryImage::load(&path).is_ok(), "a well-formed image");
        let attacker = SealKey::ephemeral().unwrap();
        cache::write_tagged(&checksum, &attacker, label, &cache::sha256_bytes(&theirs)).unwrap();
        SealedFile::beside(&path, &attacker).seal_now().unwrap();
        assert!(
            load_verified(&path, &checksum, &key, label)
                .unwrap()
                .is_none()
        );
        // The record of another image, moved here, is not this one's either.
        cache::write_tagged(
            &checksum,
            &key,
            "sha256 of prepared backend other.image",
            &cache::sha256_bytes(&theirs),
        )
        .unwrap();
        assert!(
            load_verified(&path, &checksum, &key, label)
                .unwrap()
                .is_none()
        );
    }

    /// A checked image is sealed with the fingerprint of the file read and then trusted
    /// without hashing; a write to it, or another file moved in its place, breaks the seal,
    /// and the content is checked again.
    #[test]
    fn a_sealed_image_is_checked_by_content_again_once_changed_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (key, path, checksum, bytes) = checked_image(dir.path());
        let label = LABEL;
        let sealed = SealedFile::beside(&path, &key);
        assert!(!sealed.is_sealed());
        let loaded = load_verified(&path, &checksum, &key, label).unwrap();
        assert!(sealed.is_sealed(), "sealed once checked");
        assert_eq!(loaded.unwrap().identity, file_fingerprint(&path).unwrap());

        // The same size, another memory size: the seal no longer holds (a rewrite changes
        // the change time, a tick later), the hash differs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut theirs = bytes.clone();
        theirs[16..24].copy_from_slice(&(128u64 << 10).to_le_bytes());
        std::fs::write(&path, &theirs).unwrap();
        assert!(
            load_verified(&path, &checksum, &key, label)
                .unwrap()
                .is_none()
        );

        // The checked bytes again, in another file moved over it: checked, then sealed anew.
        let other = dir.path().join("other.image");
        std::fs::write(&other, &bytes).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(!sealed.is_sealed());
        assert!(
            load_verified(&path, &checksum, &key, label)
                .unwrap()
                .is_some()
        );
        assert!(sealed.is_sealed());
    }

    #[test]
    fn images_go_with_their_environment() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path()).unwrap();
        std::fs::create_dir_all(cache.bucket(Bucket::Envs).unwrap().join("fresh")).unwrap();
        let prepared = cache.bucket(Bucket::Prepared).unwrap();
        for name in [
            "old-1.image",
            "old-1.sha256",
            "fresh-2.image",
            "fresh-2.refused",
        ] {
            std::fs::write(prepared.join(name), "x").unwrap();
        }
        prune(&cache).unwrap();
        let mut left: Vec<String> = crate::cache_files::entries(&prepared)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        left.sort();
        assert_eq!(left, ["fresh-2.image", "fresh-2.refused"]);
    }

    #[test]
    fn an_image_is_keyed_by_all_the_import_could_depend_on() {
        let args = ["-S", "/wasm-build/runner/hook_runner.py"];
        let base = run(&[("A", "1"), ("B", "2")], &args);
        let key = image_key("base", "env", "setuptools.build_meta", &base);
        assert!(
            key.starts_with("env-"),
            "prune finds an image's environment: {key}"
        );
        // The order of the environment does not matter; everything else does.
        let reordered = run(&[("B", "2"), ("A", "1")], &args);
        assert_eq!(
            image_key("base", "env", "setuptools.build_meta", &reordered),
            key
        );
        for other in [
            image_key("other base", "env", "setuptools.build_meta", &base),
            image_key("base", "env2", "setuptools.build_meta", &base),
            image_key("base", "env", "flit_core.buildapi", &base),
            image_key(
                "base",
                "env",
                "setuptools.build_meta",
                &run(&[("A", "1")], &args),
            ),
            image_key(
                "base",
                "env",
                "setuptools.build_meta",
                &run(&[("A", "1"), ("B", "3")], &args),
            ),
            image_key(
                "base",
                "env",
                "setuptools.build_meta",
                &run(&[("A", "1"), ("B", "2")], &["-S", "x.py"]),
            ),
        ] {
            assert_ne!(other, key);
        }
    }
}
