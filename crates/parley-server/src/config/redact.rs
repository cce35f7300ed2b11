//! Connection strings with their secrets left out, for `--print-config`, errors and logs:
//! PostgreSQL URLs and `key=value` lists, and NATS URLs (one or several, comma-separated).
//!
//! The printout is rebuilt from parts that are parsed and known to be harmless, never by cutting
//! the secret out of the text: the user name, hosts and ports, the database path and the query
//! or `key=value` settings on a list of non-secret names. Anything else (a password, a token, a
//! setting this list does not know, input that does not parse) is left out, whole if need be, so
//! a password with `/`, `@`, `?`, `#` or quotes in it cannot slip through a split.
//!
//! It lives in the config module because these strings are config values: the modules above (the
//! store, the cluster, the printout) all use it, and config imports none of them.

/// Shown in place of a connection string that does not parse.
const UNREADABLE: &str = "(hidden: not a URL or key=value list)";

/// libpq settings that never hold a secret (`password`, `sslpassword` and anything unknown are
/// left out). `options` is left out too: it carries arbitrary server settings.
const HARMLESS_SETTINGS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// `url` without its secrets: `postgres://user:secret@host/db?password=x` as
/// `postgres://user@host/db`, `host=h password='x'` as `host=h`, `nats://token@host` as
/// `nats://host`. Input that does not parse is replaced whole.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    if url.is_empty() {
        return String::new();
    }
    if scheme_len(url).is_some() {
        return split_urls(url)
            .iter()
            .map(|one| redact_one_url(one).unwrap_or_else(|| UNREADABLE.to_owned()))
            .collect::<Vec<_>>()
            .join(",");
    }
    if let Some(pairs) = key_values(url) {
        return pairs
            .iter()
            .filter(|(key, _)| HARMLESS_SETTINGS.contains(&key.as_str()))
            .map(|(key, value)| format!("{key}={}", quote_value(value)))
            .collect::<Vec<_>>()
            .join(" ");
    }
    // A bare `host:port` list, as NATS also accepts.
    if is_host_list(url) {
        return url.to_owned();
    }
    UNREADABLE.to_owned()
}

/// The length of `text`'s leading `scheme://`, if it starts with one.
fn scheme_len(text: &str) -> Option<usize> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme.len() + 3)
}

/// `a://x,b://y` as its URLs. A comma splits only where a new `scheme://` follows, since
/// PostgreSQL URLs list several hosts with commas too.
fn split_urls(text: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut start = 0;
    for (comma, _) in text.match_indices(',') {
        let next = text[comma + 1..].trim_start();
        if comma >= start && scheme_len(next).is_some() {
            urls.push(text[start..comma].trim());
            start = text.len() - next.len();
        }
    }
    urls.push(text[start..].trim());
    urls
}

/// One URL without its secrets, or `None` when it cannot be read with confidence.
///
/// Parsers disagree on where the credentials end (the postgres crate reads to the first `@`,
/// WHATWG URL parsers to the last `@` before the path), so everything up to the *last* `@` is
/// treated as credentials: whichever parser connects, its password lies inside that part.
fn redact_one_url(url: &str) -> Option<String> {
    let scheme_end = scheme_len(url)?;
    let (scheme, rest) = url.split_at(scheme_end);
    let (credentials, place) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let authority_end = place.find(['/', '?', '#']).unwrap_or(place.len());
    let (authority, tail) = place.split_at(authority_end);
    // A host list that does not look like one may be a piece of a password (`u:pa` from
    // `u:pa,x://...@h`): show none of it.
    if !is_host_list(authority) {
        return None;
    }
    let tail = tail.split('#').next().unwrap_or_default();
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));

    let mut shown = scheme.to_owned();
    if let Some(credentials) = credentials {
        let is_postgres = scheme.starts_with("postgres");
        let user = credentials.split([':', '@']).next().unwrap_or_default();
        // Without a `:`, NATS reads the user part as a token; PostgreSQL as the user name.
        let named_user = is_postgres || credentials.contains(':');
        if named_user && !user.is_empty() && user.chars().all(is_plain_user_char) {
            shown.push_str(user);
            shown.push('@');
        }
    }
    shown.push_str(authority);
    shown.push_str(path);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            HARMLESS_SETTINGS.contains(&percent_decode(key).as_str())
        })
        .collect();
    if !kept.is_empty() {
        shown.push('?');
        shown.push_str(&kept.join("&"));
    }
    Some(shown)
}

/// Characters a user name may show with: no delimiter that would mean part of a query or
/// password landed in it.
fn is_plain_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%' | '+')
}

