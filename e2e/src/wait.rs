//! Waiting for a condition with a deadline: poll with short sleeps, never sleep and hope.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Ok`, and returns that value. `Err` carries what was observed
/// instead; if `timeout` passes first, this panics naming `what` and the last observation.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(observed) => observed,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}
