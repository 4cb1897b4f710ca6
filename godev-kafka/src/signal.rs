//! Waiting for the signal to stop: SIGTERM (what orchestrators send) or Ctrl-C.

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C); on non-Unix systems, Ctrl-C.
///
/// Pair it with [`Manager::close`](crate::Manager::close) or
/// [`RunningConsumer::shutdown`](crate::RunningConsumer::shutdown) for a graceful stop:
/// fetching stops, in-flight handlers finish, offsets are committed, groups are left.
///
/// # Examples
///
/// ```no_run
/// # async fn run(manager: godev_kafka::Manager) -> godev_kafka::Result<()> {
/// manager.start_all();
/// godev_kafka::shutdown_signal().await.expect("signal handlers install");
/// manager.close().await
/// # }
/// ```
///
/// # Errors
///
/// The signal handlers could not be installed.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
