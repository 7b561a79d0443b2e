//! Pinning processes to cores with `taskset`, so server and load generator do not compete.

use std::process::Command;

/// The core the servers run on and the core the load generator runs on.
pub(crate) const SERVER_CORE: usize = 0;
pub(crate) const LOAD_CORE: usize = 1;

/// Whether `taskset` is available (and the machine has two cores to split).
pub(crate) fn available() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Pins every thread of this process (and threads it creates later) to `core`.
pub(crate) fn pin_self(core: usize) -> bool {
    Command::new("taskset")
        .args([
            "-a",
            "-cp",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A command running `program args…`, pinned to `core` when pinning is available.
pub(crate) fn command(core: Option<usize>, program: &str, args: &[&str]) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &core.to_string(), program]).args(args);
            command
        }
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}
