//! Numeric reply codes under their names from modern.ircdocs.horse, as the three-digit strings
//! that go on the wire. Plain `&str` constants rather than an enum, so a reply is written with
//! `write_line(.., numeric::RPL_WELCOME, ..)` and an incoming numeric compares without conversion.

pub const RPL_WELCOME: &str = "001";
pub const RPL_YOURHOST: &str = "002";
pub const RPL_CREATED: &str = "003";
pub const RPL_MYINFO: &str = "004";
pub const RPL_ISUPPORT: &str = "005";
/// MAP's lines, its summary and its end: not in modern.ircdocs.horse; the numbers
/// InspIRCd and UnrealIRCd use (defs.ircdocs.horse).
pub const RPL_MAP: &str = "006";
pub const RPL_MAPEND: &str = "007";
pub const RPL_MAPUSERS: &str = "018";
pub const RPL_UMODEIS: &str = "221";
pub const RPL_ADMINME: &str = "256";
pub const RPL_ADMINLOC1: &str = "257";
pub const RPL_ADMINLOC2: &str = "258";
pub const RPL_ADMINEMAIL: &str = "259";
pub const RPL_LUSERCLIENT: &str = "251";
pub const RPL_LUSEROP: &str = "252";
pub const RPL_LUSERUNKNOWN: &str = "253";
pub const RPL_LUSERCHANNELS: &str = "254";
pub const RPL_LUSERME: &str = "255";
pub const RPL_TRYAGAIN: &str = "263";
pub const RPL_LOCALUSERS: &str = "265";
pub const RPL_GLOBALUSERS: &str = "266";
pub const RPL_WHOISCERTFP: &str = "276";
pub const RPL_AWAY: &str = "301";
pub const RPL_USERHOST: &str = "302";
pub const RPL_ISON: &str = "303";
pub const RPL_UNAWAY: &str = "305";
pub const RPL_NOWAWAY: &str = "306";
pub const RPL_WHOISUSER: &str = "311";
pub const RPL_WHOISSERVER: &str = "312";
pub const RPL_WHOISOPERATOR: &str = "313";
pub const RPL_WHOWASUSER: &str = "314";
pub const RPL_ENDOFWHO: &str = "315";
pub const RPL_WHOISIDLE: &str = "317";
pub const RPL_ENDOFWHOIS: &str = "318";
pub const RPL_WHOISCHANNELS: &str = "319";
pub const RPL_WHOISSPECIAL: &str = "320";
pub const RPL_LISTSTART: &str = "321";
pub const RPL_LIST: &str = "322";
pub const RPL_LISTEND: &str = "323";
pub const RPL_CHANNELMODEIS: &str = "324";
pub const RPL_CREATIONTIME: &str = "329";
pub const RPL_WHOISACCOUNT: &str = "330";
pub const RPL_NOTOPIC: &str = "331";
pub const RPL_TOPIC: &str = "332";
pub const RPL_TOPICWHOTIME: &str = "333";
pub const RPL_WHOISBOT: &str = "335";
/// modern.ircdocs.horse's RPL_INVITELIST (336): a channel one was invited to, answering INVITE
/// with no parameter (that name is 346's here, as in most servers' code).
pub const RPL_INVITEDLIST: &str = "336";
/// modern.ircdocs.horse's RPL_ENDOFINVITELIST (337).
pub const RPL_ENDOFINVITEDLIST: &str = "337";
pub const RPL_WHOISACTUALLY: &str = "338";
pub const RPL_INVITING: &str = "341";
pub const RPL_INVITELIST: &str = "346";
pub const RPL_ENDOFINVITELIST: &str = "347";
pub const RPL_EXCEPTLIST: &str = "348";
pub const RPL_ENDOFEXCEPTLIST: &str = "349";
pub const RPL_VERSION: &str = "351";
pub const RPL_WHOREPLY: &str = "352";
pub const RPL_NAMREPLY: &str = "353";
pub const RPL_LINKS: &str = "364";
pub const RPL_ENDOFLINKS: &str = "365";
pub const RPL_ENDOFNAMES: &str = "366";
pub const RPL_BANLIST: &str = "367";
pub const RPL_ENDOFBANLIST: &str = "368";
pub const RPL_ENDOFWHOWAS: &str = "369";
pub const RPL_MOTD: &str = "372";
pub const RPL_MOTDSTART: &str = "375";
pub const RPL_ENDOFMOTD: &str = "376";
pub const RPL_WHOISHOST: &str = "378";
pub const RPL_WHOISMODES: &str = "379";
pub const RPL_YOUREOPER: &str = "381";
pub const RPL_REHASHING: &str = "382";
pub const RPL_STATSKLINE: &str = "216";
pub const RPL_ENDOFSTATS: &str = "219";
pub const RPL_QUIETLIST: &str = "728";
pub const RPL_ENDOFQUIETLIST: &str = "729";
pub const RPL_TIME: &str = "391";
pub const ERR_UNKNOWNERROR: &str = "400";
pub const ERR_NOSUCHNICK: &str = "401";
pub const ERR_NOSUCHSERVER: &str = "402";
pub const ERR_NOSUCHCHANNEL: &str = "403";
pub const ERR_CANNOTSENDTOCHAN: &str = "404";
pub const ERR_TOOMANYCHANNELS: &str = "405";
pub const ERR_WASNOSUCHNICK: &str = "406";
pub const ERR_TOOMANYTARGETS: &str = "407";
pub const ERR_NOORIGIN: &str = "409";
pub const ERR_INVALIDCAPCMD: &str = "410";
pub const ERR_NORECIPIENT: &str = "411";
pub const ERR_NOTEXTTOSEND: &str = "412";
pub const ERR_INPUTTOOLONG: &str = "417";
pub const ERR_UNKNOWNCOMMAND: &str = "421";
pub const ERR_NOMOTD: &str = "422";
pub const ERR_NONICKNAMEGIVEN: &str = "431";
pub const ERR_ERRONEUSNICKNAME: &str = "432";
pub const ERR_NICKNAMEINUSE: &str = "433";
pub const ERR_NICKCOLLISION: &str = "436";
pub const ERR_UNAVAILRESOURCE: &str = "437";
pub const ERR_USERNOTINCHANNEL: &str = "441";
pub const ERR_NOTONCHANNEL: &str = "442";
pub const ERR_USERONCHANNEL: &str = "443";
pub const ERR_NOTREGISTERED: &str = "451";
pub const ERR_NEEDMOREPARAMS: &str = "461";
pub const ERR_ALREADYREGISTERED: &str = "462";
pub const ERR_PASSWDMISMATCH: &str = "464";
pub const ERR_YOUREBANNEDCREEP: &str = "465";
pub const ERR_KEYSET: &str = "467";
pub const ERR_CHANNELISFULL: &str = "471";
pub const ERR_UNKNOWNMODE: &str = "472";
pub const ERR_INVITEONLYCHAN: &str = "473";
pub const ERR_BANNEDFROMCHAN: &str = "474";
pub const ERR_BADCHANNELKEY: &str = "475";
pub const ERR_BADCHANMASK: &str = "476";
pub const ERR_BANLISTFULL: &str = "478";
pub const ERR_NOPRIVILEGES: &str = "481";
pub const ERR_CHANOPRIVSNEEDED: &str = "482";
pub const ERR_NOOPERHOST: &str = "491";
pub const ERR_UMODEUNKNOWNFLAG: &str = "501";
pub const ERR_USERSDONTMATCH: &str = "502";
pub const ERR_HELPNOTFOUND: &str = "524";
pub const ERR_INVALIDKEY: &str = "525";
pub const RPL_STARTTLS: &str = "670";
pub const RPL_WHOISSECURE: &str = "671";
pub const ERR_STARTTLS: &str = "691";
pub const RPL_HELPSTART: &str = "704";
pub const RPL_HELPTXT: &str = "705";
pub const RPL_ENDOFHELP: &str = "706";
pub const ERR_NOPRIVS: &str = "723";
pub const RPL_MONONLINE: &str = "730";
pub const RPL_MONOFFLINE: &str = "731";
pub const RPL_MONLIST: &str = "732";
pub const RPL_ENDOFMONLIST: &str = "733";
pub const ERR_MONLISTFULL: &str = "734";
pub const RPL_LOGGEDIN: &str = "900";
pub const RPL_LOGGEDOUT: &str = "901";
pub const ERR_NICKLOCKED: &str = "902";
pub const RPL_SASLSUCCESS: &str = "903";
pub const ERR_SASLFAIL: &str = "904";
pub const ERR_SASLTOOLONG: &str = "905";
pub const ERR_SASLABORTED: &str = "906";
pub const ERR_SASLALREADY: &str = "907";
pub const RPL_SASLMECHS: &str = "908";

