//! A broker of one test's own (Kafka 3.9 or 4), on a dedicated port, that the test may crash
//! or restart (the fault tests, and a hostile member that leaves a group wedged in the broker).
//!
//! `dev/kafka start` formats fresh storage; `kill` SIGKILLs the broker's process group;
//! `start --keep-data` restarts it on the same KRaft log, so topics, records and committed
//! offsets survive as they would a real crash. The guard stops the broker when dropped, also
//! when the test panics. Only one such broker runs at a time (the machine has two cores), and
//! only one process uses the port (a lock file).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::support;

/// Held while a test of this process owns a crashable broker.
static BROKER: Mutex<()> = Mutex::new(());

/// A broker on a dedicated port; stopped on drop.
#[derive(Debug)]
pub struct OwnBroker {
    /// `dev/kafka`'s `--version`: `3.9` or `4`.
    version: &'static str,
    port: u16,
    address: String,
    _port_lock: PortLock,
    _serial: MutexGuard<'static, ()>,
}

/// Keeps other processes (a second `cargo test` on the machine) off the dedicated port: a
/// lock file holding the owner's pid, taken over when that process is gone.
#[derive(Debug)]
struct PortLock(PathBuf);

impl PortLock {
    fn take(port: u16) -> Self {
        let path = std::env::temp_dir().join(format!("godev-kafka-fault-{port}.lock"));
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id()).expect("write the lock file");
                    return Self(path);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner.trim().parse::<u32>().is_ok_and(|pid| {
                        pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
                    });
                    if !alive && !owner.is_empty() {
                        // Its owner died without cleaning up.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "port {port} stayed locked by pid {owner} ({})",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("lock file {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for PortLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `dev/kafka args...`; answers stdout, or panics with its stderr.
pub fn dev_kafka(args: &[&str]) -> String {
    let output = Command::new(support::dev_kafka())
        .args(args)
        .output()
        .expect("run dev/kafka");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dev/kafka {} failed:\n{stderr}",
        args.join(" ")
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl OwnBroker {
    /// Starts Kafka `version` (`dev/kafka`'s `--version`: `3.9` or `4`) on `port` (never
    /// 9092/9094: other tests use those) with fresh storage; a broker left on the port by an
    /// aborted run is stopped first.
    pub fn start(version: &'static str, port: u16) -> Self {
        assert!(
            port != 9092 && port != 9094,
            "the shared test brokers live there"
        );
        let serial = BROKER.lock().unwrap_or_else(PoisonError::into_inner);
        let port_lock = PortLock::take(port);
        let p = port.to_string();
        dev_kafka(&["stop", "--port", &p]);
        let started = Instant::now();
        let address = dev_kafka(&["start", "--version", version, "--port", &p]);
        eprintln!(
            "own broker {address} started in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Self {
            version,
            port,
            address,
            _port_lock: port_lock,
            _serial: serial,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// SIGKILLs the broker (blocking; run it off the async workers).
    pub fn kill(&self) {
        dev_kafka(&["kill", "--port", &self.port.to_string()]);
    }

    /// Starts the broker again on its data (blocking); returns once it answers metadata.
    pub fn restart(&self) -> Duration {
        let started = Instant::now();
        dev_kafka(&[
            "start",
            "--version",
            self.version,
            "--port",
            &self.port.to_string(),
            "--keep-data",
            "--timeout",
            "90",
        ]);
        started.elapsed()
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(support::dev_kafka())
            .args(["stop", "--port", &self.port.to_string()])
            .output();
    }
}
