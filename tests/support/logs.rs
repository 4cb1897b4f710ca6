//! The lines a test process logs (warn and error, or what a filter lets through), captured
//! as text, for tests that check what the framework said and at which level.

use std::sync::{Mutex, OnceLock};

/// What the capture holds; set by the first [`capture_with`].
static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

/// Warn and error lines of the whole process, as text; the first call installs the capture
/// (call it before what should be captured).
pub fn capture() -> &'static Mutex<Vec<u8>> {
    capture_with("warn")
}

/// The lines `filter` (a `tracing` env-filter, e.g. `godev_kafka::transport=debug`) lets
/// through, for the whole process; as [`capture`], and only the first call's filter counts.
pub fn capture_with(filter: &str) -> &'static Mutex<Vec<u8>> {
    LOGS.get_or_init(|| {
        #[derive(Clone, Copy)]
        struct Sink;
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                // Set once the subscriber is installed; nothing logs before that.
                if let Some(logs) = LOGS.get() {
                    logs.lock().unwrap().extend_from_slice(buf);
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| Sink)
            .init();
        Mutex::new(Vec::new())
    })
}

/// The captured lines that mention `group` and `needle`.
pub fn logged(group: &str, needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&capture().lock().unwrap())
        .lines()
        .filter(|l| l.contains(group) && l.contains(needle))
        .map(str::to_owned)
        .collect()
}
