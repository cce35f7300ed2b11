//! Splitting a message source `nick!user@host` into its parts. Any part may be missing (servers
//! send bare names, some sources carry only `nick@host`), so this never fails and never
//! validates: it only borrows slices of the source.

/// The parts of a source; `user` and `host` are `None` when their separator is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserHost<'a> {
    pub nick: &'a str,
    pub user: Option<&'a str>,
    pub host: Option<&'a str>,
}

impl<'a> UserHost<'a> {
    /// Splits at the first '@' for the host, then at the first '!' before it for the user.
    pub fn parse(source: &'a str) -> UserHost<'a> {
        let (nick_user, host) = match source.split_once('@') {
            Some((nick_user, host)) => (nick_user, Some(host)),
            None => (source, None),
        };
        let (nick, user) = match nick_user.split_once('!') {
            Some((nick, user)) => (nick, Some(user)),
            None => (nick_user, None),
        };
        UserHost { nick, user, host }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_present_parts() {
        let full = UserHost::parse("nick!~user@host.example");
        assert_eq!(
            full,
            UserHost {
                nick: "nick",
                user: Some("~user"),
                host: Some("host.example")
            }
        );
        let server = UserHost::parse("irc.example.com");
        assert_eq!(
            (server.nick, server.user, server.host),
            ("irc.example.com", None, None)
        );
        let no_user = UserHost::parse("nick@host");
        assert_eq!((no_user.user, no_user.host), (None, Some("host")));
        let empty_user = UserHost::parse("nick!@host");
        assert_eq!((empty_user.user, empty_user.host), (Some(""), Some("host")));
    }
}
