//! Request limits per user and per agent token (default 100 a minute each, `[auth]
//! requests_per_minute`; 0 turns them off). A request over the limit gets 429 with
//! `Retry-After`. Limits are kept in memory on each node; idle entries are forgotten every few
//! seconds, so memory follows the number of active users and tokens.

use std::num::NonZeroU32;

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A user's authenticated API requests.
    User(Uuid),
    /// Connection attempts with an agent token.
    Token(Uuid),
}

/// The relay's request limits.
pub struct Limits {
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
    clock: DefaultClock,
}

impl Limits {
    /// Limits of `per_minute` requests per key, with bursts of as many; 0 means unlimited.
    pub fn new(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request; `Err(seconds)` when it is over the limit and may be retried after that
    /// many seconds.
    pub fn check(&self, key: Key) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets keys whose limit is back to full.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limits = Limits::new(3);
        let (a, b) = (Key::User(Uuid::new_v4()), Key::Token(Uuid::new_v4()));
        for _ in 0..3 {
            assert!(limits.check(a).is_ok());
        }
        let wait = limits.check(a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limits.check(b).is_ok());
        let off = Limits::new(0);
        for _ in 0..1000 {
            assert!(off.check(a).is_ok());
        }
    }
}
