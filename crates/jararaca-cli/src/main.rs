//! `jararaca`: the Jararaca developer tool. See `jararaca --help`.

use std::process::ExitCode;

use clap::Parser;
use jararaca_cli::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run(&mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
