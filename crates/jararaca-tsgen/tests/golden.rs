//! The fixture's client, as a golden file written by `cargo test` (and checked under
//! `CI=true`).

mod common;

#[test]
fn the_fixture_client_matches_its_golden_file() {
    let api = common::fixture();
    jararaca_tsgen::export(&api, "tests/golden/fixture.ts").unwrap_or_else(|e| panic!("{e}"));
    let ts = jararaca_tsgen::generate(&api).unwrap();
    assert_eq!(ts, jararaca_tsgen::generate(&api).unwrap(), "deterministic");
    assert!(!ts.contains("@ts-nocheck"));
}
