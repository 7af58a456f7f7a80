//! API credentials, read from the environment or a file and never from the
//! command line (where `ps` would show them). Their `Debug` output is redacted
//! so a stray `{:?}` in a log or panic cannot leak them.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const TOKEN_VAR: &str = "CLOUDFLARE_API_TOKEN";
pub const EMAIL_VAR: &str = "CLOUDFLARE_EMAIL";
pub const KEY_VAR: &str = "CLOUDFLARE_API_KEY";

/// A secret string whose formatting never shows its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What stands in for a secret wherever one would be shown.
pub const REDACTED: &str = "[redacted]";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`, the preferred scheme.
    Token(Secret),
    /// Legacy `X-Auth-Email` + `X-Auth-Key` (global API key).
    EmailKey { email: String, key: Secret },
}

impl Credentials {
    /// Which scheme is in use, for logs.
    pub fn scheme(&self) -> &'static str {
        match self {
            Credentials::Token(_) => "api_token",
            Credentials::EmailKey { .. } => "email_and_global_key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no Cloudflare credentials: set {TOKEN_VAR} (an API token with \"SSL and Certificates Write\"), \
         or {EMAIL_VAR} and {KEY_VAR}, or pass --api-token-file PATH"
    )]
    Missing,
    #[error("{EMAIL_VAR} is set but {KEY_VAR} is not (or the other way round): set both, or use {TOKEN_VAR}")]
    HalfPair,
    #[error("cannot read the API token file {}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error(
        "the API token from {origin} is empty or holds characters a header cannot carry (only its first line is used)"
    )]
    Malformed { origin: String },
    #[error("the first line of the API token file {} is longer than {MAX_TOKEN_LINE} bytes: not a token", path.display())]
    TooLong { path: PathBuf },
}

/// A token is 40 characters and a global key 37. Only this much of the file
/// is read, so `/dev/zero` or a huge file by mistake costs nothing.
const MAX_TOKEN_LINE: usize = 4096;

/// The first line of the token file, read no further than [`MAX_TOKEN_LINE`].
fn read_first_line(path: &Path) -> Result<String, CredentialsError> {
    let file_error = |source| CredentialsError::File { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(file_error)?;
    warn_if_exposed(path, &file);
    let mut line = Vec::new();
    BufReader::new(file.take(MAX_TOKEN_LINE as u64 + 1)).read_until(b'\n', &mut line).map_err(file_error)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_TOKEN_LINE {
        return Err(CredentialsError::TooLong { path: path.to_path_buf() });
    }
    String::from_utf8(line).map_err(|_| CredentialsError::Malformed { origin: path.display().to_string() })
}

/// As ssh does for keys: a secret others can read is as good as theirs. Said
/// on stderr before logging starts, since this is read first. A pipe or
/// device (`<(pass show cf)`) holds no stored secret, so only regular files
/// are checked.
fn warn_if_exposed(path: &Path, file: &File) {
    let Ok(meta) = file.metadata() else { return };
    if let Some(warning) = exposure(path, &meta) {
        eprintln!("cfrevoke: warning: {warning}");
    }
}

fn exposure(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode() & 0o777;
    (meta.is_file() && mode & 0o044 != 0).then(|| {
        format!(
            "the API token file {} is readable by group or others (mode {mode:04o}); `chmod 600` it",
            path.display()
        )
    })
}

/// Anything a header value can carry: visible ASCII, no spaces or controls.
fn usable(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Looks for credentials in order: the token file, the token variable, then
/// the email and key pair. `env` is a parameter so tests need not touch the
/// process environment.
pub fn resolve(
    token_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, CredentialsError> {
    if let Some(path) = token_file {
        let line = read_first_line(path)?;
        let token = line.trim();
        if !usable(token) {
            return Err(CredentialsError::Malformed { origin: path.display().to_string() });
        }
        return Ok(Credentials::Token(Secret::new(token)));
    }
    let non_empty = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if let Some(token) = non_empty(TOKEN_VAR) {
        if !usable(&token) {
            return Err(CredentialsError::Malformed { origin: TOKEN_VAR.into() });
        }
        return Ok(Credentials::Token(Secret::new(token)));
    }
    match (non_empty(EMAIL_VAR), non_empty(KEY_VAR)) {
        (Some(email), Some(key)) if usable(&key) && usable(&email) => {
            Ok(Credentials::EmailKey { email, key: Secret::new(key) })
        }
        (Some(_), Some(_)) => Err(CredentialsError::Malformed { origin: format!("{EMAIL_VAR}/{KEY_VAR}") }),
        (None, None) => Err(CredentialsError::Missing),
        _ => Err(CredentialsError::HalfPair),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn token_wins_over_email_and_key() {
        let creds = resolve(None, env_of(&[(TOKEN_VAR, "tok"), (EMAIL_VAR, "a@b"), (KEY_VAR, "k")])).unwrap();
        assert_eq!(creds, Credentials::Token(Secret::new("tok")));
        assert_eq!(format!("{creds:?}"), "Token([redacted])");
    }

    #[test]
    fn missing_and_half_pairs_name_the_variables() {
        let err = resolve(None, env_of(&[])).unwrap_err().to_string();
        assert!(err.contains(TOKEN_VAR) && err.contains(EMAIL_VAR) && err.contains("--api-token-file"), "{err}");
        let err = resolve(None, env_of(&[(EMAIL_VAR, "a@b")])).unwrap_err();
        assert!(matches!(err, CredentialsError::HalfPair));
    }

    #[test]
    fn token_file_first_line_is_used_and_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t-token\n").unwrap();
        let creds = resolve(Some(&path), env_of(&[(TOKEN_VAR, "other")])).unwrap();
        assert_eq!(creds, Credentials::Token(Secret::new("s3cr3t-token")));
        std::fs::write(&path, "has space\n").unwrap();
        let err = resolve(Some(&path), env_of(&[])).unwrap_err().to_string();
        assert!(!err.contains("has space"), "{err}");
        std::fs::write(&path, "crlf-token\r\nsecond line\n").unwrap();
        assert_eq!(resolve(Some(&path), env_of(&[])).unwrap(), Credentials::Token(Secret::new("crlf-token")));
    }

    #[test]
    fn a_huge_first_line_is_refused_after_a_bounded_read() {
        let err = resolve(Some(Path::new("/dev/zero")), env_of(&[])).unwrap_err();
        assert!(matches!(err, CredentialsError::TooLong { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "t".repeat(MAX_TOKEN_LINE)).unwrap();
        assert!(resolve(Some(&path), env_of(&[])).is_ok(), "a line of exactly the bound is read");
        std::fs::write(&path, format!("{}\n", "t".repeat(MAX_TOKEN_LINE))).unwrap();
        assert!(resolve(Some(&path), env_of(&[])).is_ok(), "its newline may come after the bound");
        std::fs::write(&path, "t".repeat(MAX_TOKEN_LINE + 1)).unwrap();
        let err = resolve(Some(&path), env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("longer than 4096 bytes") && !err.contains("tttt"), "{err}");
    }

    #[test]
    fn only_files_readable_by_others_are_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "tok\n").unwrap();
        let mode = |m: u32| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
            exposure(&path, &std::fs::metadata(&path).unwrap())
        };
        assert_eq!(mode(0o600), None);
        assert_eq!(mode(0o400), None);
        assert_eq!(mode(0o620), None, "writable is not readable");
        assert!(mode(0o640).is_some_and(|w| w.contains("mode 0640") && w.contains("chmod 600")));
        assert!(mode(0o604).is_some());
        assert_eq!(exposure(Path::new("/dev/null"), &std::fs::metadata("/dev/null").unwrap()), None);
    }
}
