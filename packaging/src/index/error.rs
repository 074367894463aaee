//! What can go wrong in the index client, and the hint a user gets for the failures that
//! have a remedy on their side (no network: work offline; an untrusted certificate: another
//! trust store).

use std::fmt;

/// Why the index client could not provide something. Every message names the project,
/// file or URL at fault; [`IndexError::hint`] says what the user can do about it, when
/// there is something.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Offline, and no page of the project is cached.
    #[error(
        "cannot look up `{project}` offline: no index page for it is in the cache \
         (missing: {missing}); run once without offline mode to fill the cache"
    )]
    OfflineProject { project: String, missing: String },
    /// Offline, and the file is not in the wheel cache.
    #[error("`{filename}` is not in the cache and offline mode forbids downloading it from {url}")]
    OfflineFile { filename: String, url: String },
    /// The request failed before a response, or the body could not be read.
    #[error("request to {url} failed: {reason}")]
    Transfer {
        url: String,
        reason: String,
        /// What kind of failure it was, for [`IndexError::hint`].
        failure: NetworkFailure,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}{hint}")]
    Status {
        url: String,
        status: u16,
        hint: String,
    },
    /// A transient failure that persisted through every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<IndexError>,
    },
    /// A project page that cannot be parsed.
    #[error("the index page {url} is invalid: {reason}")]
    InvalidPage { url: String, reason: String },
    /// A downloaded file whose sha256 differs from the index's; it was not cached.
    #[error(
        "sha256 mismatch for `{filename}` from {url}: expected {expected}, got {actual}; \
         the file was refused and not cached"
    )]
    HashMismatch {
        filename: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// A PEP 658 metadata file whose sha256 differs from the index's.
    #[error(
        "sha256 mismatch for the core metadata of `{filename}` ({url}): expected {expected}, \
         got {actual}"
    )]
    MetadataHashMismatch {
        filename: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// A wheel (or metadata file) whose core metadata cannot be read.
    #[error("`{filename}` has invalid core metadata: {reason}")]
    InvalidMetadata { filename: String, reason: String },
    /// A file name that cannot be stored safely.
    #[error("`{filename}` is not a safe file name for the cache")]
    InvalidFileName { filename: String },
    /// A find-links folder or page that cannot be read.
    #[error("find-links location {location}: {reason}")]
    FindLinks { location: String, reason: String },
    /// A local file operation failed.
    #[error("{action}: {error}")]
    Io {
        action: String,
        error: std::io::Error,
    },
    /// The cache could not be read or written.
    #[error("{action}: {error:#}")]
    Cache {
        action: String,
        error: anyhow::Error,
    },
}

impl IndexError {
    pub(crate) fn cache(action: &str, error: anyhow::Error) -> Self {
        Self::Cache {
            action: format!("{action} (in the wasm-build cache)"),
            error,
        }
    }

    /// A transfer that failed for a reason no hint helps with.
    pub(crate) fn transfer(url: &str, reason: impl Into<String>) -> Self {
        Self::Transfer {
            url: url.to_string(),
            reason: reason.into(),
            failure: NetworkFailure::Other,
        }
    }

    /// What the user can do about this error, if anything: shown apart from the message
    /// (the CLI prints it as `hint: …`).
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::GaveUp { last, .. } => last.hint(),
            Self::Transfer { failure, .. } => match failure {
                NetworkFailure::Unreachable => Some(Hint::Offline),
                NetworkFailure::Certificate(Roots::Mozilla) => Some(Hint::NativeTls),
                NetworkFailure::Certificate(Roots::System) => Some(Hint::CertFile),
                NetworkFailure::Certificate(Roots::Environment) => Some(Hint::CertEnvironment),
                NetworkFailure::Other => None,
            },
            _ => None,
        }
    }
}

/// The kind of a failed transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkFailure {
    /// No connection could be made: the host name did not resolve, the connection was
    /// refused or the host unreachable, or connecting timed out.
    Unreachable,
    /// The server's certificate was refused when checked against these roots.
    Certificate(Roots),
    /// Anything else (a broken connection, a protocol error, a slow server).
    Other,
}

/// The certificate authorities the client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots, built into the binary (the default).
    Mozilla,
    /// The operating system's trust store (`IndexOptions::native_tls`).
    System,
    /// The certificates in `SSL_CERT_FILE` or `SSL_CERT_DIR`.
    Environment,
}

/// What the user can do about an error. `Display` words it for the command line, naming
/// the CLI's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hint {
    /// The index could not be reached: offline mode builds from what the cache already holds
    /// (`IndexOptions::offline`).
    Offline,
    /// The certificate is not signed by one of Mozilla's roots: behind a TLS-intercepting
    /// proxy, the system's trust store knows the proxy's authority
    /// (`IndexOptions::native_tls`).
    NativeTls,
    /// The certificate is not trusted by the system's store either (`native_tls` was on).
    CertFile,
    /// The certificate is not signed by an authority in `SSL_CERT_FILE` / `SSL_CERT_DIR`,
    /// which replace every other trust.
    CertEnvironment,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Offline => {
                "the index cannot be reached; with the build requirements already in the cache \
                 from an earlier build, `--offline` builds without the network (and \
                 `--find-links DIR` adds local wheels)"
            }
            Self::NativeTls => {
                "the index's certificate is not signed by an authority in Mozilla's roots, \
                 which wasm-build trusts by default; behind a TLS-intercepting proxy, \
                 `--native-tls` trusts the system's certificate store instead, or set \
                 SSL_CERT_FILE to a PEM file holding the proxy's certificate authority"
            }
            Self::CertFile => {
                "the index's certificate is not signed by an authority in the system's \
                 certificate store; set SSL_CERT_FILE to a PEM file holding the authority that \
                 signed it"
            }
            Self::CertEnvironment => {
                "the index's certificate is not signed by an authority in SSL_CERT_FILE or \
                 SSL_CERT_DIR, which wasm-build trusts instead of any other when set; add the \
                 authority that signed it there"
            }
        })
    }
}
