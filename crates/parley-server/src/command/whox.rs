//! WHOX (ircv3.net/specs/extensions/whox): `WHO <mask> %<fields>[,<token>]` answers each user
//! WHO would list with one 354 holding exactly the fields asked for, in the spec's fixed order
//! (`tcuihsnfdlaor`), whatever order they were asked in. Who is listed is plain WHO's choice
//! (`query::who`); only the row differs. An address is never shown to anyone but an operator
//! or its owner (255.255.255.255, the spec's placeholder, to everyone else).

use std::net::{IpAddr, Ipv4Addr};

use crate::command::query::who_flags;
use crate::context::Ctx;
use crate::state::{MemberStatus, User};

const RPL_WHOSPCRPL: &str = "354";

/// The fields in the order a 354 carries them.
const FIELD_ORDER: &str = "tcuihsnfdlaor";

/// What a `%<fields>[,<token>]` argument asked for.
pub struct Request {
    /// The requested fields, as the letters of [`FIELD_ORDER`] in that order.
    fields: String,
    /// The client's token: at most 3 digits, as the spec requires; anything else is `0`.
    token: String,
}

impl Request {
    /// The WHOX request in WHO's second argument, if it has a `%`; anything before the `%` is
    /// a flag this server does not use, and unknown field letters are ignored, as the spec says
    /// servers MUST.
    pub fn parse(argument: &str) -> Option<Request> {
        let (_, wanted) = argument.split_once('%')?;
        let (letters, token) = match wanted.split_once(',') {
            Some((letters, token)) => (letters, Some(token)),
            None => (wanted, None),
        };
        let fields = FIELD_ORDER
            .chars()
            .filter(|field| letters.contains(*field))
            .collect();
        // A token goes out as a middle parameter: only digits, so it cannot end the line early.
        let token = token
            .filter(|t| (1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or("0")
            .to_owned();
        Some(Request { fields, token })
    }
}

/// One 354 for `user`, listed under `channel` (`*` for none) with `status` there.
pub fn row(
    ctx: &Ctx<'_>,
    request: &Request,
    sees_addresses: bool,
    channel: &str,
    user: &User,
    status: Option<MemberStatus>,
) {
    let mut middle: Vec<String> = Vec::with_capacity(request.fields.len());
    let mut realname = None;
    for field in request.fields.chars() {
        let value = match field {
            't' => request.token.clone(),
            'c' => channel.to_owned(),
            'u' => user.username.clone(),
            'i' => address(user, sees_addresses || user.id == ctx.session.id),
            'h' => user.host.clone(),
            's' => crate::cluster::identity::server_of(ctx.shared, user.remote.as_deref()),
            'n' => user.nick.clone(),
            'f' => who_flags(ctx, user, status),
            // Every user is on this server, or on a node of the same network: no hops.
            'd' => "0".to_owned(),
            // Another node's users are not seen speaking here: their idle time is unknown.
            'l' if user.remote.is_some() => "0".to_owned(),
            'l' => user.last_spoke.elapsed().as_secs().to_string(),
            // "`0` is used for `[account]` when the user is logged out".
            'a' => user.account.clone().unwrap_or_else(|| "0".to_owned()),
            // Channel op levels (ircu's +A/+U) do not exist here.
            'o' => "n/a".to_owned(),
            'r' => {
                realname = Some(user.realname.as_str());
                continue;
            }
            _ => continue,
        };
        middle.push(value);
    }
    let middle: Vec<&str> = middle.iter().map(String::as_str).collect();
    ctx.numeric(RPL_WHOSPCRPL, &middle, realname);
}

/// The `i` field: the address for those who may see it, "`255.255.255.255` [...] when the
/// server refuses to disclose the IP address", and for another node's user, whose address this
/// node does not know.
fn address(user: &User, may_see: bool) -> String {
    let unknown = user.ip.is_unspecified();
    if may_see && !unknown {
        user.ip.to_canonical().to_string()
    } else {
        IpAddr::V4(Ipv4Addr::BROADCAST).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_in_the_specs_order_and_tokens_are_digits_only() {
        let request = Request::parse("%rant,42").expect("whox");
        assert_eq!(
            (request.fields.as_str(), request.token.as_str()),
            ("tnar", "42")
        );
        let request = Request::parse("o%cz,:x y").expect("whox");
        assert_eq!(
            (request.fields.as_str(), request.token.as_str()),
            ("c", "0")
        );
        assert_eq!(Request::parse("%t,1234").expect("whox").token, "0");
        assert!(Request::parse("o").is_none());
    }
}
