//! The pinned TypeScript toolchain (`crates/jararaca-tsgen/ts`: `typescript`,
//! `@jararaca/core`, `axios`), for tests that compile and run generated clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `tsc --strict` as the generated clients promise it (ES2022, bundler resolution).
pub const STRICT: &[&str] = &[
    "--noEmit",
    "--strict",
    "--target",
    "ES2022",
    "--lib",
    "ES2022,DOM,DOM.Iterable",
    "--module",
    "ESNext",
    "--moduleResolution",
    "bundler",
    "--skipLibCheck",
];

/// The flags of the create-vite react-ts template (`tsconfig.app.json`).
pub const VITE: &[&str] = &[
    "--noEmit",
    "--strict",
    "--target",
    "ES2022",
    "--lib",
    "ES2022,DOM,DOM.Iterable",
    "--module",
    "ESNext",
    "--moduleResolution",
    "bundler",
    "--skipLibCheck",
    "--allowImportingTsExtensions",
    "--verbatimModuleSyntax",
    "--moduleDetection",
    "force",
    "--jsx",
    "react-jsx",
    "--erasableSyntaxOnly",
    "--noUnusedLocals",
    "--noUnusedParameters",
    "--noFallthroughCasesInSwitch",
    "--noUncheckedSideEffectImports",
];

/// The Vite flags and the strictest others: `exactOptionalPropertyTypes`,
/// `noUncheckedIndexedAccess`, `noImplicitOverride`, `noPropertyAccessFromIndexSignature`.
pub const MAX: &[&str] = &[
    "--noEmit",
    "--strict",
    "--target",
    "ES2022",
    "--lib",
    "ES2022,DOM,DOM.Iterable",
    "--module",
    "ESNext",
    "--moduleResolution",
    "bundler",
    "--skipLibCheck",
    "--allowImportingTsExtensions",
    "--verbatimModuleSyntax",
    "--erasableSyntaxOnly",
    "--noUnusedLocals",
    "--noUnusedParameters",
    "--exactOptionalPropertyTypes",
    "--noUncheckedIndexedAccess",
    "--noImplicitOverride",
    "--noPropertyAccessFromIndexSignature",
];

/// The npm packages of `crates/jararaca-tsgen/ts`, installed.
#[derive(Debug, Clone)]
pub struct TypeScript {
    dir: PathBuf,
}

fn skip(reason: String) -> Option<TypeScript> {
    if crate::services_required() {
        panic!(
            "{reason}; {} is set, so this test cannot skip",
            crate::REQUIRE_SERVICES
        );
    }
    eprintln!("skipping: {reason}");
    None
}

fn works(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The toolchain, installed by `setup.sh` from the lockfile if it is not yet. When `node` or
/// `npm` is missing or the install fails, prints why and returns `None`, or panics if
/// [`services_required`](crate::services_required).
pub fn typescript() -> Option<TypeScript> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jararaca-tsgen/ts");
    let dir = match dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) => return skip(format!("{} is missing: {e}", dir.display())),
    };
    if !works("node") || !works("npm") {
        return skip("node and npm are not installed (apt-get install nodejs npm)".into());
    }
    let tsc = dir.join("node_modules/.bin/tsc");
    if !tsc.exists() {
        // One install at a time: test binaries run in parallel.
        let lock = dir.join(".install-lock");
        let mut waited = 0;
        while std::fs::create_dir(&lock).is_err() {
            std::thread::sleep(Duration::from_millis(200));
            waited += 1;
            if waited > 1500 {
                return skip(format!(
                    "{} is held by another install (remove it if none runs)",
                    lock.display()
                ));
            }
        }
        let result = if tsc.exists() {
            Ok(())
        } else {
            Command::new("bash")
                .arg(dir.join("setup.sh"))
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).into_owned())
                    }
                })
        };
        let _ = std::fs::remove_dir(&lock);
        if let Err(e) = result {
            return skip(format!("the npm install of {} failed: {e}", dir.display()));
        }
    }
    Some(TypeScript { dir })
}

impl TypeScript {
    /// The folder of `package.json` and `node_modules`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh folder inside the toolchain's (so that imports of `@jararaca/core` and
    /// `axios` resolve), named after `name`.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.dir.join(".work").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the toolchain's folder is writable");
        dir
    }

    /// Runs `tsc` with `flags` on `files` (relative to `dir` or absolute) from `dir`;
    /// `Err` holds its diagnostics.
    pub fn tsc(&self, dir: &Path, flags: &[&str], files: &[&str]) -> Result<(), String> {
        let output = Command::new(self.dir.join("node_modules/.bin/tsc"))
            .current_dir(dir)
            .args(flags)
            .args(files)
            .output()
            .map_err(|e| format!("cannot run tsc: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tsc {} {} failed:\n{}{}",
                flags.join(" "),
                files.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Runs `node script` from `dir` with `env` added.
    pub fn node(&self, dir: &Path, script: &str, env: &[(&str, &str)]) -> Output {
        Command::new("node")
            .current_dir(dir)
            .arg(script)
            .envs(env.iter().copied())
            .output()
            .expect("node runs")
    }
}
