//! Exponential backoff with jitter, shared by the consumer's handler retries and the `kafka`
//! backend's producer retries.

use std::time::{Duration, Instant};

/// The pause after the `attempt`-th failure (counted from 1; 0 counts as 1): `first`, doubled
/// per further attempt up to `max`, times a random factor between 0.5 and 1, so that clients that
/// failed together do not retry together.
pub(crate) fn exponential(first: Duration, max: Duration, attempt: u32) -> Duration {
    let nominal = first
        .saturating_mul(1 << (attempt.max(1) - 1).min(20))
        .min(max);
    nominal.mul_f64(0.5 + jitter_fraction() / 2.0)
}

/// A number in [0, 1) that differs from call to call.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jitter_fraction_is_in_zero_to_one_and_spread_over_it() {
        let fractions: Vec<f64> = (0..1000).map(|_| jitter_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        // Each half has odds of 2^-1000 of getting none of 1000 uniform draws.
        assert!(fractions.iter().any(|&f| f < 0.5), "{fractions:?}");
        assert!(fractions.iter().any(|&f| f >= 0.5), "{fractions:?}");
    }

    #[test]
    fn the_pause_doubles_per_attempt_up_to_the_cap_and_is_half_to_all_of_it() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, nominal) in [
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (u32::MAX, 1000),
        ] {
            let nominal = Duration::from_millis(nominal);
            for _ in 0..100 {
                let pause = exponential(first, max, attempt);
                assert!(
                    pause >= nominal / 2 && pause <= nominal,
                    "attempt {attempt}: {pause:?} not in [{:?}, {nominal:?}]",
                    nominal / 2
                );
            }
        }
        assert_eq!(exponential(Duration::ZERO, max, 3), Duration::ZERO);
        // A huge `first` saturates rather than overflows, then is capped.
        let capped = exponential(Duration::MAX, max, 40);
        assert!(capped >= max / 2 && capped <= max, "{capped:?}");
    }
}
