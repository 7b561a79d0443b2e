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
