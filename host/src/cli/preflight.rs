//! What can be checked of a build request before anything is prepared (on a cold cache the
//! interpreter takes 30–40 s to prepare): the source exists and looks like a project or an
//! sdist, the output folder can be written, the distributions asked for can be built from
//! this source. Nothing is created and no file of the project is read here (a project
//! file could be a FIFO or a link out: the library reads them from its own scratch copy);
//! an sdist's first bytes are read to tell its format.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use wasm_build::{BuildRequest, PlanError};
use wasm_build_packaging::archive::SourceFormat;

/// A build request that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum Preflight {
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} is not a Python project: it has neither pyproject.toml nor setup.py")]
    NotAProject(String),
    #[error("{0}")]
    NotAnSdist(String),
    #[error("{0} is neither a project folder nor an sdist file")]
    NotFileOrFolder(String),
    #[error("cannot read {path}")]
    Unreadable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the output folder {0} is a file")]
    OutdirIsFile(String),
    #[error("the output folder {outdir} cannot be made: {file} is a file")]
    OutdirUnderFile { outdir: String, file: String },
    #[error(
        "the output folder {outdir} is not writable{}",
        not_writable_where(outdir, folder)
    )]
    OutdirNotWritable {
        outdir: String,
        /// The folder that would have to be written: the output folder or, when it does not
        /// exist yet, the nearest folder above it that does.
        folder: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
}

fn not_writable_where(outdir: &str, folder: &str) -> String {
    if outdir == folder {
        String::new()
    } else {
        format!(" (it would be made in {folder})")
    }
}

impl Preflight {
    /// The exit code (docs/cli.md): a source that is not there, an output folder that
    /// cannot be written or an impossible combination is a bad command line (2); a source
    /// that is there but is no project or sdist is an invalid project (3).
    pub fn exit_code(&self) -> u8 {
        match self {
            Preflight::NotAProject(_)
            | Preflight::NotAnSdist(_)
            | Preflight::NotFileOrFolder(_)
            | Preflight::Unreadable { .. } => 3,
            Preflight::Missing(_)
            | Preflight::OutdirIsFile(_)
            | Preflight::OutdirUnderFile { .. }
            | Preflight::OutdirNotWritable { .. }
            | Preflight::Plan(_) => 2,
        }
    }
}

/// Checks `request` as described in the module's documentation.
pub fn check(request: &BuildRequest) -> Result<(), Preflight> {
    check_source(&request.source)?;
    request.check()?;
    check_outdir(&request.output_folder())
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn check_source(source: &Path) -> Result<(), Preflight> {
    let meta = match fs::metadata(source) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Preflight::Missing(shown(source)));
        }
        Err(source_error) => {
            return Err(Preflight::Unreadable {
                path: shown(source),
                source: source_error,
            });
        }
    };
    if meta.is_dir() {
        for name in ["pyproject.toml", "setup.py"] {
            match fs::symlink_metadata(source.join(name)) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Preflight::Unreadable {
                        path: shown(source),
                        source: e,
                    });
                }
            }
        }
        return Err(Preflight::NotAProject(shown(source)));
    }
    if !meta.is_file() {
        return Err(Preflight::NotFileOrFolder(shown(source)));
    }
    let unreadable = |e| Preflight::Unreadable {
        path: shown(source),
        source: e,
    };
    let file = fs::File::open(source).map_err(unreadable)?;
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = SourceFormat::detect(&file, &name).map_err(unreadable)?;
    match format.refusal(&name) {
        Some(why) => Err(Preflight::NotAnSdist(why)),
        None => Ok(()),
    }
}

/// The output folder, or the nearest folder above it that exists, must be a folder this
/// process may write.
fn check_outdir(outdir: &Path) -> Result<(), Preflight> {
    let mut probe: PathBuf = outdir.to_path_buf();
    loop {
        let here = if probe.as_os_str().is_empty() {
            Path::new(".")
        } else {
            probe.as_path()
        };
        match fs::metadata(here) {
            Ok(meta) if meta.is_dir() => {
                return writable(here).map_err(|source| Preflight::OutdirNotWritable {
                    outdir: shown(outdir),
                    folder: shown(here),
                    source,
                });
            }
            Ok(_) if here == outdir => return Err(Preflight::OutdirIsFile(shown(outdir))),
            Ok(_) => {
                return Err(Preflight::OutdirUnderFile {
                    outdir: shown(outdir),
                    file: shown(here),
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                match here.parent() {
                    Some(parent) => probe = parent.to_path_buf(),
                    None => return Ok(()),
                }
            }
            Err(source) => {
                return Err(Preflight::OutdirNotWritable {
                    outdir: shown(outdir),
                    folder: shown(here),
                    source,
                });
            }
        }
    }
}

/// Whether this process may create entries in `folder` (its effective ids, a read-only
/// file system).
fn writable(folder: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(folder.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: faccessat reads the NUL-terminated path and checks access; nothing else.
    let result = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_build::Distribution;

    fn request(source: &Path, outdir: Option<&Path>, dists: &[Distribution]) -> BuildRequest {
        BuildRequest {
            source: source.to_path_buf(),
            distributions: dists.to_vec(),
            outdir: outdir.map(Path::to_path_buf),
        }
    }

    #[test]
    fn sources_are_checked_without_reading_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = check(&request(&missing, None, &[])).unwrap_err();
        assert!(matches!(err, Preflight::Missing(_)), "{err}");
        assert!(err.to_string().ends_with("nope does not exist"));
        assert_eq!(err.exit_code(), 2);

        let err = check(&request(dir.path(), None, &[])).unwrap_err();
        assert!(matches!(err, Preflight::NotAProject(_)), "{err}");
        assert_eq!(err.exit_code(), 3);

        // A pyproject.toml that is a FIFO is not opened here.
        let fifo = dir.path().join("pyproject.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: makes a FIFO at a path of this test's folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        check(&request(dir.path(), None, &[])).unwrap();
    }

    #[test]
    fn a_file_source_must_be_an_sdist() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("demo-1.0-py3-none-any.whl");
        fs::write(&wheel, b"PK\x03\x04rest").unwrap();
        let err = check(&request(&wheel, None, &[])).unwrap_err();
        assert!(
            err.to_string().contains("is a wheel, not an sdist"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 3);
        let sdist = dir.path().join("demo-1.0.tar.gz");
        fs::write(&sdist, b"\x1f\x8b\x08\x00").unwrap();
        check(&request(&sdist, None, &[Distribution::Wheel])).unwrap();
        let err = check(&request(&sdist, None, &[Distribution::Sdist])).unwrap_err();
        assert!(matches!(err, Preflight::Plan(_)), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_output_folder_must_be_a_writable_folder_and_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        fs::create_dir(&project).unwrap();
        fs::write(project.join("setup.py"), "").unwrap();
        check(&request(&project, None, &[])).unwrap();
        assert!(!project.join("dist").exists(), "nothing is created");

        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let err = check(&request(&project, Some(&file), &[])).unwrap_err();
        assert!(matches!(err, Preflight::OutdirIsFile(_)), "{err}");
        let below = file.join("a/b");
        let err = check(&request(&project, Some(&below), &[])).unwrap_err();
        assert!(matches!(err, Preflight::OutdirUnderFile { .. }), "{err}");
        assert_eq!(err.exit_code(), 2);
        // A folder to be made in a folder that exists.
        check(&request(
            &project,
            Some(&dir.path().join("new/deeper")),
            &[],
        ))
        .unwrap();
        assert!(!dir.path().join("new").exists());
    }
}
