//! Cloudflare's rate-limit headers, read defensively:
//! `Ratelimit: "default";r=50;t=30` (r requests remaining, t seconds until
//! the window resets) and `Ratelimit-Policy: "default";q=1200;w=300` (q
//! requests per w seconds). Absent, malformed or unfamiliar values yield
//! `None` and so change nothing.

use std::time::Duration;

use super::pace::{paceable, Rate};

/// The longest `t` or `w` taken at face value: a day is far beyond any
/// window Cloudflare documents, and a larger value is more likely garbage.
const MAX_SECONDS: u64 = 86_400;

/// What is left of the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub requests: u32,
    pub reset: Duration,
}

/// The quota itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub quota: u32,
    pub window: Duration,
}

impl Policy {
    /// Orders policies by the pace they allow, the tightest first.
    pub fn tighter(a: &Policy, b: &Policy) -> std::cmp::Ordering {
        let per_second = |p: &Policy| f64::from(p.quota) / p.window.as_secs_f64();
        per_second(a).total_cmp(&per_second(b))
    }
}

/// An announced policy is paced at like a `--rate` of the same quota.
impl From<Policy> for Rate {
    fn from(policy: Policy) -> Self {
        Rate { count: policy.quota, per: policy.window }
    }
}

/// The text of parameter `key` of one comma-separated item
/// (`"name";key=value;...`), the name matched without regard to case. Read
/// on every answer, so it allocates nothing.
fn raw_param<'a>(item: &'a str, key: &str) -> Option<&'a str> {
    item.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case(key).then(|| value.trim())
    })
}

/// Integer parameter `key` of one item.
fn param(item: &str, key: &str) -> Option<u64> {
    raw_param(item, key)?.parse().ok()
}

/// Parameter `key` of one item as a time, at most [`MAX_SECONDS`]: whole
/// seconds, or the IETF draft's decimal form (`t=7.314`), which an integer
/// reading would drop along with the whole item. Digits only, so no sign,
/// exponent, NaN or infinity gets through; past nanoseconds is cut.
fn seconds(item: &str, key: &str) -> Option<Duration> {
    let value = raw_param(item, key)?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let secs: u64 = whole.parse().ok().filter(|s| *s <= MAX_SECONDS)?;
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Duration::new(secs, nanos)).filter(|d| *d <= Duration::from_secs(MAX_SECONDS))
}

/// The tightest `r`/`t` pair offered (fewest requests left), if any item is
/// well-formed.
pub fn parse_ratelimit(value: &str) -> Option<Remaining> {
    value
        .split(',')
        .filter_map(|item| {
            let requests = u32::try_from(param(item, "r")?).ok()?;
            let reset = seconds(item, "t")?;
            Some(Remaining { requests, reset })
        })
        .min_by_key(|r| r.requests)
}

/// The most restrictive policy offered (lowest requests per second).
pub fn parse_policy(value: &str) -> Option<Policy> {
    value
        .split(',')
        .filter_map(|item| {
            let quota = u32::try_from(param(item, "q")?).ok().filter(|q| *q > 0)?;
            let window = seconds(item, "w").filter(|w| *w >= Duration::from_secs(1))?;
            paceable(quota, window).then_some(Policy { quota, window })
        })
        .min_by(Policy::tighter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_documented_forms() {
        assert_eq!(
            parse_ratelimit("\"default\";r=50;t=30"),
            Some(Remaining { requests: 50, reset: Duration::from_secs(30) })
        );
        assert_eq!(parse_policy("\"burst\";q=100;w=60"), Some(Policy { quota: 100, window: Duration::from_secs(60) }));
    }

    #[test]
    fn tolerates_spacing_case_unknown_params_and_several_items() {
        assert_eq!(parse_ratelimit(" default ; R = 7 ; T=2 ; x=1").map(|r| r.requests), Some(7));
        assert_eq!(parse_ratelimit("\"a\";r=90;t=60, \"b\";r=3;t=1").map(|r| r.requests), Some(3));
        let tightest = parse_policy("\"default\";q=1200;w=300, \"burst\";q=100;w=60").unwrap();
        assert_eq!((tightest.quota, tightest.window.as_secs()), (100, 60));
    }

    #[test]
    fn a_decimal_time_is_read_not_dropped() {
        let remaining = |value| parse_ratelimit(value).map(|r| r.reset);
        assert_eq!(remaining("\"default\";r=0;t=7.314"), Some(Duration::from_millis(7314)));
        assert_eq!(remaining("\"default\";r=0;t=0.5"), Some(Duration::from_millis(500)));
        assert_eq!(remaining("\"d\";r=1;t=2.0000000019"), Some(Duration::new(2, 1)), "past nanoseconds is cut");
        assert_eq!(remaining("\"d\";r=1;t=86400.5"), None, "over a day");
        let policy = parse_policy("\"burst\";q=100;w=2.5").unwrap();
        assert_eq!(policy.window, Duration::from_millis(2500));
        for bad in ["t=7.", "t=.5", "t=-1.5", "t=1e3", "t=NaN", "t=inf", "t=7.3.1", "t=+7", "t= 7 .1"] {
            assert_eq!(parse_ratelimit(&format!("\"d\";r=1;{bad}")), None, "{bad}");
        }
        assert_eq!(parse_policy("\"d\";q=10;w=0.5"), None, "a window under a second is not paced");
    }

    #[test]
    fn malformed_values_change_nothing() {
        for bad in ["", "r=5;t=3", "\"d\";r=-1;t=3", "\"d\";r=5", "\"d\";r=five;t=3", "\"d\";r=5;t=99999999"] {
            assert_eq!(parse_ratelimit(bad), None, "{bad}");
        }
        for bad in ["", "\"d\";q=0;w=60", "\"d\";q=10;w=0", "\"d\";q=10", "\"d\";q=1e3;w=60", "\"d\";q=4294967295;w=1"]
        {
            assert_eq!(parse_policy(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(value in "\\PC{0,64}") {
            let _ = parse_ratelimit(&value);
            let _ = parse_policy(&value);
        }
    }
}
