//! Token buckets: each key (a device or an IP address) may spend `burst` tokens at once and
//! regains `per_second` tokens per second. Time comes from the relay's [`Clock`].

use std::collections::HashMap;
use std::hash::Hash;
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

/// Most keys kept before full buckets are swept: bounds memory under a flood of new keys.
const MAX_KEYS_BEFORE_SWEEP: usize = 100_000;

/// Token buckets keyed by `K`, shared by all connections.
pub struct RateLimiter<K> {
    rate: Rate,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Buckets refilling at `rate`, timed by `clock`.
    pub fn new(rate: Rate, clock: Arc<dyn Clock>) -> Self {
        Self {
            rate,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `key`. `Err(ms)` says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), u32> {
        let now = self.clock.now_ms();
        let Rate { per_second, burst } = self.rate;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS_BEFORE_SWEEP {
            map.retain(|_, b| {
                let refilled = b.tokens + now.saturating_sub(b.last_ms) as f64 * per_second / 1e3;
                refilled < burst
            });
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            last_ms: now,
        });
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
}
