//! The command line: `jararaca <command> …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Generate a module with an entity, its DTOs, a list filter and a CRUD controller.
    GenEntity(GenEntity),
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
    /// binary, so `gen-entity … -` leaves standard output to the module alone).
    pub fn run(&self, report: &mut dyn std::io::Write) -> Result<(), Error> {
        let message = match &self.command {
            Command::GenEntity(command) => command.run()?,
        };
        // The work is done; failing to print the hint must not turn it into a failure.
        let _ = report.write_all(message.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_parse_as_the_reference_spells_them() {
        let cli = Cli::try_parse_from(["jararaca", "gen-entity", "TaskItem", "src/task_item.rs"])
            .unwrap();
        let Command::GenEntity(command) = cli.command;
        assert_eq!(command.entity_name, "TaskItem");
        assert_eq!(command.file_path, PathBuf::from("src/task_item.rs"));
        assert!(!command.force);

        let cli = Cli::try_parse_from(["jararaca", "gen-entity", "--force", "a", "-"]).unwrap();
        let Command::GenEntity(command) = cli.command;
        assert!(command.force);

        assert!(Cli::try_parse_from(["jararaca", "gen-entity", "TaskItem"]).is_err());
        assert!(Cli::try_parse_from(["jararaca", "generate"]).is_err());
    }
}
