//! Retry policy: attempts, backoff and the delay before each retry.

use std::time::Duration;

use crate::handler::Backoff;

/// How a handler of an anycast event is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (>= 1).
    pub max_attempts: u32,
    /// Shape of the delays.
    pub backoff: Backoff,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, exponential backoff from 100 ms to 30 s with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before the retry that follows failed attempt `attempt` (1-based).
    ///
    /// Fixed: `base_delay`. Exponential: `base_delay * 2^(attempt-1)` capped at `max_delay`, then
    /// "equal jitter": a uniformly random value between half of it and all of it, so that
    /// consumers that failed together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.base_delay.min(self.max_delay.max(self.base_delay)),
            Backoff::Exponential => {
                let exp = attempt.saturating_sub(1).min(32);
                let raw = self.base_delay.saturating_mul(1u32 << exp.min(31)).min(self.max_delay);
                let half = raw / 2;
                let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
                let extra = if jitter_ns == 0 { 0 } else { rand::random_range(0..=jitter_ns) };
                half + Duration::from_nanos(extra)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps_with_jitter() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d9 = p.delay(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1), "{d9:?}");
            assert!(p.delay(u32::MAX) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn fixed_is_constant() {
        let p =
            RetryPolicy { backoff: Backoff::Fixed, base_delay: Duration::from_millis(20), ..RetryPolicy::default() };
        assert_eq!(p.delay(1), Duration::from_millis(20));
        assert_eq!(p.delay(7), Duration::from_millis(20));
    }
}
