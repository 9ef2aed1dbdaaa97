//! Durations as users write them in suite files (`90s`, `10m`, `1h30m`, `500ms`) and as
//! kubevet prints them (Go's style, `10m0s`, which Kubernetes users already read daily).

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// The longest duration kubevet takes (30 days): beyond it a number is a typo, and a
/// deadline computed from it could not be represented.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

impl Dur {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid duration {text:?}: expected a number and a unit, like 90s, 10m, 1h30m or 500ms");
        let mut seconds = 0f64;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(err)?;
            let number: f64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(err()),
            };
            seconds += number * unit;
            rest = &rest[unit_len..];
        }
        // Checked before the conversion, which panics on a value it cannot hold.
        if !seconds.is_finite() || seconds > MAX.as_secs_f64() {
            return Err(format!("duration {text:?} is too long: kubevet takes durations from 0s to 720h (30 days)"));
        }
        Ok(Dur(Duration::from_secs_f64(seconds)))
    }
}

/// `now + after`, or the farthest instant that can be held: a deadline never panics.
pub fn deadline(after: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after).unwrap_or_else(|| now + MAX)
}

/// `base × 2^(n−1)` for the n-th wait (from 1), at most `max`: retries' exponential backoff,
/// never overflowing.
pub fn doubling(base: Duration, n: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(max)
}

/// Waits that grow by `percent` % each time up to `max`: the polling nets under a watch.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    wait: Duration,
    percent: u32,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, percent: u32, max: Duration) -> Backoff {
        Backoff { wait: first.min(max), percent, max }
    }

    /// The wait now; the next one grows.
    pub fn next_wait(&mut self) -> Duration {
        let now = self.wait;
        self.wait = (self.wait.saturating_mul(self.percent) / 100).min(self.max);
        now
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        let (h, m, s) = (ms / 3_600_000, (ms / 60_000) % 60, (ms % 60_000) as f64 / 1000.0);
        let s = if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s:.1}") };
        match (h, m) {
            (0, 0) => write!(f, "{s}s"),
            (0, m) => write!(f, "{m}m{s}s"),
            (h, m) => write!(f, "{h}h{m}m{s}s"),
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Dur::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_write() {
        assert_eq!(Dur::parse("90s"), Ok(Dur(Duration::from_secs(90))));
        assert_eq!(Dur::parse("1h30m"), Ok(Dur(Duration::from_secs(5400))));
        assert_eq!(Dur::parse("500ms"), Ok(Dur(Duration::from_millis(500))));
        assert_eq!(Dur::parse("1.5m"), Ok(Dur(Duration::from_secs(90))));
        assert!(Dur::parse("10").is_err());
        assert!(Dur::parse("10 minutes").is_err());
        assert!(Dur::parse("").is_err());
        assert_eq!(Dur::parse("720h"), Ok(Dur(MAX)));
        for absurd in ["99999999999999999999h", "721h", "720h1ms"] {
            let e = Dur::parse(absurd).expect_err(absurd);
            assert!(e.contains("0s to 720h"), "{absurd}: {e}");
        }
    }

    #[test]
    fn backoffs_grow_to_their_ceiling_without_overflow() {
        let s = Duration::from_secs;
        assert_eq!([1, 2, 3, 7, 40].map(|n| doubling(s(5), n, s(300))), [s(5), s(10), s(20), s(300), s(300)]);
        assert_eq!(doubling(Duration::MAX, 9, s(1)), s(1));
        let mut b = Backoff::new(s(1), 150, s(4));
        let waits: Vec<Duration> = (0..5).map(|_| b.next_wait()).collect();
        assert_eq!(
            waits,
            [s(1), Duration::from_millis(1500), Duration::from_millis(2250), Duration::from_millis(3375), s(4)]
        );
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(Dur(Duration::from_secs(600)).to_string(), "10m0s");
        assert_eq!(Dur(Duration::from_secs(20)).to_string(), "20s");
        assert_eq!(Dur(Duration::from_millis(2500)).to_string(), "2.5s");
        assert_eq!(Dur(Duration::from_secs(3725)).to_string(), "1h2m5s");
        assert_eq!(Dur(Duration::from_millis(40)).to_string(), "40ms");
        assert_eq!(Dur(Duration::from_millis(999)).to_string(), "999ms");
        assert_eq!(Dur(Duration::from_millis(1000)).to_string(), "1s");
    }

    #[tokio::test]
    async fn a_deadline_past_what_an_instant_holds_is_the_farthest_one_not_a_panic() {
        let now = tokio::time::Instant::now();
        assert!(deadline(Duration::MAX) >= now + MAX, "capped at now + 30 days, still in the future");
        let soon = deadline(Duration::from_secs(5));
        assert!(soon >= now + Duration::from_secs(5) && soon < now + Duration::from_secs(60));
    }
}
