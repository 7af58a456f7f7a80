//! The API's rate-limit headers, in the three dialects Cloudflare has
//! documented (its pages changed twice in September 2025), read
//! defensively through one entry point, [`read`]:
//!
//! - structured: `Ratelimit: "default";r=50;t=30` (r requests remaining, t
//!   seconds until the window resets) and `Ratelimit-Policy:
//!   "default";q=1200;w=300` (q requests per w seconds);
//! - split: `ratelimit-limit: 100, 100;w=60`, `ratelimit-remaining: 50`,
//!   `ratelimit-reset: 30` (an earlier IETF draft);
//! - X-RateLimit: `X-RateLimit-Limit` and `X-RateLimit-Remaining` on every
//!   answer, `X-RateLimit-Reset` an HTTP date on 429s (Cloudflare), or
//!   seconds or a Unix time on every answer (GitHub-style servers).
//!
//! Absent, malformed, hostile or unfamiliar values yield `None` and so
//! change nothing: a wrong reading would pace the run wrong, no reading
//! leaves it at `--rate`.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, DATE};

use super::pace::{paceable, Rate};
use crate::api::headers::{
    RATELIMIT, RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET, X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};

/// The longest `t` or `w` taken at face value: a day is far beyond any
/// window Cloudflare documents, and a larger value is more likely garbage.
const MAX_SECONDS: u64 = 86_400;

/// Far longer than any value of these headers (a few dozen bytes with
/// several policies). A longer one is not even scanned: a hostile server's
/// 100 KB header costs nothing to refuse.
const MAX_VALUE: usize = 512;

/// An `X-RateLimit-Reset` at or above this is a Unix time (2001 onwards),
/// as GitHub-style servers send, not a delay: as seconds it would be 31
/// years.
const UNIX_TIME_FROM: u64 = 1_000_000_000;

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

    /// A quota the pacer can keep: above zero, over a window of a second
    /// or more (shorter ones are the per-IP burst limits, not the quota) and
    /// no more than [`MAX_SECONDS`], at a pace the limiter can hold.
    pub(super) fn paced(quota: u32, window: Duration) -> Option<Policy> {
        let windows = Duration::from_secs(1)..=Duration::from_secs(MAX_SECONDS);
        (quota > 0 && windows.contains(&window) && paceable(quota, window)).then_some(Policy { quota, window })
    }
}

/// An announced policy is paced at like a `--rate` of the same quota.
impl From<Policy> for Rate {
    fn from(policy: Policy) -> Self {
        Rate { count: policy.quota, per: policy.window }
    }
}

/// Which family of headers an answer's reading came from, named in the
/// `run_start` log event: an API that changes dialect, or one cfrevoke
/// reads nothing from, shows there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Structured,
    Split,
    XRateLimit,
}

impl Dialect {
    /// In the order of preference, when an answer speaks several: the
    /// structured form is the one Cloudflare documents now, and the only
    /// one that names several policies.
    pub const ALL: [Dialect; 3] = [Dialect::Structured, Dialect::Split, Dialect::XRateLimit];

    /// What stands for no dialect: no rate-limit headers sent, or heard.
    pub const NONE: &'static str = "none";

    /// The name of `dialect`, or [`Self::NONE`].
    pub fn name_of(dialect: Option<Dialect>) -> &'static str {
        dialect.map_or(Dialect::NONE, Dialect::name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Structured => "structured",
            Dialect::Split => "split",
            Dialect::XRateLimit => "x-ratelimit",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|dialect| dialect.name() == name)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one answer's rate-limit headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitInfo {
    pub remaining: Option<Remaining>,
    pub policy: Option<Policy>,
    /// The dialect of the first family (in [`Dialect::ALL`]'s order) with
    /// anything readable; the other families are then not looked at, so
    /// that a count and a quota always come from the same limiter.
    pub dialect: Option<Dialect>,
}

/// Reads an answer's rate-limit headers. `now` is the time the answer
/// arrived, for an `X-RateLimit-Reset` given as a date or a Unix time when
/// the answer has no `Date` of its own to measure it from.
///
/// Each answer is read alone: a value that changes from one answer to the
/// next is taken as it comes, and the limiter keeps the tightest quota
/// announced within its window.
pub fn read(headers: &HeaderMap, now: SystemTime) -> RateLimitInfo {
    let value = |name: &str| only_value(headers, name);
    // Measured against the server's clock where it gives one: a client
    // whose clock runs ahead would otherwise wait too little.
    let served = value(DATE.as_str()).and_then(|date| httpdate::parse_http_date(date).ok()).unwrap_or(now);
    Dialect::ALL.into_iter().find_map(|dialect| dialect.reading(&value, served)).unwrap_or_default()
}

