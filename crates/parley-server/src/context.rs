//! What a command handler gets: the shared server, this connection's session, and its own
//! outbound buffer. Handlers never touch a socket; they decide, serialize once, and queue bytes.

use std::net::IpAddr;
use std::sync::Arc;

use parley_proto::write_line;

use crate::outbound::Outbound;
use crate::server::Shared;
use crate::state::ClientId;

/// Capabilities this server offers in `CAP LS`.
pub const SUPPORTED_CAPS: &[&str] = &["cap-notify", "multi-prefix", "userhost-in-names"];

#[derive(Debug, Default, Clone, Copy)]
pub struct Caps {
    pub cap_notify: bool,
    pub multi_prefix: bool,
    pub userhost_in_names: bool,
}

impl Caps {
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        match name {
            "cap-notify" => self.cap_notify = on,
            "multi-prefix" => self.multi_prefix = on,
            "userhost-in-names" => self.userhost_in_names = on,
            _ => return false,
        }
        true
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.cap_notify, "cap-notify"),
            (self.multi_prefix, "multi-prefix"),
            (self.userhost_in_names, "userhost-in-names"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }
}

/// This connection's own state, kept by its task; the world holds what others need to see.
pub struct Session {
    pub id: ClientId,
    pub host: String,
    /// Current nick, or empty before the first valid NICK.
    pub nick: String,
    pub got_user: bool,
    pub registered: bool,
    /// Between `CAP LS`/`CAP REQ` and `CAP END` registration waits.
    pub cap_negotiating: bool,
    pub caps: Caps,
    /// Set by QUIT (or a fatal error): the connection ends after this line.
    pub quit: Option<String>,
}

impl Session {
    pub fn new(id: ClientId, ip: IpAddr) -> Self {
        Session {
            id,
            host: host_for(ip),
            nick: String::new(),
            got_user: false,
            registered: false,
            cap_negotiating: false,
            caps: Caps::default(),
            quit: None,
        }
    }

    /// The nick as used in numerics: `*` until one is set.
    pub fn nick_or_star(&self) -> &str {
        if self.nick.is_empty() {
            "*"
        } else {
            &self.nick
        }
    }
}

/// The host part shown for a client: its address (IPv6 with a leading ':' gets a '0' so the
/// `nick!user@host` source stays parseable).
pub fn host_for(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let text = ip.to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}

pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub session: &'a mut Session,
    pub outbound: &'a Arc<Outbound>,
}

/// Serialize one line without tags.
pub fn line(
    source: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_line(&mut out, &[], source, command, middle, trailing);
    out
}

impl Ctx<'_> {
    /// Queue bytes for this client. A failure means the connection is already closing, which its
    /// task notices on its own, so there is nothing more to do here.
    pub fn send(&self, bytes: &[u8]) {
        let _ = self.outbound.push(bytes);
    }

    /// `:server <code> <nick> <middle...> [:trailing]`
    pub fn numeric(&self, code: &str, middle: &[&str], trailing: Option<&str>) {
        let mut params = Vec::with_capacity(middle.len() + 1);
        params.push(self.session.nick_or_star());
        params.extend_from_slice(middle);
        self.send(&line(
            Some(self.shared.server_name()),
            code,
            &params,
            trailing,
        ));
    }

    /// ERR_NEEDMOREPARAMS when `msg` has fewer than `n` params; returns whether it has enough.
    pub fn need_params(&self, msg: &parley_proto::Message<'_>, n: usize) -> bool {
        if msg.params.len() >= n {
            return true;
        }
        self.numeric(
            parley_proto::numeric::ERR_NEEDMOREPARAMS,
            &[&msg.command.to_ascii_uppercase()],
            Some("Not enough parameters"),
        );
        false
    }

    /// A line from the server itself (NOTICE, PONG, CAP ...).
    pub fn server_line(&self, command: &str, middle: &[&str], trailing: Option<&str>) {
        self.send(&line(
            Some(self.shared.server_name()),
            command,
            middle,
            trailing,
        ));
    }
}
