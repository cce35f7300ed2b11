//! RENAME (ircv3.net/specs/extensions/channel-rename, `draft/channel-rename`): a channel
//! operator (of a registered channel, its owner) gives a channel a new name and it keeps everything else (members, modes, lists,
//! topic, its registration and its history). Members with the capability get the RENAME line;
//! the others get the spec's fallback, a PART of the old name and a JOIN of the new
//! (`fanout::rename`, which every other node of a cluster runs for its own members too).

use std::sync::Arc;
use std::time::Duration;

use parley_proto::{casefold, validate, Message};

use crate::cluster::event::Event;
use crate::context::{Ctx, Lookup, Reply};
use crate::store::StateChange;

/// `RENAME <old> <new> [<reason>]`.
pub fn rename(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 2)?;
    let (old_name, new_name) = (msg.params[0], msg.params[1]);
    let reason = msg.param(2).unwrap_or("");
    let cannot = |text: &str| Reply::fail("RENAME", "CANNOT_RENAME", &[old_name, new_name], text);
    let id = ctx.session.id;
    let (source, account, old_shown) = {
        let mut world = ctx.shared.world.lock();
        let (old_key, channel) = world.channel_named(old_name)?;
        ctx.require_op(&world, &old_key, channel)?;
        let old_shown = channel.name.clone();
        let new_key = casefold(new_name);
        if !validate::channel(new_name, ctx.shared.config.limits.channel_len) {
            return Err(cannot("That is not a valid channel name"));
        }
        // The prefix says what kind of channel it is; a rename changes only the name.
        if old_shown.chars().next() != new_name.chars().next() {
            return Err(cannot("You cannot change a channel prefix type"));
        }
        if ctx.shared.is_default_channel(&old_key) || ctx.shared.is_default_channel(&new_key) {
            return Err(cannot(
                "The default channel's name is set in the server's configuration",
            ));
        }
        if old_shown == new_name {
            return Err(cannot("The channel already has that name"));
        }
        // Each rename is a PART/JOIN/NAMES burst to every member without the capability.
        let interval = Duration::from_secs(ctx.shared.config.limits.channel_rename_interval_secs);
        let recently = channel.renamed_at.is_some_and(|at| at.elapsed() < interval);
        let moderator = ctx.shared.oper_can(ctx.oper_class_in(&world), "channels");
        // A registered channel's name is its owner's, as OWNER has it: an operator given +o
        // must not move the registration away and take the old name.
        if let Some(owner) = &channel.owner {
            let mine = ctx
                .session
                .account
                .as_deref()
                .is_some_and(|me| casefold(me) == casefold(owner));
            if !mine && !moderator {
                return Err(cannot(
                    "Only the channel's owner (or a server operator) can rename a registered channel",
                ));
            }
        }
        if new_key != old_key && recently && !moderator {
            return Err(cannot("This channel has been renamed recently"));
        }
        let Some((source, account)) = world
            .users
            .get(&id)
            .map(|u| (u.source(), u.account.clone()))
        else {
            return Ok(());
        };
        let Some(new_key) = world.rename_channel(&old_key, new_name) else {
            return Err(Reply::fail(
                "RENAME",
                "CHANNEL_NAME_IN_USE",
                &[old_name, new_name],
                "The channel name is already taken",
            ));
        };
        crate::fanout::rename(
            &mut world,
            &new_key,
            &old_shown,
            (&source, account.as_deref()),
            reason,
            ctx.shared.server_name(),
            |out, bytes| {
                if Arc::ptr_eq(out, ctx.outbound) {
                    ctx.send_lines(bytes);
                } else {
                    let _ = out.push(bytes);
                }
            },
        );
        ctx.shared.history.persist(StateChange::RenameChannel {
            old_key: old_key.clone(),
            new_key: new_key.clone(),
            new_name: new_name.to_string(),
        });
        if let Some(record) = world.channels.get(&new_key).and_then(|c| c.record()) {
            ctx.shared
                .history
                .persist(StateChange::SaveChannel(Box::new(record)));
        }
        ctx.audit("rename_channel", new_name, Some(&old_shown));
        (source, account, old_shown)
    };
    // Published once the world lock is let go: the other nodes move it and tell their members.
    ctx.replicate(|cluster| {
        Some(Event::Rename {
            uid: cluster.uid_of(id),
            source,
            account,
            old: old_shown,
            new: new_name.to_string(),
            reason: reason.to_string(),
        })
    });
    Ok(())
}
