//! Group members as separate OS processes: the test binary run again as
//! `fault_tolerance member <brokers> <topic> <group> <out-file> <delay-ms> <session-ms>`.
//!
//! A member runs a [`Consumer`] with [`on_tick`](super::on_tick) until SIGTERM
//! ([`godev_kafka::shutdown_signal`]), then [`RunningConsumer::shutdown`]. It appends to its
//! output file, one line per write:
//!
//! - `R <ms>`: running, signal handlers installed;
//! - `A <ms> <p,p,...>`: its assignment changed (empty: none);
//! - `H <ms> <partition> <offset> <id>`: a record handled;
//! - `T <ms>`: SIGTERM received; `S <ms> ok|<error>`: shutdown finished.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use godev_kafka::transport::kafka::{KafkaOptions, KafkaTransport};
use godev_kafka::{Consumer, RunningConsumer, TopicMap};

use super::{Handled, TOPIC, consumer_settings, now_ms, on_tick, out_line, write_to};

/// The member's `main`: never returns.
pub fn run(args: &[String]) -> ! {
    let [brokers, topic, group, out, delay_ms, session_ms] = args else {
        eprintln!(
            "usage: fault_tolerance member <brokers> <topic> <group> <out-file> <delay-ms> <session-ms>"
        );
        std::process::exit(2);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("open the output file");
    write_to(file, delay_ms.parse().expect("delay-ms"));
    let session = Duration::from_millis(session_ms.parse().expect("session-ms"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async {
        let mut options = KafkaOptions::new(brokers.split(','));
        options.client_id = "godev-kafka-fault-member".into();
        options.request_timeout = Duration::from_secs(10);
        let transport = Arc::new(KafkaTransport::connect(options).await.expect("connect"));
        let consumer = Consumer::builder_shared(transport, group.as_str())
            .topics(TopicMap::from_iter([(TOPIC, topic.as_str())]))
            .settings(consumer_settings(session))
            .handler::<on_tick>()
            .build()
            .expect("build the consumer");
        let running = consumer.start();
        serve(&running).await;
        out_line(format!("T {}", now_ms()));
        match running.shutdown().await {
            Ok(()) => {
                out_line(format!("S {} ok", now_ms()));
                0
            }
            Err(error) => {
                out_line(format!("S {} {error}", now_ms()));
                1
            }
        }
    });
    std::process::exit(code)
}

/// Reports assignment changes until SIGTERM (or Ctrl-C).
async fn serve(running: &RunningConsumer) {
    let mut signal = std::pin::pin!(godev_kafka::shutdown_signal());
    let mut ready = false;
    let mut last: Option<Vec<i32>> = None;
    loop {
        tokio::select! {
            biased;
            // Polled first, so the handlers are installed before `R` is written.
            result = &mut signal => {
                result.expect("install signal handlers");
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if !ready {
            out_line(format!("R {}", now_ms()));
            ready = true;
        }
        let assigned: Vec<i32> = running
            .status()
            .iter()
            .flat_map(|g| g.assigned.iter().map(|tp| tp.partition))
            .collect();
        if last.as_ref() != Some(&assigned) {
            let list: Vec<String> = assigned.iter().map(ToString::to_string).collect();
            out_line(format!("A {} {}", now_ms(), list.join(",")));
            last = Some(assigned);
        }
        assert!(!running.has_stopped(), "the consumer stopped on its own");
    }
}

/// What a member process wrote.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub ready: Option<u64>,
    /// (time, partitions) of every assignment change.
    pub assignments: Vec<(u64, Vec<i32>)>,
    /// (time, record).
    pub handled: Vec<(u64, Handled)>,
    pub term: Option<u64>,
    pub stopped: Option<(u64, String)>,
}

impl Output {
    /// Parses `path` (missing: empty; a torn last line is ignored).
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut out = Output::default();
        for line in text.lines() {
            let mut words = line.splitn(3, ' ');
            let (Some(kind), Some(ms)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(ms) = ms.parse::<u64>() else { continue };
            let rest = words.next().unwrap_or("");
            match kind {
                "R" => out.ready = Some(ms),
                "A" => out.assignments.push((
                    ms,
                    rest.split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse().expect("partition"))
                        .collect(),
                )),
                "H" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    if let [p, o, id] = f[..]
                        && let (Ok(partition), Ok(offset), Ok(id)) =
                            (p.parse(), o.parse(), id.parse())
                    {
                        out.handled.push((
                            ms,
                            Handled {
                                partition,
                                offset,
                                id,
                            },
                        ));
                    }
                }
                "T" => out.term = Some(ms),
                "S" => out.stopped = Some((ms, rest.to_owned())),
                _ => {}
            }
        }
        out
    }

    /// The latest assignment (empty before the first).
    pub fn assigned(&self) -> Vec<i32> {
        self.assignments
            .last()
            .map(|(_, ps)| ps.clone())
            .unwrap_or_default()
    }
}

/// A running member process; SIGKILLed on drop if still alive.
#[derive(Debug)]
pub struct MemberProcess {
    pub name: String,
    pub out: PathBuf,
    child: Child,
    exit: Option<ExitStatus>,
}

/// Where member outputs go: a fresh directory under the target dir.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fault")
        .join(godev_kafka::testing::unique_name(test));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    dir
}

