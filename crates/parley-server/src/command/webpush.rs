//! `WEBPUSH REGISTER <endpoint> <keys>` and `WEBPUSH UNREGISTER <endpoint>` (IRCv3
//! `draft/webpush`): an account's browsers subscribe to push notifications. Subscriptions are
//! kept per account (a guest has nowhere to keep one and is refused), at most
//! `webpush.max_subscriptions` each, and only for endpoints the server may call: `https://`
//! on a public address (`webpush::endpoint`). What gets pushed is decided where messages are
//! delivered (`command::message`).

use parley_proto::{casefold, numeric, Message};

use crate::context::{Ctx, Reply};
use crate::store::{PushSubscription, Registered, StoredMessage};
use crate::webpush::WebPush;

const COMMAND: &str = "WEBPUSH";

pub fn webpush(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    if ctx.shared.webpush.is_none() {
        return Err(Reply::new(
            numeric::ERR_UNKNOWNCOMMAND,
            &[COMMAND],
            "Unknown command",
        ));
    }
    let subcommand = msg.param(0).unwrap_or_default().to_ascii_uppercase();
    match subcommand.as_str() {
        "REGISTER" => register(ctx, msg),
        "UNREGISTER" => unregister(ctx, msg),
        _ => Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &[if subcommand.is_empty() {
                "*"
            } else {
                &subcommand
            }],
            "Unknown subcommand; use REGISTER or UNREGISTER",
        )),
    }
}

/// `WEBPUSH REGISTER <endpoint> <keys>`: answered `WEBPUSH REGISTER <endpoint>`, or a FAIL.
fn register(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let (Some(endpoint), Some(keys), None) = (msg.param(1), msg.param(2), msg.param(3)) else {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &["REGISTER", msg.param(1).unwrap_or("*")],
            "Use WEBPUSH REGISTER <endpoint> <keys>",
        ));
    };
    let account = logged_in(ctx, "REGISTER", endpoint)?;
    let service = service(ctx);
    if let Err(why) = service.check_endpoint(endpoint) {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &["REGISTER", endpoint],
            &why.to_string(),
        ));
    }
    let Some(subscription) = parse_keys(endpoint, keys) else {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &["REGISTER", endpoint],
            "The keys must hold p256dh (a P-256 public key) and auth (16 bytes), URL-safe base64",
        ));
    };
    let max = service.config.max_subscriptions;
    let store = service.store().clone();
    let endpoint = endpoint.to_owned();
    ctx.then_blocking(
        move || store.register_push(&account, &subscription, max),
        move |ctx, registered| match registered {
            Ok(Registered::Added | Registered::Replaced) => {
                ctx.server_line(COMMAND, &["REGISTER", &endpoint], None);
            }
            Ok(Registered::Full) => ctx.reply(&Reply::fail(
                COMMAND,
                "MAX_REGISTRATIONS",
                &["REGISTER", &endpoint],
                &format!("This account has {max} push subscriptions already; unregister one first"),
            )),
            Err(error) => {
                tracing::warn!(%error, "cannot store a web push subscription");
                ctx.reply(&Reply::fail(
                    COMMAND,
                    "INTERNAL_ERROR",
                    &["REGISTER", &endpoint],
                    "The subscription could not be stored",
                ));
            }
        },
    );
    Ok(())
}

/// `WEBPUSH UNREGISTER <endpoint>`: echoed back, whether there was such a subscription or not
/// ("MUST silently ignore UNREGISTER commands for non-existing subscriptions").
fn unregister(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let (Some(endpoint), None) = (msg.param(1), msg.param(2)) else {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &["UNREGISTER", msg.param(1).unwrap_or("*")],
            "Use WEBPUSH UNREGISTER <endpoint>",
        ));
    };
    let account = logged_in(ctx, "UNREGISTER", endpoint)?;
    let store = service(ctx).store().clone();
    let endpoint = endpoint.to_owned();
    ctx.then_blocking(
        {
            let endpoint = endpoint.clone();
            move || store.unregister_push(&account, &endpoint)
        },
        move |ctx, removed| match removed {
            Ok(_) => ctx.server_line(COMMAND, &["UNREGISTER", &endpoint], None),
            Err(error) => {
                tracing::warn!(%error, "cannot remove a web push subscription");
                ctx.reply(&Reply::fail(
                    COMMAND,
                    "INTERNAL_ERROR",
                    &["UNREGISTER", &endpoint],
                    "The subscription could not be removed",
                ));
            }
        },
    );
    Ok(())
}

fn service(ctx: &Ctx<'_>) -> std::sync::Arc<WebPush> {
    ctx.shared
        .webpush
        .clone()
        .expect("WEBPUSH is answered only with a push service (checked first)")
}

