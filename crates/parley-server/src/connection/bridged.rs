//! A session whose socket is on one node and whose user is on another (`cluster::bridge` has
//! the bus side). Registration on the client's node decides it (`multiclient::home_elsewhere`);
//! then [`carry`] hands the connection over and only moves bytes, while at the user's node
//! [`open_visitor`] runs it through the same [`super::serve_split`] as a socket, from the
//! registration the client's node settled ([`restore`]) on. So a session elsewhere is a
//! session like any other at the user's node: the same handlers, flood control, labels, echo
//! and PINGs, which travel end to end.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use parley_proto::casefold;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

use super::{Session, READ_CHUNK};
use crate::cluster::bridge::{Control, Handoff, INPUT_CHUNKS};
use crate::command;
use crate::context::{Announcer, Ctx};
use crate::outbound::Outbound;
use crate::relay::line;
use crate::server::Shared;

/// How long the client's node waits for the user's node to take a session; past it the
/// connection registers here as a user of its own, as before clusters shared sessions.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Room between the session's writer at the user's node and the bus.
const OUTPUT_PIPE: usize = 64 * 1024;
/// Most bytes of a session's output in one message on the bus (and the room a visiting
/// session keeps for it while idle).
const OUTPUT_CHUNK: usize = 8 * 1024;

/// At the client's node: hand the connection to the node `session.passing.hand_off_to` names
/// and carry its bytes both ways until either end closes. `None` when it ended so; the bytes
/// not yet handled when the other node did not take it (the connection then registers here).
pub(super) async fn carry<R: AsyncRead + Unpin>(
    shared: &Shared,
    session: &mut Session,
    outbound: &Arc<Outbound>,
    reader: &mut R,
    leftover: Vec<u8>,
) -> Option<Vec<u8>> {
    let home = session
        .passing
        .as_mut()
        .and_then(|p| p.hand_off_to.take())
        .unwrap_or_default();
    let Some(cluster) = crate::cluster::of(shared).cloned() else {
        return Some(stay(shared, session, outbound, leftover));
    };
    let Some(account) = session.account.clone() else {
        return Some(stay(shared, session, outbound, leftover));
    };
    let mut handoff = cluster.handoff_to(&home, &account, session.ip);
    handoff.secure = session.secure;
    handoff.host = session.host.clone();
    handoff.nick = session.nick.clone();
    handoff.caps = session
        .caps
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    handoff.cap_302 = session.cap_302;
    handoff.login_session = session.login_session.clone();
    handoff.token_login = session.token_login;
    if let Some(user) = shared.world.lock().users.get(&session.id) {
        handoff.username = user.username.clone();
        handoff.realname = user.realname.clone();
        handoff.host = user.host.clone();
    }
    let sid = handoff.sid;
    let Some(mut answers) = cluster.open_pipe(shared, handoff, outbound.clone()).await else {
        return Some(stay(shared, session, outbound, leftover));
    };
    let answer = tokio::select! {
        answer = tokio::time::timeout(ANSWER_WAIT, answers.recv()) => answer.ok().flatten(),
        _ = outbound.ending() => None,
        _ = shared.shutdown.cancelled() => None,
    };
    if !matches!(answer, Some(Control::Accepted)) {
        cluster.drop_pipe(sid);
        tracing::warn!(client = session.id.0, node = %home, "the account's node did not take the session; it registers here");
        return Some(stay(shared, session, outbound, leftover));
    }
    tracing::info!(client = session.id.0, node = %home, %account, "a session of a user on another node");
    leave_quietly(shared, session, outbound);
    if !leftover.is_empty() && !cluster.pipe_input(&home, sid, &leftover).await {
        cluster.close_pipe(sid).await;
        return None;
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(n) if n > 0 => {
                    if !cluster.pipe_input(&home, sid, &chunk[..n]).await {
                        outbound.disconnect("Lost contact with your user's server");
                        cluster.close_pipe(sid).await;
                        return None;
                    }
                }
                _ => {
                    cluster.close_pipe(sid).await;
                    return None;
                }
            },
            answer = answers.recv() => {
                match answer {
                    // The user's node said its goodbye through the session already.
                    Some(Control::Closed(None)) => outbound.close_with(b""),
                    Some(Control::Closed(Some(why))) => {
                        let text = format!("Closing Link: {} ({why})", session.host);
                        outbound.close_with(&line(None, "ERROR", &[], Some(&text)));
                    }
                    Some(Control::Accepted) => continue,
                    None => outbound.close_with(b""),
                }
                return None;
            }
            _ = outbound.ending() => {
                // Its buffer overflowed or the socket failed, or the server is shutting down
                // (the buffer's token is a child of the server's): the session there ends too.
                cluster.close_pipe(sid).await;
                if !outbound.is_killed() {
                    outbound.close_with(&line(None, "ERROR", &[], Some("Server shutting down")));
                }
                return None;
            }
            _ = shared.shutdown.cancelled() => {
                cluster.close_pipe(sid).await;
                outbound.close_with(&line(None, "ERROR", &[], Some("Server shutting down")));
                return None;
            }
        }
    }
}

/// The handoff did not happen: the connection registers here, with what it sent meanwhile.
/// Its nick was the user's, left unclaimed while it was to join them: it is claimed now, once
/// that user has left (the usual reason its node refused: its last session had just closed), or
/// refused with a 433 if it stays taken (`nick::claim_or_refuse_unheld`). The claim runs as the
/// connection's first follow-up, and registration once it is answered.
fn stay(
    shared: &Shared,
    session: &mut Session,
    outbound: &Arc<Outbound>,
    leftover: Vec<u8>,
) -> Vec<u8> {
    session.stays = true;
    let mut ctx = Ctx {
        shared,
        session,
        outbound,
    };
    command::nick::claim_or_refuse_unheld(&mut ctx);
    if ctx.session.followups.is_empty() {
        command::registration::try_complete(&mut ctx);
    }
    leftover
}

