//! API credentials, read from the environment or a file and never from the
//! command line (where `ps` would show them). Their `Debug` output is redacted
//! so a stray `{:?}` in a log or panic cannot leak them.

use std::fmt;
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

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
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
        let text = std::fs::read_to_string(path)
            .map_err(|source| CredentialsError::File { path: path.to_path_buf(), source })?;
        let token = text.lines().next().unwrap_or("").trim();
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
    }
}
