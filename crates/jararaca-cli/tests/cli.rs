//! The `jararaca` binary as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn jararaca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jararaca"))
        .args(args)
        .output()
        .expect("run the jararaca binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn gen_entity_writes_a_new_file_and_never_overwrites_without_force() {
    let dir = TempDir(std::env::temp_dir().join(jararaca_testing::unique_name("jararaca_cli")));
    let path = dir.0.join("src/domain/order_line.rs");
    let path_text = path.to_str().unwrap();

    let out = jararaca(&["gen-entity", "order-line", path_text]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "the module goes to the file only");
    assert!(
        text(&out.stderr).contains("mod order_line;"),
        "{}",
        text(&out.stderr)
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("pub struct OrderLineEntity {"));

    std::fs::write(&path, "// edited by hand\n").unwrap();
    let out = jararaca(&["gen-entity", "OrderLine", path_text]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "// edited by hand\n"
    );

    let out = jararaca(&["gen-entity", "OrderLine", path_text, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

#[test]
fn gen_entity_to_stdout_prints_only_the_module() {
    let out = jararaca(&["gen-entity", "TaskItem", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let golden = include_str!("golden/task_item.rs");
    assert_eq!(text(&out.stdout), golden);
}

#[test]
fn a_bad_name_or_missing_argument_fails_with_a_reason() {
    let out = jararaca(&["gen-entity", "2fa", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("must start with a letter"),
        "{}",
        text(&out.stderr)
    );

    let out = jararaca(&["gen-entity", "TaskItem"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(
        text(&out.stderr).contains("FILE_PATH"),
        "{}",
        text(&out.stderr)
    );

    let out = jararaca(&["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("gen-entity"));
}

#[test]
fn new_writes_a_service_and_refuses_a_bad_name_or_a_folder_in_use() {
    let dir = TempDir(std::env::temp_dir().join(jararaca_testing::unique_name("jararaca_new")));
    let path = dir.0.join("orders");
    let path_text = path.to_str().unwrap();

    let out = jararaca(&["new", "orders", "--path", path_text]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("cd {path_text}")),
        "{}",
        text(&out.stderr)
    );
    let manifest = std::fs::read_to_string(path.join("Cargo.toml")).unwrap();
    let published = format!(
        "jararaca = {{ version = \"{}\", features = [",
        env!("CARGO_PKG_VERSION")
    );
    assert!(manifest.contains(&published), "{manifest}");
    assert!(
        !path.join("Cargo.lock").exists(),
        "published crates resolve on their own"
    );
    for file in [
        "src/main.rs",
        "src/lib.rs",
        "tests/api.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(path.join(file).is_file(), "{file}");
    }

    let out = jararaca(&["new", "orders", "--path", path_text]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(path.join("Cargo.toml")).unwrap(),
        manifest
    );

    let other = dir.0.join("other");
    let other_text = other.to_str().unwrap();
    let out = jararaca(&["new", "Orders", "--path", other_text]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("crate names are lower case"),
        "{}",
        text(&out.stderr)
    );
    assert!(!other.exists(), "nothing is written for a bad name");

    let out = jararaca(&[
        "new",
        "orders",
        "--path",
        other_text,
        "--jararaca-path",
        path_text,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a Jararaca checkout"),
        "{}",
        text(&out.stderr)
    );
    let out = jararaca(&[
        "new",
        "orders",
        "--jararaca-path",
        ".",
        "--jararaca-version",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the two sources exclude each other"
    );

    let out = jararaca(&[
        "new",
        "orders",
        "--path",
        other_text,
        "--jararaca-version",
        "0.3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest = std::fs::read_to_string(other.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("jararaca-query = { version = \"0.3\", features = ["),
        "{manifest}"
    );
}
