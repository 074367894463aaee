//! `--find-links` locations: a local folder of distribution files, or a flat HTML page
//! (local file or http(s) URL) that links to files of any number of projects.

use super::DistFile;
use super::IndexError;
use super::simple::is_plain_filename;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use url::Url;

/// One find-links location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FindLinks {
    /// A local folder whose files are listed directly.
    Dir(PathBuf),
    /// A page of links: `http(s)://…` or a local HTML file as a `file://` URL.
    Page(Url),
}

impl FindLinks {
    /// Reads a user's `--find-links` value: an http(s) URL, a `file://` URL, or a path.
    /// Relative paths are taken relative to the current directory.
    pub fn parse(location: &str) -> Result<Self> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let url = Url::parse(location)
                .with_context(|| format!("find-links URL `{location}` is not a valid URL"))?;
            return Ok(Self::Page(url));
        }
        let path = if location.starts_with("file:") {
            Url::parse(location)
                .ok()
                .and_then(|url| url.to_file_path().ok())
                .with_context(|| format!("find-links `{location}` is not a valid file URL"))?
        } else {
            PathBuf::from(location)
        };
        let path = std::path::absolute(&path)
            .with_context(|| format!("find-links path `{location}` cannot be made absolute"))?;
        if path.is_dir() {
            Ok(Self::Dir(path))
        } else if path.is_file() {
            let url = Url::from_file_path(&path).map_err(|()| {
                anyhow::anyhow!("find-links path `{}` cannot be a URL", path.display())
            })?;
            Ok(Self::Page(url))
        } else {
            bail!("find-links location `{location}` is neither a folder, a file nor an http(s) URL")
        }
    }

    /// How the location is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(path) => path.display().to_string(),
            Self::Page(url) => url.to_string(),
        }
    }
}

/// Lists the distribution files (`.whl`, `.tar.gz`, `.zip`) in a local folder, in name order.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<DistFile>, IndexError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IndexError::FindLinks {
        location: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IndexError::FindLinks {
            location: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dist = [".whl", ".tar.gz", ".zip"]
            .iter()
            .any(|ext| name.ends_with(ext));
        // Symlinks are followed: a folder of links to wheels elsewhere is a common layout.
        if !is_dist || !is_plain_filename(&name) || !entry.path().is_file() {
            continue;
        }
        let Ok(url) = Url::from_file_path(entry.path()) else {
            continue;
        };
        files.push(DistFile {
            filename: name,
            url: url.to_string(),
            sha256: None,
            requires_python: None,
            yanked: None,
            core_metadata: false,
            metadata_sha256: None,
            size: entry.metadata().ok().map(|m| m.len()),
            upload_time: None,
            source: dir.display().to_string(),
        });
    }
    files.sort_by(|a, b| a.filename.cmp(&b.filename));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_locations() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("links.html");
        std::fs::write(&page, "<a href='x-1.0.tar.gz'>x</a>").unwrap();
        assert_eq!(
            FindLinks::parse(dir.path().to_str().unwrap()).unwrap(),
            FindLinks::Dir(dir.path().to_path_buf())
        );
        assert!(matches!(
            FindLinks::parse(page.to_str().unwrap()).unwrap(),
            FindLinks::Page(url) if url.scheme() == "file"
        ));
        let file_url = Url::from_file_path(dir.path()).unwrap();
        assert_eq!(
            FindLinks::parse(file_url.as_str()).unwrap(),
            FindLinks::Dir(dir.path().to_path_buf())
        );
        assert!(matches!(
            FindLinks::parse("https://example.org/wheels/").unwrap(),
            FindLinks::Page(_)
        ));
        let err = FindLinks::parse("/does/not/exist").unwrap_err();
        assert!(err.to_string().contains("/does/not/exist"), "{err}");
    }

    #[test]
    fn lists_distribution_files_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b-1.0-py3-none-any.whl",
            "a-1.0.tar.gz",
            "notes.txt",
            ".hidden.whl",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.whl")).unwrap();
        let files = list_dir(dir.path()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(names, ["a-1.0.tar.gz", "b-1.0-py3-none-any.whl"]);
        assert!(files[0].url.starts_with("file:///"));
        assert_eq!(files[0].size, Some(1));
    }
}
