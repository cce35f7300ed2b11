//! A login coming back to its account's kept presence. The login attaches to the kept user as
//! its first session (`command::multiclient::attach`, which gives it the user's nick, the
//! welcome and a JOIN, topic and NAMES for each channel, whatever `accounts.multiclient` says:
//! a kept presence is the account's own user), then [`resumed`] ends the presence's away and
//! plays back what was said meanwhile. Others see no QUIT and no JOIN: to them the user never
//! left, it only came back from away.

use parley_proto::casefold;

use crate::accounts::always_on::Detached;
use crate::cluster::event::Event;
use crate::command::presence::away_line;
use crate::context::Ctx;
use crate::context::Line;
use crate::relay::notify;
use crate::server::Shared;

/// The kept presence of `account` (this login's), if it has one: the login then attaches to it
/// even when `accounts.multiclient` is off.
pub fn kept(shared: &Shared, account: &str) -> Option<Detached> {
    shared.always_on.detached(&casefold(account))
}

/// Just attached as the first session of the kept user `detached.id`: the away the presence
/// showed ends (away-notify tells those who share a channel), a NOTICE says why the client is
/// in its channels, and a client without chathistory gets the catch-up.
pub fn resumed(ctx: &mut Ctx<'_>, account: &str, detached: Detached) {
    let account = casefold(account);
    if !ctx.shared.always_on.take_detached(&account, detached.id) {
        return;
    }
    let id = ctx.session.id;
    let resumed_at = crate::clock::now_ms();
    let outbound = ctx.outbound.clone();
    let (channels, source, away_recipients) = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&id) else {
            return;
        };
        user.away = None;
        let source = user.source();
        let keys: Vec<String> = user.channels.iter().cloned().collect();
        let channels: Vec<(String, String)> = keys
            .into_iter()
            .filter_map(|key| {
                let shown = world.channels.get(&key)?.name.clone();
                Some((key, shown))
            })
            .collect();
        let recipients = world.notify_recipients(id, notify::AWAY_NOTIFY);
        (channels, source, recipients)
    };
    // Everyone but this session hears the away end; in a cluster every node does.
    let away_recipients: crate::state::MemberList = std::sync::Arc::new(
        away_recipients
            .iter()
            .filter(|member| !std::sync::Arc::ptr_eq(member, &outbound))
            .cloned()
            .collect(),
    );
    let bytes = away_line(&source, None);
    let announced = ctx.announce(
        Line::ForNotify(&bytes, notify::AWAY_NOTIFY),
        &away_recipients,
        |cluster| Event::Away {
            uid: cluster.uid_of(id),
            away: None,
        },
    );
    ctx.publish(announced);
    tracing::info!(%account, client = id.0, channels = channels.len(), "always-on: a login took over its presence");
    let nick = ctx.session.nick.clone();
    ctx.server_line(
        "NOTICE",
        &[&nick],
        Some("Welcome back: you stayed in your channels while you were away (always-on)"),
    );
    super::catch_up::start(ctx, account, channels, detached.since_ms, resumed_at);
}
