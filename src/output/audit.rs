//! The audit trail: a run id on every results row and log event, and who ran
//! what. Responders are asked afterwards "which run revoked this, and who
//! started it?"; these are the answers.

use std::time::SystemTime;

use crate::credentials::REDACTED;

/// A run id that sorts by start time and is unique enough to grep for:
/// `20261127T021005Z-3f9a2c`.
pub fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
    format!("{stamp}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// `user@host`, from the environment and the kernel's hostname.
pub fn operator() -> String {
    let user = ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok()).unwrap_or("unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or("unknown".into());
    format!("{user}@{host}")
}

/// The command line for the record. cfrevoke takes no secret as an argument,
/// but a wrapper might pass an unknown `--token=...` or a URL with a password:
/// those values are blanked rather than trusted to never appear.
pub fn command_line(argv: &[String]) -> String {
    let mut out = Vec::with_capacity(argv.len());
    let mut hide_next = false;
    for arg in argv {
        if std::mem::take(&mut hide_next) {
            out.push(REDACTED.to_string());
            continue;
        }
        let secretive = |name: &str| ["token", "key", "secret", "password"].iter().any(|s| name.contains(s));
        let shown = match arg.split_once('=') {
            Some((name, _)) if name.starts_with("--") && secretive(name) && !name.ends_with("-file") => {
                format!("{name}={REDACTED}")
            }
            _ if arg.starts_with("--") && secretive(arg) && !arg.ends_with("-file") => {
                hide_next = true;
                arg.clone()
            }
            _ => redact_userinfo(arg),
        };
        out.push(shown);
    }
    out.join(" ")
}

/// `https://user:pass@host/` → `https://[redacted]@host/`.
fn redact_userinfo(arg: &str) -> String {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return arg.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> String {
        command_line(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn secrets_are_blanked_and_the_rest_kept() {
        assert_eq!(
            line(&["cfrevoke", "revoke", "in.csv", "--api-token-file", "/etc/t", "--yes"]),
            "cfrevoke revoke in.csv --api-token-file /etc/t --yes"
        );
        assert_eq!(line(&["x", "--token=abc", "--api-key", "k3y", "y"]), "x --token=[redacted] --api-key [redacted] y");
        assert_eq!(line(&["--base-url", "https://u:p@h.example/v4"]), "--base-url https://[redacted]@h.example/v4");
    }

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), "20261127T021005Z-3f9a2c".len());
        assert!(a.ends_with(char::is_alphanumeric) && a.as_bytes()[8] == b'T');
        assert_ne!(a, b);
    }
}
