//! The web front end in a real browser against the split deployment: Debian's Chromium,
//! driven by `playwright-core` (`e2e/browser.mjs`), two pages logged in as one user on the
//! two servers. Screenshots go to `<target>/e2e-screenshots/`.
//!
//! Skips, saying why, without Node.js, npm, Chromium or the services; under
//! `JARARACA_REQUIRE_SERVICES=1` it installs Chromium with `scripts/install-chromium.sh`
//! when it is missing, and fails when anything else is.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::split::Split;

/// The Redis database of this test's deployment (the split test uses 9).
const REDIS_DB: u32 = 8;

const CHROMIUM: &str = "/usr/bin/chromium";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn skip(reason: &str) {
    assert!(
        !jararaca_testing::services_required(),
        "{reason}; JARARACA_REQUIRE_SERVICES is set, so this test cannot skip"
    );
    eprintln!("skipping: {reason}");
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(script: &Path) -> bool {
    Command::new("bash")
        .arg(script)
        .status()
        .is_ok_and(|s| s.success())
}

fn screenshots() -> PathBuf {
    // `<target>/tmp` is what cargo gives tests; the screenshots go beside it.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("e2e-screenshots")
}

#[test]
fn two_pages_of_one_user_on_two_servers_see_each_others_changes_live() {
    for tool in ["node", "npm"] {
        if !has(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if !Path::new(CHROMIUM).exists() {
        if !jararaca_testing::services_required() {
            return skip(&format!(
                "{CHROMIUM} is missing (scripts/install-chromium.sh installs Debian's)"
            ));
        }
        assert!(
            run(&crate_dir().join("scripts/install-chromium.sh")),
            "scripts/install-chromium.sh failed"
        );
    }
    assert!(
        run(&crate_dir().join("e2e/setup.sh")),
        "e2e/setup.sh (npm ci of playwright-core) failed"
    );
    // `build` runs scripts/build-web.sh, so the servers serve the front end of this tree.
    let Some(mut split) = Split::start("tasks_e2e", REDIS_DB, "build", None) else {
        return;
    };
    let shots = screenshots();
    let output = Command::new("node")
        .arg("browser.mjs")
        .current_dir(crate_dir().join("e2e"))
        .env("SERVER1_URL", split.url(0))
        .env("SERVER2_URL", split.url(1))
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    let clean = split.stop();
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nserver1 log:\n{}",
        split.log("server1")
    );
    assert!(stdout.contains("browser test passed"), "{stdout}\n{stderr}");
    assert!(clean, "split-deployment.sh stop reported what it left");
    for shot in [
        "1-page-one-logged-in.png",
        "2-page-two-task-arrived.png",
        "5-page-one-logged-out.png",
    ] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
    println!("screenshots in {}", shots.display());
}
