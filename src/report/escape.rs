//! Text from the files made safe for the page it lands on. A certificate id,
//! an error message or a command line is read from a file someone else
//! wrote (or a server answered), so it is never markup.

/// For HTML text and attribute values: the five characters that can open
/// markup or end an attribute, and the `:` of a `scheme://`, so that no
/// text read from a file puts an `http://` reference into the page.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ':' if rest.starts_with("://") => out.push_str("&#58;"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// For a Markdown table cell (or any inline text): line breaks become
/// spaces, so a row stays one row, and every ASCII character Markdown reads
/// as syntax is backslash-escaped: `|` cannot split a cell, a backtick
/// cannot open code, `<` cannot open HTML, `[` cannot open a link.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\r' | '\n' | '\u{2028}' | '\u{2029}' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '&' | '!' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            // `https://` would be linked by GitHub; `:` escaped it is not.
            ':' if rest.starts_with("//") => out.push_str("\\:"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_html_is_text() {
        assert_eq!(html("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(html("a \"b\" & c"), "a &quot;b&quot; &amp; c");
        assert_eq!(
            html("--base-url https://api.example/v4 at 12:00"),
            "--base-url https&#58;//api.example/v4 at 12:00"
        );
    }

    #[test]
    fn nothing_breaks_a_markdown_table() {
        let cell = markdown("a|b\nc`d`<script>\\");
        assert_eq!(cell, "a\\|b c\\`d\\`\\<script\\>\\\\");
        assert!(!cell.contains('\n'));
        // Every `|` left is escaped.
        assert!(cell.match_indices('|').all(|(i, _)| cell.as_bytes()[i - 1] == b'\\'));
        assert_eq!(markdown("https://x at 12:00"), "https\\://x at 12:00");
    }
}
