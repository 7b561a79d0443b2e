//! The fixture's client compiles with the real `typescript` and `@jararaca/core`, under
//! `--strict` and under the Vite template's flags, beside a file that uses it as an
//! application would.

mod common;

use jararaca_testing::typescript::{MAX, STRICT, VITE, typescript};

#[test]
fn the_fixture_client_compiles_under_strict_and_vite_flags() {
    let Some(ts) = typescript() else { return };
    let dir = ts.work_dir("fixture");
    let client = jararaca_tsgen::generate(&common::fixture()).unwrap();
    std::fs::write(dir.join("fixture.ts"), client).unwrap();
    std::fs::copy("tests/golden/fixture_app.ts", dir.join("fixture_app.ts")).unwrap();
    ts.tsc(
        &dir,
        STRICT,
        &[
            "--allowImportingTsExtensions",
            "fixture.ts",
            "fixture_app.ts",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ts.tsc(&dir, VITE, &["fixture.ts", "fixture_app.ts"])
        .unwrap_or_else(|e| panic!("{e}"));
    ts.tsc(&dir, MAX, &["fixture.ts", "fixture_app.ts"])
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_type_error_in_a_client_is_reported() {
    let Some(ts) = typescript() else { return };
    let dir = ts.work_dir("broken");
    std::fs::write(
        dir.join("broken.ts"),
        "export const n: number = \"text\";\n",
    )
    .unwrap();
    let err = ts.tsc(&dir, STRICT, &["broken.ts"]).unwrap_err();
    assert!(err.contains("TS2322"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
