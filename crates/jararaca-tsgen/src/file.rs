//! Writing the client to a file: from a `#[test]` during `cargo test`, or from `gen-tsi`.

use std::path::{Path, PathBuf};

use jararaca_api::ApiDescription;

use crate::{Options, TsGenError};

/// What [`export`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file already held this client.
    Unchanged,
    /// The file was written (created or updated).
    Updated,
}

/// Writes the client of `api` to `path` unless it already holds it, the ts-rs way: call it
/// from a one-line `#[test]` in the service and commit the file.
///
/// When the environment variable `CI` is set (to anything but `false` or `0`), a file that
/// differs is not written: the call fails with [`TsGenError::Stale`], so a CI run catches a
/// client that was not regenerated and committed.
///
/// ```no_run
/// # fn service() -> jararaca_api::ApiDescription { unimplemented!() }
/// #[test]
/// fn the_typescript_client_is_up_to_date() {
///     jararaca_tsgen::export(&service(), "client/api.ts").unwrap_or_else(|e| panic!("{e}"));
/// }
/// ```
pub fn export(api: &ApiDescription, path: impl AsRef<Path>) -> Result<Written, TsGenError> {
    export_with(api, &Options::default(), path)
}

/// [`export`] with options.
pub fn export_with(
    api: &ApiDescription,
    options: &Options,
    path: impl AsRef<Path>,
) -> Result<Written, TsGenError> {
    let path = path.as_ref();
    let text = crate::generate_with(api, options)?;
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "false" | "0"));
    write_if_changed(path, &text, ci)
}

pub(crate) fn write_if_changed(
    path: &Path,
    text: &str,
    forbid_changes: bool,
) -> Result<Written, TsGenError> {
    match std::fs::read_to_string(path) {
        Ok(existing) if existing == text => return Ok(Written::Unchanged),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TsGenError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    }
    if forbid_changes {
        return Err(TsGenError::Stale(path.to_owned()));
    }
    write(path, text)?;
    Ok(Written::Updated)
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), TsGenError> {
    let io = |source| TsGenError::Io {
        action: "write",
        path: PathBuf::from(path),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_file_is_an_error_when_changes_are_forbidden() {
        let dir = std::env::temp_dir().join(format!("jararaca-tsgen-{}", std::process::id()));
        let path = dir.join("nested/client.ts");
        assert_eq!(
            write_if_changed(&path, "a", false).unwrap(),
            Written::Updated
        );
        assert_eq!(
            write_if_changed(&path, "a", true).unwrap(),
            Written::Unchanged
        );
        let err = write_if_changed(&path, "b", true).unwrap_err();
        assert!(matches!(err, TsGenError::Stale(_)), "{err}");
        assert!(err.to_string().contains("run `cargo test` without CI=true"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a");
        assert_eq!(
            write_if_changed(&path, "b", false).unwrap(),
            Written::Updated
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
