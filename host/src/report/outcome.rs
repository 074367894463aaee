//! How a source's task ended, for the report: the exit class, the error's kind, and for a
//! refusal the rule that refused it.

use crate::frontend::{BuildError, Refusal};
use crate::hooks::HookErrorKind;
use crate::sandbox::{LimitHit, SandboxError};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use wasm_build_packaging::archive::ArchiveError;
use wasm_build_packaging::verify::ArtifactError;

/// How one source's task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    /// The exit code this task alone would give (see docs/cli.md).
    pub exit_code: i32,
    /// The exit class by name: `internal`, `usage`, `input_refused`, `requirements`,
    /// `backend_failed`, `sandbox_stopped`, `artifact_refused`, `native_code`; for `verify`,
    /// `equivalent` or `differs`.
    pub class: Option<String>,
    /// What failed, more finely (`project`, `input`, `requirements`, `backend_unavailable`,
    /// `raised`, `limit_time`, `artifact`, …).
    pub error_kind: Option<String>,
    /// The hook that failed, when one did.
    pub hook: Option<String>,
    /// For a refusal: the rule, as dotted snake-case names
    /// (`archive.member.link.outside`, `record_hash`, `platform_tag`).
    pub rule: Option<String>,
    /// The error's message, then each cause.
    pub message: Option<String>,
    pub causes: Vec<String>,
}

impl Outcome {
    /// Success.
    pub fn ok() -> Self {
        Self::with_code(0, None)
    }

    /// A task that was not started (a batch stopped at an earlier failure).
    pub fn skipped() -> Self {
        Self {
            status: "skipped".into(),
            ..Self::with_code(0, Some("skipped"))
        }
    }

    /// A task that ended with `exit_code` (its class named by the code) and no error
    /// (verify's `equivalent` and `differs`).
    pub fn with_code(exit_code: i32, class: Option<&str>) -> Self {
        Self {
            status: if exit_code == 0 { "ok" } else { "failed" }.into(),
            exit_code,
            class: class.map(str::to_string),
            error_kind: None,
            hook: None,
            rule: None,
            message: None,
            causes: Vec::new(),
        }
    }

    /// A failed build.
    pub fn of_error(error: &BuildError) -> Self {
        let exit_code = error.exit_code();
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let (error_kind, hook) = kind_of(error);
        Self {
            status: "failed".into(),
            exit_code,
            class: Some(class_name(exit_code).into()),
            error_kind: Some(error_kind),
            hook,
            rule: rule_of(error),
            message: Some(error.to_string()),
            causes,
        }
    }
}

/// The name of an exit class.
pub fn class_name(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "ok",
        2 => "usage",
        3 => "input_refused",
        4 => "requirements",
        5 => "backend_failed",
        6 => "sandbox_stopped",
        7 => "artifact_refused",
        8 => "native_code",
        10 => "equivalent",
        11 => "differs",
        _ => "internal",
    }
}

/// How severe an exit class is, for a batch's exit code: the most severe wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    /// verify: equivalent (10).
    Equivalent,
    /// A command line that cannot be planned (2).
    Usage,
    /// Requirements that cannot be resolved or installed (4).
    Requirements,
    /// verify: differs (11).
    Differs,
    /// The backend failed (5).
    BackendFailed,
    /// The project compiles native code, which the sandbox cannot (8).
    NativeCode,
    /// The project or sdist was refused (3).
    InputRefused,
    /// The sandbox stopped the backend: a limit or a crash (6).
    SandboxStopped,
    /// What the backend produced was refused (7).
    ArtifactRefused,
    /// wasm-build itself failed (1): nothing it says about the batch can be relied on.
    Internal,
}

impl Severity {
    /// The severity of an exit code.
    pub fn of(exit_code: i32) -> Self {
        match exit_code {
            0 => Severity::Ok,
            10 => Severity::Equivalent,
            2 => Severity::Usage,
            4 => Severity::Requirements,
            11 => Severity::Differs,
            5 => Severity::BackendFailed,
            8 => Severity::NativeCode,
            3 => Severity::InputRefused,
            6 => Severity::SandboxStopped,
            7 => Severity::ArtifactRefused,
            _ => Severity::Internal,
        }
    }
}

/// A batch's exit code: 0 when every task succeeded, else the most severe of theirs.
pub fn batch_exit_code(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes
        .into_iter()
        .max_by_key(|code| Severity::of(*code))
        .unwrap_or(0)
}

