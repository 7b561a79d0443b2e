//! The split deployment of `scripts/split-deployment.sh`, started and stopped by a test.

use std::path::PathBuf;
use std::process::Command;

/// A running split deployment: two servers, two workers, a beat.
pub struct Split {
    /// The namespace: vhost, schema, key and channel prefix.
    pub name: String,
    /// The servers' ports.
    pub ports: [u16; 2],
    /// The Redis database it keeps its keys in.
    pub redis_db: u32,
    /// PostgreSQL (its database; the deployment has a schema in it).
    pub postgres: String,
    /// Redis, without a database number.
    pub redis: String,
    /// RabbitMQ, without a virtual host.
    pub amqp: String,
    state: PathBuf,
    stopped: bool,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/split-deployment.sh")
}

fn tool_missing(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .map(|tool| format!("{tool} is not installed"))
}

impl Split {
    /// Starts one named `name` on Redis database `redis_db` with the front end as `web`
    /// (`skip` or `build`) and the workers telling the notifier at `notifier_url`, or `None`
    /// (printing why) when a service or tool it needs is missing — a failure instead under
    /// `JARARACA_REQUIRE_SERVICES`.
    pub fn start(name: &str, redis_db: u32, web: &str, notifier_url: Option<&str>) -> Option<Self> {
        let postgres = jararaca_testing::postgres()?;
        let redis = jararaca_testing::redis()?.trim_end_matches('/').to_owned();
        let amqp = jararaca_testing::rabbitmq()?;
        // The server's URL: the deployment adds its own virtual host.
        let amqp = match amqp.rsplit_once('/') {
            // `amqp://user:pass@host:port/vhost`: the part before the vhost.
            Some((server, _vhost)) if amqp.matches('/').count() > 2 => server.to_owned(),
            _ => amqp,
        };
        if let Some(reason) = tool_missing(&["psql", "redis-cli", "rabbitmqctl", "curl"]) {
            assert!(
                !jararaca_testing::services_required(),
                "{reason}; JARARACA_REQUIRE_SERVICES is set, so this test cannot skip"
            );
            eprintln!("skipping: {reason}");
            return None;
        }
        let ports = [super::free_port(), super::free_port()];
        let state = std::env::temp_dir().join(jararaca_testing::unique_name(name));
        let split = Self {
            name: jararaca_testing::unique_name(name),
            ports,
            redis_db,
            postgres,
            redis,
            amqp,
            state,
            stopped: false,
        };
        let mut start = split.command("start");
        start
            .env("WEB", web)
            .env("TASKS_SERVICE_BIN", env!("CARGO_BIN_EXE_tasks-service"))
            .env_remove("NOTIFIER");
        match notifier_url {
            Some(url) => start.env("NOTIFIER_URL", url),
            None => start.env_remove("NOTIFIER_URL"),
        };
        let status = start.status().expect("bash runs the script");
        assert!(status.success(), "split-deployment.sh start failed");
        Some(split)
    }

    fn command(&self, action: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg(action)
            .env("SPLIT_NAME", &self.name)
            .env("SPLIT_STATE_DIR", &self.state)
            .env("SPLIT_REDIS_DB", self.redis_db.to_string())
            .env("PG_URL", &self.postgres)
            .env("REDIS_HOST_URL", &self.redis)
            .env("AMQP_HOST_URL", &self.amqp)
            .env(
                "SERVER_PORTS",
                format!("{} {}", self.ports[0], self.ports[1]),
            );
        command
    }

    /// `http://127.0.0.1:<port>` of server `i` (0 or 1).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// The process ids by name (`server1`, `worker2`, `beat`, …).
    pub fn pids(&self) -> Vec<(String, u32)> {
        std::fs::read_to_string(self.state.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (name, pid) = line.split_once(' ')?;
                Some((name.to_owned(), pid.parse().ok()?))
            })
            .collect()
    }

    /// The log of process `name`.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// The broker URL of its virtual host.
    pub fn amqp_url(&self) -> String {
        format!("{}/{}", self.amqp, self.name)
    }

    /// Runs `split-deployment.sh stop`; whether it reported a clean stop.
    pub fn stop(&mut self) -> bool {
        self.stopped = true;
        let status = self.command("stop").status().expect("bash runs the script");
        let _ = std::fs::remove_dir_all(&self.state);
        status.success()
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
    }
}

/// Whether process `pid` still runs.
pub fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
