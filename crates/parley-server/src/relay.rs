//! One event from a user, relayed to many: serialized at most once per wire variant, however many
//! recipients there are. Variants exist because some capabilities change the bytes a client gets
//! (`account-tag` adds a tag, `extended-join` adds JOIN parameters); everyone with the same
//! variant shares one buffer, so fan-out stays "serialize once, append everywhere".

use std::cell::OnceCell;

use parley_proto::write_line;

use crate::outbound::Outbound;

/// Bits of [`Outbound::wire_caps`].
pub mod wire {
    pub const ACCOUNT_TAG: u8 = 1;
    pub const EXTENDED_JOIN: u8 = 2;
    pub const ACCOUNT_NOTIFY: u8 = 4;
}

pub struct Relay<'a> {
    source: &'a str,
    account: Option<&'a str>,
    command: &'a str,
    middle: &'a [&'a str],
    trailing: Option<&'a str>,
    /// For JOIN: the account (or `*`) and realname that `extended-join` clients get.
    extended_join: Option<(&'a str, &'a str)>,
    variants: [OnceCell<Vec<u8>>; 4],
}

impl<'a> Relay<'a> {
    pub fn new(
        source: &'a str,
        account: Option<&'a str>,
        command: &'a str,
        middle: &'a [&'a str],
        trailing: Option<&'a str>,
    ) -> Self {
        Relay {
            source,
            account,
            command,
            middle,
            trailing,
            extended_join: None,
            variants: Default::default(),
        }
    }

    pub fn with_extended_join(mut self, account: &'a str, realname: &'a str) -> Self {
        self.extended_join = Some((account, realname));
        self
    }

    /// The bytes a client with these wire capabilities gets.
    pub fn bytes_for(&self, caps: u8) -> &[u8] {
        let tagged = caps & wire::ACCOUNT_TAG != 0 && self.account.is_some();
        let extended = caps & wire::EXTENDED_JOIN != 0 && self.extended_join.is_some();
        let index = usize::from(tagged) | (usize::from(extended) << 1);
        self.variants[index].get_or_init(|| {
            let mut out = Vec::with_capacity(128);
            let tags: &[(&str, Option<&str>)] = match (tagged, self.account) {
                (true, Some(account)) => &[("account", Some(account))],
                _ => &[],
            };
            match (extended, self.extended_join) {
                (true, Some((account, realname))) => {
                    let mut middle = self.middle.to_vec();
                    middle.push(account);
                    write_line(
                        &mut out,
                        tags,
                        Some(self.source),
                        self.command,
                        &middle,
                        Some(realname),
                    );
                }
                _ => write_line(
                    &mut out,
                    tags,
                    Some(self.source),
                    self.command,
                    self.middle,
                    self.trailing,
                ),
            }
            out
        })
    }

    /// Queue this event for one recipient. A full queue disconnects that recipient, not us.
    pub fn send_to(&self, recipient: &Outbound) {
        let _ = recipient.push(self.bytes_for(recipient.wire_caps()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_differ_only_where_caps_ask() {
        let middle = ["#c"];
        let relay = Relay::new("a!b@c", Some("acct"), "JOIN", &middle, None)
            .with_extended_join("acct", "Real Name");
        assert_eq!(relay.bytes_for(0), b":a!b@c JOIN #c\r\n");
        assert_eq!(
            relay.bytes_for(wire::ACCOUNT_TAG),
            b"@account=acct :a!b@c JOIN #c\r\n"
        );
        assert_eq!(
            relay.bytes_for(wire::EXTENDED_JOIN),
            b":a!b@c JOIN #c acct :Real Name\r\n"
        );
        let both = relay.bytes_for(wire::EXTENDED_JOIN | wire::ACCOUNT_TAG);
        assert_eq!(both, b"@account=acct :a!b@c JOIN #c acct :Real Name\r\n");
    }

    #[test]
    fn guests_get_no_account_tag() {
        let middle = ["#c"];
        let relay = Relay::new("a!b@c", None, "PRIVMSG", &middle, Some("hi there"));
        assert_eq!(
            relay.bytes_for(wire::ACCOUNT_TAG),
            b":a!b@c PRIVMSG #c :hi there\r\n"
        );
    }

    #[test]
    fn each_variant_is_serialized_once() {
        let middle = ["bob"];
        let relay = Relay::new("a!b@c", Some("acct"), "PRIVMSG", &middle, Some("x"));
        let first = relay.bytes_for(wire::ACCOUNT_TAG).as_ptr();
        let second = relay.bytes_for(wire::ACCOUNT_TAG).as_ptr();
        assert_eq!(first, second, "the same buffer is shared");
    }
}
