//! Parsing the command line: clap's help and version go to stdout as clap writes them
//! (a closed pipe is not an error); its errors go through [`terminal`] like every other
//! message, with long lines cut, and exit 2.

use super::args::Cli;
use super::terminal;
use clap::Parser;
use clap::error::ErrorKind;
use std::process::ExitCode;

/// Lines of an error longer than this are cut (they quote what the user typed).
const MAX_LINE: usize = 300;

/// The parsed command line, or the exit code after saying what is wrong with it.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|error| report(&error))
}

fn report(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // clap writes to stdout; a reader that went away (`| head`) is no failure.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            print_folder_hint();
            return ExitCode::from(2);
        }
        _ => {}
    }
    terminal::set_color(terminal::ColorChoice::Auto);
    let text = error.render().to_string();
    let text = terminal::clip(text.trim_end(), MAX_LINE, 40);
    terminal::to_stderr(&terminal::usage_error(&text));
    if matches!(
        error.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::InvalidSubcommand
    ) {
        print_folder_hint();
    }
    ExitCode::from(2)
}

/// `wasm-build cache` where `cache` is also a folder: say how to build the folder.
fn print_folder_hint() {
    let Some(first) = std::env::args_os().nth(1) else {
        return;
    };
    let Some(first) = first.to_str() else {
        return;
    };
    let commands = ["build", "cache", "runtime"];
    if commands.contains(&first) && std::path::Path::new(first).is_dir() {
        terminal::to_stderr(&terminal::message(
            "hint: ",
            &format!(
                "`{first}` is a command; to build the folder `{first}`, run \
                 `wasm-build build {first}` or `wasm-build ./{first}`"
            ),
        ));
    }
}
