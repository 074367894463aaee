//! The registry's flags of a build: many sources, JSON answers and reports.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most bytes read from `--sources-from`.
const MAX_SOURCES_FILE: u64 = 16 << 20;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Many sources, reports")]
pub struct RegistryArgs {
    /// Print the wheel's core metadata as JSON (as `python -m build --metadata`), from a
    /// `.whl`, from an sdist's PKG-INFO where PEP 643 makes it static, else from
    /// prepare_metadata_for_build_wheel in the sandbox. Nothing is written.
    #[arg(long, conflicts_with_all = ["sdist", "wheel", "editable", "metadata_dir"])]
    pub metadata: bool,
    /// With --metadata: run the backend's hook even where PKG-INFO is static.
    #[arg(long, requires = "metadata")]
    pub no_static_metadata: bool,
    /// Write a JSON report of every source (a superset of pypa/build's; docs/report.md).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Build up to N sources at once (one engine, caches and warm interpreters for all).
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Read more sources from FILE, one path per line (`-` for stdin; blank lines and lines
    /// starting with `#` are skipped).
    #[arg(long, value_name = "FILE")]
    pub sources_from: Option<PathBuf>,
    /// Stop starting sources after the first failure (the others are reported as skipped).
    #[arg(long)]
    pub fail_fast: bool,
    /// Write SLSA provenance (an in-toto Statement v1, SLSA Provenance v1 predicate) of
    /// each source that published artifacts to PATH, one JSON statement a line.
    #[arg(long, value_name = "PATH", conflicts_with = "metadata")]
    pub provenance: Option<PathBuf>,
    #[command(flatten)]
    pub determinism: DeterminismArgs,
}

/// A deterministic guest.
#[derive(Debug, Clone, Args)]
pub struct DeterminismArgs {
    /// Give the backend a clock starting at the sdist's newest member (or --env
    /// SOURCE_DATE_EPOCH), randomness seeded from the sdist's sha256 and file times clamped
    /// to that epoch; the host's SOURCE_DATE_EPOCH is not passed.
    #[arg(long)]
    pub deterministic: bool,
}

/// The sources listed in `file` (`-`: stdin).
pub fn read_sources_file(file: &Path) -> Result<Vec<PathBuf>> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin()
            .take(MAX_SOURCES_FILE + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_SOURCES_FILE + 1).read_to_string(&mut text))
    };
    read.with_context(|| format!("reading --sources-from {}", file.display()))?;
    if text.len() as u64 > MAX_SOURCES_FILE {
        bail!(
            "--sources-from {}: larger than {} MiB",
            file.display(),
            MAX_SOURCES_FILE >> 20
        );
    }
    Ok(parse_sources(&text))
}

fn parse_sources(text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_file_skips_blanks_and_comments() {
        assert_eq!(
            parse_sources("a.tar.gz\n\n  # x\n  b/ \r\n"),
            [PathBuf::from("a.tar.gz"), PathBuf::from("b/")]
        );
    }
}
