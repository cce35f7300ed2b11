//! A PostgreSQL connection string (`accounts.postgres_url`, a `postgres://` URL or libpq
//! `key=value` pairs) read as the postgres crate's settings plus libpq's `sslmode`, which that crate
//! cannot read in full. Here, below the store, so the config check refuses a string the store could
//! not use, at its key's line, and the store connects with the same reading.

use postgres::config::SslMode as CrateSslMode;

use super::redact::{key_values, percent_decode, quote_value};

/// libpq's `sslmode`, the part parleyd honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (its certificate must still verify), else in clear.
    Prefer,
    /// TLS or no connection; the certificate must chain to a trusted CA.
    Require,
    /// Like `require` (libpq's name for it when a CA is given).
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host name connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The postgres crate's mode, which knows only disable, prefer and require: the connector, not
    /// the crate, checks the certificate.
    pub fn for_crate(self) -> CrateSslMode {
        match self {
            Self::Disable => CrateSslMode::Disable,
            Self::Prefer => CrateSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => CrateSslMode::Require,
        }
    }
}

/// `url` as the postgres crate's settings and the `sslmode` it names (taken out, as the crate
/// cannot read `verify-ca` or `verify-full`). Errors never quote the string.
pub fn parse_url(url: &str) -> Result<(postgres::Config, Option<SslMode>), String> {
    let mut mode = None;
    let mut take_mode = |value: &str| match SslMode::parse(value) {
        Some(parsed) => {
            mode = Some(parsed);
            Ok(())
        }
        None => Err(
            "sslmode must be one of disable, prefer, require, verify-ca, verify-full".to_owned(),
        ),
    };
    // libpq's file settings would be refused by the crate as unknown; say where they go.
    let file_setting = |key: &str| {
        matches!(key, "sslrootcert" | "sslcert" | "sslkey").then(|| {
            format!(
                "{key} is not read from the URL; set accounts.postgres_ca (the CA) or \
                 accounts.postgres_client_cert and postgres_client_key instead"
            )
        })
    };
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|prefix| url.strip_prefix(prefix));
    let for_crate = match rest {
        Some(rest) => {
            // Where the crate's parser finds the query: after the first `@` (the credentials
            // may hold a `?`), at the first `?`.
            let after_credentials = rest.find('@').map_or(0, |at| at + 1);
            match rest[after_credentials..].find('?') {
                Some(offset) => {
                    let query_start = url.len() - rest.len() + after_credentials + offset;
                    let mut kept = Vec::new();
                    for param in url[query_start + 1..].split('&') {
                        let (key, value) = param.split_once('=').unwrap_or((param, ""));
                        let key = percent_decode(key);
                        if let Some(error) = file_setting(&key) {
                            return Err(error);
                        }
                        if key == "sslmode" {
                            take_mode(&percent_decode(value))?;
                        } else {
                            kept.push(param);
                        }
                    }
                    let mut stripped = url[..query_start].to_owned();
                    if !kept.is_empty() {
                        stripped.push('?');
                        stripped.push_str(&kept.join("&"));
                    }
                    stripped
                }
                None => url.to_owned(),
            }
        }
        None => {
            let pairs = key_values(url).ok_or_else(|| {
                "expected a postgres:// URL or key=value pairs (quote a value that has spaces: \
                 password='a b')"
                    .to_owned()
            })?;
            let mut kept = Vec::new();
            for (key, value) in pairs {
                if let Some(error) = file_setting(&key) {
                    return Err(error);
                }
                if key == "sslmode" {
                    take_mode(&value)?;
                } else {
                    kept.push(format!("{key}={}", quote_value(&value)));
                }
            }
            kept.join(" ")
        }
    };
    let config = for_crate.parse::<postgres::Config>().map_err(|error| {
        // The crate's Display says only "invalid connection string"; its source names the
        // option. An unknown option's name is not quoted: with a raw `&` in a `?password=`,
        // the "name" is a piece of the password.
        match std::error::Error::source(&error).map(ToString::to_string) {
            Some(cause) if cause.starts_with("unknown option") => {
                "it has a setting PostgreSQL's client does not know; check the names, and \
                 percent-encode `&`, `=`, `@` and `/` in a password (%26, %3D, %40, %2F)"
                    .to_owned()
            }
            Some(cause) => cause,
            None => error.to_string(),
        }
    })?;
    Ok((config, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_in_both_forms_and_the_rest_reaches_the_crate() {
        let (config, mode) = parse_url(
            "postgres://u:p%3Fw?sslmode=x@127.0.0.1:5433/db?application_name=a&sslmode=verify-ca",
        )
        .expect("parses");
        assert_eq!(mode, Some(SslMode::VerifyCa));
        assert_eq!(config.get_password(), Some(&b"p?w?sslmode=x"[..]));
        assert_eq!(config.get_dbname(), Some("db"));
        assert_eq!(config.get_application_name(), Some("a"));
        let (config, mode) =
            parse_url(r"host=h password='a b\' c' sslmode = verify-full dbname=d").expect("kv");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(config.get_password(), Some(&b"a b' c"[..]));
        assert_eq!(config.get_dbname(), Some("d"));
        let error = parse_url("postgres://h/d?sslmode=verify-Secret").expect_err("bad mode");
        assert!(!error.contains("Secret"), "{error}");
        let error = parse_url("postgres://h/d?password=ab&Cd3f=x").expect_err("raw & in password");
        assert!(!error.contains("Cd3f"), "{error}");
        let error = parse_url("postgres://h/d?sslrootcert=/ca.pem").expect_err("file in URL");
        assert!(error.contains("accounts.postgres_ca"), "{error}");
        let error = parse_url("host=h password='Unterminated").expect_err("bad kv");
        assert!(!error.contains("Unterminated"), "{error}");
    }
}
