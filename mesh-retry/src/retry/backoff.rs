//! How long to wait before a retry.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};

/// Exponential backoff with full jitter.
///
/// Before retry `n` (1 for the first), the wait is drawn uniformly from
/// zero to `min(max, base × 2^(n−1))`. Drawing from zero ("full jitter")
/// spreads the retries of many clients that failed together, instead of
/// sending them back in a synchronized wave. A backoff made with
/// [`at_least`](Self::at_least) draws from `base` instead, for a
/// configuration that names a minimum wait.
///
/// A 503 or 429 response with `Retry-After` is waited out instead, up to
/// `max`: in either of the header's forms (RFC 9110, section 10.2.3), a
/// number of seconds or an HTTP date. A date is measured against the
/// system clock, the only clock the server and this process share; a date
/// already past means no wait (or the minimum, for a backoff that has
/// one). A value in neither form gets the ordinary backoff.
///
/// The default is Linkerd's: `base` 25 ms, `max` 250 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// The shortest wait: zero, or `base` for [`at_least`](Self::at_least).
    min: Duration,
}

impl Default for Backoff {
    /// 25 ms doubling up to 250 ms.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
            min: Duration::ZERO,
        }
    }
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    ///
    /// # Errors
    ///
    /// [`InvalidBackoff`] when `base` is longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if base > max {
            return Err(InvalidBackoff { base, max });
        }
        Ok(Self {
            base,
            max,
            min: Duration::ZERO,
        })
    }

    /// A backoff that never waits less than `base`: before retry `n`, a
    /// wait drawn from `base` to `min(max, base × 2^(n−1))`, so the first
    /// retry waits `base` exactly, and a `Retry-After` shorter than `base`
    /// is waited out to `base`.
    ///
    /// This is the Gateway API's `retry.backoff` (GEP-1731): "the minimum
    /// duration a Gateway should wait between retry attempts", which an
    /// implementation may grow and jitter "as long as unsuccessful backend
    /// requests are not retried before the configured minimum duration".
    /// Full jitter, drawing from zero, would send some retries at once.
    ///
    /// # Errors
    ///
    /// [`InvalidBackoff`] when `base` is longer than `max`.
    pub fn at_least(base: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        Ok(Self {
            min: base,
            ..Self::new(base, max)?
        })
    }

    /// No wait at all between attempts.
    pub fn none() -> Self {
        Self {
            base: Duration::ZERO,
            max: Duration::ZERO,
            min: Duration::ZERO,
        }
    }

    /// The wait before the first retry, before jitter.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The shortest wait: `base` for a backoff made with
    /// [`at_least`](Self::at_least), zero for any other.
    pub fn minimum(&self) -> Duration {
        self.min
    }

    /// The ceiling of the wait before retry number `retry` (from 1).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// A jittered wait before retry number `retry` (from 1).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let ceiling = nanos(self.ceiling(retry));
        // The minimum is the base, which no ceiling is below.
        let floor = nanos(self.min).min(ceiling);
        Duration::from_nanos(fastrand::u64(floor..=ceiling))
    }

    /// The server's `Retry-After` on a 503 or 429, capped at `max`.
    pub(crate) fn retry_after(&self, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        let wait = wait_for(value, SystemTime::now())?;
        Some(wait.min(self.max).max(self.min))
    }
}

/// The wait a `Retry-After` value asks for when read at `now`: its
/// seconds, or the time until its date (none if the date has passed).
/// `None` if it is neither.
fn wait_for(value: &str, now: SystemTime) -> Option<Duration> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More seconds than a u64 holds is still a wait past any cap.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A backoff whose base is longer than its maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBackoff {
    base: Duration,
    max: Duration,
}

impl fmt::Display for InvalidBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backoff base {:?} is longer than its maximum {:?}",
            self.base, self.max
        )
    }
}

impl std::error::Error for InvalidBackoff {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_max() {
        let backoff = Backoff::default();
        let ceilings: Vec<_> = (1..=6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [25, 50, 100, 200, 250, 250]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(250));
    }

