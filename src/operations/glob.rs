//! Shell-style patterns for `list --common-name` and `--ca`: `*` for any run
//! of characters, `?` for one, case-insensitive, nothing else special.
//!
//! Hand-written rather than taken from `globset` or `glob`: those are built
//! for paths (separators, `**`, character classes) and bring a regex engine,
//! while a common name needs only two wildcards and a greedy matcher with one
//! backtrack point, which runs in O(pattern × text) at worst.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// The pattern lower-cased once, as characters so `?` is one character
    /// whatever its UTF-8 length.
    pattern: Vec<char>,
}

impl Glob {
    pub fn new(source: &str) -> Glob {
        Glob { source: source.to_string(), pattern: source.to_lowercase().chars().collect() }
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.to_lowercase().chars().collect();
        let pattern = &self.pattern;
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was, and how much text it has swallowed so far.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == '?' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    // Let the last `*` take one more character and try again;
                    // earlier stars never need to, which is why one backtrack
                    // point is enough.
                    Some((star_p, star_t)) => {
                        star = Some((star_p, star_t + 1));
                        p = star_p + 1;
                        t = star_t + 1;
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

impl FromStr for Glob {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Glob::new(s))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn literals_match_whole_text_ignoring_case() {
        assert!(matches("device-42", "DEVICE-42"));
        assert!(!matches("device-42", "device-421"));
        assert!(!matches("device-42", "xdevice-42"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(matches("ÄRGER", "ärger"));
    }

    #[test]
    fn star_takes_any_run_and_question_mark_one_character() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything at all"));
        assert!(matches("contractor-*", "Contractor-alice.example.com"));
        assert!(matches("*.example.com", "laptop.example.com"));
        assert!(!matches("*.example.com", "laptop.example.org"));
        assert!(matches("dev?ce", "device"));
        assert!(matches("dev?ce", "devıce"), "? is one character, not one byte");
        assert!(!matches("dev?ce", "devce"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a**c", "abc"));
        assert!(!matches("a*b*c", "aXXcYYb"));
    }

    #[test]
    fn backtracking_finds_the_later_occurrence() {
        assert!(matches("*abc", "ababc"));
        assert!(matches("*a?c*", "xxabxabcyy"));
        assert!(!matches("*a?c*", "xxabxacyy"));
        assert!(matches("*aab", "aaaab"));
        assert!(!matches("*aab", "aaaaba"));
        // Long inputs that defeat naive recursion stay quick.
        let text = "a".repeat(2000);
        assert!(!matches(&format!("{}b", "*a".repeat(20)), &text));
    }

    #[test]
    fn other_characters_are_literal() {
        assert!(matches("[ab]", "[AB]"));
        assert!(!matches("[ab]", "a"));
        assert!(matches("a\\*", "a\\xyz"));
        assert_eq!(Glob::new("Dev-*").to_string(), "Dev-*");
    }
}
