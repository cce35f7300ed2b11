//! CHGHOST (as InspIRCd and UnrealIRCd have it): an operator gives a user a new username and
//! host, the mask everyone else sees (a virtual host, a cloak). The change goes out as IRCv3
//! `chghost` (ircv3.net/specs/extensions/chghost): a CHGHOST line to the user and its
//! neighbours with the capability (and `extended-monitor` watchers), the QUIT/JOIN/MODE
//! fallback to the neighbours without it. The real address stays known to operators (WHOX `i`),
//! and the change is written to the audit trail.

use parley_proto::Message;

use crate::cluster::event::Event;
use crate::context::{Ctx, Line, Reply};
use crate::relay::{line, notify};

/// ISUPPORT `HOSTLEN`: the longest host a CHGHOST may give.
const HOSTLEN: usize = 64;

/// `CHGHOST <nick> <new-user> <new-host>`.
pub fn chghost(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 3)?;
    ctx.require_oper("chghost")?;
    let (target, username, host) = (msg.params[0], msg.params[1], msg.params[2]);
    let user_len = ctx.shared.config.limits.user_len;
    if !valid_username(username, user_len) {
        return Err(Reply::fail(
            "CHGHOST",
            "INVALID_USERNAME",
            &[],
            &format!(
                "A username is 1 to {user_len} of the characters A-Z a-z 0-9 - _ . (a leading ~ allowed)"
            ),
        ));
    }
    if !valid_host(host) {
        return Err(Reply::fail(
            "CHGHOST",
            "INVALID_HOSTNAME",
            &[],
            &format!(
                "A host is 1 to {HOSTLEN} of the characters A-Z a-z 0-9 - . : / and starts with a letter or digit"
            ),
        ));
    }
    let id = {
        let world = ctx.shared.world.lock();
        match world.user_by_nick(target).filter(|u| u.registered) {
            None => return Err(Reply::no_such_nick(target)),
            // Only a user's own node may speak for it in the cluster (`cluster::trust::actor`),
            // so the change is made by an operator on that node.
            Some(u) if u.remote.is_some() => {
                return Err(Reply::fail(
                    "CHGHOST",
                    "REMOTE_USER",
                    &[target],
                    "That user is on another node of the cluster: run CHGHOST there",
                ))
            }
            Some(u) => u.id,
        }
    };
    let server = ctx.shared.server_name().to_string();
    let (nick, old_source, new_source, announced) = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&id) else {
            return Err(Reply::no_such_nick(target));
        };
        if user.username == username && user.host == host {
            let nick = user.nick.clone();
            drop(world);
            ctx.server_line(
                "NOTICE",
                &[ctx.session.nick_or_star()],
                Some(&format!("{nick} already has the mask {username}@{host}")),
            );
            return Ok(());
        }
        let old_source = user.source();
        user.username = username.to_string();
        user.host = host.to_string();
        let nick = user.nick.clone();
        let new_source = user.source();
        let own = user.outbound.clone();
        // "servers MUST send the CHGHOST message to other clients who share channels with the
        // target client and who have enabled the chghost capability. Servers SHOULD also send
        // the CHGHOST message to the client whose own username or host changed, if that client
        // also supports the chghost capability."
        let bytes = line(Some(&old_source), "CHGHOST", &[username, host], None);
        let mut recipients = world.notify_recipients(id, notify::CHGHOST);
        std::sync::Arc::make_mut(&mut recipients).push(own.clone());
        // "When the capability is not enabled for other clients who share channels with the
        // changed client, servers SHOULD send fallback messages to simulate the client
        // reconnecting": QUIT, JOIN and MODE, for this node's clients (the others' nodes send
        // theirs when the event reaches them).
        for (outbound, lines) in world.host_change_fallback(id, &old_source, &server) {
            let _ = outbound.push(&lines);
        }
        if own.notify_caps() & notify::CHGHOST == 0 {
            // Without the cap the user still learns its new mask, as ircds tell it (396).
            let _ = own.push(&line(
                Some(&server),
                "396",
                &[&nick, host],
                Some("is now your displayed host"),
            ));
        }
        let announced = ctx.announce(
            Line::ForNotify(&bytes, notify::CHGHOST),
            &recipients,
            |cluster| Event::HostChange {
                uid: cluster.uid_of(id),
                source: old_source.clone(),
                username: username.to_string(),
                host: host.to_string(),
            },
        );
        (nick, old_source, new_source, announced)
    };
    ctx.publish(announced);
    ctx.audit(
        "chghost",
        &nick,
        Some(&format!("{old_source} -> {new_source}")),
    );
    ctx.server_line(
        "NOTICE",
        &[ctx.session.nick_or_star()],
        Some(&format!("Changed the mask of {nick} to {username}@{host}")),
    );
    Ok(())
}

/// USER's username characters (`~` only in front, where ircds mark an unverified ident).
fn valid_username(username: &str, max: usize) -> bool {
    let rest = username.strip_prefix('~').unwrap_or(username);
    !rest.is_empty()
        && username.len() <= max
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Hostname characters (with `:` for IPv6 and `/` for cloaks such as `user/name`); a leading
/// letter or digit, so the host can never start a trailing parameter or look like an option.
fn valid_host(host: &str) -> bool {
    host.len() <= HOSTLEN
        && host
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_hosts_are_checked_like_registration_does() {
        assert!(valid_username("~bob", 16));
        assert!(valid_username("b.o_b-1", 16));
        assert!(!valid_username("~", 16));
        assert!(!valid_username("b~ob", 16));
        assert!(!valid_username("bob@x", 16));
        assert!(!valid_username("a-very-long-username", 16));
        assert!(valid_host("cloak.example"));
        assert!(valid_host("user/bob"));
        assert!(valid_host("2001:db8::1"));
        assert!(!valid_host(":bad"));
        assert!(!valid_host("-bad"));
        assert!(!valid_host("bad host"));
        assert!(!valid_host("bad!host"));
        assert!(!valid_host(""));
        assert!(valid_host(&"a".repeat(64)));
        assert!(!valid_host(&"a".repeat(65)));
    }
}
