//! Sessions across nodes: a connection on one node (the client's node) whose account's user
//! lives on another (the user's home) becomes a session of that user there. The client's node
//! hands the registration over once (an open, with what the connection negotiated and the
//! account it logged in to), and from then on only carries bytes: what the client sends goes
//! to the home as input, what the home writes to the session comes back and goes out on the
//! socket. The home runs the session as it runs a local one (`connection::bridged`), so every
//! command behaves the same wherever the socket is.
//!
//! Plain NATS subjects, one per pair of nodes and direction, `<prefix>.sess.<to>.<from>`: the
//! publisher's name ends it (its permissions make that true), and NATS keeps one publisher's
//! messages on one subject in order, so a session's bytes arrive as they were sent. Each
//! message is a frame: a kind byte, the session id (8 bytes, chosen by the client's node) and
//! a body.
//!
//! An open is signed with the cluster's shared secret (`Accounts::handoff_mac`), which nodes
//! read from PostgreSQL: a leaked NATS login can speak for its node's own users, as anywhere on
//! the bus, but cannot attach a session to another node's user. An open is taken once and only
//! while fresh.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::trust::last_token;
use super::{subject, Cluster};
use crate::outbound::Outbound;
use crate::server::Shared;

/// The client's node opens a session at the home.
const OPEN: u8 = b'O';
/// The home took the session (body: the home's incarnation).
const ACCEPTED: u8 = b'A';
/// Bytes the client sent, for the home.
const INPUT: u8 = b'D';
/// The client's socket is gone (or its node stops).
const CLIENT_GONE: u8 = b'C';
/// Bytes the home wrote to the session, for the socket.
const OUTPUT: u8 = b'd';
/// The home ended the session: its last bytes are sent.
const HOME_DONE: u8 = b'c';

/// How long an open is good for: the nodes' clocks may differ by this much, and a replayed
/// open past it is refused.
const FRESH: Duration = Duration::from_secs(30);
/// The MAC in front of an open's JSON: HMAC-SHA-256, in hex.
const MAC_HEX: usize = 64;
/// Opens remembered for refusing a repeat, at most (one per login of a visiting session).
const REMEMBERED_OPENS: usize = 4096;
/// A session's input waiting at the home for its reader (each at most a socket read, 4 KiB):
/// past it the client floods faster than the home reads it, and the session ends.
pub const INPUT_CHUNKS: usize = 256;

/// What the client's node tells the home about the connection it hands over: what
/// registration on the client's node settled, so the home can finish it. Sent as JSON after
/// a MAC over those very bytes, so a node that reads fields this version does not know still
/// checks all of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    pub from: String,
    pub from_incarnation: u64,
    pub to: String,
    pub sid: u64,
    /// Unix seconds when the client's node sent it.
    pub issued: u64,
    /// The account the connection logged in to, as the client's node checked it.
    pub account: String,
    pub ip: std::net::IpAddr,
    pub secure: bool,
    pub host: String,
    /// The nick the connection asked for (empty if it was refused), tried at the home when
    /// the user is no longer there.
    pub nick: String,
    pub username: String,
    pub realname: String,
    /// Capabilities negotiated, by name.
    pub caps: Vec<String>,
    pub cap_302: bool,
    pub login_session: Option<String>,
    pub token_login: bool,
}

/// What the home says to a connection waiting on the client's node.
#[derive(Debug)]
pub enum Control {
    /// The home took the session.
    Accepted,
    /// The home ended the session (its last bytes came before this), or it is gone.
    Closed(Option<String>),
}

/// A connection of this node whose session runs at another node.
struct Pipe {
    home: String,
    /// The home's life, once it accepted (0 before).
    home_incarnation: u64,
    outbound: Arc<Outbound>,
    control: mpsc::Sender<Control>,
}

/// A session of this node's user whose socket is on another node.
struct Visitor {
    incarnation: u64,
    input: mpsc::Sender<Bytes>,
    outbound: Arc<Outbound>,
}

/// Starts a visiting session at the home (the connection layer's, passed in at start).
pub type Opener = Box<dyn Fn(Arc<Shared>, Handoff) + Send + Sync>;

