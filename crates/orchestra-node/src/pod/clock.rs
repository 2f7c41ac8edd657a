//! The wall clock of the node agent and of [`FakeRuntime`](crate::fake::FakeRuntime), driven by
//! tokio's clock so that paused-time tests are deterministic.
//!
//! Statuses carry wall-clock times (`startedAt`, `finishedAt`), while tests pause tokio's clock
//! and advance it by hand. [`now`] reconciles the two: the wall time taken once per process,
//! plus the tokio time elapsed since. With a running clock this is the wall clock (give or take
//! drift); with a paused clock it moves exactly as the test advances it.

use std::sync::OnceLock;
use std::time::SystemTime;

static BASE: OnceLock<(SystemTime, std::time::Instant)> = OnceLock::new();

/// The current wall-clock time, moving with tokio's clock (see the [module docs](self)).
pub fn now() -> SystemTime {
    let (wall, base) =
        *BASE.get_or_init(|| (SystemTime::now(), tokio::time::Instant::now().into_std()));
    let elapsed = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(base);
    wall + elapsed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time_exactly() {
        let before = super::now();
        tokio::time::sleep(Duration::from_secs(90)).await;
        let after = super::now();
        assert_eq!(
            after.duration_since(before).ok(),
            Some(Duration::from_secs(90))
        );
    }
}
