//! Token buckets: each key (a device or an IP address) may spend `burst` tokens at once and
//! regains `per_second` tokens per second. Time comes from the relay's [`Clock`].

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;

/// A rate: a sustained `per_second` with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Rate {
    /// Tokens regained per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Most keys remembered by default (two generations of at most half each): bounds memory
/// under a flood of new keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The key an IP address is limited under. An IPv6 host usually owns a whole /64, so each
/// /64 shares one bucket (otherwise one host could rotate through 2^64 addresses, each with a
/// fresh burst); IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// Two generations of buckets. Every check touches only its own key (O(1)); the whole map is
/// dropped a generation at a time, so sweeping costs O(1) amortised over the inserts that
/// filled it, and nothing ever scans the map under the lock.
struct Generations<K> {
    current: HashMap<K, Bucket>,
    previous: HashMap<K, Bucket>,
    rotated_ms: u64,
}

/// Token buckets keyed by `K`, shared by all connections.
pub struct RateLimiter<K> {
    rate: Rate,
    clock: Arc<dyn Clock>,
    /// Time for an empty bucket to refill completely: a key untouched this long is full
    /// again and may be forgotten without changing any answer.
    refill_ms: u64,
    max_keys: usize,
    buckets: Mutex<Generations<K>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Buckets refilling at `rate`, timed by `clock`, remembering at most [`DEFAULT_MAX_KEYS`].
    pub fn new(rate: Rate, clock: Arc<dyn Clock>) -> Self {
        Self::with_max_keys(rate, clock, DEFAULT_MAX_KEYS)
    }

    /// As [`RateLimiter::new`], remembering at most `max_keys` keys. Beyond that the oldest
    /// generation is forgotten early (those keys start again with a full bucket): under a
    /// flood of distinct keys, memory stays bounded at the cost of some leniency.
    pub fn with_max_keys(rate: Rate, clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        let refill_ms = if rate.per_second > 0.0 {
            let ms = (rate.burst.max(1.0) / rate.per_second * 1e3).ceil();
            if ms >= u64::MAX as f64 {
                u64::MAX
            } else {
                ms as u64
            }
        } else {
            u64::MAX
        };
        let now = clock.now_ms();
        Self {
            rate,
            clock,
            refill_ms: refill_ms.max(1),
            max_keys: max_keys.max(2),
            buckets: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                rotated_ms: now,
            }),
        }
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        let g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        g.current.len() + g.previous.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take one token for `key`. `Err(ms)` says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), u32> {
        let now = self.clock.now_ms();
        let Rate { per_second, burst } = self.rate;
        let mut g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Everything in `previous` was last touched at least one refill time ago once this
        // much time has passed since the last rotation: forgetting it changes no answer.
        let half = self.max_keys / 2;
        if now.saturating_sub(g.rotated_ms) >= self.refill_ms || g.current.len() >= half {
            g.previous = std::mem::take(&mut g.current);
            g.rotated_ms = now;
        }
        let bucket = match g.previous.remove(key) {
            Some(b) => b,
            None => Bucket {
                tokens: burst,
                last_ms: now,
            },
        };
        let b = g.current.entry(key.clone()).or_insert(bucket);
        let elapsed = now.saturating_sub(b.last_ms) as f64 / 1e3;
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.last_ms = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if per_second <= 0.0 {
            Err(u32::MAX)
        } else {
            let wait = ((1.0 - b.tokens) / per_second * 1e3).ceil();
            Err(if wait >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                wait as u32
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let clock = ManualClock::new(1_000);
        let rl = RateLimiter::new(
            Rate {
                per_second: 2.0,
                burst: 3.0,
            },
            Arc::new(clock.clone()),
        );
        for _ in 0..3 {
            rl.check(&1).unwrap();
        }
        assert_eq!(rl.check(&1), Err(500));
        rl.check(&2).unwrap();
        clock.advance_ms(500);
        rl.check(&1).unwrap();
        assert!(rl.check(&1).is_err());
    }

    fn rate(per_second: f64, burst: f64) -> Rate {
        Rate { per_second, burst }
    }

    #[test]
    fn ipv6_is_limited_per_slash_64_and_mapped_v4_as_v4() {
        let clock = ManualClock::new(1_000);
        let rl = RateLimiter::new(rate(1.0, 2.0), Arc::new(clock.clone()));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        rl.check(&ip_key(a)).unwrap();
        rl.check(&ip_key(same_64)).unwrap();
        assert!(rl.check(&ip_key(a)).is_err(), "a /64 shares one bucket");
        rl.check(&ip_key(other_64)).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(ip_key("192.0.2.7".parse().unwrap()), ip_key(mapped));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let clock = ManualClock::new(1_000);
        let rl = RateLimiter::with_max_keys(rate(1.0, 5.0), Arc::new(clock.clone()), 100);
        for k in 0..10_000u32 {
            rl.check(&k).unwrap();
            assert!(rl.len() <= 100, "{} keys remembered", rl.len());
        }
    }

    #[test]
    fn a_drained_key_is_remembered_until_it_would_have_refilled() {
        let clock = ManualClock::new(1_000);
        // Refills completely in 2 s; generations rotate every 2 s (first at 3 000).
        let rl = RateLimiter::new(rate(1.0, 2.0), Arc::new(clock.clone()));
        clock.advance_ms(1_900);
        rl.check(&1).unwrap();
        rl.check(&1).unwrap();
        assert!(rl.check(&1).is_err());
        // Another key triggers a rotation: key 1 moves to the old generation, not out.
        clock.advance_ms(200);
        rl.check(&100).unwrap();
        clock.advance_ms(700);
        // 0.9 s after draining: not even one token yet.
        assert!(rl.check(&1).is_err(), "forgotten before it refilled");
        // Untouched for longer than two rotations, keys are forgotten.
        clock.advance_ms(2_001);
        rl.check(&2).unwrap();
        clock.advance_ms(2_001);
        rl.check(&2).unwrap();
        assert_eq!(rl.len(), 1);
    }
}