/// This node's sessions across the bus, both ways.
#[derive(Default)]
pub struct Bridges {
    pipes: Mutex<HashMap<u64, Pipe>>,
    visitors: Mutex<HashMap<(String, u64), Visitor>>,
    /// Opens taken lately (node, sid): a repeat is refused.
    opens: Mutex<VecDeque<(Instant, String, u64)>>,
    opener: OnceLock<Opener>,
}

fn frame(kind: u8, sid: u64, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(9 + body.len());
    out.put_u8(kind);
    out.put_u64(sid);
    out.put_slice(body);
    out.freeze()
}

fn unframe(payload: &[u8]) -> Option<(u8, u64, &[u8])> {
    let (&kind, rest) = payload.split_first()?;
    let sid = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((kind, sid, &rest[8..]))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Cluster {
    /// Set what starts a visiting session (once, at start).
    pub fn set_opener(&self, opener: Opener) {
        let _ = self.bridges.opener.set(opener);
    }

    fn session_subject(&self, to: &str) -> String {
        subject(&self.prefix, &format!("sess.{to}.{}", self.node))
    }

    async fn send_frame(&self, to: &str, kind: u8, sid: u64, body: &[u8]) -> bool {
        self.client
            .publish(self.session_subject(to), frame(kind, sid, body))
            .await
            .is_ok()
    }

    /// A handoff of a connection of this node to `home`, with a fresh session id; the caller
    /// fills in what the connection negotiated and passes it to [`Cluster::open_pipe`].
    pub fn handoff_to(&self, home: &str, account: &str, ip: std::net::IpAddr) -> Handoff {
        let mut sid = [0u8; 8];
        // A failed draw leaves zeros; the time makes the id unique enough to not collide.
        let _ = getrandom::fill(&mut sid);
        let sid = u64::from_le_bytes(sid) ^ unix_now().rotate_left(32);
        Handoff {
            from: self.node.clone(),
            from_incarnation: self.incarnation,
            to: home.to_owned(),
            sid,
            issued: unix_now(),
            account: account.to_owned(),
            ip,
            secure: false,
            host: String::new(),
            nick: String::new(),
            username: String::new(),
            realname: String::new(),
            caps: Vec::new(),
            cap_302: false,
            login_session: None,
            token_login: false,
        }
    }

    /// Send `handoff` to its home, signed, with `outbound` to take what the home sends back.
    /// The answer ([`Control`]) comes on the receiver; `None` when the bus took nothing.
    pub async fn open_pipe(
        &self,
        shared: &Shared,
        handoff: Handoff,
        outbound: Arc<Outbound>,
    ) -> Option<mpsc::Receiver<Control>> {
        // The MAC (hex) covers the handoff's bytes as sent, every field of it.
        let json = serde_json::to_string(&handoff).ok()?;
        let mut body = hex(&shared.accounts.handoff_mac(&json)).into_bytes();
        body.extend_from_slice(json.as_bytes());
        // Room for the answer and a close that may follow at once.
        let (control, answers) = mpsc::channel(4);
        self.bridges.pipes.lock().insert(
            handoff.sid,
            Pipe {
                home: handoff.to.clone(),
                home_incarnation: 0,
                outbound,
                control,
            },
        );
        if self.send_frame(&handoff.to, OPEN, handoff.sid, &body).await {
            Some(answers)
        } else {
            self.bridges.pipes.lock().remove(&handoff.sid);
            None
        }
    }

    /// Carry what the client sent to the home of pipe `sid`; false when the bus refused it.
    pub async fn pipe_input(&self, home: &str, sid: u64, bytes: &[u8]) -> bool {
        self.send_frame(home, INPUT, sid, bytes).await
    }

    /// The connection of pipe `sid` ended here: the home ends the session (quietly, as a
    /// session whose socket closed).
    pub async fn close_pipe(&self, sid: u64) {
        let pipe = self.bridges.pipes.lock().remove(&sid);
        if let Some(pipe) = pipe {
            self.send_frame(&pipe.home, CLIENT_GONE, sid, b"").await;
        }
    }

    /// Forget pipe `sid` without telling the home (it never answered).
    pub fn drop_pipe(&self, sid: u64) {
        self.bridges.pipes.lock().remove(&sid);
    }

    /// Take a visiting session: its input goes to `input`, and `outbound` is how it is ended
    /// when its node goes.
    pub fn add_visitor(
        &self,
        handoff: &Handoff,
        input: mpsc::Sender<Bytes>,
        outbound: Arc<Outbound>,
    ) {
        self.bridges.visitors.lock().insert(
            (handoff.from.clone(), handoff.sid),
            Visitor {
                incarnation: handoff.from_incarnation,
                input,
                outbound,
            },
        );
    }

    /// Tell the client's node that the session is taken.
    pub async fn accept_visitor(&self, handoff: &Handoff) -> bool {
        let incarnation = self.incarnation.to_be_bytes();
        self.send_frame(&handoff.from, ACCEPTED, handoff.sid, &incarnation)
            .await
    }

    /// Carry what the visiting session `sid` of `node` was sent to its socket.
    pub async fn visitor_output(&self, node: &str, sid: u64, bytes: &[u8]) -> bool {
        self.send_frame(node, OUTPUT, sid, bytes).await
    }

    /// The visiting session ended here (all its bytes are sent): the client's node closes the
    /// socket.
    pub async fn close_visitor(&self, node: &str, sid: u64) {
        self.bridges.visitors.lock().remove(&(node.to_owned(), sid));
        self.send_frame(node, HOME_DONE, sid, b"").await;
    }

    /// A node life ended (`NodeDown`; `incarnation` 0: every life but `except`): its visiting
    /// sessions end here (their sockets are gone) and connections here whose user lived there
    /// are closed (their user is gone). Said of this node: every pipe closes, since the others
    /// dropped its users.
    pub(super) fn bridges_lost(&self, node: &str, incarnation: u64, except: Option<u64>) {
        let this_life = node == self.node && incarnation == self.incarnation;
        let dead = |n: &str, inc: u64| {
            this_life
                || (n == node && (incarnation == 0 || inc == incarnation) && except != Some(inc))
        };
        let pipes: Vec<mpsc::Sender<Control>> = {
            let mut pipes = self.bridges.pipes.lock();
            let gone: Vec<u64> = pipes
                .iter()
                .filter(|(_, p)| p.home_incarnation != 0 && dead(&p.home, p.home_incarnation))
                .map(|(sid, _)| *sid)
                .collect();
            gone.iter()
                .filter_map(|sid| pipes.remove(sid))
                .map(|p| p.control)
                .collect()
        };
        for control in pipes {
            let _ = control.try_send(Control::Closed(Some(format!("{node} lost"))));
        }
        if node == self.node {
            return;
        }
        let visitors: Vec<Visitor> = {
            let mut visitors = self.bridges.visitors.lock();
            let gone: Vec<(String, u64)> = visitors
                .iter()
                .filter(|((n, _), v)| dead(n, v.incarnation))
                .map(|(key, _)| key.clone())
                .collect();
            gone.iter().filter_map(|key| visitors.remove(key)).collect()
        };
        for visitor in visitors {
            // Dropping the input ends the session's reader: it leaves as a closed socket.
            drop(visitor.input);
            drop(visitor.outbound);
        }
    }

    /// An open from `from`: checked (its name, its MAC, fresh, not seen before), then started.
    fn take_open(&self, shared: &Arc<Shared>, from: &str, sid: u64, body: &[u8]) {
        let signed = body
            .split_at_checked(MAC_HEX)
            .and_then(|(mac, json)| Some((unhex(std::str::from_utf8(mac).ok()?)?, json)))
            .and_then(|(mac, json)| Some((mac, std::str::from_utf8(json).ok()?)))
            .filter(|(mac, json)| shared.accounts.handoff_mac_ok(json, mac));
        let Some((_, json)) = signed else {
            self.refuse(from, "a session handoff it could not sign");
            return;
        };
        let Ok(handoff) = serde_json::from_str::<Handoff>(json) else {
            self.refuse(from, "an unreadable session handoff");
            return;
        };
        if handoff.from != from || handoff.to != self.node || handoff.sid != sid {
            self.refuse(from, "a session handoff in another's name");
            return;
        }
        let now = unix_now();
        if now.abs_diff(handoff.issued) > FRESH.as_secs() {
            tracing::warn!(node = %from, "a stale session handoff refused (are the nodes' clocks set?)");
            return;
        }
        {
            let mut opens = self.bridges.opens.lock();
            let cutoff = Instant::now().checked_sub(FRESH * 2);
            while opens
                .front()
                .is_some_and(|(at, _, _)| cutoff.is_some_and(|c| *at < c))
                || opens.len() >= REMEMBERED_OPENS
            {
                opens.pop_front();
            }
            if opens.iter().any(|(_, n, s)| n == from && *s == sid) {
                self.refuse(from, "a repeated session handoff");
                return;
            }
            opens.push_back((Instant::now(), from.to_owned(), sid));
        }
        match self.bridges.opener.get() {
            Some(open) => open(shared.clone(), handoff),
            None => tracing::warn!("a session handoff came before this node could take it"),
        }
    }

    fn to_visitor(&self, from: &str, sid: u64, body: &[u8]) {
        let mut visitors = self.bridges.visitors.lock();
        let key = (from.to_owned(), sid);
        let Some(visitor) = visitors.get(&key) else {
            return;
        };
        if visitor
            .input
            .try_send(Bytes::copy_from_slice(body))
            .is_err()
        {
            // Reading fell this far behind: the client floods (or the session is ending).
            visitor.outbound.disconnect("Excess Flood");
            visitors.remove(&key);
        }
    }

    fn to_pipe(&self, from: &str, kind: u8, sid: u64, body: &[u8]) {
        let mut pipes = self.bridges.pipes.lock();
        let Some(pipe) = pipes.get_mut(&sid) else {
            return;
        };
        if pipe.home != from {
            drop(pipes);
            self.refuse(from, "bytes for another node's session");
            return;
        }
        match kind {
            ACCEPTED => {
                let incarnation = body
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(1, u64::from_be_bytes);
                pipe.home_incarnation = incarnation;
                let _ = pipe.control.try_send(Control::Accepted);
            }
            OUTPUT => {
                // Past the send queue the buffer ends the connection itself (SendQ exceeded).
                let _ = pipe.outbound.push(body);
            }
            _ => {
                if let Some(pipe) = pipes.remove(&sid) {
                    let _ = pipe.control.try_send(Control::Closed(None));
                }
            }
        }
    }
}

/// Serve `sess.<this node>.*` until shutdown.
pub(super) async fn listen(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut frames: async_nats::Subscriber,
) {
    loop {
        let message = tokio::select! {
            message = frames.next() => message,
            _ = cluster.leave.stopped() => return,
        };
        let Some(message) = message else { return };
        let from = last_token(&message.subject);
        if from == cluster.node || !cluster.known(from) {
            cluster.refuse(from, "a session frame in another's name");
            continue;
        }
        let Some((kind, sid, body)) = unframe(&message.payload) else {
            continue;
        };
        match kind {
            OPEN => cluster.take_open(&shared, from, sid, body),
            INPUT => cluster.to_visitor(from, sid, body),
            CLIENT_GONE => {
                // Dropping the input ends the session's reader: it leaves as a closed socket.
                let gone = cluster
                    .bridges
                    .visitors
                    .lock()
                    .remove(&(from.to_owned(), sid));
                drop(gone);
            }
            ACCEPTED | OUTPUT | HOME_DONE => cluster.to_pipe(from, kind, sid, body),
            _ => {}
        }
    }
}

/// Subscribe to this node's session frames (at start).
pub(super) async fn subscribe(
    cluster: &Cluster,
) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
    cluster
        .client
        .subscribe(subject(
            &cluster.prefix,
            &format!("sess.{}.*", cluster.node),
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_short_ones_are_refused() {
        let bytes = frame(INPUT, 0x0102_0304_0506_0708, b"PRIVMSG #a :hi\r\n");
        assert_eq!(
            unframe(&bytes),
            Some((INPUT, 0x0102_0304_0506_0708, &b"PRIVMSG #a :hi\r\n"[..]))
        );
        assert_eq!(
            unframe(&frame(HOME_DONE, 7, b"")),
            Some((HOME_DONE, 7, &b""[..]))
        );
        for short in [&b""[..], b"D", b"D1234567"] {
            assert_eq!(unframe(short), None);
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_odd_or_bad_text() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
