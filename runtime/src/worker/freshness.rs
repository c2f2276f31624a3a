//! Freshness and the availability SLI: one evaluation per second, good when freshness is
//! within the product's SLO. Freshness is the age of the oldest record consumed but not yet
//! visible in the table; with nothing pending it is the time since the last commit while the
//! consumer still lags, and 0 when caught up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What freshness is computed from, shared between the worker loop and the SLA ticker.
pub struct FreshnessState {
    /// When the oldest uncommitted record was consumed.
    pub oldest_pending: Mutex<Option<Instant>>,
    /// When the last commit became visible (or the worker started).
    pub last_commit: Mutex<Instant>,
}

impl Default for FreshnessState {
    fn default() -> Self {
        Self {
            oldest_pending: Mutex::new(None),
            last_commit: Mutex::new(Instant::now()),
        }
    }
}

impl FreshnessState {
    /// Freshness in seconds given the current consumer lag and since when an input partition
    /// has been unreachable (then the worker cannot see what it misses: at least that long).
    pub fn seconds(&self, lag: i64, blind_since: Option<Instant>) -> f64 {
        let now = Instant::now();
        let blind = blind_since.map_or(0.0, |b| now.saturating_duration_since(b).as_secs_f64());
        if let Some(oldest) = self.oldest_pending.lock().ok().and_then(|o| *o) {
            return now
                .saturating_duration_since(oldest)
                .as_secs_f64()
                .max(blind);
        }
        if lag > 0 {
            let last = self.last_commit.lock().map(|l| *l).unwrap_or(now);
            return now.saturating_duration_since(last).as_secs_f64().max(blind);
        }
        blind
    }

    /// Marks records as pending (keeps the oldest).
    pub fn pending_since(&self, at: Instant) {
        if let Ok(mut o) = self.oldest_pending.lock() {
            o.get_or_insert(at);
        }
    }

    /// Everything pending became visible (or was dropped for re-reading).
    pub fn committed(&self) {
        if let Ok(mut o) = self.oldest_pending.lock() {
            *o = None;
        }
        if let Ok(mut l) = self.last_commit.lock() {
            *l = Instant::now();
        }
    }
}

/// One evaluation: whether this freshness meets the SLO.
pub fn is_good(freshness: f64, slo: Duration) -> bool {
    freshness <= slo.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_follows_pending_and_lag() {
        let s = FreshnessState::default();
        assert_eq!(s.seconds(0, None), 0.0);
        s.pending_since(Instant::now() - Duration::from_secs(5));
        s.pending_since(Instant::now());
        assert!(s.seconds(0, None) >= 5.0);
        s.committed();
        assert_eq!(s.seconds(0, None), 0.0);
        assert!(s.seconds(10, None) >= 0.0);
        let outage = Instant::now() - Duration::from_secs(30);
        assert!(s.seconds(0, Some(outage)) >= 30.0);
        assert!(is_good(1.0, Duration::from_secs(900)));
        assert!(!is_good(901.0, Duration::from_secs(900)));
    }
}
