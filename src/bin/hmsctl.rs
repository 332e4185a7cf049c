//! `hmsctl`: the command-line client of the HMS REST API.

#![warn(clippy::unwrap_used)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hms::ctl::Cli::parse();
    let mut out = std::io::stdout().lock();
    match hms::ctl::run(&cli, &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hmsctl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
