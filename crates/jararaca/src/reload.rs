//! `--reload`: rebuild the service when its sources change and restart what it runs.
//!
//! Every role command (`worker`, `beat`, `server`) takes `--reload` (`RELOAD`) and
//! `--src-dir` (`SRC_DIR`, default `src`). With `--reload` the process does not run the role
//! itself: it becomes a supervisor that runs it in a child process — the same binary with the
//! same arguments, less `--reload` — and watches `--src-dir` and the package's `Cargo.toml`.
//! On a change it runs `cargo build` for the binary. When the build succeeds it stops the
//! child with SIGTERM, waits for it to drain (`--gracious-shutdown-seconds`, and 5 s more
//! before SIGKILL) and starts the freshly built binary. When the build fails, cargo prints
//! the compiler's errors and the child keeps running until the next change. SIGINT or SIGTERM
//! stop the child the same way, then the supervisor.
//!
//! ```sh
//! cargo run -- worker --reload
//! ```
//!
//! The package built is the one `cargo run` started (`CARGO_MANIFEST_DIR`), or else the
//! first folder holding a `Cargo.toml` from `--src-dir` up; the binary is the target named
//! like the running executable, in the release profile when it runs from a `release` folder
//! and the dev profile otherwise.
//!
//! The parts are public for tools that want the same loop: [`Watch`] (the polling watcher
//! `jararaca gen-tsi --watch` uses too), [`CommandLine`] and [`Supervisor`], whose build and
//! child commands can be any programs:
//!
//! ```no_run
//! use std::time::Duration;
//! use jararaca::reload::{CommandLine, Supervisor, Watch};
//!
//! # async fn reload() -> Result<(), jararaca::reload::ReloadError> {
//! let supervisor = Supervisor::new(
//!     CommandLine::new("target/debug/tasks").arg("worker"),
//!     CommandLine::new("cargo")
//!         .args(["build", "--message-format=json-render-diagnostics", "--bin", "tasks"]),
//!     Watch::new(["src", "Cargo.toml"]),
//! )
//! .run_built("tasks")
//! .stop_timeout(Duration::from_secs(30));
//! supervisor.run(jararaca::di::app::shutdown_signal()).await
//! # }
//! ```

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use clap::{Arg, ArgAction, ArgMatches};
use tokio::process::Child;

const RELOAD: &str = "reload";
const SRC_DIR: &str = "src-dir";
const GRACE: &str = "gracious-shutdown-seconds";

/// How much longer than its `--gracious-shutdown-seconds` a child may take to stop after
/// SIGTERM before it is killed.
pub const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Why reloading cannot start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// `--src-dir` is not a folder.
    #[error("{} is not a folder: give the service's sources with --src-dir", path.display())]
    SrcDir {
        /// The path given.
        path: PathBuf,
    },
    /// No `Cargo.toml` to build.
    #[error(
        "no Cargo.toml in {} or above it, nor in CARGO_MANIFEST_DIR: run the service with \
         `cargo run`, or give --src-dir inside its package",
        src_dir.display()
    )]
    NoManifest {
        /// Where the search started.
        src_dir: PathBuf,
    },
    /// The running executable cannot be found.
    #[error("cannot find the running executable to rebuild and restart it: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// A program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The build command failed; cargo has printed why.
    #[error("the build failed ({status})")]
    BuildFailed {
        /// How it exited.
        status: ExitStatus,
    },
}

/// Adds `--reload` (`RELOAD`) and `--src-dir` (`SRC_DIR`, default `src`) to a role command.
pub fn add_args(command: clap::Command) -> clap::Command {
    command
        .arg(
            Arg::new(RELOAD)
                .long(RELOAD)
                .env("RELOAD")
                .action(ArgAction::SetTrue)
                .help("Rebuild and restart when a file under --src-dir or Cargo.toml changes"),
        )
        .arg(
            Arg::new(SRC_DIR)
                .long(SRC_DIR)
                .env("SRC_DIR")
                .value_name("SRC_DIR")
                .default_value("src")
                .value_parser(clap::value_parser!(PathBuf))
                .help("The sources --reload watches"),
        )
}

