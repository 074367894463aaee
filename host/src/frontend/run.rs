//! `wasm-build runtime run`: the interpreter in the sandbox with a build environment, as a
//! backend would be run.

use super::{BuildError, Frontend};
use crate::protocol::guest_paths;
use crate::sandbox::{GuestRun, Mount};
use anyhow::Context;
use std::fs;
use wasm_build_packaging::pyproject::parse_requirement;
use wasm_build_packaging::tempdirs::{HeldDir, TempKind};

/// Starts what `wasm-build runtime run` was given, with the build environment on
/// `sys.path` (`.pth` files processed) and the source folder as cwd.
const RUN_BOOTSTRAP: &str = r#"
import os, runpy, site, sys
os.chdir("/src")
site.addsitedir("/wasm-build/env")
args = sys.argv[1:]
if args[:1] == ["-c"] and len(args) > 1:
    sys.argv = ["-c"] + args[2:]
    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
elif args[:1] == ["-m"] and len(args) > 1:
    sys.argv = [args[1]] + args[2:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
elif args:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
else:
    sys.exit("wasm-build runtime run: give -c CODE, -m MODULE or a script")
"#;

impl Frontend {
    /// Runs the interpreter in the sandbox with a build environment made of `requirements`
    /// and an empty scratch source folder as cwd (`wasm-build runtime run`). `args` are
    /// `-c CODE ...`, `-m MODULE ...` or `SCRIPT ...` as for `python`. The guest's output
    /// is streamed to the reporter. Returns the exit code.
    pub fn run_python(&self, requirements: &[String], args: &[String]) -> Result<i32, BuildError> {
        let parsed = requirements
            .iter()
            .map(|raw| {
                parse_requirement(raw).map_err(|e| BuildError::Requirements {
                    what: "--with".to_string(),
                    source: e.into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let env = self.environment(&parsed, "the interpreter")?;
        let scratch = HeldDir::new(TempKind::Run).context("creating the scratch folder")?;
        let (src, tmp) = (scratch.path().join("src"), scratch.path().join("tmp"));
        for dir in [&src, &tmp] {
            fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut argv = vec![
            "-S".to_string(),
            "-c".to_string(),
            RUN_BOOTSTRAP.to_string(),
        ];
        argv.extend(args.iter().cloned());
        let run = GuestRun {
            args: argv,
            env: self.guest_env.clone(),
            mounts: vec![
                Mount::read_write(&src, guest_paths::SOURCE),
                Mount::read_write(&tmp, guest_paths::TMP),
                Mount::read_only(&env.site_packages, guest_paths::ENV),
            ],
            limits: self.settings.limits.clone(),
            log: self.backend_output(true),
            determinism: None,
        };
        let exit = self
            .sandbox
            .run(&run)
            .map_err(|source| BuildError::Stopped {
                what: "the interpreter".to_string(),
                source,
            })?;
        Ok(exit.code)
    }
}
