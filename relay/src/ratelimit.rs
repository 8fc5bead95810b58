//! Request limits per credential, on every door: per user on the REST API and the events
//! socket's ticket, per agent token on the agent doors (default 100 a minute each, `[auth]
//! requests_per_minute`), and per token of the other kinds on the door it opens: MCP tokens on
//! `/mcp` (default 600, `[auth] mcp_requests_per_minute`), API tokens on the REST API (default
//! 600, `api_requests_per_minute`), ingest tokens on the ingestion doors (default 1200,
//! `ingest_requests_per_minute`); 0 turns a limit off. A request over its limit gets 429 with
//! `Retry-After`. Limits are kept in memory on each node; idle entries are forgotten every few
//! seconds, so memory follows the number of active users and tokens.
//!
//! Failed logins have limits of their own ([`LoginLimits`]): per account, an exponential
//! back-off after a few free failures, capped low; and per client address (IPv6 by /64), a
//! number of failures a minute. Neither counts successes. An address the account logged in from
//! successfully in the last 30 days is exempt from the account's back-off, so an attacker
//! hammering an account from elsewhere cannot lock its owner out.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use crate::store::TokenKind;

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A user's authenticated API requests (with a login).
    User(Uuid),
    /// Requests with a token of this kind.
    Token(TokenKind, Uuid),
    /// Unauthenticated requests that create something (OAuth client registrations) from one
    /// client address: 20 an hour, in bursts of as many.
    Address(IpAddr),
}

/// Creating requests an hour from one client address (IPv6 by /64).
const ADDRESS_PER_HOUR: u32 = 20;

/// Requests a minute for each kind of credential; 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub struct RequestQuotas {
    /// Each user's login, and each agent token.
    pub per_minute: u32,
    /// Each MCP token.
    pub mcp: u32,
    /// Each API token.
    pub api: u32,
    /// Each ingest token.
    pub ingest: u32,
}

/// The relay's request limits.
pub struct Limits {
    limiter: Option<DefaultKeyedRateLimiter<Key>>,
    mcp: Option<DefaultKeyedRateLimiter<Key>>,
    api: Option<DefaultKeyedRateLimiter<Key>>,
    ingest: Option<DefaultKeyedRateLimiter<Key>>,
    addresses: Option<DefaultKeyedRateLimiter<Key>>,
    clock: DefaultClock,
    /// Limits on failed logins.
    pub logins: std::sync::Arc<LoginLimits>,
}

impl Limits {
    /// Limits of `quotas` requests a minute per credential, with bursts of as many, and
    /// failed logins limited by `logins`.
    pub fn new(quotas: RequestQuotas, logins: LoginPolicy) -> Self {
        let keyed = |n: u32| NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self {
            limiter: keyed(quotas.per_minute),
            mcp: keyed(quotas.mcp),
            api: keyed(quotas.api),
            ingest: keyed(quotas.ingest),
            addresses: NonZeroU32::new(ADDRESS_PER_HOUR)
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            clock: DefaultClock::default(),
            logins: std::sync::Arc::new(LoginLimits::new(logins)),
        }
    }

    /// Counts a request; `Err(seconds)` when it is over the limit and may be retried after that
    /// many seconds.
    pub fn check(&self, key: Key) -> Result<(), u64> {
        let (limiter, key) = match key {
            // One host usually has a whole IPv6 /64.
            Key::Address(addr) => (&self.addresses, Key::Address(address_key(addr))),
            other => (self.limiter_for(other), other),
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// The limiter that counts `key` (addresses aside).
    fn limiter_for(&self, key: Key) -> &Option<DefaultKeyedRateLimiter<Key>> {
        match key {
            Key::Token(TokenKind::Mcp, _) => &self.mcp,
            Key::Token(TokenKind::Api, _) => &self.api,
            Key::Token(TokenKind::Ingest, _) => &self.ingest,
            Key::User(_) | Key::Token(TokenKind::Agent, _) | Key::Address(_) => &self.limiter,
        }
    }

    /// Forgets keys whose limit is back to full.
    pub fn forget_idle(&self) {
        self.logins.forget_idle();
        for limiter in [
            &self.limiter,
            &self.mcp,
            &self.api,
            &self.ingest,
            &self.addresses,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Which login limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginLimit {
    /// Too many recent failures for this account.
    Account,
    /// Too many failures from this client address this minute.
    Address,
}

impl LoginLimit {
    /// Its name in metrics and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Address => "address",
        }
    }
}

/// An attempt refused: by which limit, and for how many seconds more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRefused {
    /// The limit.
    pub limit: LoginLimit,
    /// Seconds until the next attempt may be made.
    pub retry_after: u64,
}

/// Recent failures of one account, and the addresses it logged in from.
struct AccountFailures {
    count: u32,
    last: Instant,
    known: Vec<(IpAddr, Instant)>,
}

/// How long a successful login's address stays exempt from its account's back-off.
const KNOWN_ADDRESS: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most known addresses kept per account.
const MAX_KNOWN: usize = 8;

/// The key of an address: IPv4 as it is, IPv6 by its /64 (one host usually has a whole /64).
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

/// Makes room in a full map by dropping the entries `stale` says are done, else the oldest
/// tenth (by `age`): an attacker filling it evicts old entries, never switches limits off.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    stale: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_LOGIN_ENTRIES {
        return;
    }
    map.retain(|_, v| !stale(v));
    if map.len() >= MAX_LOGIN_ENTRIES {
        let mut ages: Vec<(Instant, K)> = map.iter().map(|(k, v)| (age(v), k.clone())).collect();
        ages.sort_by_key(|(at, _)| *at);
        for (_, k) in ages.into_iter().take(MAX_LOGIN_ENTRIES / 10) {
            map.remove(&k);
        }
    }
}