impl MemberProcess {
    /// Starts member `name` of `group`; output and stderr go to `dir/<name>.out` / `.err`.
    pub fn spawn(
        dir: &Path,
        name: &str,
        brokers: &str,
        topic: &str,
        group: &str,
        delay_ms: u64,
        session: Duration,
    ) -> Self {
        let out = dir.join(format!("{name}.out"));
        let err = std::fs::File::create(dir.join(format!("{name}.err"))).expect("stderr file");
        let child = Command::new(std::env::current_exe().expect("own executable"))
            .arg("member")
            .args([brokers, topic, group])
            .arg(&out)
            .arg(delay_ms.to_string())
            .arg(session.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn a member process");
        Self {
            name: name.to_owned(),
            out,
            child,
            exit: None,
        }
    }

    /// What it wrote so far.
    pub fn output(&self) -> Output {
        Output::read(&self.out)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// SIGKILL, and reap.
    pub fn crash(&mut self) {
        self.child.kill().expect("SIGKILL the member");
        self.exit = Some(self.child.wait().expect("reap the member"));
    }

    /// Whether it exited (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits for the exit until `timeout`; answers the status and how long it took.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.exited() {
                return Some((status, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The last lines of its stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every record handled by `members`, in no particular order.
pub fn all_handled(members: &[&MemberProcess]) -> Vec<Handled> {
    members
        .iter()
        .flat_map(|m| m.output().handled.into_iter().map(|(_, h)| h))
        .collect()
}

/// Whether `members` (their latest assignments) each own some partitions and together own
/// each of `partitions` exactly once.
pub fn balanced(members: &[&MemberProcess], partitions: i32) -> bool {
    let mut owned: Vec<i32> = Vec::new();
    for member in members {
        let assigned = member.output().assigned();
        if assigned.is_empty() {
            return false;
        }
        owned.extend(assigned);
    }
    owned.sort_unstable();
    owned == (0..partitions).collect::<Vec<_>>()
}

/// Waits until `members` handled every event of `ids`; panics after `timeout` naming what is
/// missing.
pub async fn wait_handled(
    members: &[&MemberProcess],
    ids: &std::collections::BTreeSet<u64>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen: std::collections::BTreeSet<u64> =
            all_handled(members).into_iter().map(|h| h.id).collect();
        let missing: Vec<u64> = ids.difference(&seen).copied().collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let tails: Vec<String> = members
                .iter()
                .map(|m| format!("--- {} stderr:\n{}", m.name, m.stderr_tail()))
                .collect();
            panic!(
                "{} of {} events not handled after {timeout:?}: {}\n{}",
                missing.len(),
                ids.len(),
                super::sample(&missing, 10),
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
