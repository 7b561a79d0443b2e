//! Each role command's `--help` names the environment variables the service reads in that
//! role: the capabilities', the typed configuration's and the logging ones.

fn help(command: &str) -> String {
    let mut cli = jararaca::cli::command(&quickstart::service(), &[]);
    cli.build();
    cli.find_subcommand_mut(command)
        .unwrap_or_else(|| panic!("no `{command}` command"))
        .render_help()
        .to_string()
}

fn environment(help: &str) -> Vec<String> {
    let section = help
        .split_once("Environment:")
        .unwrap_or_else(|| panic!("no environment section in {help}"))
        .1;
    // A variable's name is indented by two spaces, its description by more.
    section
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn server_help_lists_the_bus_websocket_config_and_log_variables() {
    let server = help("server");
    let vars = environment(&server);
    for var in [
        "BROKER_URL",
        "BACKEND_URL",
        "WEBSOCKET_REDIS_URL",
        "JARARACA_DEFAULT_TIMEZONE",
        "MAX_TASKS",
        "DATABASE_URL",
        "NOTIFIER_URL",
        "RUST_LOG",
    ] {
        assert!(vars.iter().any(|v| v == var), "{var} in {server}");
    }
    // Options show their own variables; the section lists only the others, once each.
    assert!(server.contains("[env: PORT="), "{server}");
    assert!(!vars.iter().any(|v| v == "PORT"), "{server}");
    let mut unique = vars.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), vars.len(), "{server}");
}

#[test]
fn worker_and_beat_help_list_what_those_roles_read() {
    let worker = environment(&help("worker"));
    for var in ["AMQP_PREFETCH_COUNT", "DATABASE_URL", "RUST_LOG"] {
        assert!(worker.iter().any(|v| v == var), "{var} in {worker:?}");
    }
    // The worker takes the broker and the backend as options.
    assert!(!worker.iter().any(|v| v == "BROKER_URL"), "{worker:?}");

    let beat = environment(&help("beat"));
    assert!(
        beat.iter().any(|v| v == "JARARACA_DEFAULT_TIMEZONE"),
        "{beat:?}"
    );
    assert!(!beat.iter().any(|v| v == "AMQP_PREFETCH_COUNT"), "{beat:?}");
}
