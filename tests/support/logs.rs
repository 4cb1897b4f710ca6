//! The warn and error lines a test process logs, captured as text, for tests that check what
//! the framework said and at which level.

use std::sync::{Mutex, OnceLock};

/// Warn and error lines of the whole process, as text; the first call installs the capture
/// (call it before what should be captured).
pub fn capture() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        #[derive(Clone, Copy)]
        struct Sink;
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                capture().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
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