impl Dialect {
    /// What an answer says in this dialect, if it says anything readable;
    /// `served` is when it was sent.
    fn reading<'a>(self, value: &impl Fn(&str) -> Option<&'a str>, served: SystemTime) -> Option<RateLimitInfo> {
        let (remaining, policy, spoke) = match self {
            Dialect::Structured => {
                let remaining = value(RATELIMIT).and_then(parse_ratelimit);
                let policy = value(RATELIMIT_POLICY).and_then(parse_policy);
                (remaining, policy, remaining.is_some() || policy.is_some())
            }
            Dialect::Split => counted([RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET], value, delay),
            Dialect::XRateLimit => {
                let names = [X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET];
                counted(names, value, |reset| delay_or_time(reset, served))
            }
        };
        spoke.then_some(RateLimitInfo { remaining, policy, dialect: Some(self) })
    }
}

/// The header's value, if it has exactly one, of a sane length, in ASCII.
/// A header sent twice (say, once by the API and once by a proxy in front
/// of it) is ambiguous, so neither is read.
fn only_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().filter(|value| value.len() <= MAX_VALUE)?;
    values.next().is_none().then(|| value.to_str().ok()).flatten()
}

/// The split and X- families: a limit, a count left and its reset, as
/// separate headers named `names` (in that order); and whether the answer
/// spoke the family at all.
///
/// The remaining count needs its reset: a count with no time at which it
/// frees cannot be spent safely (stopping at zero then waits for an unknown
/// time, going on risks the block), so Cloudflare's X- family, which sends
/// its reset only on 429s, yields none on other answers. And a limit is a
/// [`Policy`] only with a window (`100;w=60`): guessing one would pace at a
/// quota the API never stated.
fn counted<'a>(
    [limit, left, reset]: [&str; 3],
    value: impl Fn(&str) -> Option<&'a str>,
    parse_reset: impl Fn(&str) -> Option<Duration>,
) -> (Option<Remaining>, Option<Policy>, bool) {
    let requests = value(left).and_then(count);
    let limit = value(limit).and_then(parse_limit);
    let remaining =
        requests.zip(value(reset).and_then(parse_reset)).map(|(requests, reset)| Remaining { requests, reset });
    let policy = limit.and_then(|(quota, window)| Policy::paced(quota, window?));
    (remaining, policy, requests.is_some() || limit.is_some())
}

/// A limit header: its first number is the quota; the window is the `w`
/// of an item for that same quota (`100, 100;w=60`, or `100;w=60`), if one
/// says it.
fn parse_limit(value: &str) -> Option<(u32, Option<Duration>)> {
    let number = |item: &str| count(item.split(';').next().unwrap_or_default().trim());
    let quota = number(value.split(',').next()?)?;
    let window = value.split(',').filter(|item| number(item) == Some(quota)).find_map(|item| seconds(item, "w"));
    Some((quota, window))
}

/// A count of requests: digits only, so no sign, space, or fraction.
fn count(value: &str) -> Option<u32> {
    let value = value.trim();
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())).then(|| value.parse().ok()).flatten()
}

/// A time as whole or decimal seconds (`7`, `7.314`), the IETF draft's
/// forms: digits only, so no sign, exponent, NaN or infinity gets through;
/// past nanoseconds is cut.
fn decimal(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Duration::new(secs, nanos))
}

/// A delay of at most [`MAX_SECONDS`].
fn delay(value: &str) -> Option<Duration> {
    decimal(value).filter(|d| *d <= Duration::from_secs(MAX_SECONDS))
}

