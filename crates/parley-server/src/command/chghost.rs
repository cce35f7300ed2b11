//! CHGHOST (as InspIRCd and UnrealIRCd have it): an operator gives a user a new username and
//! host, the mask everyone else sees (a virtual host, a cloak). The change goes out as IRCv3
//! `chghost` (ircv3.net/specs/extensions/chghost): a CHGHOST line to the user and its
//! neighbours with the capability (and `extended-monitor` watchers), the QUIT/JOIN/MODE
//! fallback to the neighbours without it. A user of another cluster node is changed by that
//! node, on this one's request. The real address stays known to operators (WHOX `i`),
//! and the change is written to the audit trail.

use parley_proto::Message;

use crate::cluster::event::Event;
use crate::context::{Ctx, Line, Reply};
use crate::relay::notify;
use crate::state::{valid_host, valid_username, HOSTLEN};

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
    let (id, remote) = {
        let world = ctx.shared.world.lock();
        match world.user_by_nick(target).filter(|u| u.registered) {
            None => return Err(Reply::no_such_nick(target)),
            Some(u) => (u.id, u.remote.clone()),
        }
    };
    if let Some(uid) = remote {
        // Only a user's own node may announce a change of its user (`cluster::trust::actor`):
        // that node makes it on this request and publishes the CHGHOST everyone applies.
        ctx.replicate(|_| {
            Some(Event::HostChangeRequest {
                uid,
                username: username.to_string(),
                host: host.to_string(),
            })
        });
        ctx.audit("chghost", target, Some(&format!("{username}@{host}")));
        notice(
            ctx,
            &format!("Changed the mask of {target} to {username}@{host}"),
        );
        return Ok(());
    }
    let server = ctx.shared.server_name().to_string();
    let (changed, announced) = {
        let mut world = ctx.shared.world.lock();
        let Some(changed) = world.change_host(id, username, host, &server, |to, bytes| {
            let _ = to.push(bytes);
        }) else {
            drop(world);
            notice(
                ctx,
                &format!("{target} already has the mask {username}@{host}"),
            );
            return Ok(());
        };
        let announced = ctx.announce(
            Line::ForNotify(&changed.line, notify::CHGHOST),
            &changed.recipients,
            |cluster| Event::HostChange {
                uid: cluster.uid_of(id),
                source: changed.old_source.clone(),
                username: username.to_string(),
                host: host.to_string(),
            },
        );
        (changed, announced)
    };
    ctx.publish(announced);
    ctx.audit(
        "chghost",
        &changed.nick,
        Some(&format!("{} -> {}", changed.old_source, changed.new_source)),
    );
    notice(
        ctx,
        &format!("Changed the mask of {} to {username}@{host}", changed.nick),
    );
    Ok(())
}

fn notice(ctx: &Ctx<'_>, text: &str) {
    ctx.server_line("NOTICE", &[ctx.session.nick_or_star()], Some(text));
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
