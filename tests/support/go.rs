//! The Go program of `interop/go` (segmentio/kafka-go, the Go kit's library), built for the
//! tests that run it as a peer.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Builds `interop/go` once per test binary into the target directory, with a deadline;
/// panics when Go is missing.
pub fn go_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let output = exe.ancestors().nth(2).unwrap().join("godev-kit-interop-go");
            let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/go");
            let mut child = Command::new("go")
                .args(["build", "-o"])
                .arg(&output)
                .arg(".")
                .current_dir(&source)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("Go is required for the interop tests (https://go.dev/dl/): `go`: {e}")
                });
            let deadline = Instant::now() + Duration::from_secs(300);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("go build of interop/go took more than 300 s");
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(status.success(), "go build of interop/go failed");
            output
        })
        .clone()
}
