//! How a hook call fails: the backend's failures and the sandbox's, kept apart.

use crate::protocol::{GitCommand, Hook, ProcessAttempt};
use crate::sandbox::{LimitHit, SandboxError};

/// A hook call that failed, with what the backend printed. Shows as its [`HookErrorKind`].
#[derive(Debug)]
pub struct HookError {
    pub hook: Hook,
    pub kind: Box<HookErrorKind>,
    pub log: Vec<u8>,
    /// The programs and threads the backend tried to start before it failed.
    pub processes: Vec<ProcessAttempt>,
    /// The first `git` command of a checkout the sandbox's emulation could not answer.
    pub git_refused: Option<Box<GitCommand>>,
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// Why a hook call failed. Backend failures and sandbox failures are kept apart.
#[derive(Debug, thiserror::Error)]
pub enum HookErrorKind {
    #[error("build backend `{backend}` is not available: {message}")]
    BackendUnavailable {
        backend: String,
        message: String,
        traceback: Option<String>,
    },
    #[error("build backend `{backend}` is invalid: {message}")]
    BackendInvalid { backend: String, message: String },
    #[error("build backend `{backend}` has no `{hook}` hook")]
    HookMissing { backend: String, hook: Hook },
    #[error("build backend `{backend}` does not support `{hook}` for this project")]
    Unsupported {
        backend: String,
        hook: Hook,
        traceback: Option<String>,
    },
    #[error("hook `{hook}` of build backend `{backend}` failed: {message}")]
    Raised {
        backend: String,
        hook: Hook,
        message: String,
        traceback: Option<String>,
    },
    #[error("hook `{hook}` was stopped by the sandbox")]
    Sandbox {
        hook: Hook,
        #[source]
        source: SandboxError,
    },
    #[error("hook `{hook}` ended without a result (the interpreter exited with code {code})")]
    NoResult { hook: Hook, code: i32 },
    #[error("hook `{hook}` returned a malformed result: {reason}")]
    BadResult { hook: Hook, reason: String },
}

impl HookErrorKind {
    /// The guest's traceback, when the backend raised.
    pub fn traceback(&self) -> Option<&str> {
        match self {
            HookErrorKind::BackendUnavailable { traceback, .. }
            | HookErrorKind::Unsupported { traceback, .. }
            | HookErrorKind::Raised { traceback, .. } => traceback.as_deref(),
            _ => None,
        }
    }

    /// Whether the sandbox (not the backend) ended the call.
    pub fn is_sandbox_failure(&self) -> bool {
        matches!(self, HookErrorKind::Sandbox { .. })
    }

    /// The limit that ended the call, if one did.
    pub fn limit(&self) -> Option<LimitHit> {
        match self {
            HookErrorKind::Sandbox {
                source: SandboxError::Limit { hit, .. },
                ..
            } => Some(*hit),
            _ => None,
        }
    }
}