/// Whether the command line asks for `--reload`.
pub fn requested(matches: &ArgMatches) -> bool {
    matches!(matches.try_get_one::<bool>(RELOAD), Ok(Some(true)))
}

/// The supervisor for this process's role command: `args` are the process's arguments (the
/// program first) and `matches` the role command's.
pub fn supervisor(args: &[OsString], matches: &ArgMatches) -> Result<Supervisor, ReloadError> {
    let src_dir = matches
        .try_get_one::<PathBuf>(SRC_DIR)
        .ok()
        .flatten()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("src"));
    let src_dir = std::path::absolute(&src_dir).unwrap_or(src_dir);
    if !src_dir.is_dir() {
        return Err(ReloadError::SrcDir { path: src_dir });
    }
    let manifest = package_manifest(&src_dir)?;
    let exe = std::env::current_exe().map_err(ReloadError::CurrentExe)?;
    let bin = exe
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ReloadError::CurrentExe(std::io::Error::other(format!(
                "{} has no file name",
                exe.display()
            )))
        })?;
    let mut build = CommandLine::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(["--bin", &bin]);
    if exe.parent().and_then(Path::file_name) == Some(OsStr::new("release")) {
        build = build.arg("--release");
    }
    let child = CommandLine::new(exe)
        .args(child_args(args))
        .env_remove("RELOAD");
    let grace = matches
        .try_get_one::<u64>(GRACE)
        .ok()
        .flatten()
        .map_or(Duration::from_secs(20), |s| Duration::from_secs(*s));
    Ok(
        Supervisor::new(child, build, Watch::new([src_dir, manifest]))
            .run_built(bin)
            .stop_timeout(grace + STOP_MARGIN),
    )
}

/// Runs this process's role command under a [`supervisor`] until SIGINT or SIGTERM.
pub async fn run(args: &[OsString], matches: &ArgMatches) -> Result<(), crate::BoxError> {
    supervisor(args, matches)?
        .run(jararaca_di::app::shutdown_signal())
        .await?;
    Ok(())
}

/// The child's arguments: the process's, without the program and `--reload`.
fn child_args(args: &[OsString]) -> impl Iterator<Item = &OsString> {
    args.iter().skip(1).filter(|a| a.as_os_str() != "--reload")
}

/// The package's manifest: `cargo run`'s, or the first `Cargo.toml` from `src_dir` up.
fn package_manifest(src_dir: &Path) -> Result<PathBuf, ReloadError> {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let manifest = PathBuf::from(dir).join("Cargo.toml");
        if manifest.is_file() {
            return Ok(manifest);
        }
    }
    src_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.toml"))
        .find(|manifest| manifest.is_file())
        .ok_or_else(|| ReloadError::NoManifest {
            src_dir: src_dir.to_owned(),
        })
}

/// A program and its arguments, to run as many times as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    program: OsString,
    args: Vec<OsString>,
    env_remove: Vec<OsString>,
}

impl CommandLine {
    /// Runs `program` (found on `PATH` when it is a bare name).
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs it without the environment variable `name` (the rest is inherited).
    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(name.as_ref().to_owned());
        self
    }

    /// The program.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        for name in &self.env_remove {
            command.env_remove(name);
        }
        command
    }

    fn spawn_error(&self, source: std::io::Error) -> ReloadError {
        ReloadError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            source,
        }
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program.to_string_lossy())?;
        for arg in &self.args {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        Ok(())
    }
}

/// The modification time and length of every file under some roots: two snapshots differ
/// when a file was added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, (Option<SystemTime>, u64)>);

