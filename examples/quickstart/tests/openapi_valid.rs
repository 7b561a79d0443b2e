//! The OpenAPI document passes an independent validator: `openapi-spec-validator` from PyPI,
//! installed into a virtualenv under the target directory on first use.
//!
//! Skips (printing why) when Python or the package index is unavailable, unless
//! `JARARACA_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn skip_or_fail(reason: String) {
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

/// A virtualenv with the validator, made once and reused.
fn validator(dir: &Path) -> Result<PathBuf, String> {
    let python = dir.join("bin").join("python");
    if Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(python);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "openapi-spec-validator==0.7.*",
    ]))?;
    Ok(python)
}

#[test]
fn the_openapi_document_is_valid_openapi_3_1() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-validator-venv");
    let python = match validator(&dir) {
        Ok(python) => python,
        Err(reason) => return skip_or_fail(format!("no OpenAPI validator: {reason}")),
    };
    let spec = Path::new(env!("CARGO_TARGET_TMPDIR")).join("quickstart-openapi.json");
    std::fs::write(
        &spec,
        jararaca::http::openapi::document(&quickstart::service().api()).to_string(),
    )
    .unwrap();
    let output = Command::new(&python)
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the document is not valid OpenAPI 3.1:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