/// Failures of one address in the current minute.
struct AddressFailures {
    count: u32,
    window: Instant,
}

/// The settings of [`LoginLimits`].
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Failures of an account allowed before it backs off.
    pub free_failures: u32,
    /// The longest back-off of an account.
    pub max_backoff: Duration,
    /// Failures a minute allowed from one client address; 0 turns the limit off.
    pub address_failures_per_minute: u32,
}

/// How long an account's failures are remembered after the last one.
const ACCOUNT_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most accounts and addresses remembered each; past that the oldest are dropped.
const MAX_LOGIN_ENTRIES: usize = 100_000;

/// Limits on failed logins, per account and per client address.
pub struct LoginLimits {
    policy: LoginPolicy,
    accounts: Mutex<HashMap<String, AccountFailures>>,
    addresses: Mutex<HashMap<IpAddr, AddressFailures>>,
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl LoginLimits {
    /// Limits with the given policy.
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            accounts: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// How long an account with `count` failures waits after the last one.
    fn backoff(&self, count: u32) -> Duration {
        if count < self.policy.free_failures {
            return Duration::ZERO;
        }
        let doublings = (count - self.policy.free_failures).min(20);
        Duration::from_secs(1u64 << doublings).min(self.policy.max_backoff)
    }

    /// Whether a login for `account` from `address` may be tried now.
    pub fn admit(&self, account: &str, address: Option<IpAddr>) -> Result<(), LoginRefused> {
        let address = address.map(address_key);
        if let Some(addr) = address
            && self.policy.address_failures_per_minute > 0
        {
            let addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = addresses.get(&addr) {
                let elapsed = f.window.elapsed();
                if elapsed < Duration::from_secs(60)
                    && f.count >= self.policy.address_failures_per_minute
                {
                    return Err(LoginRefused {
                        limit: LoginLimit::Address,
                        retry_after: ceil_secs(Duration::from_secs(60) - elapsed),
                    });
                }
            }
        }
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = accounts.get(account)
            && !address.is_some_and(|a| {
                f.known
                    .iter()
                    .any(|(k, at)| *k == a && at.elapsed() < KNOWN_ADDRESS)
            })
        {
            let wait = self.backoff(f.count);
            let elapsed = f.last.elapsed();
            if elapsed < wait {
                return Err(LoginRefused {
                    limit: LoginLimit::Account,
                    retry_after: ceil_secs(wait - elapsed),
                });
            }
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        {
            let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if !accounts.contains_key(account) {
                make_room(
                    &mut accounts,
                    |f| f.last.elapsed() >= ACCOUNT_MEMORY && f.known.is_empty(),
                    |f| f.last,
                );
            }
            let f = accounts
                .entry(account.to_owned())
                .or_insert(AccountFailures {
                    count: 0,
                    last: now,
                    known: Vec::new(),
                });
            if f.last.elapsed() >= ACCOUNT_MEMORY {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
        if let Some(addr) = address.map(address_key) {
            let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
            if !addresses.contains_key(&addr) {
                make_room(
                    &mut addresses,
                    |f| f.window.elapsed() >= Duration::from_secs(60),
                    |f| f.window,
                );
            }
            let f = addresses.entry(addr).or_insert(AddressFailures {
                count: 0,
                window: now,
            });
            if f.window.elapsed() >= Duration::from_secs(60) {
                *f = AddressFailures {
                    count: 0,
                    window: now,
                };
            }
            f.count = f.count.saturating_add(1);
        }
    }

    /// Records a successful login: the account's failures are forgotten, and the address it
    /// came from is exempt from the account's back-off from now on.
    pub fn succeeded(&self, account: &str, address: Option<IpAddr>) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(addr) = address.map(address_key) else {
            accounts.remove(account);
            return;
        };
        if !accounts.contains_key(account) {
            make_room(
                &mut accounts,
                |f| f.last.elapsed() >= ACCOUNT_MEMORY,
                |f| f.last,
            );
        }
        let f = accounts
            .entry(account.to_owned())
            .or_insert(AccountFailures {
                count: 0,
                last: Instant::now(),
                known: Vec::new(),
            });
        f.count = 0;
        f.known
            .retain(|(k, at)| *k != addr && at.elapsed() < KNOWN_ADDRESS);
        if f.known.len() >= MAX_KNOWN {
            f.known.remove(0);
        }
        f.known.push((addr, Instant::now()));
    }

    /// Forgets entries that no longer limit anything.
    pub fn forget_idle(&self) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| {
                f.known.retain(|(_, at)| at.elapsed() < KNOWN_ADDRESS);
                f.last.elapsed() < ACCOUNT_MEMORY || !f.known.is_empty()
            });
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| f.window.elapsed() < Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_back_off_per_account_and_per_address() {
        let limits = LoginLimits::new(LoginPolicy {
            free_failures: 3,
            max_backoff: Duration::from_secs(4),
            address_failures_per_minute: 10,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.admit("alice", Some(a)).is_ok());
            limits.failed("alice", Some(a));
        }
        // The fourth failure in a row waits a second, and the wait doubles up to the cap.
        let refused = limits.admit("alice", Some(b)).unwrap_err();
        assert_eq!(refused.limit, LoginLimit::Account);
        assert_eq!(refused.retry_after, 1);
        assert_eq!(limits.backoff(4), Duration::from_secs(2));
        assert_eq!(limits.backoff(40), Duration::from_secs(4));
        // Another account is not held back; a success forgets the failures, and its address
        // is not held back by the account's later failures from elsewhere.
        assert!(limits.admit("bob", Some(b)).is_ok());
        limits.succeeded("alice", Some(b));
        assert!(limits.admit("alice", Some(b)).is_ok());
        for _ in 0..6 {
            limits.failed("alice", None);
        }
        assert_eq!(
            limits.admit("alice", None).unwrap_err().limit,
            LoginLimit::Account
        );
        assert!(limits.admit("alice", Some(b)).is_ok());
        // IPv6 addresses count by their /64.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(v6a), address_key(v6b));
        // Ten failures from one address, over many accounts, stop that address only.
        for i in 0..7 {
            limits.failed(&format!("u{i}"), Some(a));
        }
        let refused = limits.admit("carol", Some(a)).unwrap_err();
        assert_eq!(refused.limit, LoginLimit::Address);
        assert!((1..=60).contains(&refused.retry_after));
        assert!(limits.admit("carol", Some(b)).is_ok());
        assert!(limits.admit("carol", None).is_ok());
    }

    #[test]
    fn each_key_has_its_own_budget() {
        let logins = LoginPolicy {
            free_failures: 5,
            max_backoff: Duration::from_secs(60),
            address_failures_per_minute: 20,
        };
        let quotas = |n: u32, m: u32| RequestQuotas {
            per_minute: n,
            mcp: m,
            api: m,
            ingest: m,
        };
        let limits = Limits::new(quotas(3, 2), logins);
        let (a, b) = (
            Key::User(Uuid::new_v4()),
            Key::Token(TokenKind::Agent, Uuid::new_v4()),
        );
        for _ in 0..3 {
            assert!(limits.check(a).is_ok());
        }
        let wait = limits.check(a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limits.check(b).is_ok());
        // MCP tokens have a budget of their own size.
        for kind in [TokenKind::Mcp, TokenKind::Api, TokenKind::Ingest] {
            let m = Key::Token(kind, Uuid::new_v4());
            assert!(limits.check(m).is_ok() && limits.check(m).is_ok());
            assert!(limits.check(m).is_err(), "{kind}");
        }
        let off = Limits::new(quotas(0, 0), logins);
        for _ in 0..1000 {
            assert!(off.check(a).is_ok());
        }
    }
}