impl Snapshot {
    /// Scans `roots` (files or folders, recursively; hidden entries, `target` and
    /// `node_modules` skipped). A root that does not exist is empty.
    pub fn of(roots: &[PathBuf]) -> Self {
        let mut files = BTreeMap::new();
        for root in roots {
            scan(root, &mut files);
        }
        Snapshot(files)
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no file.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn scan(path: &Path, files: &mut BTreeMap<PathBuf, (Option<SystemTime>, u64)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        files.insert(path.to_owned(), (meta.modified().ok(), meta.len()));
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        scan(&entry.path(), files);
    }
}

/// Watches files and folders by polling their [`Snapshot`]: cheap for a source tree, and the
/// same on every platform and file system.
///
/// A change is reported once the tree has stopped changing for one interval, so an editor
/// saving several files (or writing one in steps) causes one rebuild.
#[derive(Debug)]
pub struct Watch {
    roots: Vec<PathBuf>,
    interval: Duration,
    seen: Snapshot,
    settling: Option<Snapshot>,
}

impl Watch {
    /// Watches `roots` from now on (the first change is against what they hold now), every
    /// 500 ms.
    pub fn new<I, P>(roots: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        let roots: Vec<PathBuf> = roots.into_iter().map(Into::into).collect();
        let seen = Snapshot::of(&roots);
        Self {
            roots,
            interval: Duration::from_millis(500),
            seen,
            settling: None,
        }
    }

    /// Polls every `interval` instead.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// What it watches.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Waits for the next change (cancel-safe: a change seen by a cancelled wait is reported
    /// by the next one).
    pub async fn changed(&mut self) {
        loop {
            tokio::time::sleep(self.interval).await;
            if self.poll() {
                return;
            }
        }
    }

    /// Blocks the thread until the next change.
    pub fn wait_blocking(&mut self) {
        loop {
            std::thread::sleep(self.interval);
            if self.poll() {
                return;
            }
        }
    }

    /// One look: whether the tree changed since the last reported change and has now been
    /// the same for one interval.
    fn poll(&mut self) -> bool {
        let now = Snapshot::of(&self.roots);
        if now == self.seen {
            self.settling = None;
            return false;
        }
        if self.settling.as_ref() == Some(&now) {
            self.seen = now;
            self.settling = None;
            return true;
        }
        self.settling = Some(now);
        false
    }
}

/// Runs a child program and, on every change a [`Watch`] reports, a build: when the build
/// succeeds the child is stopped (SIGTERM, then SIGKILL after the stop timeout) and started
/// again; when it fails the child keeps running.
#[derive(Debug)]
pub struct Supervisor {
    child: CommandLine,
    build: CommandLine,
    watch: Watch,
    stop_timeout: Duration,
    run_built: Option<String>,
}

enum Event {
    Shutdown,
    Exited(std::io::Result<ExitStatus>),
    Changed,
}

impl Supervisor {
    /// Supervises `child`, running `build` on every change `watch` reports. The child is
    /// given 25 s to stop.
    pub fn new(child: CommandLine, build: CommandLine, watch: Watch) -> Self {
        Self {
            child,
            build,
            watch,
            stop_timeout: Duration::from_secs(20) + STOP_MARGIN,
            run_built: None,
        }
    }

    /// How long the child may take to exit after SIGTERM before it is killed.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// After a successful build, runs the executable that cargo's JSON messages
    /// (`--message-format=json…` on the build's standard output) name for the binary target
    /// `bin`, instead of the child's program.
    pub fn run_built(mut self, bin: impl Into<String>) -> Self {
        self.run_built = Some(bin.into());
        self
    }

    /// The child's command (its program is the last build's executable once one ran).
    pub fn get_child(&self) -> &CommandLine {
        &self.child
    }

    /// The build's command.
    pub fn get_build(&self) -> &CommandLine {
        &self.build
    }

    /// What it watches.
    pub fn get_watch(&self) -> &Watch {
        &self.watch
    }

