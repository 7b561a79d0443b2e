//! `--reload`'s supervisor with stand-in programs: `sh` scripts play the service (recording
//! each start and each SIGTERM) and the build (recording each run, failing on demand), so
//! what is checked is the supervisor's own logic: a change runs the build, a successful
//! build restarts the child gracefully, a failed one keeps it running.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jararaca::Microservice;
use jararaca::reload::{CommandLine, ReloadError, Supervisor, Watch};
use tokio::sync::oneshot;

/// A temporary folder with `src/` (watched) and `state/` (what the scripts record).
struct Sandbox {
    root: PathBuf,
    edits: usize,
}

impl Sandbox {
    fn new() -> Self {
        let root = std::env::temp_dir().join(jararaca_testing::unique_name("jararaca_reload"));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "// first\n").unwrap();
        Self { root, edits: 0 }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.root.join("state").join(name)
    }

    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.state(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Changes a source file as an editor saving it would.
    fn edit(&mut self) {
        self.edits += 1;
        std::fs::write(
            self.root.join("src/lib.rs"),
            format!("// edit {}\n", self.edits),
        )
        .unwrap();
    }

    fn watch(&self) -> Watch {
        Watch::new([self.root.join("src")]).interval(Duration::from_millis(50))
    }

    fn sh(script: String) -> CommandLine {
        CommandLine::new("sh").arg("-c").arg(script)
    }

    /// A service that records its pid when it starts and `term <pid>` when SIGTERM stops it.
    fn service(&self) -> CommandLine {
        Self::sh(format!(
            "echo $$ >> '{pids}'; trap \"echo term $$ >> '{log}'; exit 0\" TERM; \
             while :; do sleep 0.05; done",
            pids = self.state("pids").display(),
            log = self.state("log").display(),
        ))
    }

    /// A build that records each run and fails, with a compiler-like error, while
    /// `state/fail` exists.
    fn build(&self) -> CommandLine {
        Self::sh(format!(
            "echo built >> '{builds}'; if [ -e '{fail}' ]; then echo 'error: expected `;`' >&2; exit 101; fi",
            builds = self.state("builds").display(),
            fail = self.state("fail").display(),
        ))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).join("status").exists()
        && !std::fs::read_to_string(Path::new("/proc").join(pid).join("status"))
            .unwrap_or_default()
            .contains("(zombie)")
}

fn start(
    supervisor: Supervisor,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ReloadError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(supervisor.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test]
async fn a_change_rebuilds_and_restarts_the_child_and_a_failed_build_keeps_it() {
    let mut sandbox = Sandbox::new();
    let supervisor = Supervisor::new(sandbox.service(), sandbox.build(), sandbox.watch())
        .stop_timeout(Duration::from_secs(10));
    let (stop, task) = start(supervisor);

    wait_until("the child started", || sandbox.lines("pids").len() == 1).await;
    assert!(
        sandbox.lines("builds").is_empty(),
        "no build before a change"
    );
    let first = sandbox.lines("pids")[0].clone();

    sandbox.edit();
    wait_until("the child restarted after the build", || {
        sandbox.lines("pids").len() == 2
    })
    .await;
    assert_eq!(sandbox.lines("builds").len(), 1);
    assert_eq!(
        sandbox.lines("log"),
        [format!("term {first}")],
        "the old child was stopped with SIGTERM before the new one started"
    );
    assert!(!alive(&first));
    let second = sandbox.lines("pids")[1].clone();

    std::fs::write(sandbox.state("fail"), "").unwrap();
    sandbox.edit();
    wait_until("the failing build ran", || {
        sandbox.lines("builds").len() == 2
    })
    .await;
    std::fs::remove_file(sandbox.state("fail")).unwrap();
    sandbox.edit();
    wait_until("the next build restarted the child", || {
        sandbox.lines("pids").len() >= 3
    })
    .await;
    assert_eq!(sandbox.lines("builds").len(), 3);
    // Had the failed build restarted the child, there would be four starts and two stops.
    assert_eq!(
        sandbox.lines("pids").len(),
        3,
        "{:?}",
        sandbox.lines("pids")
    );
    assert_eq!(
        sandbox.lines("log"),
        [format!("term {first}"), format!("term {second}")],
        "the child the failed build left running is the one the next build stopped"
    );
    let third = sandbox.lines("pids")[2].clone();
    assert!(alive(&third));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the supervisor stops")
        .unwrap()
        .unwrap();
    assert_eq!(
        sandbox.lines("log").last(),
        Some(&format!("term {third}")),
        "stopping the supervisor stops the child gracefully"
    );
    assert!(!alive(&third));
}

#[tokio::test]
async fn a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let sandbox = Sandbox::new();
    let stubborn = Sandbox::sh(format!(
        "trap '' TERM; echo $$ >> '{}'; while :; do sleep 0.05; done",
        sandbox.state("pids").display()
    ));
    let supervisor = Supervisor::new(stubborn, sandbox.build(), sandbox.watch())
        .stop_timeout(Duration::from_millis(300));
    let (stop, task) = start(supervisor);
    wait_until("the child started", || sandbox.lines("pids").len() == 1).await;
    let pid = sandbox.lines("pids")[0].clone();

    let asked = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the supervisor stops")
        .unwrap()
        .unwrap();
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "it waited for the child first"
    );
    assert!(!alive(&pid), "the child was killed");
}

