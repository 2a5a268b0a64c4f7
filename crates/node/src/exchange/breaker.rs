//! A circuit breaker for calls to an exchange: closed while calls succeed;
//! open after `failures` consecutive failures, at once on 429 or 418 (the
//! exchange said to back off) and for at least its `Retry-After`; after the
//! open period one probe call is let through (half-open) and its outcome
//! closes or re-opens the breaker. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// What a call's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call succeeded (or failed for a reason of the caller's, e.g. 400).
    Success,
    /// A failure that counts toward opening (5xx, timeout, connection).
    Failure,
    /// The exchange asked to back off (429, 418), optionally for this long.
    BackOff(Option<Duration>),
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through; consecutive failures so far.
    Closed(u32),
    /// No calls until this instant.
    Open(Instant),
    /// One probe call is out.
    HalfOpen,
}

/// The breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    state: State,
}

impl Breaker {
    /// Opens after `failures` consecutive failures, for `open_for`.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            state: State::Closed(0),
        }
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go out at `now`: `Err(wait)` while open. The
    /// first call after the open period is the half-open probe; others
    /// wait for its outcome.
    pub fn permit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            State::Closed(_) => Ok(()),
            State::Open(until) if now >= until => {
                self.state = State::HalfOpen;
                Ok(())
            }
            State::Open(until) => Err(until - now),
            State::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// Records a call's outcome at `now`.
    pub fn record(&mut self, verdict: Verdict, now: Instant) {
        self.state = match (verdict, self.state) {
            (Verdict::Success, _) => State::Closed(0),
            (Verdict::BackOff(after), _) => {
                State::Open(now + after.unwrap_or(self.open_for).max(self.open_for))
            }
            (Verdict::Failure, State::Closed(n)) if n + 1 < self.failures => State::Closed(n + 1),
            (Verdict::Failure, _) => State::Open(now + self.open_for),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_consecutive_failures_and_probes_half_open() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.permit(t0).is_ok());
            b.record(Verdict::Failure, t0);
        }
        b.record(Verdict::Success, t0);
        assert_eq!(b.state(), State::Closed(0), "a success resets the count");
        for _ in 0..3 {
            b.record(Verdict::Failure, t0);
        }
        assert_eq!(
            b.permit(t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.permit(later), Ok(()), "the probe");
        assert_eq!(b.permit(later), Err(Duration::ZERO), "one probe at a time");
        b.record(Verdict::Failure, later);
        assert_eq!(
            b.state(),
            State::Open(later + Duration::from_secs(10)),
            "a failed probe re-opens"
        );
        let again = later + Duration::from_secs(10);
        assert_eq!(b.permit(again), Ok(()));
        b.record(Verdict::Success, again);
        assert_eq!(b.state(), State::Closed(0));
    }

    #[test]
    fn a_back_off_opens_at_once_for_at_least_retry_after() {
        let t0 = Instant::now();
        let mut b = Breaker::new(5, Duration::from_secs(10));
        b.record(Verdict::BackOff(Some(Duration::from_secs(60))), t0);
        assert_eq!(b.state(), State::Open(t0 + Duration::from_secs(60)));
        let mut b = Breaker::new(5, Duration::from_secs(10));
        b.record(Verdict::BackOff(Some(Duration::from_secs(1))), t0);
        assert_eq!(
            b.state(),
            State::Open(t0 + Duration::from_secs(10)),
            "never shorter than the open period"
        );
    }
}