/// `X-RateLimit-Reset`: a delay, a Unix time, or an HTTP date, the last
/// two measured from `now`. A time already past is a reset now, as a
/// `Retry-After` date in the past is; one more than a day ahead is garbage.
fn delay_or_time(value: &str, now: SystemTime) -> Option<Duration> {
    let at = match decimal(value) {
        Some(unix) if unix.as_secs() >= UNIX_TIME_FROM => SystemTime::UNIX_EPOCH.checked_add(unix)?,
        Some(delay) => return Some(delay).filter(|d| *d <= Duration::from_secs(MAX_SECONDS)),
        None => httpdate::parse_http_date(value.trim()).ok()?,
    };
    Some(at.duration_since(now).unwrap_or(Duration::ZERO)).filter(|d| *d <= Duration::from_secs(MAX_SECONDS))
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

/// Parameter `key` of one item as a delay: decimal, not dropped along
/// with the whole item as an integer reading of `t=7.314` would be.
fn seconds(item: &str, key: &str) -> Option<Duration> {
    delay(raw_param(item, key)?)
}

/// The tightest `r`/`t` pair offered (fewest requests left), if any item is
/// well-formed.
fn parse_ratelimit(value: &str) -> Option<Remaining> {
    value
        .split(',')
        .filter_map(|item| {
            let requests = count(raw_param(item, "r")?)?;
            let reset = seconds(item, "t")?;
            Some(Remaining { requests, reset })
        })
        .min_by_key(|r| r.requests)
}

/// The most restrictive policy offered (lowest requests per second).
fn parse_policy(value: &str) -> Option<Policy> {
    value
        .split(',')
        .filter_map(|item| Policy::paced(count(raw_param(item, "q")?)?, seconds(item, "w")?))
        .min_by(Policy::tighter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::{HeaderName, HeaderValue};

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

    const NOW: u64 = 1_764_600_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn answer(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn info(headers: &[(&str, &str)]) -> RateLimitInfo {
        read(&answer(headers), now())
    }

    fn remaining(requests: u32, reset_ms: u64) -> Option<Remaining> {
        Some(Remaining { requests, reset: Duration::from_millis(reset_ms) })
    }

    fn policy(quota: u32, window_ms: u64) -> Option<Policy> {
        Some(Policy { quota, window: Duration::from_millis(window_ms) })
    }

    #[test]
    fn each_dialect_is_read_from_its_own_headers() {
        let structured =
            info(&[("Ratelimit", "\"default\";r=50;t=30"), ("Ratelimit-Policy", "\"default\";q=100;w=60")]);
        let split =
            info(&[("ratelimit-limit", "100, 100;w=60"), ("ratelimit-remaining", "50"), ("ratelimit-reset", "30")]);
        for (got, dialect) in [(structured, Dialect::Structured), (split, Dialect::Split)] {
            assert_eq!(
                got,
                RateLimitInfo { remaining: remaining(50, 30_000), policy: policy(100, 60_000), dialect: Some(dialect) }
            );
        }
        let x = info(&[("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "50"), ("X-RateLimit-Reset", "30")]);
        assert_eq!(
            x,
            RateLimitInfo { remaining: remaining(50, 30_000), policy: None, dialect: Some(Dialect::XRateLimit) }
        );
        assert_eq!(info(&[]), RateLimitInfo::default());
        assert_eq!(info(&[("x-other", "1")]).dialect, None);
    }

    #[test]
    fn structured_is_preferred_and_families_are_not_mixed() {
        let all = [
            ("x-ratelimit-limit", "7"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "1"),
            ("ratelimit-limit", "9;w=3"),
            ("ratelimit-remaining", "2"),
            ("ratelimit-reset", "2"),
            ("ratelimit", "\"default\";r=3;t=4"),
        ];
        let got = info(&all);
        assert_eq!(got.dialect, Some(Dialect::Structured));
        assert_eq!(got.remaining, remaining(3, 4000));
        assert_eq!(got.policy, None, "the split family's quota is not borrowed");
        assert_eq!(info(&all[..6]).dialect, Some(Dialect::Split));
        assert_eq!(info(&all[..6]).policy, policy(9, 3000));
        // A malformed structured header does not hide a readable family.
        let spoiled = [&all[..6], &[("ratelimit", "\"default\";r=-3;t=4")]].concat();
        assert_eq!(info(&spoiled).dialect, Some(Dialect::Split));
    }

    #[test]
    fn a_split_limit_takes_its_window_from_an_item_for_the_same_quota() {
        let limit = |value| info(&[("ratelimit-limit", value)]).policy;
        assert_eq!(limit("100, 100;w=60"), policy(100, 60_000));
        assert_eq!(limit("10, 10;w=1, 50;w=60"), policy(10, 1000));
        assert_eq!(limit("100;w=2.5"), policy(100, 2500));
        assert_eq!(limit("100;W=60;comment=\"x\""), policy(100, 60_000));
        assert_eq!(limit("100, 50;w=60"), None, "a window for another quota");
        assert_eq!(limit("100"), None, "no window stated");
        assert_eq!(info(&[("ratelimit-limit", "100")]).dialect, Some(Dialect::Split));
        // A count without its reset is no remaining; a decimal reset is read.
        assert_eq!(info(&[("ratelimit-remaining", "5")]).remaining, None);
        assert_eq!(info(&[("ratelimit-remaining", "5"), ("ratelimit-reset", "0.25")]).remaining, remaining(5, 250));
    }

    #[test]
    fn an_x_ratelimit_reset_is_a_delay_a_unix_time_or_a_date() {
        let reset = |headers: &[(&str, &str)]| {
            let mut all = vec![("x-ratelimit-remaining", "0")];
            all.extend_from_slice(headers);
            info(&all).remaining.map(|r| r.reset)
        };
        let date = |secs: u64| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(reset(&[("x-ratelimit-reset", "42")]), Some(Duration::from_secs(42)));
        assert_eq!(reset(&[("x-ratelimit-reset", "1.5")]), Some(Duration::from_millis(1500)));
        assert_eq!(reset(&[("x-ratelimit-reset", &(NOW + 90).to_string())]), Some(Duration::from_secs(90)));
        assert_eq!(reset(&[("x-ratelimit-reset", &date(NOW + 300))]), Some(Duration::from_secs(300)));
        // Measured from the answer's own Date, not this machine's clock.
        let served = date(NOW - 20);
        assert_eq!(reset(&[("x-ratelimit-reset", &date(NOW + 10)), ("date", &served)]), Some(Duration::from_secs(30)));
        assert_eq!(
            reset(&[("x-ratelimit-reset", &(NOW + 10).to_string()), ("date", &served)]),
            Some(Duration::from_secs(30))
        );
        // Past: now, as a Retry-After date in the past is. Over a day: garbage.
        assert_eq!(reset(&[("x-ratelimit-reset", &date(NOW - 5))]), Some(Duration::ZERO));
        assert_eq!(reset(&[("x-ratelimit-reset", &(NOW + 86_401).to_string())]), None);
        assert_eq!(reset(&[("x-ratelimit-reset", "86401")]), None);
        // Cloudflare's answers other than 429s: a count, but no time at which it frees.
        let plain = info(&[("x-ratelimit-limit", "1200"), ("x-ratelimit-remaining", "1199")]);
        assert_eq!(plain, RateLimitInfo { remaining: None, policy: None, dialect: Some(Dialect::XRateLimit) });
    }

    #[test]
    fn hostile_values_are_not_read() {
        let split = |remaining: &str, reset: &str, limit: &str| {
            info(&[("ratelimit-remaining", remaining), ("ratelimit-reset", reset), ("ratelimit-limit", limit)])
        };
        assert_eq!(split("5", "3", "10;w=2").remaining, remaining(5, 3000), "the baseline reads");
        for bad in ["-5", "+5", "5.5", "1e3", "NaN", "inf", "4294967296", "99999999999999999999999", "5, 6", "0x10", ""]
        {
            assert_eq!(split(bad, "3", "10;w=2").remaining, None, "remaining {bad}");
            assert_eq!(split("5", "3", &format!("{bad};w=2")).policy, None, "limit {bad}");
        }
        for bad in
            ["-3", "3e2", "NaN", "infinity", "3.", ".3", "3.1.4", "86400.001", "999999999999999999999999", "3, 4"]
        {
            assert_eq!(split("5", bad, "10;w=2").remaining, None, "reset {bad}");
            // In a limit a comma starts the next item: `10;w=3, 4` says 10 per 3 s.
            if !bad.contains(',') {
                assert_eq!(split("5", "3", &format!("10;w={bad}")).policy, None, "window {bad}");
            }
        }
        assert_eq!(split("5", "3", "0;w=2").policy, None, "a quota of zero");
        assert_eq!(split("5", "3", "10;w=0.5").policy, None, "a window under a second");
        for bad in ["-1", "1e10", "NaN", "soon", "Tue, 31 Feb 2026 00:00:00 GMT"] {
            assert_eq!(info(&[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", bad)]).remaining, None, "{bad}");
        }
        // A header sent twice, or one of 100 KB, is not read at all.
        let twice = info(&[("ratelimit", "\"d\";r=5;t=3"), ("ratelimit", "\"d\";r=6;t=3")]);
        assert_eq!(twice, RateLimitInfo::default());
        let huge = format!("\"d\";r=5;t=3,{}", " ".repeat(100 * 1024));
        assert_eq!(info(&[("ratelimit", &huge)]), RateLimitInfo::default());
        let mut binary = HeaderMap::new();
        binary.insert("ratelimit-remaining", HeaderValue::from_bytes(b"5\xff").unwrap());
        assert_eq!(read(&binary, now()), RateLimitInfo::default());
    }

    #[test]
    fn each_answer_is_read_alone() {
        let first = info(&[("ratelimit", "\"d\";r=9;t=3"), ("ratelimit-policy", "\"d\";q=10;w=3")]);
        let second = info(&[("ratelimit", "\"d\";r=1;t=1"), ("ratelimit-policy", "\"d\";q=50;w=60")]);
        assert_eq!((first.remaining, first.policy), (remaining(9, 3000), policy(10, 3000)));
        assert_eq!((second.remaining, second.policy), (remaining(1, 1000), policy(50, 60_000)));
    }

    #[test]
    fn dialect_names_round_trip() {
        for dialect in Dialect::ALL {
            assert_eq!(Dialect::from_name(&dialect.to_string()), Some(dialect));
        }
        assert_eq!(Dialect::from_name("none"), None);
    }

    /// Every header any dialect is read from, and `Date`.
    const NAMES: [&str; 9] = [
        RATELIMIT,
        RATELIMIT_POLICY,
        RATELIMIT_LIMIT,
        RATELIMIT_REMAINING,
        RATELIMIT_RESET,
        X_RATELIMIT_LIMIT,
        X_RATELIMIT_REMAINING,
        X_RATELIMIT_RESET,
        "date",
    ];

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(value in "\\PC{0,64}") {
            let _ = parse_ratelimit(&value);
            let _ = parse_policy(&value);
        }

        #[test]
        fn arbitrary_answers_never_panic(
            values in proptest::collection::vec((0..NAMES.len(), proptest::collection::vec(any::<u8>(), 0..48)), 0..12),
            now_secs in any::<u64>(),
        ) {
            let mut map = HeaderMap::new();
            for (name, bytes) in values {
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    map.append(NAMES[name], value);
                }
            }
            let now = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(now_secs)).unwrap_or(SystemTime::UNIX_EPOCH);
            let got = read(&map, now);
            prop_assert!(got.remaining.is_none_or(|r| r.reset <= Duration::from_secs(MAX_SECONDS)));
        }

        #[test]
        fn numbers_in_any_dialect_read_the_same(
            left in 0u32..100_000,
            reset_ms in 0u64..86_400_000,
            quota in 1u32..100_000,
            window_s in 1u64..86_400,
        ) {
            let (t, w) = (format!("{}.{:03}", reset_ms / 1000, reset_ms % 1000), window_s.to_string());
            let expected = (remaining(left, reset_ms), policy(quota, window_s * 1000));
            let structured = info(&[
                ("ratelimit", &format!("\"default\";r={left};t={t}")),
                ("ratelimit-policy", &format!("\"default\";q={quota};w={w}")),
            ]);
            let split = info(&[
                ("ratelimit-limit", &format!("{quota}, {quota};w={w}")),
                ("ratelimit-remaining", &left.to_string()),
                ("ratelimit-reset", &t),
            ]);
            prop_assert_eq!((structured.remaining, structured.policy), expected);
            prop_assert_eq!((split.remaining, split.policy), expected);
            let x = |reset: String| info(&[
                ("x-ratelimit-limit", &format!("{quota};w={w}")),
                ("x-ratelimit-remaining", &left.to_string()),
                ("x-ratelimit-reset", &reset),
            ]);
            prop_assert_eq!((x(t.clone()).remaining, x(t.clone()).policy), expected);
            // As a date or a Unix time, to the second.
            let whole = remaining(left, reset_ms / 1000 * 1000);
            let at = now() + Duration::from_secs(reset_ms / 1000);
            prop_assert_eq!(x(httpdate::fmt_http_date(at)).remaining, whole);
            prop_assert_eq!(x((NOW + reset_ms / 1000).to_string()).remaining, whole);
        }
    }
}
