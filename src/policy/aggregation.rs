//! Aggregation bookkeeping of the controller: pure, time passed in.
//!
//! The first update notice opens a window of `window`; when it closes, every host that announced
//! an update is pulled. The view is *stale* from the first unpulled notice until every pull of
//! the window has been applied: the seed's "availability" is the fraction of time it is not.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Aggregator {
    window: Duration,
    open: bool,
    pending: BTreeSet<String>,
    in_flight: usize,
    stale_since: Option<Instant>,
    stale_total: Duration,
}

impl Aggregator {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            open: false,
            pending: BTreeSet::new(),
            in_flight: 0,
            stale_since: None,
            stale_total: Duration::ZERO,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Changes the window; an open window keeps the length it was opened with.
    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// Records a host's notice. Returns the delay after which to close the window when this
    /// notice opened one.
    pub fn notice(&mut self, host: &str, now: Instant) -> Option<Duration> {
        self.pending.insert(host.to_owned());
        self.stale_since.get_or_insert(now);
        if self.open {
            return None;
        }
        self.open = true;
        Some(self.window)
    }

    /// Closes the window: returns the hosts to pull, now counted as in flight.
    pub fn close(&mut self) -> Vec<String> {
        self.open = false;
        let hosts: Vec<String> = std::mem::take(&mut self.pending).into_iter().collect();
        self.in_flight += hosts.len();
        hosts
    }

    /// One pull of a closed window ended (applied or failed).
    pub fn pulled(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0
            && self.pending.is_empty()
            && let Some(since) = self.stale_since.take()
        {
            self.stale_total += now.saturating_duration_since(since);
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Total time the view was stale, including the current stale period.
    pub fn stale_time(&self, now: Instant) -> Duration {
        self.stale_total + self.stale_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_notice_opens_one_window_for_all_hosts() {
        let now = Instant::now();
        let mut a = Aggregator::new(ms(500));
        assert_eq!(a.notice("a", now), Some(ms(500)));
        assert_eq!(a.notice("b", now + ms(10)), None);
        assert_eq!(a.notice("a", now + ms(20)), None);
        assert_eq!(a.close(), vec!["a".to_owned(), "b".to_owned()]);
        assert!(!a.is_open());
        assert_eq!(a.notice("c", now + ms(600)), Some(ms(500)));
    }

    #[test]
    fn view_is_stale_from_first_notice_until_last_pull_applied() {
        let now = Instant::now();
        let mut a = Aggregator::new(ms(500));
        a.notice("a", now);
        a.notice("b", now);
        a.close();
        a.pulled(now + ms(520));
        assert_eq!(a.stale_time(now + ms(530)), ms(530));
        a.pulled(now + ms(540));
        assert_eq!(a.stale_time(now + ms(900)), ms(540));
    }

    #[test]
    fn new_window_length_applies_to_the_next_window() {
        let now = Instant::now();
        let mut a = Aggregator::new(ms(500));
        a.notice("a", now);
        a.set_window(ms(100));
        assert_eq!(a.notice("b", now), None);
        a.close();
        assert_eq!(a.notice("b", now), Some(ms(100)));
    }
}
