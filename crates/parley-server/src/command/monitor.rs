//! MONITOR (ircv3.net/specs/extensions/monitor): a client's list of nicks it is told about when
//! they come online or leave, instead of polling ISON. The list lives in the world's index
//! (`state::Monitors`), keyed by casefolded nick, so the notifications (sent where users arrive,
//! leave and change nick, here and from the cluster's stream) cost O(watchers).

use parley_proto::{numeric, validate, Message};

use crate::context::{Ctx, Reply};
use crate::state::chunked;

/// `MONITOR <+|-|C|L|S> [targets]`.
pub fn monitor(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let limit = ctx.shared.config.limits.monitor;
    if limit == 0 {
        // Not advertised (no ISUPPORT MONITOR token): as unknown as any other command.
        return Err(Reply::new(
            numeric::ERR_UNKNOWNCOMMAND,
            &["MONITOR"],
            "Unknown command",
        ));
    }
    ctx.require_params(msg, 1)?;
    match msg.params[0] {
        "+" => add(
            ctx,
            msg.param(1).ok_or(Reply::need_more_params("MONITOR"))?,
            limit,
        ),
        "-" => {
            let targets = msg.param(1).ok_or(Reply::need_more_params("MONITOR"))?;
            let mut world = ctx.shared.world.lock();
            for target in targets.split(',').filter(|t| !t.is_empty()) {
                world.monitors.remove(ctx.session.id, target);
            }
            Ok(())
        }
        "C" | "c" => {
            ctx.shared.world.lock().monitors.clear(ctx.session.id);
            Ok(())
        }
        "L" | "l" => {
            let lists = {
                let world = ctx.shared.world.lock();
                chunked(world.monitors.list(ctx.session.id))
            };
            for list in lists {
                ctx.numeric(numeric::RPL_MONLIST, &[], Some(&list));
            }
            ctx.numeric(numeric::RPL_ENDOFMONLIST, &[], Some("End of MONITOR list"));
            Ok(())
        }
        "S" | "s" => {
            let targets: Vec<String> = {
                let world = ctx.shared.world.lock();
                world
                    .monitors
                    .list(ctx.session.id)
                    .map(str::to_string)
                    .collect()
            };
            status(ctx, &targets);
            Ok(())
        }
        other => Err(Reply::new(
            numeric::ERR_UNKNOWNERROR,
            &["MONITOR", other],
            "Unknown MONITOR modifier (use +, -, C, L or S)",
        )),
    }
}

/// `MONITOR + a,b`: add what fits, 734 for the rest, then the status of each target given.
fn add(ctx: &mut Ctx<'_>, targets: &str, limit: usize) -> Result<(), Reply> {
    let nick_len = ctx.shared.config.limits.nick_len;
    // "'target' MUST be a valid nick as determined by the IRC daemon": anything else (a mask,
    // a channel) is ignored, as ergo does, rather than failing the valid ones beside it.
    let wanted: Vec<&str> = targets
        .split(',')
        .filter(|t| validate::nick(t, nick_len))
        .collect();
    let mut added = Vec::with_capacity(wanted.len());
    let mut full = None;
    {
        let mut world = ctx.shared.world.lock();
        let id = ctx.session.id;
        for (i, target) in wanted.iter().enumerate() {
            if !world.monitors.contains(id, target) && world.monitors.count(id) >= limit {
                full = Some(wanted[i..].join(","));
                break;
            }
            world.monitors.add(id, target);
            added.push(target.to_string());
        }
    }
    if let Some(rest) = full {
        ctx.numeric(
            numeric::ERR_MONLISTFULL,
            &[&limit.to_string(), &rest],
            Some("Monitor list is full."),
        );
    }
    status(ctx, &added);
    Ok(())
}

/// 730 for the `targets` online (as `nick!user@host`), 731 for those offline.
fn status(ctx: &Ctx<'_>, targets: &[String]) {
    let (online, offline) = {
        let world = ctx.shared.world.lock();
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for target in targets {
            match world.user_by_nick(target) {
                Some(user) => online.push(user.source()),
                None => offline.push(target.clone()),
            }
        }
        (online, offline)
    };
    for list in chunked(online.iter().map(String::as_str)) {
        ctx.numeric(numeric::RPL_MONONLINE, &[], Some(&list));
    }
    for list in chunked(offline.iter().map(String::as_str)) {
        ctx.numeric(numeric::RPL_MONOFFLINE, &[], Some(&list));
    }
}