/// The error's kind, and the hook for a hook failure.
fn kind_of(error: &BuildError) -> (String, Option<String>) {
    let kind = match error {
        BuildError::Project(_) => "project",
        BuildError::Plan(_) => "plan",
        BuildError::Input { .. } => "input",
        BuildError::Requirements { .. } => "requirements",
        BuildError::Hook(hook) => {
            let kind = match hook.kind.as_ref() {
                HookErrorKind::BackendUnavailable { .. } => "backend_unavailable".into(),
                HookErrorKind::BackendInvalid { .. } => "backend_invalid".into(),
                HookErrorKind::HookMissing { .. } => "hook_missing".into(),
                HookErrorKind::Unsupported { .. } => "unsupported".into(),
                HookErrorKind::Raised { .. } => "raised".into(),
                HookErrorKind::Sandbox { source, .. } => sandbox_kind(source),
                HookErrorKind::NoResult { .. } => "no_result".into(),
                HookErrorKind::BadResult { .. } => "bad_result".into(),
            };
            return (kind, Some(hook.hook.name().to_string()));
        }
        BuildError::Stopped { source, .. } => return (sandbox_kind(source), None),
        BuildError::ArtifactRefused { .. } => "artifact",
        BuildError::NativeCode { .. } => "native_code",
        BuildError::GitCheckout { .. } => "git_checkout",
        BuildError::Other(_) => "other",
    };
    (kind.to_string(), None)
}

fn sandbox_kind(error: &SandboxError) -> String {
    match error {
        SandboxError::Limit { hit, .. } => match hit {
            LimitHit::WallTime => "limit_time",
            LimitHit::Memory => "limit_memory",
            LimitHit::Log => "limit_output",
            LimitHit::Disk => "limit_disk",
        },
        SandboxError::Trap { .. } => "guest_crash",
        SandboxError::Setup(_) => "sandbox_setup",
    }
    .to_string()
}

/// The rule behind a refusal of the input or of an artifact.
fn rule_of(error: &BuildError) -> Option<String> {
    match error {
        BuildError::ArtifactRefused { source, .. } => Some(match source.as_ref() {
            Refusal::Verification(ArtifactError { rule, .. }) => rule_name(rule),
            Refusal::OtherProject { .. } => "other_project".into(),
            Refusal::Platform { .. } => "platform_tag".into(),
        }),
        BuildError::Input { source, .. } => {
            let mut current: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(error) = current {
                if let Some(archive) = error.downcast_ref::<ArchiveError>() {
                    return Some(format!("archive.{}", rule_name(archive)));
                }
                if let Some(artifact) = error.downcast_ref::<ArtifactError>() {
                    return Some(rule_name(&artifact.rule));
                }
                current = error.source();
            }
            None
        }
        _ => None,
    }
}

/// A rule's name: its variant and, where it wraps another rule, that rule's, as dotted
/// snake case (`Archive(Member { rule: Link(Outside) })` is
/// `archive.member.link.outside`). Taken from the derived `Debug` of the packaging
/// crate's rule enums, so that every rule, present and future, has a name; the tests pin
/// the names of some.
pub(crate) fn rule_name(rule: &impl Debug) -> String {
    let text = format!("{rule:?}");
    let mut names = Vec::new();
    let mut rest = text.as_str();
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || !ident.starts_with(|c: char| c.is_ascii_uppercase()) {
            break;
        }
        names.push(snake_case(&ident));
        rest = &rest[ident.len()..];
        if let Some(inner) = rest.strip_prefix('(') {
            // A tuple variant: its first field may be another rule.
            rest = inner;
        } else if let Some(fields) = rest.strip_prefix(" { ") {
            // A struct variant: follow a field named `rule`, if any.
            match fields.find("rule: ") {
                Some(at) => rest = &fields[at + "rule: ".len()..],
                None => break,
            }
        } else {
            break;
        }
    }
    names.join(".")
}

fn snake_case(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_build_packaging::archive::{LinkRule, MemberRule, NameRule};
    use wasm_build_packaging::verify::ArtifactRule;

    #[test]
    fn rule_names_follow_nested_rules() {
        assert_eq!(
            rule_name(&ArtifactRule::RecordHash { path: "a".into() }),
            "record_hash"
        );
        assert_eq!(rule_name(&ArtifactRule::Missing), "missing");
        let archive = ArchiveError::Member {
            member: "x/y".into(),
            rule: MemberRule::Name(NameRule::ParentDir),
        };
        assert_eq!(rule_name(&archive), "member.name.parent_dir");
        assert_eq!(
            rule_name(&ArtifactRule::Archive(archive)),
            "archive.member.name.parent_dir"
        );
        let link = ArtifactRule::Member {
            member: "m".into(),
            rule: MemberRule::Link(LinkRule::Absolute),
        };
        assert_eq!(rule_name(&link), "member.link.absolute");
    }

    #[test]
    fn the_most_severe_class_wins() {
        assert_eq!(batch_exit_code([]), 0);
        assert_eq!(batch_exit_code([0, 0]), 0);
        assert_eq!(batch_exit_code([0, 5, 4]), 5);
        assert_eq!(batch_exit_code([5, 3, 0]), 3);
        assert_eq!(batch_exit_code([3, 6]), 6);
        assert_eq!(batch_exit_code([6, 7, 3]), 7);
        assert_eq!(batch_exit_code([7, 1]), 1);
        assert_eq!(batch_exit_code([10, 0]), 10);
        assert_eq!(batch_exit_code([10, 11]), 11);
        assert_eq!(batch_exit_code([11, 5]), 5);
    }
}