    /// Runs until `shutdown` completes, then stops the child and returns. Fails only when the
    /// child cannot be started the first time; later failures are logged and wait for the
    /// next change.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ReloadError> {
        tokio::pin!(shutdown);
        let mut child = Some(self.spawn()?);
        tracing::info!(
            command = %self.child,
            watching = ?self.watch.roots(),
            "started; it is rebuilt and restarted when a watched file changes"
        );
        loop {
            let event = tokio::select! {
                () = &mut shutdown => Event::Shutdown,
                status = wait(&mut child) => Event::Exited(status),
                () = self.watch.changed() => Event::Changed,
            };
            match event {
                Event::Shutdown => break,
                Event::Exited(status) => {
                    child = None;
                    match status {
                        Ok(status) => tracing::warn!(
                            command = %self.child,
                            %status,
                            "exited; it starts again after the next successful build"
                        ),
                        Err(error) => tracing::error!(%error, "cannot wait for the child"),
                    }
                }
                Event::Changed => {
                    tracing::info!(build = %self.build, "a watched file changed: building");
                    let built = tokio::select! {
                        () = &mut shutdown => break,
                        built = self.build() => built,
                    };
                    match built {
                        Ok(program) => {
                            if let Some(program) = program {
                                self.child.program = program.into_os_string();
                            }
                            if let Some(mut running) = child.take() {
                                self.stop(&mut running).await;
                            }
                            match self.spawn() {
                                Ok(started) => {
                                    tracing::info!(command = %self.child, "restarted");
                                    child = Some(started);
                                }
                                Err(error) => tracing::error!(
                                    %error,
                                    "it starts again after the next successful build"
                                ),
                            }
                        }
                        Err(error) if child.is_some() => tracing::error!(
                            %error,
                            "the running child keeps running until the next change"
                        ),
                        Err(error) => tracing::error!(%error, "waiting for the next change"),
                    }
                }
            }
        }
        if let Some(mut running) = child {
            self.stop(&mut running).await;
        }
        Ok(())
    }

    fn spawn(&self) -> Result<Child, ReloadError> {
        self.child
            .command()
            // A supervisor killed without the chance to stop it takes the child along.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.child.spawn_error(e))
    }

    /// Runs the build; on success, the executable to run next when cargo named one.
    async fn build(&self) -> Result<Option<PathBuf>, ReloadError> {
        let mut command = self.build.command();
        command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command.stdout(if self.run_built.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        // Not `output()`: it would capture standard error too, where cargo prints the
        // compiler's errors for the developer to read.
        let output = command
            .spawn()
            .map_err(|e| self.build.spawn_error(e))?
            .wait_with_output()
            .await
            .map_err(|e| self.build.spawn_error(e))?;
        if !output.status.success() {
            return Err(ReloadError::BuildFailed {
                status: output.status,
            });
        }
        let Some(bin) = &self.run_built else {
            return Ok(None);
        };
        let built = built_executable(&output.stdout, bin);
        if built.is_none() {
            tracing::warn!(
                bin,
                "the build named no executable for the binary: restarting the same program"
            );
        }
        Ok(built)
    }

    /// SIGTERM, then SIGKILL if the child is still running after the stop timeout.
    async fn stop(&self, child: &mut Child) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        terminate(child);
        match tokio::time::timeout(self.stop_timeout, child.wait()).await {
            Ok(Ok(status)) => tracing::info!(%status, "stopped"),
            Ok(Err(error)) => tracing::error!(%error, "cannot wait for the child to stop"),
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.stop_timeout,
                    "still running after SIGTERM: killing it"
                );
                if let Err(error) = child.kill().await {
                    tracing::error!(%error, "cannot kill the child");
                }
            }
        }
    }
}

async fn wait(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// Asks the child to stop: SIGTERM on Unix, where the role drains; elsewhere there is no
/// such signal and the child is killed.
fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            match kill(Pid::from_raw(pid), Signal::SIGTERM) {
                Ok(()) => return,
                Err(error) => tracing::warn!(%error, "cannot send SIGTERM: killing the child"),
            }
        }
    }
    let _ = child.start_kill();
}