/// The connection's placeholder user leaves without a word (it never registered), giving back
/// the nick it reserved: the session's user is at the other node.
fn leave_quietly(shared: &Shared, session: &Session, outbound: &Arc<Outbound>) {
    let announcer = Announcer {
        shared,
        actor: outbound,
    };
    let mut world = shared.world.lock();
    world.monitors.clear(session.id);
    if let Some(user) = world.remove_user(session.id) {
        let folded = casefold(&user.nick);
        if !user.nick.is_empty() {
            announcer.release_nick(&folded, session.id);
        }
        if world.nicks.get(&folded) == Some(&session.id) {
            world.nicks.remove(&folded);
        }
    }
}

/// At the user's node: take a session handed over by `handoff.from` (its open was checked by
/// `cluster::bridge`), counted in the connection limits as a socket would be.
pub fn open_visitor(shared: Arc<Shared>, handoff: Handoff) {
    tokio::spawn(visit(shared, handoff));
}

async fn visit(shared: Arc<Shared>, handoff: Handoff) {
    let Some(cluster) = crate::cluster::of(&shared).cloned() else {
        return;
    };
    let (from, sid) = (handoff.from.clone(), handoff.sid);
    let admitted = match shared.admit(handoff.ip) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let text = format!("Closing Link: {} ({})", handoff.ip, refusal.reason());
            cluster.accept_visitor(&handoff).await;
            let bytes = line(None, "ERROR", &[], Some(&text));
            cluster.visitor_output(&from, sid, &bytes).await;
            cluster.close_visitor(&from, sid).await;
            return;
        }
    };
    let outbound = Arc::new(Outbound::under(
        shared.config.limits.send_queue_bytes,
        &shared.shutdown,
    ));
    let (input, chunks) = mpsc::channel(INPUT_CHUNKS);
    cluster.add_visitor(&handoff, input, outbound.clone());
    if !cluster.accept_visitor(&handoff).await {
        cluster.close_visitor(&from, sid).await;
        return;
    }
    // The session's writer writes into a pipe; what comes out goes over the bus as it comes.
    let (writer, mut pipe) = tokio::io::duplex(OUTPUT_PIPE);
    let carrier = cluster.clone();
    let output = tokio::spawn(async move {
        let mut chunk = vec![0u8; OUTPUT_CHUNK];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(n) if n > 0 => {
                    if !carrier.visitor_output(&from, sid, &chunk[..n]).await {
                        break;
                    }
                }
                _ => break,
            }
        }
        carrier.close_visitor(&from, sid).await;
    });
    let peer = SocketAddr::new(handoff.ip, 0);
    let secure = handoff.secure;
    super::serve_split(
        shared,
        admitted,
        BusReader {
            chunks,
            current: Bytes::new(),
        },
        writer,
        peer,
        secure,
        Some(Box::new(super::Visit { handoff, outbound })),
    )
    .await;
    let _ = output.await;
}

/// At the user's node, before the session reads anything: what registration settled at the
/// client's node, then the attach to the user. Returns what to handle first: when the user
/// left meanwhile, the NICK the client asked for, so it registers here as a user of its own.
pub(super) fn restore(
    shared: &Shared,
    session: &mut Session,
    outbound: &Arc<Outbound>,
    handoff: &Handoff,
) -> Vec<u8> {
    // Never handed on again: a session crosses the bus once.
    session.stays = true;
    session.host = one_word(&handoff.host);
    session.got_user = true;
    session.cap_302 = handoff.cap_302;
    for cap in &handoff.caps {
        session.caps.set(cap, true);
    }
    outbound.set_wire_caps(session.caps.wire_bits());
    outbound.set_notify_caps(session.caps.notify_bits());
    session.account = Some(one_word(&handoff.account));
    session.login_session = handoff.login_session.clone();
    session.token_login = handoff.token_login;
    if let Some(user) = shared.world.lock().users.get_mut(&session.id) {
        user.username = one_word(&handoff.username);
        user.realname = handoff.realname.replace(['\r', '\n', '\0'], "");
        user.host = session.host.clone();
        user.account = session.account.clone();
    }
    let mut ctx = Ctx {
        shared,
        session,
        outbound,
    };
    if command::multiclient::attach(&mut ctx) {
        return Vec::new();
    }
    let nick = one_word(&handoff.nick);
    if nick.is_empty() {
        // Refused at the client's node: the client sends another NICK, which comes here.
        Vec::new()
    } else {
        format!("NICK {nick}\r\n").into_bytes()
    }
}

/// `text` up to its first character that cannot be in one parameter of a line.
fn one_word(text: &str) -> String {
    text.split([' ', '\r', '\n', '\0'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The input of a session at the user's node: what its socket at the client's node read, in
/// order, chunk by chunk. Ends (as a socket closing) when that node says the socket closed or
/// the node is gone (`cluster::bridge` drops the sender).
struct BusReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl AsyncRead for BusReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.current = chunk,
                // End of input: a read of zero bytes.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.current.len().min(buf.remaining());
        let head = self.current.split_to(n);
        buf.put_slice(&head);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::one_word;

    #[test]
    fn a_field_from_the_bus_cannot_carry_a_second_line() {
        assert_eq!(one_word("alice\r\nQUIT :x"), "alice");
        assert_eq!(one_word("ali ce"), "ali");
        assert_eq!(one_word(""), "");
    }
}
