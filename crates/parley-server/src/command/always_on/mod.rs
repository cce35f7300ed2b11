//! Always-on accounts (issue 26 item 2): an account that stays present when its last session
//! leaves, in its channels, holding its nick, away, with what was said meanwhile kept in history
//! and played back at its next login. A vendor command turns it on, since Parley has no
//! services to hang it on (ergo's `NickServ SET always-on`):
//!
//! ```text
//! ALWAYSON            ->  ALWAYSON <ON|OFF> :<text>   (this account's setting, and the policy)
//! ALWAYSON ON | OFF   ->  ALWAYSON <ON|OFF> :<text>
//! ```
//!
//! Refusals are `FAIL ALWAYSON <code>`: `ACCOUNT_REQUIRED`, `DISABLED` (the server's
//! `accounts.always_on` is `off`), `FORCED` (it is `on`: every account stays), `INVALID_PARAMS`,
//! `TEMPORARILY_UNAVAILABLE`. Only the connection's own account is ever changed.
//!
//! | file | what it holds |
//! |---|---|
//! | `presence.rs` | keeping a user in the world when its last session leaves, restoring at start, ending it |
//! | `resume.rs` | a login coming back to a kept presence: its away ended, the catch-up ([`resumed`]) |
//! | `catch_up.rs` | replaying what was missed to a client without chathistory |
//! | `adopt.rs` | on a cluster, taking over the presences of a node that ended |

mod adopt;
mod catch_up;
mod presence;
mod resume;

use parley_proto::{casefold, Message};

use crate::cluster::event::Event;
use crate::config::AlwaysOnPolicy;
use crate::context::{Ctx, Reply};

pub use adopt::adopt;
pub use presence::{detach, end, end_kept, restore, save, Detach};
pub use resume::{kept, resumed};

/// `ALWAYSON [ON|OFF]`: show or change whether this account stays present without a session.
pub fn alwayson(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(account) = ctx.session.account.clone() else {
        return Err(Reply::fail(
            "ALWAYSON",
            "ACCOUNT_REQUIRED",
            &[],
            "Log in to an account first",
        ));
    };
    let folded = casefold(&account);
    let policy = presence::policy(ctx.shared);
    let wanted = match msg.param(0).map(str::to_ascii_uppercase).as_deref() {
        None => {
            let on = ctx.shared.always_on.is_on(policy, &folded);
            tell(ctx, on);
            return Ok(());
        }
        Some("ON") => true,
        Some("OFF") => false,
        Some(_) => {
            return Err(Reply::fail(
                "ALWAYSON",
                "INVALID_PARAMS",
                &[],
                "Use ALWAYSON ON, ALWAYSON OFF, or ALWAYSON alone to see the setting",
            ))
        }
    };
    match policy {
        AlwaysOnPolicy::Off => Err(Reply::fail(
            "ALWAYSON",
            "DISABLED",
            &[],
            "Always-on is turned off on this server",
        )),
        AlwaysOnPolicy::On if !wanted => Err(Reply::fail(
            "ALWAYSON",
            "FORCED",
            &[],
            "Every account is always-on on this server",
        )),
        AlwaysOnPolicy::On => {
            tell(ctx, true);
            Ok(())
        }
        AlwaysOnPolicy::OptIn => {
            let Some(store) = ctx.shared.always_on.store() else {
                return Err(unavailable());
            };
            ctx.then_blocking(
                move || store.set_always_on(&folded, wanted).map(|()| folded),
                move |ctx, stored| match stored {
                    Ok(folded) => {
                        ctx.shared.always_on.set_opted_in(&folded, wanted);
                        // The other nodes keep a copy of the setting too.
                        let id = ctx.session.id;
                        ctx.replicate(|cluster| {
                            Some(Event::AlwaysOn {
                                uid: cluster.uid_of(id),
                                account: folded.clone(),
                                on: wanted,
                            })
                        });
                        tracing::info!(account = %folded, on = wanted, "always-on changed");
                        tell(ctx, wanted);
                    }
                    Err(err) => {
                        tracing::error!(%err, "cannot store an always-on setting");
                        ctx.reply(&unavailable());
                    }
                },
            );
            Ok(())
        }
    }
}

fn unavailable() -> Reply {
    Reply::fail(
        "ALWAYSON",
        "TEMPORARILY_UNAVAILABLE",
        &[],
        "The setting cannot be changed right now; try again later",
    )
}

/// `ALWAYSON <ON|OFF> :<what it means>`.
fn tell(ctx: &Ctx<'_>, on: bool) {
    let text = if on {
        "Always-on: when your last connection closes you stay in your channels, away, and \
         what is said meanwhile is kept for your next login"
    } else {
        "Always-on is off: when your last connection closes you leave your channels"
    };
    ctx.server_line("ALWAYSON", &[if on { "ON" } else { "OFF" }], Some(text));
}
