//! `jararaca gen-tsi`: regenerates a service's TypeScript client through the service's own
//! `gen-tsi` command (`cargo run -- gen-tsi FILE_PATH`), once or on every change.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use jararaca::reload::Watch;

use crate::Error;

/// `jararaca gen-tsi FILE_PATH [--watch] [--src-dir DIR] [-p PACKAGE] [--post-process CMD]`.
#[derive(Debug, Clone, Args)]
pub struct GenTsi {
    /// Where the service writes the client.
    #[arg(value_name = "FILE_PATH")]
    pub file_path: PathBuf,
    /// Rebuild and regenerate whenever a file under `--src-dir` (or `Cargo.toml`) changes.
    #[arg(long)]
    pub watch: bool,
    /// The folder to watch.
    #[arg(long, value_name = "SRC_DIR", default_value = "src")]
    pub src_dir: PathBuf,
    /// The service's package, when the workspace has several binaries.
    #[arg(short, long, value_name = "PACKAGE")]
    pub package: Option<String>,
    /// A shell command the service runs on the written file (`{file}` is its path).
    #[arg(long, value_name = "CMD")]
    pub post_process: Option<String>,
}

impl GenTsi {
    /// The `cargo` invocation that builds the service and runs its `gen-tsi`.
    pub fn cargo_command(&self) -> Command {
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command.args(["run", "--quiet"]);
        if let Some(package) = &self.package {
            command.args(["--package", package]);
        }
        command.args(["--", "gen-tsi"]).arg(&self.file_path);
        if let Some(post) = &self.post_process {
            command.args(["--post-process", post]);
        }
        command
    }

    fn run_once(&self) -> Result<(), Error> {
        let status = self.cargo_command().status().map_err(|source| Error::Io {
            path: PathBuf::from("cargo"),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Command(format!(
                "`cargo run -- gen-tsi` failed ({status})"
            )))
        }
    }

    /// Regenerates once; with `--watch`, again after every change until interrupted (a
    /// failed build is reported and waits for the next change).
    pub fn run(&self, report: &mut dyn std::io::Write) -> Result<(), Error> {
        if !self.watch {
            return self.run_once();
        }
        if !self.src_dir.is_dir() {
            return Err(Error::Command(format!(
                "{} is not a folder: give the service's sources with --src-dir",
                self.src_dir.display()
            )));
        }
        let mut watch = Watch::new([self.src_dir.clone(), PathBuf::from("Cargo.toml")]);
        loop {
            match self.run_once() {
                Ok(()) => {
                    let _ = writeln!(
                        report,
                        "wrote {}; watching {} for changes",
                        self.file_path.display(),
                        self.src_dir.display()
                    );
                }
                Err(e) => {
                    let _ = writeln!(report, "error: {e}; waiting for a change");
                }
            }
            watch.wait_blocking();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_run_with_its_own_gen_tsi() {
        let command = GenTsi {
            file_path: "web/src/api.ts".into(),
            watch: true,
            src_dir: "src".into(),
            package: Some("tasks".into()),
            post_process: Some("prettier --write {file}".into()),
        }
        .cargo_command();
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "run",
                "--quiet",
                "--package",
                "tasks",
                "--",
                "gen-tsi",
                "web/src/api.ts",
                "--post-process",
                "prettier --write {file}"
            ]
        );
    }
}
