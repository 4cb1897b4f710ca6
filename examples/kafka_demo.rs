//! Run: `cargo run --example kafka_demo` (Kafka from `config/config.toml`) or `cargo run --example kafka_demo -- --memory` (nothing installed; also `KAFKA_CLIENT=memory`).
//!
//! The Go kit's `examples/kafka_demo.go`: register the user and translation consumers, start
//! them, produce `user.created`, `user.updated`, `user.deleted` for user 1, then
//! `translation.requested` and `translation.completed` (en → es), then a raw message to
//! `custom-topic` keyed `custom-key`; wait until the five events were handled; close.
//!
//! Flags: `--memory`, `--config <path>` (default: the repository's `config/config.toml`).
//! Environment: any `KAFKA_*` key of the config (`KAFKA_BROKERS`, `KAFKA_GROUP_ID`,
//! `KAFKA_TOPICS_USER_EVENTS`, ...); `RUST_LOG` for logs on stderr (default: this app's
//! info logs, which carry no personal data). Exit status: 0 when the five events were
//! handled, 1 when the demo failed, 2 for bad flags, config or an unreachable broker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use godev_kit::demo::{self, DemoOptions};

/// How long connecting (and creating the demo's topics) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "godev_kit=info,warn".into()),
        )
        .init();

    let mut memory = false;
    let mut config_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/config.toml");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--memory" => memory = true,
            "--config" => match args.next() {
                Some(path) => config_path = path.into(),
                None => return usage("--config needs a path"),
            },
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }

    let config = match demo::load_config(&config_path, memory, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", demo::backend_line(&config));

    let options = DemoOptions::default();
    let repo = match demo::connect(&config, &options, CONNECT_TIMEOUT).await {
        Ok(repo) => repo,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match demo::run(repo, &options, &mut |line| println!("{line}")).await {
        Ok(report) => {
            println!("done: {} events handled", report.handled.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("error: {problem}\nusage: kafka_demo [--memory] [--config <path>]");
    ExitCode::from(2)
}
