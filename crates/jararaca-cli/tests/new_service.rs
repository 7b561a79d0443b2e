//! `jararaca new`, end to end: a service created from this checkout builds on its own, passes
//! its own tests (the TypeScript client written, then fresh under `CI=true`), regenerates its
//! client under `jararaca gen-tsi --watch`, and reloads under `server --reload`: a change is
//! rebuilt and served, a broken change leaves the running server alone, SIGTERM stops both
//! processes.
//!
//! The service is created under this workspace's target folder (`jararaca-new/demo`, replaced
//! on every run) and built in `jararaca-new/target` offline, from the checkout's
//! `Cargo.lock`: the first run compiles its dependencies, later runs only the service.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use jararaca_cli::{JararacaSource, Scaffold, ServiceName};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// This build's target folder: the one holding `debug/jararaca`.
fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_jararaca"));
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeed(command: &mut Command, what: &str) -> Output {
    let started = Instant::now();
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    println!("{what}: ok in {:.0?}", started.elapsed());
    output
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{what}: after {:.0?}", started.elapsed());
}

/// `GET path` on `127.0.0.1:port`: the status and the body, or `None` when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process the test started, killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(path).unwrap();
    assert!(source.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, source.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_new_service_builds_passes_its_tests_and_reloads() {
    let root = target_dir().join("jararaca-new");
    let dir = root.join("demo");
    let build_dir = root.join("target");
    let _ = std::fs::remove_dir_all(&dir);

    let created = succeed(
        Command::new(env!("CARGO_BIN_EXE_jararaca"))
            .args(["new", "demo", "--path"])
            .arg(&dir)
            .arg("--jararaca-path")
            .arg(workspace()),
        "jararaca new demo",
    );
    assert!(text(&created.stderr).contains("cargo run -- server"));
    assert!(dir.join("Cargo.lock").is_file(), "the lock is seeded");

    // Built on its own, offline: every version comes from the checkout's lock.
    let in_service = |command: &mut Command| {
        command
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &build_dir)
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("CARGO_MANIFEST_DIR");
    };
    let mut test = cargo();
    in_service(test.arg("test").env_remove("CI"));
    let tested = succeed(&mut test, "cargo test (writes the client)");
    let summary = text(&tested.stdout);
    let passed: usize = summary
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    println!("the service's tests: {passed} passed");
    assert!(passed >= 4, "{summary}");
    let client = std::fs::read_to_string(dir.join("client/demo.ts")).unwrap();
    assert!(client.contains("extends HttpService"), "{client}");
    assert!(
        client.contains("\"task.changed\": TaskChanged;"),
        "{client}"
    );

    let mut fresh = cargo();
    in_service(fresh.arg("test").env("CI", "true"));
    succeed(&mut fresh, "cargo test under CI=true (the client is fresh)");

    // `jararaca gen-tsi --watch` writes the client, then again after a change.
    let mut gen_tsi = Command::new(env!("CARGO_BIN_EXE_jararaca"));
    in_service(gen_tsi.args(["gen-tsi", "client/watched.ts", "--watch"]));
    let watched = dir.join("client/watched.ts");
    let gen_tsi = Running(gen_tsi.stderr(Stdio::null()).spawn().unwrap());
    wait_until(
        "gen-tsi --watch wrote the client",
        Duration::from_secs(300),
        || std::fs::read_to_string(&watched).is_ok_and(|t| t == client),
    );
    edit(
        &dir.join("src/live.rs"),
        "/// Pushed to [`TASKS_ROOM`] when a task changes.",
        "/// Sent to every client of the tasks room when a task changes.",
    );
    wait_until(
        "gen-tsi --watch rewrote it after a change",
        Duration::from_secs(300),
        || {
            std::fs::read_to_string(&watched)
                .is_ok_and(|t| t.contains("Sent to every client of the tasks room"))
        },
    );
    drop(gen_tsi);

    // `server --reload`, as a developer runs it.
    let port = free_port();
    let log = root.join("reload.log");
    let mut run = cargo();
    in_service(
        run.args([
            "run",
            "--quiet",
            "--",
            "server",
            "--reload",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap()),
    );
    let mut supervisor = Running(run.spawn().unwrap());
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let version = || get(port, "/openapi.json").map(|(_, body)| body);
    wait_until("the server answers", Duration::from_secs(300), || {
        get(port, "/health/live").is_some_and(|(status, _)| status == 200)
    });
    assert!(version().unwrap().contains(r#""version":"0.1.0""#));

    edit(
        &dir.join("src/lib.rs"),
        r#".version(env!("CARGO_PKG_VERSION"))"#,
        r#".version("9.9.9")"#,
    );
    wait_until(
        "the change is rebuilt and served",
        Duration::from_secs(300),
        || version().is_some_and(|v| v.contains(r#""version":"9.9.9""#)),
    );
    assert!(logged().contains("restarted"), "{}", logged());

    edit(&dir.join("src/tasks.rs"), "fn listing()", "fn listing(");
    wait_until(
        "the broken change failed to build",
        Duration::from_secs(300),
        || logged().contains("the build failed"),
    );
    assert!(
        logged().contains("error: could not compile `demo`"),
        "cargo printed the compiler's error: {}",
        logged()
    );
    assert!(
        version().is_some_and(|v| v.contains(r#""version":"9.9.9""#)),
        "the running server keeps serving: {}",
        logged()
    );

    let pid = supervisor.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = supervisor.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor did not stop: {}",
            logged()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}: {}", logged());
    assert!(
        get(port, "/health/live").is_none(),
        "the server stopped with it"
    );
}

/// The new service asks for the same versions as this workspace, so a service made from a
/// checkout resolves offline to what the checkout was tested with.
#[test]
fn the_new_service_asks_for_the_workspaces_versions() {
    let workspace_manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let workspace_deps = workspace_manifest
        .split_once("[workspace.dependencies]")
        .unwrap()
        .1;
    let scaffold = Scaffold::new(
        ServiceName::parse("demo").unwrap(),
        JararacaSource::published(env!("CARGO_PKG_VERSION")).unwrap(),
    );
    let files = scaffold.files();
    let manifest = &files.iter().find(|(p, _)| *p == "Cargo.toml").unwrap().1;
    let mut checked = 0;
    let mut section = "";
    for line in manifest.lines() {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((name, spec)) = line.split_once(" = ") else {
            continue;
        };
        if !matches!(section, "[dependencies]" | "[dev-dependencies]") || name.starts_with('#') {
            continue;
        }
        let theirs = workspace_deps
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} is not a workspace dependency"));
        assert_eq!(version_of(spec), version_of(theirs), "{name}");
        checked += 1;
    }
    assert!(checked >= 15, "{manifest}");
}

/// `"1"` or `{ version = "1", … }` (or `{ path = …, version = "0.1.0" }`): the version.
fn version_of(spec: &str) -> String {
    let spec = spec.trim();
    let quoted = spec
        .split_once("version = \"")
        .map_or(spec.trim_start_matches('"'), |(_, rest)| rest);
    quoted.split('"').next().unwrap().to_owned()
}

/// The new service is laid out as `cargo fmt` lays it out, whatever the length of its name.
#[test]
fn the_new_service_is_formatted_whatever_its_name() {
    if Command::new("rustfmt").arg("--version").output().is_err() {
        assert!(
            !jararaca_testing::services_required(),
            "rustfmt is not installed"
        );
        println!("skipped: rustfmt is not installed");
        return;
    }
    for name in ["a", "demo", "order-service", &"s".repeat(64)] {
        let dir = std::env::temp_dir().join(jararaca_testing::unique_name("jararaca_new_fmt"));
        Scaffold::new(
            ServiceName::parse(name).unwrap(),
            JararacaSource::published("0.1.0").unwrap(),
        )
        .write(&dir)
        .unwrap();
        let checked = Command::new("rustfmt")
            .args(["--check", "--edition", "2024"])
            .args([
                "src/main.rs",
                "src/lib.rs",
                "tests/api.rs",
                "tests/typescript_client.rs",
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            checked.status.success(),
            "{name}: {}{}",
            text(&checked.stdout),
            text(&checked.stderr)
        );
    }
}