/// The executable cargo's JSON messages name for the binary target `bin` (the last one).
fn built_executable(messages: &[u8], bin: &str) -> Option<PathBuf> {
    messages
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_runs_the_same_command_without_reload() {
        let args: Vec<OsString> = ["tasks", "--log-format", "json", "worker", "--reload"]
            .into_iter()
            .chain(["--src-dir", "src", "--handlers", "a,b"])
            .map(OsString::from)
            .collect();
        let child: Vec<&OsString> = child_args(&args).collect();
        assert_eq!(
            child,
            [
                "--log-format",
                "json",
                "worker",
                "--src-dir",
                "src",
                "--handlers",
                "a,b"
            ]
        );
    }

    #[test]
    fn the_executable_is_the_one_cargo_names_for_the_binary() {
        let messages = concat!(
            "{\"reason\":\"compiler-artifact\",\"target\":{\"kind\":[\"lib\"],\"name\":\"tasks\"},\"executable\":null}\n",
            "not json\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"kind\":[\"bin\"],\"name\":\"other\"},\"executable\":\"/t/debug/other\"}\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"kind\":[\"bin\"],\"name\":\"tasks\"},\"executable\":\"/t/debug/tasks\"}\n",
            "{\"reason\":\"build-finished\",\"success\":true}\n",
        );
        assert_eq!(
            built_executable(messages.as_bytes(), "tasks"),
            Some(PathBuf::from("/t/debug/tasks"))
        );
        assert_eq!(built_executable(messages.as_bytes(), "missing"), None);
    }

    #[test]
    fn reload_and_src_dir_are_the_references_options() {
        let command = add_args(clap::Command::new("worker"));
        let matches = command
            .clone()
            .try_get_matches_from(["worker", "--reload", "--src-dir", "app/src"])
            .unwrap();
        assert!(requested(&matches));
        assert_eq!(
            matches.get_one::<PathBuf>(SRC_DIR),
            Some(&PathBuf::from("app/src"))
        );
        let matches = command.try_get_matches_from(["worker"]).unwrap();
        assert!(!requested(&matches));
        assert_eq!(
            matches.get_one::<PathBuf>(SRC_DIR),
            Some(&PathBuf::from("src"))
        );
        let without = clap::Command::new("declare")
            .try_get_matches_from(["declare"])
            .unwrap();
        assert!(!requested(&without), "a command without the option");
    }

    #[test]
    fn a_snapshot_sees_added_changed_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("jararaca-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join("a.rs"), "a").unwrap();
        let roots = [dir.clone()];
        let first = Snapshot::of(&roots);
        assert_eq!(first.len(), 1);
        assert_eq!(first, Snapshot::of(&roots), "nothing changed");
        std::fs::write(dir.join("target/out"), "ignored").unwrap();
        std::fs::write(dir.join(".hidden"), "ignored").unwrap();
        assert_eq!(
            first,
            Snapshot::of(&roots),
            "target and hidden files are skipped"
        );
        std::fs::write(dir.join("nested/b.rs"), "b").unwrap();
        let second = Snapshot::of(&roots);
        assert_ne!(first, second, "a file was added");
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("a.rs"))
            .unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let third = Snapshot::of(&roots);
        assert_ne!(second, third, "a file's time changed");
        std::fs::write(dir.join("nested/b.rs"), "longer").unwrap();
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("nested/b.rs"))
            .unwrap();
        // The same time as before: only the length tells.
        file.set_modified(second.0[&dir.join("nested/b.rs")].0.unwrap())
            .unwrap();
        let fourth = Snapshot::of(&roots);
        assert_ne!(third, fourth, "a file's length changed");
        std::fs::remove_file(dir.join("nested/b.rs")).unwrap();
        assert_ne!(fourth, Snapshot::of(&roots), "a file was removed");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_change_is_reported_once_the_tree_has_settled() {
        let dir = std::env::temp_dir().join(format!("jararaca-settle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut watch = Watch::new([dir.clone()]);
        assert!(!watch.poll(), "nothing changed");
        std::fs::write(dir.join("a.rs"), "a").unwrap();
        assert!(!watch.poll(), "changed, not settled yet");
        std::fs::write(dir.join("b.rs"), "b").unwrap();
        assert!(!watch.poll(), "still changing");
        assert!(watch.poll(), "settled: reported");
        assert!(!watch.poll(), "reported once");
        let _ = std::fs::remove_dir_all(dir);
    }
}
