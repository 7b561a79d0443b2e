//! TypeScript generation as a capability: the `gen-tsi` command.

use clap::{Arg, ArgAction, ArgMatches};
use futures_util::future::BoxFuture;
use jararaca_api::{ApiDescription, TypeInfo};
use jararaca_di::{
    BoxError, BuildContext, Capabilities, Capability, CommandSpec, Contribution, Part, Role, Stop,
    ToolContext,
};
use schemars::JsonSchema;
use ts_rs::TS;

use crate::{Options, TsGenError};

/// The capability that adds `gen-tsi` to a service's CLI, the reference's command with its
/// options:
///
/// * `gen-tsi FILE_PATH` writes the client to `FILE_PATH`;
/// * `--stdout` prints it instead;
/// * `--post-process "prettier --write {file}"` runs a shell command on the written file
///   (`{file}` is replaced by its path, quoted);
///
/// and exits with a failure status on any error (the reference exits 0).
///
/// ```
/// use jararaca_di::{Capabilities, Contribution};
/// use jararaca_tsgen::TypeScript;
///
/// let mut capabilities = Capabilities::default();
/// TypeScript::new().contribute(&mut capabilities);
/// assert!(capabilities.command_owner("gen-tsi").is_some());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TypeScript {
    options: Options,
    exposed: Vec<TypeInfo>,
}

impl TypeScript {
    /// The capability with the default [`Options`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Generates with `options`.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Exports `T` although no route mentions it (the reference's `ExposeType`): a bus
    /// message, a type the front end builds itself.
    pub fn expose<T: JsonSchema + TS + 'static>(mut self) -> Self {
        self.exposed.push(TypeInfo::of::<T>());
        self
    }
}

impl Contribution for TypeScript {
    fn contribute(self, capabilities: &mut Capabilities) {
        capabilities.insert(self);
    }
}

fn gen_tsi_command() -> clap::Command {
    clap::Command::new("gen-tsi")
        .about("Generate the TypeScript client (interfaces, one HttpService class per controller, hooks) for @jararaca/core")
        .arg(
            Arg::new("file-path")
                .value_name("FILE_PATH")
                .required_unless_present("stdout")
                .help("Where to write the .ts file"),
        )
        .arg(
            Arg::new("stdout")
                .long("stdout")
                .action(ArgAction::SetTrue)
                .conflicts_with_all(["file-path", "post-process"])
                .help("Print the client instead of writing it"),
        )
        .arg(
            Arg::new("post-process")
                .long("post-process")
                .value_name("CMD")
                .help("A shell command to run on the written file; {file} is replaced by its path"),
        )
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn post_process(command: &str, file: &str) -> Result<(), TsGenError> {
    let command = command.replace("{file}", &shell_quote(file));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status()
        .map_err(|e| TsGenError::PostProcess {
            command: command.clone(),
            outcome: format!("could not start: {e}"),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(TsGenError::PostProcess {
            command,
            outcome: format!("failed ({status})"),
        })
    }
}

/// Runs `gen-tsi` as `matches` says, for `api`.
pub(crate) fn gen_tsi(
    api: &ApiDescription,
    options: &Options,
    matches: &ArgMatches,
) -> Result<(), TsGenError> {
    let text = crate::generate_with(api, options)?;
    if matches.get_flag("stdout") {
        print!("{text}");
        return Ok(());
    }
    let Some(path) = matches.get_one::<String>("file-path") else {
        return Err(TsGenError::Name(
            "gen-tsi needs a FILE_PATH (or --stdout)".into(),
        ));
    };
    crate::file::write(std::path::Path::new(path), &text)?;
    if let Some(command) = matches.get_one::<String>("post-process") {
        post_process(command, path)?;
    }
    Ok(())
}

/// Nothing to run in any role: the capability only adds a command.
#[derive(Debug)]
struct Idle;

impl Part for Idle {
    fn run(&self, _role: &Role, _stop: Stop) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        None
    }
}

impl Capability for TypeScript {
    fn name(&self) -> &'static str {
        "tsgen"
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec::tool(gen_tsi_command())]
    }

    fn describe(&self, api: &mut ApiDescription) {
        api.exposed_types.extend(self.exposed.iter().copied());
    }

    fn build(
        self: Box<Self>,
        _cx: BuildContext,
    ) -> BoxFuture<'static, Result<Box<dyn Part>, BoxError>> {
        Box::pin(async { Ok(Box::new(Idle) as Box<dyn Part>) })
    }

    fn run_tool<'a>(
        &'a self,
        command: &'a str,
        matches: &'a ArgMatches,
        cx: ToolContext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        let result: Result<(), BoxError> = match command {
            "gen-tsi" => gen_tsi(cx.description, &self.options, matches).map_err(Into::into),
            other => Err(format!("tsgen has no command `{other}`").into()),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a b.ts"), "'a b.ts'");
        assert_eq!(shell_quote("it's.ts"), r"'it'\''s.ts'");
    }

    #[test]
    fn stdout_excludes_a_file_and_post_processing() {
        let cmd = gen_tsi_command();
        assert!(cmd.clone().try_get_matches_from(["gen-tsi"]).is_err());
        assert!(
            cmd.clone()
                .try_get_matches_from(["gen-tsi", "--stdout"])
                .is_ok()
        );
        assert!(
            cmd.clone()
                .try_get_matches_from(["gen-tsi", "--stdout", "--post-process", "x"])
                .is_err()
        );
        assert!(cmd.try_get_matches_from(["gen-tsi", "a.ts"]).is_ok());
    }
}
