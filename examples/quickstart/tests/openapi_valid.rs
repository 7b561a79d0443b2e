//! The OpenAPI document passes an independent validator: `openapi-spec-validator` from PyPI,
//! installed into a virtualenv under the target directory on first use.
//!
//! Skips (printing why) when Python or the package index is unavailable, unless
//! `JARARACA_REQUIRE_SERVICES=1`.

use std::path::Path;
use std::process::Command;

#[path = "support/python.rs"]
mod python;

#[test]
fn the_openapi_document_is_valid_openapi_3_1() {
    let python = match python::venv("openapi-validator-venv", "openapi-spec-validator==0.7.*\n") {
        Ok(bin) => bin.join("python"),
        Err(reason) => return python::skip_or_fail(format!("no OpenAPI validator: {reason}")),
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
