//! Python tools for tests, each in a virtualenv of its own under the target directory,
//! installed from PyPI on first use and reused while its requirements stay the same.
//!
//! Without `python3` (with `venv`) or a reachable package index a test skips, printing why,
//! unless `JARARACA_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Skips the test (printing why), or fails it when services are required.
pub(crate) fn skip_or_fail(reason: String) {
    if jararaca_testing::services_required() {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The `bin` directory of the virtualenv `name` (under `CARGO_TARGET_TMPDIR`) with
/// `requirements` (a pip requirements file's text) installed.
pub(crate) fn venv(name: &str, requirements: &str) -> Result<PathBuf, String> {
    // Tests of one binary run in parallel: one installs while the others wait.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let bin = dir.join("bin");
    // What was installed last: the same requirements need no second install.
    let stamp = dir.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == requirements) {
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    let wanted = dir.join("requirements.txt");
    std::fs::write(&wanted, requirements).map_err(|e| format!("{}: {e}", wanted.display()))?;
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&wanted))?;
    std::fs::write(&stamp, requirements).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(bin)
}
