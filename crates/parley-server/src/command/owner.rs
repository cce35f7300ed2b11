//! OWNER: who a registered channel belongs to. The owner (or an operator with the `channels`
//! permission) can hand it to another account or drop the registration; a channel operator who
//! is logged in can register an unregistered channel to their own account. The default room is
//! nobody's, and no account is handed more than `limits.registered_channels_per_account`.

use parley_proto::{casefold, Message};

use crate::context::{Ctx, Reply};
use crate::state::OperClass;
use crate::store::{AccountRecord, StateChange, StoreError};

fn fail(code: &'static str, channel: &str, text: &str) -> Reply {
    Reply::fail("OWNER", code, &[channel], text)
}

fn notice(ctx: &Ctx<'_>, text: &str) {
    ctx.server_line("NOTICE", &[ctx.session.nick_or_star()], Some(text));
}

/// `OWNER #channel` shows the owner; `OWNER #channel <account>` hands it over (or registers it);
/// `OWNER #channel -` drops the registration. The new owner's account is looked up on the
/// blocking pool; [`hand_over`] finishes once it is found.
pub fn owner(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let name = msg.params[0];
    let key = casefold(name);
    let me = ctx.session.account.clone();
    let (shown, oper, dropped) = {
        let mut world = ctx.shared.world.lock();
        let oper = ctx.oper_class_in(&world);
        let Some(channel) = world.channels.get_mut(&key) else {
            return Err(fail("NO_SUCH_CHANNEL", name, "No such channel"));
        };
        let shown = channel.name.clone();
        let Some(new_owner) = msg.param(1) else {
            let text = match &channel.owner {
                Some(owner) => format!("{shown} is registered to {owner}"),
                None => format!("{shown} is not registered"),
            };
            notice(ctx, &text);
            return Ok(());
        };
        if ctx.shared.is_default_channel(&key) && new_owner != "-" {
            return Err(fail(
                "DEFAULT_CHANNEL",
                &shown,
                &format!(
                    "{shown} is the server's default room: nobody owns it, \
                     server operators moderate it"
                ),
            ));
        }
        let is_owner = match (&channel.owner, &me) {
            (Some(owner), Some(me)) => casefold(owner) == casefold(me),
            _ => false,
        };
        let is_op = channel.status(ctx.session.id).is_some_and(|s| s.op);
        let may = is_owner
            || ctx.shared.oper_can(oper, "channels")
            // Registering an unowned channel: its operator, to their own account.
            || (channel.owner.is_none() && is_op && me.as_deref().map(casefold) == Some(casefold(new_owner)));
        if !may {
            return Err(fail(
                "NOT_OWNER",
                &shown,
                "Only the channel's owner (or a server operator) can do that",
            ));
        }
        let dropped = new_owner == "-";
        if dropped {
            channel.owner = None;
            channel.op_accounts.clear();
            if channel.members.is_empty() {
                world.channels.remove(&key);
            }
        }
        (shown, oper, dropped)
    };
    if dropped {
        ctx.shared.history.persist(StateChange::DropChannel(key));
        ctx.audit("channel_drop", &shown, None);
        notice(ctx, &format!("{shown} is no longer registered"));
        return Ok(());
    }
    let new_owner = msg.params[1].to_string();
    let store = ctx.shared.accounts.store().clone();
    ctx.then_blocking(
        move || store.account(&new_owner).map(|found| (new_owner, found)),
        move |ctx, found| {
            hand_over(ctx, &key, &shown, oper, found).unwrap_or_else(|reply| ctx.reply(&reply));
        },
    );
    Ok(())
}

/// The rest of [`owner`], with the store's answer about the new owner's account.
fn hand_over(
    ctx: &mut Ctx<'_>,
    key: &str,
    shown: &str,
    oper: Option<OperClass>,
    found: Result<(String, Option<AccountRecord>), StoreError>,
) -> Result<(), Reply> {
    let account = match found {
        Ok((_, Some(record))) => record.name,
        Ok((new_owner, None)) => {
            return Err(fail(
                "NO_SUCH_ACCOUNT",
                shown,
                &format!("There is no account named {new_owner}"),
            ))
        }
        Err(err) => {
            tracing::error!(%err, "account lookup failed");
            return Err(fail("TEMPORARILY_UNAVAILABLE", shown, "Try again later"));
        }
    };
    let cap = ctx.shared.config.limits.registered_channels_per_account;
    let record = {
        let mut world = ctx.shared.world.lock();
        let owned = world.channels_owned_by(&account);
        let Some(channel) = world.channels.get_mut(key) else {
            return Ok(());
        };
        let already_theirs = channel
            .owner
            .as_deref()
            .is_some_and(|o| casefold(o) == casefold(&account));
        // A server operator handing a channel over decides past the limit; nobody else does.
        if owned >= cap && !already_theirs && !ctx.shared.oper_can(oper, "channels") {
            return Err(fail(
                "TOO_MANY_CHANNELS",
                shown,
                &format!(
                    "{account} already owns {owned} channels, the most one account may own \
                     (limits.registered_channels_per_account); drop one with OWNER <channel> -"
                ),
            ));
        }
        channel.owner = Some(account.clone());
        channel.record()
    };
    if let Some(record) = record {
        ctx.shared
            .history
            .persist(StateChange::SaveChannel(Box::new(record)));
    }
    ctx.audit("channel_owner", shown, Some(&account));
    notice(ctx, &format!("{shown} is now registered to {account}"));
    Ok(())
}
