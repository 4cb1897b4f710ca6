//! Group members as separate OS processes: the test binary run again as
//! `fault_tolerance member <backend> <brokers> <topic> <group> <out-file> <delay-ms>
//! <session-ms>`, where `<backend>` is the backend's test prefix (`kafka_3`, `confluent_4`,
//! `native_3`, `native_4`: [`prefix`](super::prefix)).
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
use std::time::{Duration, Instant};

use godev_kafka::{Consumer, Producer, RunningConsumer, TopicMap, testing};

use super::{
    Handled, TOPIC, backend_named, consumer_settings, now_ms, on_tick, out_line, transport,
    write_to,
};
use crate::support::Backend;

/// The member's `main`: never returns.
pub fn run(args: &[String]) -> ! {
    let usage = || -> ! {
        eprintln!(
            "usage: fault_tolerance member <kafka|confluent> <brokers> <topic> <group> <out-file> <delay-ms> <session-ms>"
        );
        std::process::exit(2);
    };
    let [backend, brokers, topic, group, out, delay_ms, session_ms] = args else {
        usage();
    };
    let Some(backend) = backend_named(backend) else {
        eprintln!("unknown or disabled backend `{backend}`");
        usage();
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
        let transport = transport(
            backend,
            brokers,
            "godev-kafka-fault-member",
            Duration::from_secs(10),
        )
        .await;
        let consumer = Consumer::builder_shared(transport, group.as_str())
            .topics(TopicMap::from_iter([(TOPIC, topic.as_str())]))
            .settings(consumer_settings(backend, session))
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

/// One test's topic and group on a backend's shared broker, and the scratch directory its
/// member processes write to.
#[derive(Debug)]
pub struct Setup {
    pub backend: Backend,
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub partitions: i32,
    /// The members' session timeout.
    pub session: Duration,
    /// Member outputs: a fresh directory under the target dir.
    pub dir: PathBuf,
}

impl Setup {
    /// Creates a topic of `partitions` partitions on `backend`'s broker, names a group, both
    /// unique and after `test`, and makes a scratch directory.
    pub async fn new(backend: Backend, test: &str, partitions: i32, session: Duration) -> Self {
        let brokers = backend.brokers().await;
        let topic = testing::unique_name(&format!("fault-{test}-{}", backend.client()));
        let group = testing::unique_name(&format!("fault-{test}-{}-group", backend.client()));
        testing::create_topic(&brokers, &topic, partitions)
            .await
            .unwrap_or_else(|e| panic!("create topic {topic} on {brokers}: {e}"));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fault")
            .join(testing::unique_name(&format!(
                "{test}-{}",
                backend.client()
            )));
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        Self {
            backend,
            brokers,
            topic,
            group,
            partitions,
            session,
            dir,
        }
    }

    /// Starts member `name` of the group, taking `delay_ms` per record; its output and stderr
    /// go to `dir/<name>.out` / `.err`.
    pub fn spawn(&self, name: &str, delay_ms: u64) -> MemberProcess {
        let out = self.dir.join(format!("{name}.out"));
        let err = std::fs::File::create(self.dir.join(format!("{name}.err"))).expect("stderr file");
        let child = Command::new(std::env::current_exe().expect("own executable"))
            .arg("member")
            .args([
                super::prefix(self.backend),
                &self.brokers,
                &self.topic,
                &self.group,
            ])
            .arg(&out)
            .arg(delay_ms.to_string())
            .arg(self.session.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn a member process");
        MemberProcess {
            name: name.to_owned(),
            out,
            child,
            exit: None,
        }
    }

    /// Waits until `members` share the partitions (see [`balanced`]); panics after
    /// `timeout` with what each member owns.
    pub async fn wait_balanced(&self, what: &str, members: &[&MemberProcess], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !balanced(members, self.partitions) {
            if Instant::now() >= deadline {
                let owned: Vec<String> = members
                    .iter()
                    .map(|m| format!("{} owns {:?}", m.name, m.output().assigned()))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}: {}\n{}",
                    owned.join(", "),
                    stderr_tails(members)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A producer of fault-test events on the topic.
    pub async fn producer(&self) -> Producer {
        super::producer(self.backend.transport(&self.brokers).await, &self.topic)
    }

    /// Removes the scratch directory: call it once the test passed (a failed test keeps it,
    /// for a look at the members' output).
    pub fn clean_up(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERMs `members`, then waits until each exited with success.
pub async fn stop_all(members: &mut [MemberProcess]) {
    for member in members.iter() {
        member.terminate();
    }
    for member in members {
        let (status, _) = member
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{} did not exit within 30 s of SIGTERM", member.name));
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            member.name,
            member.stderr_tail()
        );
    }
}

/// The stderr tails of `members`, for failure messages.
pub fn stderr_tails(members: &[&MemberProcess]) -> String {
    members
        .iter()
        .map(|m| format!("--- {} stderr:\n{}", m.name, m.stderr_tail()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl MemberProcess {
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
            panic!(
                "{} of {} events not handled after {timeout:?}: {}\n{}",
                missing.len(),
                ids.len(),
                super::sample(&missing, 10),
                stderr_tails(members)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
