//! Text from the server made safe to print. Error messages, `cf-ray` and a
//! redirect's location end up on stderr, in the results CSV and in the log,
//! on a terminal or not. Raw, an ESC or OSC sequence could rewrite the
//! operator's terminal and a CR or LF could forge a log line, so such text is
//! escaped once, where the client takes it in, and everything downstream
//! carries the escaped form.

use std::fmt::Write;

/// A real error message is a sentence; a longer one is cut here so that a
/// hostile server cannot fill the results file (one copy per row) or the
/// terminal with it.
const MAX_CHARS: usize = 1024;

/// Control characters (C0, DEL, C1), Unicode line and paragraph separators
/// and bidirectional overrides, which can reorder what a reader sees.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as Rust writes it in a string
/// literal (`\n`, `\r`, `\t`, `\u{1b}`), cut to `MAX_CHARS` characters.
/// A backslash is kept as it is: it cannot act on a terminal or split a line.
pub fn server_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if unsafe_char(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// For `#[serde(deserialize_with)]`: the string escaped as it is decoded, so
/// no copy of the raw text exists past the parser.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw: String = serde::Deserialize::deserialize(deserializer)?;
    Ok(server_text(&raw))
}

/// The same for an optional string.
pub fn deserialize_option<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let raw: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    Ok(raw.as_deref().map(server_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_is_kept() {
        assert_eq!(server_text("\u{1b}]0;evil\u{7}\r\nFAKE"), r"\u{1b}]0;evil\u{7}\r\nFAKE");
        assert_eq!(server_text("bad \u{9b}31m \u{202e}txt\u{2028}x\tz"), r"bad \u{9b}31m \u{202e}txt\u{2028}x\tz");
        let plain = r#"Certificate "ab" not found: naïve C:\path, 证书"#;
        assert_eq!(server_text(plain), plain);
    }

    #[test]
    fn long_text_is_cut() {
        let long = "x".repeat(MAX_CHARS + 10);
        assert_eq!(server_text(&long), format!("{}...", "x".repeat(MAX_CHARS)));
        assert_eq!(server_text(&"y".repeat(MAX_CHARS)), "y".repeat(MAX_CHARS));
    }

    #[test]
    fn decoding_escapes() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize")]
            a: String,
            #[serde(default, deserialize_with = "deserialize_option")]
            b: Option<String>,
        }
        let t: T = serde_json::from_str(r#"{"a": "x\u001b[2Jy", "b": "\r"}"#).unwrap();
        assert_eq!((t.a.as_str(), t.b.as_deref()), (r"x\u{1b}[2Jy", Some(r"\r")));
        let t: T = serde_json::from_str(r#"{"a": "ok", "b": null}"#).unwrap();
        assert_eq!(t.b, None);
    }
}
