//! SIGINT and SIGTERM as a value every part of a run can watch.

use tokio::sync::watch;
use tracing::warn;

/// A signal that turns true on SIGINT or SIGTERM; watched from before the first install.
pub fn interrupt_signal() -> watch::Receiver<bool> {
    let (cancel, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        warn!("interrupted: starting no more cases, collecting and cleaning up the running ones");
        let _ = cancel.send(true);
    });
    receiver
}