/// Every constant above with its name, for lookups such as logging an unknown reply by name.
pub const ALL: &[(&str, &str)] = &[
    ("RPL_WELCOME", RPL_WELCOME),
    ("RPL_YOURHOST", RPL_YOURHOST),
    ("RPL_CREATED", RPL_CREATED),
    ("RPL_MYINFO", RPL_MYINFO),
    ("RPL_ISUPPORT", RPL_ISUPPORT),
    ("RPL_MAP", RPL_MAP),
    ("RPL_MAPEND", RPL_MAPEND),
    ("RPL_MAPUSERS", RPL_MAPUSERS),
    ("RPL_UMODEIS", RPL_UMODEIS),
    ("RPL_ADMINME", RPL_ADMINME),
    ("RPL_ADMINLOC1", RPL_ADMINLOC1),
    ("RPL_ADMINLOC2", RPL_ADMINLOC2),
    ("RPL_ADMINEMAIL", RPL_ADMINEMAIL),
    ("RPL_LUSERCLIENT", RPL_LUSERCLIENT),
    ("RPL_LUSEROP", RPL_LUSEROP),
    ("RPL_LUSERUNKNOWN", RPL_LUSERUNKNOWN),
    ("RPL_LUSERCHANNELS", RPL_LUSERCHANNELS),
    ("RPL_LUSERME", RPL_LUSERME),
    ("RPL_TRYAGAIN", RPL_TRYAGAIN),
    ("RPL_LOCALUSERS", RPL_LOCALUSERS),
    ("RPL_GLOBALUSERS", RPL_GLOBALUSERS),
    ("RPL_WHOISCERTFP", RPL_WHOISCERTFP),
    ("RPL_AWAY", RPL_AWAY),
    ("RPL_USERHOST", RPL_USERHOST),
    ("RPL_ISON", RPL_ISON),
    ("RPL_UNAWAY", RPL_UNAWAY),
    ("RPL_NOWAWAY", RPL_NOWAWAY),
    ("RPL_WHOISUSER", RPL_WHOISUSER),
    ("RPL_WHOISSERVER", RPL_WHOISSERVER),
    ("RPL_WHOISOPERATOR", RPL_WHOISOPERATOR),
    ("RPL_WHOWASUSER", RPL_WHOWASUSER),
    ("RPL_ENDOFWHO", RPL_ENDOFWHO),
    ("RPL_WHOISIDLE", RPL_WHOISIDLE),
    ("RPL_ENDOFWHOIS", RPL_ENDOFWHOIS),
    ("RPL_WHOISCHANNELS", RPL_WHOISCHANNELS),
    ("RPL_WHOISSPECIAL", RPL_WHOISSPECIAL),
    ("RPL_LISTSTART", RPL_LISTSTART),
    ("RPL_LIST", RPL_LIST),
    ("RPL_LISTEND", RPL_LISTEND),
    ("RPL_CHANNELMODEIS", RPL_CHANNELMODEIS),
    ("RPL_CREATIONTIME", RPL_CREATIONTIME),
    ("RPL_WHOISACCOUNT", RPL_WHOISACCOUNT),
    ("RPL_NOTOPIC", RPL_NOTOPIC),
    ("RPL_TOPIC", RPL_TOPIC),
    ("RPL_TOPICWHOTIME", RPL_TOPICWHOTIME),
    ("RPL_WHOISBOT", RPL_WHOISBOT),
    ("RPL_INVITEDLIST", RPL_INVITEDLIST),
    ("RPL_ENDOFINVITEDLIST", RPL_ENDOFINVITEDLIST),
    ("RPL_WHOISACTUALLY", RPL_WHOISACTUALLY),
    ("RPL_INVITING", RPL_INVITING),
    ("RPL_INVITELIST", RPL_INVITELIST),
    ("RPL_ENDOFINVITELIST", RPL_ENDOFINVITELIST),
    ("RPL_EXCEPTLIST", RPL_EXCEPTLIST),
    ("RPL_ENDOFEXCEPTLIST", RPL_ENDOFEXCEPTLIST),
    ("RPL_VERSION", RPL_VERSION),
    ("RPL_WHOREPLY", RPL_WHOREPLY),
    ("RPL_NAMREPLY", RPL_NAMREPLY),
    ("RPL_LINKS", RPL_LINKS),
    ("RPL_ENDOFLINKS", RPL_ENDOFLINKS),
    ("RPL_ENDOFNAMES", RPL_ENDOFNAMES),
    ("RPL_BANLIST", RPL_BANLIST),
    ("RPL_ENDOFBANLIST", RPL_ENDOFBANLIST),
    ("RPL_ENDOFWHOWAS", RPL_ENDOFWHOWAS),
    ("RPL_MOTD", RPL_MOTD),
    ("RPL_MOTDSTART", RPL_MOTDSTART),
    ("RPL_ENDOFMOTD", RPL_ENDOFMOTD),
    ("RPL_WHOISHOST", RPL_WHOISHOST),
    ("RPL_WHOISMODES", RPL_WHOISMODES),
    ("RPL_YOUREOPER", RPL_YOUREOPER),
    ("RPL_REHASHING", RPL_REHASHING),
    ("RPL_STATSKLINE", RPL_STATSKLINE),
    ("RPL_ENDOFSTATS", RPL_ENDOFSTATS),
    ("RPL_QUIETLIST", RPL_QUIETLIST),
    ("RPL_ENDOFQUIETLIST", RPL_ENDOFQUIETLIST),
    ("RPL_TIME", RPL_TIME),
    ("ERR_UNKNOWNERROR", ERR_UNKNOWNERROR),
    ("ERR_NOSUCHNICK", ERR_NOSUCHNICK),
    ("ERR_NOSUCHSERVER", ERR_NOSUCHSERVER),
    ("ERR_NOSUCHCHANNEL", ERR_NOSUCHCHANNEL),
    ("ERR_CANNOTSENDTOCHAN", ERR_CANNOTSENDTOCHAN),
    ("ERR_TOOMANYCHANNELS", ERR_TOOMANYCHANNELS),
    ("ERR_WASNOSUCHNICK", ERR_WASNOSUCHNICK),
    ("ERR_TOOMANYTARGETS", ERR_TOOMANYTARGETS),
    ("ERR_NOORIGIN", ERR_NOORIGIN),
    ("ERR_INVALIDCAPCMD", ERR_INVALIDCAPCMD),
    ("ERR_NORECIPIENT", ERR_NORECIPIENT),
    ("ERR_NOTEXTTOSEND", ERR_NOTEXTTOSEND),
    ("ERR_INPUTTOOLONG", ERR_INPUTTOOLONG),
    ("ERR_UNKNOWNCOMMAND", ERR_UNKNOWNCOMMAND),
    ("ERR_NOMOTD", ERR_NOMOTD),
    ("ERR_NONICKNAMEGIVEN", ERR_NONICKNAMEGIVEN),
    ("ERR_ERRONEUSNICKNAME", ERR_ERRONEUSNICKNAME),
    ("ERR_NICKNAMEINUSE", ERR_NICKNAMEINUSE),
    ("ERR_NICKCOLLISION", ERR_NICKCOLLISION),
    ("ERR_UNAVAILRESOURCE", ERR_UNAVAILRESOURCE),
    ("ERR_USERNOTINCHANNEL", ERR_USERNOTINCHANNEL),
    ("ERR_NOTONCHANNEL", ERR_NOTONCHANNEL),
    ("ERR_USERONCHANNEL", ERR_USERONCHANNEL),
    ("ERR_NOTREGISTERED", ERR_NOTREGISTERED),
    ("ERR_NEEDMOREPARAMS", ERR_NEEDMOREPARAMS),
    ("ERR_ALREADYREGISTERED", ERR_ALREADYREGISTERED),
    ("ERR_PASSWDMISMATCH", ERR_PASSWDMISMATCH),
    ("ERR_YOUREBANNEDCREEP", ERR_YOUREBANNEDCREEP),
    ("ERR_KEYSET", ERR_KEYSET),
    ("ERR_CHANNELISFULL", ERR_CHANNELISFULL),
    ("ERR_UNKNOWNMODE", ERR_UNKNOWNMODE),
    ("ERR_INVITEONLYCHAN", ERR_INVITEONLYCHAN),
    ("ERR_BANNEDFROMCHAN", ERR_BANNEDFROMCHAN),
    ("ERR_BADCHANNELKEY", ERR_BADCHANNELKEY),
    ("ERR_BADCHANMASK", ERR_BADCHANMASK),
    ("ERR_BANLISTFULL", ERR_BANLISTFULL),
    ("ERR_NOPRIVILEGES", ERR_NOPRIVILEGES),
    ("ERR_CHANOPRIVSNEEDED", ERR_CHANOPRIVSNEEDED),
    ("ERR_NOOPERHOST", ERR_NOOPERHOST),
    ("ERR_UMODEUNKNOWNFLAG", ERR_UMODEUNKNOWNFLAG),
    ("ERR_USERSDONTMATCH", ERR_USERSDONTMATCH),
    ("ERR_HELPNOTFOUND", ERR_HELPNOTFOUND),
    ("ERR_INVALIDKEY", ERR_INVALIDKEY),
    ("RPL_STARTTLS", RPL_STARTTLS),
    ("RPL_WHOISSECURE", RPL_WHOISSECURE),
    ("ERR_STARTTLS", ERR_STARTTLS),
    ("RPL_HELPSTART", RPL_HELPSTART),
    ("RPL_HELPTXT", RPL_HELPTXT),
    ("RPL_ENDOFHELP", RPL_ENDOFHELP),
    ("ERR_NOPRIVS", ERR_NOPRIVS),
    ("RPL_MONONLINE", RPL_MONONLINE),
    ("RPL_MONOFFLINE", RPL_MONOFFLINE),
    ("RPL_MONLIST", RPL_MONLIST),
    ("RPL_ENDOFMONLIST", RPL_ENDOFMONLIST),
    ("ERR_MONLISTFULL", ERR_MONLISTFULL),
    ("RPL_LOGGEDIN", RPL_LOGGEDIN),
    ("RPL_LOGGEDOUT", RPL_LOGGEDOUT),
    ("ERR_NICKLOCKED", ERR_NICKLOCKED),
    ("RPL_SASLSUCCESS", RPL_SASLSUCCESS),
    ("ERR_SASLFAIL", ERR_SASLFAIL),
    ("ERR_SASLTOOLONG", ERR_SASLTOOLONG),
    ("ERR_SASLABORTED", ERR_SASLABORTED),
    ("ERR_SASLALREADY", ERR_SASLALREADY),
    ("RPL_SASLMECHS", RPL_SASLMECHS),
];

/// The standard name of a numeric, e.g. `name("433") == Some("ERR_NICKNAMEINUSE")`.
pub fn name(code: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(_, value)| *value == code)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_three_digit_commands() {
        let mut seen = std::collections::HashSet::new();
        for (name, code) in ALL {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
                "{name} = {code:?}"
            );
            assert!(seen.insert(*code), "{code} is listed twice");
            let line = format!(":srv {code} me :text");
            let msg = crate::Message::parse(&line).expect("numerics are valid commands");
            assert_eq!(msg.command, *code);
        }
    }

    #[test]
    fn names_match_codes() {
        assert_eq!(RPL_WELCOME, "001");
        assert_eq!(ERR_NICKNAMEINUSE, "433");
        assert_eq!(RPL_SASLMECHS, "908");
        assert_eq!(name("433"), Some("ERR_NICKNAMEINUSE"));
        assert_eq!(name("999"), None);
    }
}
