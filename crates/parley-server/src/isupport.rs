//! The `RPL_ISUPPORT` (005) tokens, derived from the config once at start so that what we
//! advertise is exactly what we enforce.

use crate::config::Config;

/// Channel modes, for 004 and CHANMODES: lists, always-param, param-when-set, flags.
pub const CHANNEL_MODES: &str = "CbeIiklmnoqstv";
pub const CHANNEL_MODES_WITH_PARAM: &str = "beIklovq";
pub const USER_MODES: &str = "Biow";
/// The bot user mode (IRCv3 bot-mode): ISUPPORT `BOT`, and the WHO flag of bots.
pub const BOT_MODE: char = 'B';
/// How many parameterised mode changes one MODE command may carry.
pub const MODES_PER_COMMAND: usize = 6;
/// Entries in one channel's ban list (MAXLIST).
pub const MAX_BANS: usize = 100;

/// The channel-status prefixes a PRIVMSG/NOTICE may put before a channel (ISUPPORT
/// `STATUSMSG`): `@#chan` reaches its operators, `+#chan` its voiced members and operators.
pub const STATUSMSG: &str = "@+";

/// A message target split into its STATUSMSG prefix, if it has one before a channel name, and
/// the rest: `@#chan` -> (`Some('@')`, `#chan`), `#chan` -> (`None`, `#chan`).
pub fn split_statusmsg(target: &str) -> (Option<char>, &str) {
    match target.chars().next() {
        Some(prefix) if STATUSMSG.contains(prefix) && target[1..].starts_with(['#', '&']) => {
            (Some(prefix), &target[1..])
        }
        _ => (None, target),
    }
}

/// ISUPPORT tokens per 005 line, as the spec suggests, to stay under the line limit.
pub const PER_LINE: usize = 13;

pub fn tokens(config: &Config) -> Vec<String> {
    let l = &config.limits;
    let mut tokens = vec![
        format!("AWAYLEN={}", l.away_len),
        format!("BOT={BOT_MODE}"),
        "CASEMAPPING=ascii".into(),
        format!("CHANLIMIT=#&:{}", l.channels_per_user),
        "CHANMODES=beIq,k,l,Cimnst".into(),
        "ELIST=CMNTU".into(),
        "EXCEPTS=e".into(),
        "EXTBAN=$,am".into(),
        "INVEX=I".into(),
        format!("CHANNELLEN={}", l.channel_len),
        "CHANTYPES=#&".into(),
        "HOSTLEN=64".into(),
        format!("KICKLEN={}", l.kick_len),
        format!("MAXLIST=beIq:{MAX_BANS}"),
        format!("MAXTARGETS={}", l.targets_per_message),
        format!("MODES={MODES_PER_COMMAND}"),
        format!("NAMELEN={}", l.realname_len),
        format!("NETWORK={}", config.server.network),
        format!("NICKLEN={}", l.nick_len),
        "PREFIX=(ov)@+".into(),
        "SAFELIST".into(),
        format!("STATUSMSG={STATUSMSG}"),
        format!(
            "TARGMAX=JOIN:,KICK:,NAMES:,NOTICE:{0},PART:,PRIVMSG:{0},WHOIS:1",
            l.targets_per_message
        ),
        format!("TOPICLEN={}", l.topic_len),
        format!("CHATHISTORY={}", config.history.max_request),
        "MSGREFTYPES=timestamp,msgid".into(),
        format!("USERLEN={}", l.user_len),
        "UTF8ONLY".into(),
        "WHOX".into(),
    ];
    if l.monitor > 0 {
        tokens.push(format!("MONITOR={}", l.monitor));
    }
    tokens.sort();
    tokens
}