/// `host[:port]` items separated by commas (`[v6]:port` too); empty is fine (the default host).
fn is_host_list(text: &str) -> bool {
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '%');
    let port_ok = |port: &str| port.chars().all(|c| c.is_ascii_digit());
    text.is_empty()
        || text.split(',').all(|item| {
            let item = item.trim();
            if let Some(v6) = item.strip_prefix('[') {
                let Some((address, after)) = v6.split_once(']') else {
                    return false;
                };
                address
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'))
                    && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok))
            } else {
                let (host, port) = item.split_once(':').unwrap_or((item, ""));
                !host.is_empty() && host.chars().all(host_char) && port_ok(port)
            }
        })
}

/// `%xx` escapes decoded (a bad escape stays as it is); for comparing setting names.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A libpq `key=value` list as its pairs, read exactly as the postgres crate reads it (spaces
/// around `=` allowed; a value bare or in single quotes, `\` escaping the next character), or
/// `None` if it is not one.
pub(crate) fn key_values(text: &str) -> Option<Vec<(String, String)>> {
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        pairs.push((key, value));
    }
}

/// `value` as a `key=value` list spells it: bare when it can be, else quoted and escaped.
pub(crate) fn quote_value(value: &str) -> String {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if bare {
        return value.to_owned();
    }
    let mut quoted = String::from("'");
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://parley:s3cret@127.0.0.1:5432/parley"),
            "postgres://parley@127.0.0.1:5432/parley"
        );
        assert_eq!(
            redact_url("postgresql://parley@localhost/parley"),
            "postgresql://parley@localhost/parley"
        );
        assert_eq!(
            redact_url("host=127.0.0.1 user=parley password=s3cret dbname=parley"),
            "host=127.0.0.1 user=parley dbname=parley"
        );
    }

    /// Each leaking form from issue 21, and the secret pieces that must not show.
    fn assert_hidden(input: &str, secrets: &[&str]) -> String {
        let shown = redact_url(input);
        for secret in secrets {
            assert!(
                !shown.contains(secret),
                "{input:?} showed {secret:?}: {shown:?}"
            );
        }
        shown
    }

    #[test]
    fn a_password_in_the_query_is_left_out() {
        let shown = assert_hidden(
            "postgres://parley@db.example:5432/parley?password=Qu3ry&sslpassword=K3yPass&sslmode=verify-full",
            &["Qu3ry", "K3yPass"],
        );
        assert_eq!(
            shown,
            "postgres://parley@db.example:5432/parley?sslmode=verify-full"
        );
        // Percent-encoded key names are the same key to the parser.
        assert_hidden("postgres://p@h/d?pass%77ord=Enc0ded", &["Enc0ded"]);
    }

    #[test]
    fn a_password_with_url_delimiters_is_left_out() {
        assert_eq!(
            assert_hidden(
                "postgres://parley:Sl4sh/Pa55@127.0.0.1/parley",
                &["Sl4sh", "Pa55"]
            ),
            "postgres://parley@127.0.0.1/parley"
        );
        assert_eq!(
            assert_hidden(
                "postgresql://parley:At@C0l:on?Qm#H4sh@127.0.0.1:5432/parley",
                &["At", "C0l", "on?", "Qm", "H4sh"]
            ),
            "postgresql://parley@127.0.0.1:5432/parley"
        );
        assert_hidden("postgres://parley:a%2Fb%40Enc0ded@h/d", &["Enc0ded"]);
    }

    #[test]
    fn a_quoted_key_value_password_is_left_out() {
        let shown = assert_hidden(
            r"host=127.0.0.1 user=parley password='Qu0ted p\' W0rds' dbname=parley",
            &["Qu0ted", "W0rds"],
        );
        assert_eq!(shown, "host=127.0.0.1 user=parley dbname=parley");
        assert_hidden(r"password = Sp4ced host=h", &["Sp4ced"]);
        assert_hidden(r"host=h password=Esc\ aped", &["Esc", "aped"]);
        assert_hidden(r"host=h sslpassword=K3yPass", &["K3yPass"]);
    }

    #[test]
    fn nats_tokens_and_passwords_are_left_out() {
        assert_eq!(
            assert_hidden("nats://T0ken@127.0.0.1:4222", &["T0ken"]),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            assert_hidden(
                "nats://u:NatsPa55@10.0.0.1:4222,tls://S3cond@10.0.0.2:4222, nats://10.0.0.3",
                &["NatsPa55", "S3cond"]
            ),
            "nats://u@10.0.0.1:4222,tls://10.0.0.2:4222,nats://10.0.0.3"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn what_cannot_be_read_is_hidden_whole() {
        for input in [
            "postgres://parley:Unterminated",
            "host=h password='Unterminated",
            "just some Words",
            "nats://u:Sp@ce in@host",
        ] {
            assert_hidden(input, &["Unterminated", "Words", "Sp@ce", "in@"]);
        }
        assert_eq!(redact_url(""), "");
    }
}