    #[test]
    fn a_backoff_at_least_its_base_never_waits_less() {
        let base = Duration::from_millis(100);
        let backoff = Backoff::at_least(base, Duration::from_millis(250)).unwrap();
        assert_eq!(backoff.minimum(), base);
        assert_eq!(backoff.delay(1), base, "the first retry waits the base");
        for retry in 2..=6 {
            let delays: Vec<_> = (0..200).map(|_| backoff.delay(retry)).collect();
            let ceiling = backoff.ceiling(retry);
            assert!(delays.iter().all(|d| (base..=ceiling).contains(d)));
            assert!(delays.iter().any(|d| *d > base), "still jittered");
        }
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            Some(base)
        );
        headers.insert(RETRY_AFTER, "60".parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            Some(Duration::from_millis(250))
        );
        assert!(Backoff::at_least(Duration::from_secs(1), Duration::ZERO).is_err());
        assert_eq!(Backoff::default().minimum(), Duration::ZERO);
    }

    #[test]
    fn high_retry_numbers_saturate_rather_than_overflow() {
        // Doubling stops after 31 doublings: 2^31 × base, far past any cap.
        let uncapped = Backoff::new(Duration::from_secs(1), Duration::MAX).unwrap();
        let top = Duration::from_secs(1 << 31);
        assert_eq!(uncapped.ceiling(32), top);
        assert_eq!(uncapped.ceiling(u32::MAX), top);
        assert!(uncapped.delay(u32::MAX) <= top);
        // A base that cannot double any more stays where it is.
        let huge = Backoff::new(Duration::MAX, Duration::MAX).unwrap();
        assert_eq!(huge.ceiling(2), Duration::MAX);
        assert_eq!(huge.ceiling(u32::MAX), Duration::MAX);
        let _ = huge.delay(u32::MAX);
        assert_eq!(Backoff::none().delay(u32::MAX), Duration::ZERO);
        assert_eq!(Backoff::default().ceiling(0), Duration::from_millis(25));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let backoff = Backoff::default();
        let delays: Vec<_> = (0..200).map(|_| backoff.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(50)));
        assert!(delays.iter().any(|d| *d < Duration::from_millis(25)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(25)));
    }

    #[test]
    fn retry_after_is_read_on_503_and_429_and_capped() {
        let backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(2)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "1".parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            backoff.retry_after(StatusCode::TOO_MANY_REQUESTS, &headers),
            Some(Duration::from_secs(1))
        );
        assert_eq!(backoff.retry_after(StatusCode::BAD_GATEWAY, &headers), None);
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            Some(Duration::from_secs(2))
        );
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            None
        );
    }

    #[test]
    fn retry_after_reads_either_form() {
        // 2015-10-21 07:28:00 UTC.
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let before = |secs| date - Duration::from_secs(secs);
        let at = |value, now| wait_for(value, now);
        assert_eq!(at("90", date), Some(Duration::from_secs(90)));
        assert_eq!(at("0", date), Some(Duration::ZERO));
        assert_eq!(at("99999999999999999999", date), Some(Duration::MAX));
        // The three date formats RFC 9110 has recipients accept.
        for value in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                at(value, before(3)),
                Some(Duration::from_secs(3)),
                "{value}"
            );
        }
        // A date already past asks for no wait.
        assert_eq!(
            at(
                "Wed, 21 Oct 2015 07:28:00 GMT",
                date + Duration::from_secs(60)
            ),
            Some(Duration::ZERO)
        );
        for value in ["", "-1", "1.5", "tomorrow", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(at(value, date), None, "{value:?}");
        }
    }

    #[test]
    fn a_retry_after_date_is_capped_at_the_max() {
        let backoff = Backoff::default();
        let mut headers = HeaderMap::new();
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let value = httpdate::fmt_http_date(in_an_hour);
        headers.insert(RETRY_AFTER, value.parse().unwrap());
        assert_eq!(
            backoff.retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn a_base_above_the_max_is_refused() {
        let err = Backoff::new(Duration::from_secs(1), Duration::from_millis(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backoff base 1s is longer than its maximum 10ms"
        );
    }
}
