//! Per-client rate limits for the webhook routes: a burst of `per_sec`, refilled continuously
//! (governor's generic cell rate algorithm, one cell per client: an IPv4 address, or an IPv6
//! /64, the block one host is usually given, so that rotating addresses within it is one client).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Forget idle clients once this many are tracked.
const MAX_TRACKED: usize = 10_000;
/// How often (in checks) the number tracked is looked at: counting reads every shard's lock.
const COUNT_EVERY: u32 = 1024;

pub struct RateLimiter {
    limits: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicU32,
}

impl RateLimiter {
    /// `None` for 0: no limit.
    pub fn new(per_sec: u32) -> Option<Self> {
        let quota = Quota::per_second(NonZeroU32::new(per_sec)?);
        Some(Self {
            limits: governor::RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            checks: AtomicU32::new(0),
        })
    }

    /// Takes a token for `ip`, or says how many whole seconds to wait for one.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let nth = self.checks.fetch_add(1, Ordering::Relaxed);
        if nth.is_multiple_of(COUNT_EVERY) && self.limits.len() >= MAX_TRACKED {
            self.limits.retain_recent();
        }
        let client = match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let block = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(block.into())
            }
            v4 => v4,
        };
        self.limits.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_per_ip() {
        let limiter = RateLimiter::new(3).unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.check(a).is_ok()));
        assert_eq!(limiter.check(a), Err(1));
        assert!(limiter.check(b).is_ok());
        assert!(RateLimiter::new(0).is_none(), "0 is no limit");
        // One IPv6 /64 is one client; an IPv4-mapped address is its IPv4.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!((0..3).all(|i| limiter.check(v6(&format!("2001:db8::{i}"))).is_ok()));
        assert!(limiter.check(v6("2001:db8::ffff:1")).is_err());
        assert!(limiter.check(v6("2001:db8:0:1::1")).is_ok());
        assert!(limiter.check(v6("::ffff:10.0.0.2")).is_ok());
        assert!(limiter.check(b).is_ok());
        assert!(limiter.check(b).is_err());
    }
}
