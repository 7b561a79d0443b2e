//! The command line: `jararaca <command> …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::dlq::{Confirm, Dlq};
use crate::{EntityName, Error, Output, next_steps, render_entity};

/// The Jararaca developer tool.
#[derive(Debug, Parser)]
#[command(name = "jararaca", version, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Create a service to start from: an API over an entity, a message handler, a scheduled
    /// action, a WebSocket message, migrations and tests.
    New(crate::New),
    /// Generate a module with an entity, its DTOs, a list filter and a CRUD controller.
    GenEntity(GenEntity),
    /// Inspect and repair the dead-letter queue (`dlq`): stats, list, requeue, purge.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Regenerate the service's TypeScript client (its `gen-tsi`), with --watch on every change.
    GenTsi(crate::gen_tsi::GenTsi),
}

/// `jararaca gen-entity ENTITY_NAME FILE_PATH [--force]`.
#[derive(Debug, Clone, Args)]
pub struct GenEntity {
    /// The entity's name in any case: `TaskItem`, `task_item`, `task-item`.
    #[arg(value_name = "ENTITY_NAME")]
    pub entity_name: String,
    /// Where to write the module (`-` for standard output); missing directories are created.
    #[arg(value_name = "FILE_PATH")]
    pub file_path: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(short, long)]
    pub force: bool,
}

impl GenEntity {
    /// Renders the module and writes it; returns the next steps to tell the user.
    pub fn run(&self) -> Result<String, Error> {
        let name = EntityName::parse(&self.entity_name)?;
        let output = Output::new(&self.file_path, self.force);
        output.write(&render_entity(&name))?;
        Ok(next_steps(&name, &output))
    }
}

impl Cli {
    /// Runs the command; what it reports for the user goes to `report` (standard error in the
    /// binary, so `gen-entity … -` leaves standard output to the module alone), what `dlq`
    /// prints to standard output, and `dlq` asks for confirmation on the terminal.
    pub fn run(&self, report: &mut dyn std::io::Write) -> Result<(), Error> {
        let mut confirm = crate::dlq::confirm_on_terminal;
        self.run_with(&mut std::io::stdout().lock(), report, &mut confirm)
    }

    /// Runs the command with `out` for its output, `report` for hints and `confirm` to ask
    /// before destroying anything.
    pub fn run_with(
        &self,
        out: &mut dyn std::io::Write,
        report: &mut dyn std::io::Write,
        confirm: Confirm<'_>,
    ) -> Result<(), Error> {
        match &self.command {
            Command::New(command) => {
                let message = command.run()?;
                let _ = report.write_all(message.as_bytes());
                Ok(())
            }
            Command::GenEntity(command) => {
                let message = command.run()?;
                // The work is done; failing to print the hint must not turn it into a failure.
                let _ = report.write_all(message.as_bytes());
                Ok(())
            }
            Command::Dlq(command) => command.run(out, confirm),
            Command::GenTsi(command) => command.run(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_parse_as_the_reference_spells_them() {
        let cli = Cli::try_parse_from(["jararaca", "gen-entity", "TaskItem", "src/task_item.rs"])
            .unwrap();
        let Command::GenEntity(command) = cli.command else {
            panic!("not gen-entity");
        };
        assert_eq!(command.entity_name, "TaskItem");
        assert_eq!(command.file_path, PathBuf::from("src/task_item.rs"));
        assert!(!command.force);

        let cli = Cli::try_parse_from(["jararaca", "gen-entity", "--force", "a", "-"]).unwrap();
        let Command::GenEntity(command) = cli.command else {
            panic!("not gen-entity");
        };
        assert!(command.force);

        assert!(Cli::try_parse_from(["jararaca", "gen-entity", "TaskItem"]).is_err());
        assert!(Cli::try_parse_from(["jararaca", "generate"]).is_err());
    }

    #[test]
    fn dlq_options_are_the_reference_ones() {
        let parse = |args: &[&str]| {
            let mut all = vec!["jararaca", "dlq"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|cli| cli.command) {
                Ok(Command::Dlq(command)) => Ok(command),
                Ok(other) => panic!("parsed as {other:?}"),
                Err(e) => Err(e),
            }
        };
        let Ok(Dlq::List(list)) = parse(&["list", "--broker-url", "amqp://h/"]) else {
            panic!("list");
        };
        assert_eq!(list.limit, 10);
        assert!(list.queue.is_none() && !list.show_body && !list.json);
        let Ok(Dlq::List(list)) = parse(&[
            "list",
            "--broker-url",
            "amqp://h/",
            "--limit",
            "3",
            "--queue",
            "orders",
            "--show-body",
            "--json",
        ]) else {
            panic!("list");
        };
        assert_eq!((list.limit, list.queue.as_deref()), (3, Some("orders")));
        assert!(list.show_body && list.json);
        let Ok(Dlq::Requeue(requeue)) = parse(&["requeue", "--broker-url", "amqp://h/", "-f"])
        else {
            panic!("requeue");
        };
        assert!(requeue.force && requeue.limit.is_none());
        let Ok(Dlq::Purge(purge)) = parse(&["purge", "--broker-url", "amqp://h/", "--force"])
        else {
            panic!("purge");
        };
        assert!(purge.force);
        let Ok(Dlq::Stats(stats)) = parse(&["stats", "--broker-url", "amqp://h/", "--json"]) else {
            panic!("stats");
        };
        assert!(stats.json);
    }
}
