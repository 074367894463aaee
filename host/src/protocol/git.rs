//! The guest's git emulation (`guest/git_emulation.py`): what the host mounts for it and
//! what the runner reports of the commands it answered.

use serde::{Deserialize, Serialize};

/// The emulation, embedded like the runner and written next to it.
pub(crate) const GIT_EMULATION: &str = include_str!("../../../guest/git_emulation.py");

/// Where the guest finds dulwich (the emulation's library), when a repository is mounted.
pub(crate) const GIT_LIB: &str = "/wasm-build/git";

/// `input.json`'s `git`: a repository is mounted at `repo` (`{source}/.git`, read-only) and
/// dulwich is at `lib`.
#[derive(Debug, Serialize)]
pub(crate) struct GitRequest {
    pub lib: &'static str,
    pub repo: String,
}

/// A `git` command the backend ran and the emulation answered (`output.json`'s `git`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitCommand {
    /// The hook running, or `import`.
    pub hook: String,
    /// The command line, cut as `processes` are.
    pub argv: Vec<String>,
    /// The exit status given to the backend.
    pub status: i32,
    /// Why the emulation could not answer it exactly (it then failed as git fails on a
    /// feature it lacks); `None` when it answered.
    #[serde(default)]
    pub refused: Option<String>,
}

impl GitCommand {
    /// The command line as a user would type it.
    pub fn describe(&self) -> String {
        format!("`{}`", self.argv.join(" "))
    }
}