/// The casefolded account this connection is logged in to; a guest gets `ACCOUNT_REQUIRED`
/// (the standard reply code IRCv3 uses for "log in first"): subscriptions are per account.
fn logged_in(ctx: &Ctx<'_>, subcommand: &str, endpoint: &str) -> Result<String, Reply> {
    ctx.session.account.as_deref().map(casefold).ok_or_else(|| {
        Reply::fail(
            COMMAND,
            "ACCOUNT_REQUIRED",
            &[subcommand, endpoint],
            "Push notifications are kept per account: log in first",
        )
    })
}

/// `<keys>` in the message-tag format (`p256dh=...;auth=...`); other keys are ignored.
fn parse_keys(endpoint: &str, keys: &str) -> Option<PushSubscription> {
    let (mut p256dh, mut auth) = (None, None);
    for pair in keys.split(';').take(16) {
        match pair.split_once('=') {
            Some(("p256dh", value)) => p256dh = Some(value),
            Some(("auth", value)) => auth = Some(value),
            _ => {}
        }
    }
    let (p256dh, auth) = (p256dh?, auth?);
    if p256dh.len() > 200 || auth.len() > 64 || !WebPush::keys_usable(p256dh, auth) {
        return None;
    }
    Some(PushSubscription {
        endpoint: endpoint.to_owned(),
        p256dh: p256dh.to_owned(),
        auth: auth.to_owned(),
    })
}

/// Most accounts one channel message is pushed to as a mention.
const MAX_MENTIONS: usize = 10;

/// Whether a push for a present user is due: always with `webpush.push_when = "always"`;
/// otherwise only for an always-on user kept present with no session connected, whom nothing
/// else can tell.
fn due(always: bool, user: &crate::state::User) -> bool {
    always || (user.sessions.is_empty() && user.remote.is_none())
}

/// Whether any present user could be due a push: with `"offline"`, only while some always-on
/// user is kept with no session (so a channel message costs nothing more otherwise).
fn any_due(ctx: &Ctx<'_>, always: bool) -> bool {
    always || ctx.shared.always_on.detached_count() > 0
}

/// A private message to `nick`, who is present: pushed to its account with
/// `webpush.push_when = "always"`, or when it is an always-on user with no session (otherwise
/// its session shows it). Not to oneself, never a TAGMSG (nothing to show).
pub fn on_private(ctx: &Ctx<'_>, nick: &str, message: &StoredMessage) {
    let Some(service) = ctx.shared.webpush.as_ref() else {
        return;
    };
    let always = service.always();
    if message.kind == "TAGMSG" || !any_due(ctx, always) {
        return;
    }
    let account = {
        let world = ctx.shared.world.lock();
        world
            .user_by_nick(nick)
            .filter(|user| user.id != ctx.session.id && due(always, user))
            .and_then(|user| user.account.clone())
    };
    if let Some(account) = account {
        service.push(&account, message);
    }
}

/// A private message kept for `account`, which has no session connected: always pushed.
pub fn on_offline(ctx: &Ctx<'_>, account: &str, message: &StoredMessage) {
    if let (Some(service), false) = (&ctx.shared.webpush, message.kind == "TAGMSG") {
        service.push(account, message);
    }
}

/// A channel message: pushed to every member (with an account, other than the speaker) whose
/// nick it names as a word and who is due a push (see [`due`]: with `"offline"`, an always-on
/// user with no session), at most [`MAX_MENTIONS`]. The words are looked up in the nick
/// index, so the cost follows the message, not the channel's size.
pub fn on_channel(ctx: &Ctx<'_>, channel: &str, message: &StoredMessage) {
    let Some(service) = ctx.shared.webpush.as_ref() else {
        return;
    };
    let always = service.always();
    if message.kind == "TAGMSG" || !any_due(ctx, always) {
        return;
    }
    let mut accounts: Vec<String> = Vec::new();
    {
        let world = ctx.shared.world.lock();
        let Some(members) = world.channels.get(channel) else {
            return;
        };
        let words = message
            .text
            .split(|c: char| !(c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c)))
            .filter(|word| !word.is_empty())
            .take(64);
        for word in words {
            let Some(user) = world.user_by_nick(word) else {
                continue;
            };
            if user.id == ctx.session.id || members.status(user.id).is_none() || !due(always, user)
            {
                continue;
            }
            if let Some(account) = user.account.as_deref().map(casefold) {
                if !accounts.contains(&account) {
                    accounts.push(account);
                }
            }
            if accounts.len() == MAX_MENTIONS {
                break;
            }
        }
    }
    for account in accounts {
        service.push(&account, message);
    }
}