#[tokio::test]
async fn a_child_that_exits_starts_again_after_the_next_build() {
    let mut sandbox = Sandbox::new();
    let short_lived = Sandbox::sh(format!(
        "echo $$ >> '{}'; exit 3",
        sandbox.state("pids").display()
    ));
    let supervisor = Supervisor::new(short_lived, sandbox.build(), sandbox.watch());
    let (stop, task) = start(supervisor);
    wait_until("the child ran", || sandbox.lines("pids").len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sandbox.lines("pids").len(),
        1,
        "not restarted without a build"
    );

    sandbox.edit();
    wait_until("the child ran again", || sandbox.lines("pids").len() == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn after_a_build_the_executable_cargo_names_is_run() {
    let mut sandbox = Sandbox::new();
    let runs = sandbox.state("runs");
    let next = sandbox.state("next.sh");
    std::fs::write(
        &next,
        format!(
            "#!/bin/sh\necho new >> '{}'\nwhile :; do sleep 0.05; done\n",
            runs.display()
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&next).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&next, permissions).unwrap();
    // What `cargo build --message-format=json-render-diagnostics` prints on standard output.
    let artifact = serde_json::json!({
        "reason": "compiler-artifact",
        "target": {"kind": ["bin"], "name": "svc"},
        "executable": next,
    });
    let build = Sandbox::sh(format!("echo '{artifact}'"));
    let old = Sandbox::sh(format!(
        "echo old >> '{}'; while :; do sleep 0.05; done",
        runs.display()
    ));
    let supervisor = Supervisor::new(old, build, sandbox.watch()).run_built("svc");
    let (stop, task) = start(supervisor);
    wait_until("the first child ran", || sandbox.lines("runs").len() == 1).await;
    sandbox.edit();
    wait_until("the built executable ran", || {
        sandbox.lines("runs").len() == 2
    })
    .await;
    assert_eq!(sandbox.lines("runs"), ["old", "new"]);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_child_that_cannot_start_is_an_error() {
    let sandbox = Sandbox::new();
    let supervisor = Supervisor::new(
        CommandLine::new(sandbox.root.join("no-such-program")),
        sandbox.build(),
        sandbox.watch(),
    );
    let error = supervisor
        .run(std::future::pending())
        .await
        .expect_err("nothing to run");
    assert!(matches!(error, ReloadError::Spawn { .. }), "{error}");
    assert!(error.to_string().contains("no-such-program"), "{error}");
}

fn service() -> Microservice {
    Microservice::new("svc")
        .controller(jararaca::http::Controller::new("Hello", "/hello").get("/", || async { "hi" }))
}

#[test]
fn every_role_command_takes_reload_and_src_dir_and_tools_do_not() {
    let cli = jararaca::cli::command(&service(), &[]);
    let server = cli.find_subcommand("server").unwrap();
    let names: Vec<&str> = server
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .collect();
    assert!(
        names.contains(&"reload") && names.contains(&"src-dir"),
        "{names:?}"
    );
    let openapi = cli.find_subcommand("openapi").unwrap();
    assert!(openapi.get_arguments().all(|a| a.get_id() != "reload"));
}

#[test]
fn the_supervisor_of_a_role_builds_this_package_and_reruns_this_binary() {
    let args: Vec<std::ffi::OsString> = ["svc", "server", "--reload", "--port", "0"]
        .into_iter()
        .map(Into::into)
        .collect();
    let src_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let cli = jararaca::cli::command(&service(), &[]);
    let matches = cli
        .clone()
        .try_get_matches_from(["svc", "server", "--reload", "--src-dir", src_dir])
        .unwrap();
    let (_, server) = matches.subcommand().unwrap();
    assert!(jararaca::reload::requested(server));
    let supervisor = jararaca::reload::supervisor(&args, server).unwrap();

    let exe = std::env::current_exe().unwrap();
    let bin = exe.file_stem().unwrap().to_str().unwrap();
    let manifest = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let build: Vec<String> = supervisor
        .get_build()
        .get_args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        build,
        [
            "build",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--bin",
            bin
        ]
    );
    assert_eq!(supervisor.get_child().get_program(), exe.as_os_str());
    assert_eq!(supervisor.get_child().get_args(), ["server", "--port", "0"]);
    assert_eq!(
        supervisor.get_watch().roots(),
        [PathBuf::from(src_dir), manifest]
    );

    let matches = cli
        .try_get_matches_from(["svc", "server", "--reload", "--src-dir", "/no/such/dir"])
        .unwrap();
    let error = jararaca::reload::supervisor(&args, matches.subcommand().unwrap().1).unwrap_err();
    assert!(
        error.to_string().contains("/no/such/dir is not a folder"),
        "{error}"
    );
}

/// The seed's `worker --reload` and `beat --reload`, with their environment variables.
#[cfg(feature = "cron")]
#[test]
fn worker_and_beat_take_reload() {
    let service = service()
        .controller(jararaca::bus::MessageController::new("Workers"))
        .controller(jararaca::cron::ScheduledController::new("Jobs"));
    let cli = jararaca::cli::command(&service, &[]);
    for role in ["worker", "beat"] {
        let matches = cli
            .clone()
            .try_get_matches_from([
                "svc",
                role,
                "--broker-url",
                "amqp://localhost/?exchange=x",
                "--backend-url",
                "redis://localhost",
                "--reload",
                "--src-dir",
                "app/src",
            ])
            .unwrap_or_else(|e| panic!("{role}: {e}"));
        let (_, matches) = matches.subcommand().unwrap();
        assert!(jararaca::reload::requested(matches), "{role}");
        assert_eq!(
            matches.get_one::<PathBuf>("src-dir"),
            Some(&PathBuf::from("app/src"))
        );
        let help = cli
            .clone()
            .find_subcommand_mut(role)
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("[env: RELOAD=]"), "{help}");
        assert!(help.contains("[env: SRC_DIR=]"), "{help}");
    }
}
