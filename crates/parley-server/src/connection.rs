//! A client's life once admitted (at accept, by [`Shared::admit`]): the framed reader loop,
//! timeouts, and the goodbye.
//!
//! The reader enforces the line limit before buffering more (an overlong line is answered with
//! 417 and skipped up to its newline), handles every complete line in the buffer before reading
//! again, and delays lines past the flood budget. Writing happens in a separate task draining the
//! connection's [`Outbound`] buffer, so a slow reader never blocks anyone who sends to it.
//!
//! Idle connections must be cheap (tens of thousands per small machine), so a connection keeps
//! no read buffer while it waits: the socket is read into scratch space on the stack of the poll,
//! and only a partial line is kept on the heap. Waiting work (logins, history) is boxed so it
//! does not widen every connection's future.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use parley_proto::{numeric, Message, ParseError, MAX_LINE_LEN};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, info};

use crate::cluster::bridge::Handoff;
use crate::cluster::event::Event;
use crate::command;
use crate::command::always_on::{self, Detach};
use crate::command::auth;
use crate::context::{Announced, Announcer, Ctx, FollowUp, Labeled, LabeledLine, Line, Session};
use crate::flood::FloodControl;
use crate::outbound::{run_writer, Outbound};
use crate::relay::{escape_tag, line, with_tag};
use crate::server::{Admission, Admitted, Shared};
use crate::state::{User, WhowasEntry};
use crate::store::StoredPresence;

/// Most bytes taken from the socket per read. The space lives on the stack only while the read
/// is polled; what it holds is appended to the connection's pending bytes.
const READ_CHUNK: usize = 4096;

mod bridged;
pub use bridged::open_visitor;

/// Serve one accepted connection until it ends.
///
/// Not an `async fn`: the stream is split before the connection's future is built, so the
/// future (kept for the connection's whole life) holds two pointers rather than a moved-out
/// copy of the stream, which for TLS is over a kilobyte.
/// `admitted` is the connection's place in the limits, taken at accept ([`Shared::admit`]);
/// it is given back when the connection ends.
pub fn serve<S>(
    shared: Arc<Shared>,
    admitted: Admitted,
    stream: S,
    peer: SocketAddr,
    secure: bool,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    serve_split(shared, admitted, reader, writer, peer, secure, None)
}

/// Turn away a plain-text connection that [`Shared::admit`] refused, telling it why in an
/// `ERROR` line (given a moment, no more). A TLS connection is just closed: it gets no
/// handshake, so it could not read the line anyway.
pub async fn refuse<S>(mut stream: S, peer: SocketAddr, refusal: Admission)
where
    S: AsyncWrite + Unpin,
{
    log_refusal(peer, &refusal);
    let text = format!(
        "ERROR :Closing Link: {} ({})\r\n",
        peer.ip(),
        refusal.reason()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

pub fn log_refusal(peer: SocketAddr, refusal: &Admission) {
    match refusal {
        Admission::Banned(_) => info!(%peer, "connection refused by a D-line"),
        _ => info!(%peer, reason = %refusal.reason(), "connection refused"),
    }
}

/// A session of a user here whose socket is on another node: the handoff it came with and
/// the buffer its output goes to over the bus (see `bridged`).
struct Visit {
    handoff: Handoff,
    outbound: Arc<Outbound>,
}

/// Serve a connection: from a socket's two halves, or (`visiting`) a session of a user here
/// whose socket is on another node of the cluster, reading and writing over the bus.
///
/// Not an `async fn`, and `visiting` boxed: this future is what every connection holds for its
/// whole life, so its size is memory per idle connection. An `async fn` keeps its arguments
/// twice (as given and as moved into its body) and room for every local that lives across a
/// wait; an `async` block keeps what it captures once. The setup that needs no wait runs in
/// [`open`], whose locals (the handoff) are gone before the first wait. Every wait but the
/// read loop's is boxed, so its room is taken only while it runs.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn serve_split<R, W>(
    shared: Arc<Shared>,
    admitted: Admitted,
    mut reader: R,
    writer: W,
    peer: SocketAddr,
    secure: bool,
    visiting: Option<Box<Visit>>,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    async move {
        // Admission checked D-lines at accept; this catches one set during a TLS handshake.
        if let Some(reason) = shared.dline_for(peer.ip()) {
            let refusal = Box::pin(refuse(writer, peer, Admission::Banned(reason)));
            return refusal.await;
        }
        let (mut session, outbound, writer_task, pending) =
            open(&shared, writer, peer, secure, visiting);

        // A handler that panics must not leave its user behind: unwinding past `finish` would
        // keep a ghost in the world, holding its nick, channels and channel status for good.
        // The world's locks do not poison, so the connection ends as any other, with its QUIT.
        // A session handed over from another node attached before reading anything: what the
        // attach left waiting (an always-on catch-up) comes before the answers to its first
        // lines (the read loop runs it first). A connection whose handover to another node did
        // not happen comes back round with what it sent meanwhile, and the nick claim
        // `bridged::carry` left waiting first.
        let mut pending = pending;
        // Temporaries, not named locals, hold each wait's answer: a local would keep its room
        // across the next wait (the carry's), in every idle connection's future.
        let reason = loop {
            let leftover =
                match guarded_read_loop(&shared, &mut session, &outbound, &mut reader, pending)
                    .await
                {
                    EndReason::HandOff(leftover) => leftover,
                    reason => break reason,
                };
            // Only a connection handed to another node carries this future's buffers.
            match Box::pin(bridged::carry(
                &shared,
                &mut session,
                &outbound,
                &mut reader,
                leftover,
            ))
            .await
            {
                None => break EndReason::Carried,
                Some(leftover) => pending = leftover,
            }
        };
        let ending = Box::pin(end_connection(
            shared,
            session,
            outbound,
            reason,
            writer_task,
            peer,
        ));
        ending.await;
        drop(admitted);
    }
}

/// Start a connection's session: its user in the world (or, `visiting`, the session restored
/// from its handoff) and its writer task. Returns the session, its outbound buffer, the writer
/// task, and the bytes that came with a handoff, to be handled first.
fn open<W>(
    shared: &Arc<Shared>,
    writer: W,
    peer: SocketAddr,
    secure: bool,
    visiting: Option<Box<Visit>>,
) -> (Session, Arc<Outbound>, tokio::task::JoinHandle<()>, Vec<u8>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let ip = peer.ip();
    crate::metrics::record_connection_accepted();
    let (handoff, outbound) = match visiting.map(|visit| *visit) {
        Some(Visit { handoff, outbound }) => (Some(handoff), outbound),
        None => (
            None,
            Arc::new(Outbound::under(
                shared.config.limits.send_queue_bytes,
                &shared.shutdown,
            )),
        ),
    };
    let id = shared.next_client_id();
    let mut session = Session::new(id, ip, secure);
    shared.world.lock().users.insert(
        id,
        Box::new(User {
            id,
            outbound: outbound.clone(),
            sessions: vec![outbound.clone()],
            nick: String::new(),
            username: String::new(),
            realname: String::new(),
            host: session.host.clone(),
            real_mask: None,
            registered: false,
            account: None,
            secure,
            ip,
            oper: None,
            wallops: false,
            invisible: false,
            bot: false,
            away: None,
            channels: Default::default(),
            signon: SystemTime::now(),
            last_spoke: Instant::now(),
            remote: None,
        }),
    );
    debug!(%peer, client = id.0, "connected");

    let writer_task = tokio::spawn(run_writer(outbound.clone(), writer));
    let pending = match handoff {
        Some(handoff) => bridged::restore(shared, &mut session, &outbound, &handoff),
        None => Vec::new(),
    };
    (session, outbound, writer_task, pending)
}

/// What a connection does once its reading ended: deliver its last messages, take the user
/// out (or keep it present, always-on), let the writer finish, and log the end.
async fn end_connection(
    shared: Arc<Shared>,
    mut session: Session,
    outbound: Arc<Outbound>,
    reason: EndReason,
    mut writer_task: tokio::task::JoinHandle<()>,
    peer: SocketAddr,
) {
    if !matches!(reason, EndReason::Carried) {
        // Its last messages go out before its QUIT.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            drain_in_flight(&shared, &mut session, &outbound, 0),
        )
        .await;
        if let Some((account, presence)) = finish(&shared, &session, &outbound, &reason) {
            crate::command::always_on::save(&shared, account, presence).await;
        }
    }
    if tokio::time::timeout(Duration::from_secs(5), &mut writer_task)
        .await
        .is_err()
    {
        // A peer that stopped reading would keep the writer (and the socket) alive forever,
        // after its connection slot was released: stop it instead.
        outbound.kill();
        let _ = writer_task.await;
    }
    debug!(%peer, client = session.id.0, reason = %reason.quit_text(), "disconnected");
}

/// [`read_loop`], with a panicking handler ending the connection instead of the task.
///
/// Neither this nor [`read_loop`] is an `async fn`: an `async fn` keeps its arguments twice in
/// its future (as given, and as moved into its body), and an `async` block here would keep them
/// beside the loop's own future; this future is most of what an idle connection holds
/// (BENCHMARKS.md, target 3).
fn guarded_read_loop<'a, R: AsyncRead + Unpin>(
    shared: &'a Shared,
    session: &'a mut Session,
    outbound: &'a Arc<Outbound>,
    reader: &'a mut R,
    pending: Vec<u8>,
) -> impl std::future::Future<Output = EndReason> + 'a {
    let (id, ip) = (session.id, session.ip);
    AssertUnwindSafe(read_loop(shared, session, outbound, reader, pending))
        .catch_unwind()
        .map(move |ended| {
            ended.unwrap_or_else(|_| {
                tracing::error!(%ip, client = id.0, "a handler panicked; the connection is closed");
                EndReason::Disconnected("Internal server error".into())
            })
        })
}

/// Why a connection ended, which decides the QUIT others see and the ERROR the client gets.
enum EndReason {
    /// Registration found the account's user on another node: the connection goes on as a
    /// session there (`bridged::carry`), starting with these bytes not yet handled.
    HandOff(Vec<u8>),
    /// The connection was a session of a user on another node until it ended: nothing of it
    /// is left here to finish.
    Carried,
    Quit(String),
    /// The client went away without QUIT: its socket closed or was reset, or a write to it
    /// failed. Others see "Connection closed", however the socket ended; "Killed" is only
    /// ever an operator's KILL, which arrives as [`EndReason::Disconnected`].
    Closed,
    ReadError,
    SendQueueExceeded,
    /// Closed by the server with a reason (KILL, a ban, a suspension).
    Disconnected(String),
    PingTimeout(u64),
    RegistrationTimeout,
    Shutdown,
}

impl EndReason {
    fn quit_text(&self) -> String {
        match self {
            EndReason::Quit(text) if text.is_empty() => "Quit".into(),
            EndReason::Quit(text) => format!("Quit: {text}"),
            EndReason::Closed => "Connection closed".into(),
            EndReason::ReadError => "Read error".into(),
            EndReason::SendQueueExceeded => "SendQ exceeded".into(),
            EndReason::Disconnected(reason) => reason.clone(),
            EndReason::PingTimeout(secs) => format!("Ping timeout: {secs} seconds"),
            EndReason::RegistrationTimeout => "Registration timed out".into(),
            EndReason::Shutdown => "Server shutting down".into(),
            EndReason::HandOff(_) | EndReason::Carried => "Connection closed".into(),
        }
    }
}

/// The ping interval and timeout from the configuration: read where they are needed, not kept
/// in the read loop's future for the connection's life.
fn ping_times(shared: &Shared) -> (Duration, Duration) {
    let limits = &shared.config.limits;
    (
        Duration::from_secs(limits.ping_interval_secs.max(1)),
        Duration::from_secs(limits.ping_timeout_secs.max(1)),
    )
}

/// Where a connection stands against its deadlines, in one instant (the read loop's future is
/// what an idle connection holds): registering since it connected, quiet since its last input,
/// or waiting for the answer to a PING sent then.
#[derive(Clone, Copy)]
enum Keepalive {
    Registering(Instant),
    Quiet(Instant),
    Pinged(Instant),
}

impl Keepalive {
    /// Registration is done: quiet from now on (from its last input, as far as it matters).
    fn registered(self) -> Self {
        match self {
            Keepalive::Registering(_) => Keepalive::Quiet(Instant::now()),
            other => other,
        }
    }

    /// Input arrived: registration still counts from the connection's start; otherwise the
    /// client is quiet from now, and any PING counts as answered.
    fn input(self) -> Self {
        match self {
            Keepalive::Registering(since) => Keepalive::Registering(since),
            _ => Keepalive::Quiet(Instant::now()),
        }
    }

    fn deadline(self, shared: &Shared) -> Instant {
        let (ping_interval, ping_timeout) = ping_times(shared);
        match self {
            Keepalive::Registering(since) => {
                since + Duration::from_secs(shared.config.limits.registration_timeout_secs.max(1))
            }
            Keepalive::Quiet(since) => since + ping_interval,
            Keepalive::Pinged(since) => since + ping_timeout,
        }
    }
}

/// The connection's read loop (see [`guarded_read_loop`] for why it is not an `async fn`).
#[allow(clippy::manual_async_fn)]
fn read_loop<'a, R: AsyncRead + Unpin>(
    shared: &'a Shared,
    session: &'a mut Session,
    outbound: &'a Arc<Outbound>,
    reader: &'a mut R,
    // Bytes to handle before reading (after a handoff that did not happen, what came with it).
    mut pending: Vec<u8>,
) -> impl std::future::Future<Output = EndReason> + 'a {
    async move {
        // What an attach or a handover that did not happen left waiting (an always-on
        // catch-up, the nick claim `bridged::carry` left) comes before the answers to the
        // first lines.
        if !session.followups.is_empty() {
            if let Some(end) = Box::pin(run_followups(shared, session, outbound)).await {
                return end;
            }
        }
        let mut keepalive = Keepalive::Registering(Instant::now());
        let mut flood = FloodControl::new(&shared.live().flood);
        // `pending`: bytes read but not yet handled, empty (and unallocated) between lines, so an
        // idle connection holds nothing there; only a line split across reads stays.
        // True while skipping the rest of an overlong line.
        let mut discarding = false;

        loop {
            let mut handled = 0;
            // The replies to everything read at once go out together (see `Outbound::cork`);
            // uncorked before any wait, so nothing is held back for longer than the handling.
            let corked = Corked::new(outbound);
            while let Some(pos) = memchr::memchr(b'\n', &pending[handled..]) {
                let start = handled;
                handled += pos + 1;
                if std::mem::take(&mut discarding) {
                    continue;
                }
                // Each wait below is boxed: this loop's future is what an idle connection holds,
                // and it would otherwise keep room for the largest of them all the time.
                if let Some(wait) = flood.take() {
                    corked.release();
                    let waited = Box::pin(flood_wait(shared, outbound, wait));
                    if let Some(end) = waited.await {
                        return end;
                    }
                    corked.hold();
                }
                if !session.in_flight.is_empty() && !is_message_line(&pending[start..handled]) {
                    corked.release();
                    let drained = Box::pin(drain_in_flight(shared, session, outbound, 0));
                    let end = drained.await;
                    corked.hold();
                    if let Some(end) = end {
                        return end;
                    }
                }
                handle_line(shared, session, outbound, &pending[start..handled]);
                // Boxed, and only when there is something to wait for: waiting for a login or a
                // history read takes several times the room of the rest of the connection's
                // state, and an idle connection should not carry that room.
                let end = if session.followups.is_empty() {
                    None
                } else {
                    // Most follow-ups finish at their first poll (a SCRAM step, a login's check
                    // for waiting messages): their replies then leave with the rest, in one write.
                    // Only a follow-up that has to wait lets the replies so far go first.
                    let mut followups = Box::pin(run_followups(shared, session, outbound));
                    match std::future::poll_fn(|cx| Poll::Ready(followups.as_mut().poll(cx))).await
                    {
                        Poll::Ready(end) => end,
                        Poll::Pending => {
                            corked.release();
                            let end = followups.await;
                            corked.hold();
                            end
                        }
                    }
                };
                // In a cluster a labeled message's echo comes back from the stream a little later:
                // the answer waits for it (uncorked, so others' lines are not held back meanwhile).
                let end = match end {
                    None if !echoes_ready(session) => {
                        corked.release();
                        let echoes = Box::pin(await_echoes(shared, session, outbound));
                        let end = echoes.await;
                        corked.hold();
                        end
                    }
                    end => end,
                };
                send_labeled(shared, session, outbound);
                if let Some(end) = end {
                    return end;
                }
                if let Some(text) = session.passing.as_mut().and_then(|p| p.quit.take()) {
                    return EndReason::Quit(text);
                }
                if session
                    .passing
                    .as_ref()
                    .is_some_and(|p| p.hand_off_to.is_some())
                {
                    pending.drain(..handled);
                    return EndReason::HandOff(pending);
                }
                session.settle();
            }
            pending.drain(..handled);
            if pending.len() > MAX_LINE_LEN + 2 {
                input_too_long(shared, session, outbound);
                discarding = true;
            }
            drop(corked);
            if discarding || pending.is_empty() {
                pending = Vec::new();
            }

            if session.registered {
                keepalive = keepalive.registered();
            }
            let deadline = keepalive.deadline(shared);
            tokio::select! {
                read = read_some(reader, &mut pending) => match read {
                    Ok(0) => return EndReason::Closed,
                    Ok(_) => keepalive = keepalive.input(),
                    Err(err) if peer_went_away(&err) => return EndReason::Closed,
                    Err(_) => return EndReason::ReadError,
                },
                // Killed, or the server shutting down: the buffer's token is a child of the
                // server's (`Outbound::under`), so one wait serves both.
                _ = outbound.ending() => return ending_reason(outbound),
                _ = sleep_until(deadline) => match keepalive {
                    Keepalive::Registering(_) => return EndReason::RegistrationTimeout,
                    Keepalive::Pinged(_) => {
                        let (ping_interval, ping_timeout) = ping_times(shared);
                        return EndReason::PingTimeout((ping_interval + ping_timeout).as_secs());
                    }
                    Keepalive::Quiet(_) => {
                        let name = shared.server_name();
                        let _ = outbound.push(&line(None, "PING", &[], Some(name)));
                        keepalive = Keepalive::Pinged(Instant::now());
                    }
                },
            }
        }
    }
}

/// Sit out a flood-control delay, unless the connection is killed or the server stops first.
async fn flood_wait(shared: &Shared, outbound: &Outbound, wait: Duration) -> Option<EndReason> {
    tokio::select! {
        _ = sleep(wait) => None,
        _ = outbound.ending() => Some(ending_reason(outbound)),
        _ = shared.shutdown.cancelled() => Some(EndReason::Shutdown),
    }
}

/// Holds `outbound` corked while it lives, so every way out of the line loop uncorks.
struct Corked<'a>(&'a Outbound);

impl<'a> Corked<'a> {
    fn new(outbound: &'a Outbound) -> Self {
        outbound.cork();
        Corked(outbound)
    }

    /// Uncork before waiting.
    fn release(&self) {
        self.0.uncork();
    }

    /// Cork again after the wait.
    fn hold(&self) {
        self.0.cork();
    }
}

impl Drop for Corked<'_> {
    fn drop(&mut self) {
        self.0.uncork();
    }
}

/// Read what the socket has (at most [`READ_CHUNK`] bytes) and append it to `pending`; 0 means
/// the peer closed. The scratch space is on the stack of the poll, never held across a wait.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    pending: &mut Vec<u8>,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut chunk = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut *reader).poll_read(cx, &mut chunk))?;
        pending.extend_from_slice(chunk.filled());
        Poll::Ready(Ok(chunk.filled().len()))
    })
    .await
}

/// How many of one sender's messages may wait in the history writer at once. One at a time
/// meant a group commit carried one line per sender and every member got a write per commit;
/// with a window, a flat-out sender's lines share commits and writes. The writer is one task,
/// so they still go out in the order sent.
const IN_FLIGHT: usize = 64;

/// Wait until every message this connection handed on is delivered, so what it does next (a
/// PART, a QUIT, a history query) comes after them.
async fn drain_in_flight(
    shared: &Shared,
    session: &mut Session,
    outbound: &Outbound,
    keep: usize,
) -> Option<EndReason> {
    while session.in_flight.len() > keep {
        let Some(oldest) = session.in_flight.pop_front() else {
            break;
        };
        tokio::select! {
            _ = oldest => {}
            _ = outbound.ending() => return Some(ending_reason(outbound)),
            _ = shared.shutdown.cancelled() => return Some(EndReason::Shutdown),
        }
    }
    None
}

/// True for a line whose command is PRIVMSG, NOTICE or TAGMSG: only those may pass messages
/// still in the writer, since they go the same way.
fn is_message_line(raw: &[u8]) -> bool {
    let mut rest = raw;
    for marker in [b'@', b':'] {
        if rest.first() == Some(&marker) {
            let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            rest = rest[end..].trim_ascii_start();
        }
    }
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let verb = rest[..end].trim_ascii_end();
    verb.eq_ignore_ascii_case(b"PRIVMSG")
        || verb.eq_ignore_ascii_case(b"NOTICE")
        || verb.eq_ignore_ascii_case(b"TAGMSG")
}

/// Run what the last line's handler left for later, in order: logins, deliveries to be stored,
/// and the handlers' waiting steps (store reads, blocking calls, nick claims), whose second half
/// runs here once the answer is in, without this loop knowing what they ask. An unlabeled
/// message is only handed to the history writer, and reading goes on with up to [`IN_FLIGHT`]
/// of them on their way; anything else first waits for those to be delivered, so it comes
/// after them. Only this connection waits; a kill or shutdown cuts the wait short.
async fn run_followups(
    shared: &Shared,
    session: &mut Session,
    outbound: &Arc<Outbound>,
) -> Option<EndReason> {
    while let Some(followup) = session.followups.pop_front() {
        if let FollowUp::Deliver(delivery) = &followup {
            // Unlabeled: hand it on and go on reading (a label's ACK must follow the delivery).
            if delivery.echo_into.is_none() && session.labeled.borrow().is_none() {
                let FollowUp::Deliver(delivery) = followup else {
                    continue;
                };
                if let Some(delivered) = shared.history.enqueue(delivery).await {
                    session.in_flight.push_back(delivered);
                }
                if let Some(end) = drain_in_flight(shared, session, outbound, IN_FLIGHT).await {
                    return Some(end);
                }
                continue;
            }
        }
        if let Some(end) = drain_in_flight(shared, session, outbound, 0).await {
            return Some(end);
        }
        let done = async {
            match followup {
                FollowUp::Auth(pending) => Done::Auth(auth::run(shared, session.ip, pending).await),
                FollowUp::Deliver(delivery) => {
                    shared.history.submit(delivery).await;
                    Done::Nothing
                }
                FollowUp::Then(step) => Done::Then(
                    step(Announcer {
                        shared,
                        actor: outbound,
                    })
                    .await,
                ),
            }
        };
        let done = tokio::select! {
            done = done => done,
            _ = outbound.ending() => return Some(ending_reason(outbound)),
            _ = shared.shutdown.cancelled() => return Some(EndReason::Shutdown),
        };
        let mut ctx = Ctx {
            shared,
            session,
            outbound,
        };
        match done {
            Done::Nothing => {}
            Done::Then(then) => then(&mut ctx),
            Done::Auth(outcome) => auth::finish(&mut ctx, outcome),
        }
    }
    None
}

enum Done {
    /// A handler's second half, with the waiting step's answer inside.
    Then(crate::context::Continuation),
    Nothing,
    Auth(auth::AuthOutcome),
}

/// Longest a labeled command's answer waits for the echoes of its messages from the cluster's
/// stream (a round trip through the bus, normally milliseconds). Past it, what came is sent
/// under the label, and an echo that comes later is sent unlabeled (`fanout::fill_echo`), so a
/// lost event cannot hang the client.
const ECHO_WAIT: Duration = Duration::from_secs(3);

/// Whether a labeled command's echoes are all in (turning those that are into plain lines);
/// true for an unlabeled command, at the cost of one check.
fn echoes_ready(session: &mut Session) -> bool {
    let Some(labeled) = session.labeled.get_mut() else {
        return true;
    };
    let mut ready = true;
    for line in &mut labeled.lines {
        if let LabeledLine::Echo(wait) = line {
            match wait.try_recv() {
                Ok(bytes) => *line = LabeledLine::Line(bytes),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    *line = LabeledLine::Line(Vec::new())
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => ready = false,
            }
        }
    }
    ready
}

/// Wait (at most [`ECHO_WAIT`]) for a labeled command's echoes still on their way.
async fn await_echoes(
    shared: &Shared,
    session: &mut Session,
    outbound: &Outbound,
) -> Option<EndReason> {
    let labeled = session.labeled.get_mut().as_mut()?;
    let deadline = Instant::now() + ECHO_WAIT;
    for line in &mut labeled.lines {
        let LabeledLine::Echo(wait) = line else {
            continue;
        };
        tokio::select! {
            echo = tokio::time::timeout_at(deadline, wait) => match echo {
                Ok(echo) => *line = LabeledLine::Line(echo.unwrap_or_default()),
                Err(_) => {
                    tracing::warn!(
                        nick = %session.nick,
                        "a labeled message's echo did not come back from the cluster in time"
                    );
                    break;
                }
            },
            _ = outbound.ending() => return Some(ending_reason(outbound)),
            _ = shared.shutdown.cancelled() => return Some(EndReason::Shutdown),
        }
    }
    None
}

/// Send a labeled command's replies under its label: one line tagged, several in one
/// `labeled-response` batch, none as an `ACK` ("Servers MUST include the tag in exactly one
/// logical message"). A nested batch (CHATHISTORY's) keeps its own lines' batch tag: only its
/// start and end are tagged with the outer batch, as the batch spec's nesting rules say.
fn send_labeled(shared: &Shared, session: &mut Session, outbound: &Outbound) {
    let Some(labeled) = session.labeled.get_mut().take() else {
        return;
    };
    let label = format!("label={}", escape_tag(&labeled.label));
    let lines: Vec<Vec<u8>> = labeled
        .lines
        .into_iter()
        .map(|line| match line {
            LabeledLine::Line(bytes) => bytes,
            // Not back in time: sent unlabeled when it comes (`fanout::fill_echo`).
            LabeledLine::Echo(_) => Vec::new(),
        })
        .filter(|bytes| !bytes.is_empty())
        .collect();
    let server = shared.server_name();
    match lines.as_slice() {
        [] if labeled.answered => {}
        [] => {
            let _ = outbound.push(&with_tag(&line(Some(server), "ACK", &[], None), &label));
        }
        [only] => {
            let _ = outbound.push(&with_tag(only, &label));
        }
        _ => {
            static BATCHES: AtomicU64 = AtomicU64::new(1);
            let id = format!("l{}", BATCHES.fetch_add(1, Ordering::Relaxed));
            let start = line(
                Some(server),
                "BATCH",
                &[&format!("+{id}"), "labeled-response"],
                None,
            );
            let mut out = with_tag(&start, &label);
            let batch_tag = format!("batch={id}");
            for line in &lines {
                if has_tag(line, "batch") {
                    out.extend_from_slice(line);
                } else {
                    out.extend_from_slice(&with_tag(line, &batch_tag));
                }
            }
            out.extend_from_slice(&line(Some(server), "BATCH", &[&format!("-{id}")], None));
            let _ = outbound.push(&out);
        }
    }
}

/// Whether a serialized line carries tag `key`.
fn has_tag(line: &[u8], key: &str) -> bool {
    let Some(tags) = line.strip_prefix(b"@") else {
        return false;
    };
    let end = memchr::memchr(b' ', tags).unwrap_or(tags.len());
    tags[..end].split(|b| *b == b';').any(|item| {
        let name = item.split(|b| *b == b'=').next().unwrap_or(item);
        name == key.as_bytes()
    })
}

/// A read error that only means the peer is gone: a reset, or (over TLS) a socket closed
/// without the close_notify that clients which are killed or lose their network never send.
fn peer_went_away(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Why a connection whose [`Outbound::ending`] resolved ends: killed, or the server shutting
/// down.
fn ending_reason(outbound: &Outbound) -> EndReason {
    if outbound.is_killed() {
        killed_reason(outbound)
    } else {
        EndReason::Shutdown
    }
}

/// Why the writer side ended the connection. With no overflow and no reason of the server's,
/// the writer stopped because writing to the socket failed: the peer is gone.
fn killed_reason(outbound: &Outbound) -> EndReason {
    if outbound.send_queue_exceeded() {
        EndReason::SendQueueExceeded
    } else if let Some(reason) = outbound.disconnect_reason() {
        EndReason::Disconnected(reason)
    } else {
        EndReason::Closed
    }
}

fn input_too_long(shared: &Shared, session: &mut Session, outbound: &Arc<Outbound>) {
    let ctx = Ctx {
        shared,
        session,
        outbound,
    };
    ctx.numeric(
        numeric::ERR_INPUTTOOLONG,
        &[],
        Some("Input line was too long"),
    );
}

/// Decode and dispatch one raw line (with its line ending).
fn handle_line(shared: &Shared, session: &mut Session, outbound: &Arc<Outbound>, raw: &[u8]) {
    crate::metrics::record_line_received();
    let mut raw = raw;
    while let [rest @ .., b'\r' | b'\n'] = raw {
        raw = rest;
    }
    // UTF8ONLY: a line that is not UTF-8 is parsed (lossily) only to answer it by name.
    let utf8 = std::str::from_utf8(raw).is_ok();
    let text = String::from_utf8_lossy(raw);
    let mut ctx = Ctx {
        shared,
        session,
        outbound,
    };
    if outbound.take_user_changed() {
        command::multiclient::refresh(&mut ctx);
    }
    // "This specification depends on the batch capability which MUST be negotiated to use
    // labeled responses": without both, a label is not used at all.
    if ctx.session.caps.labeled_response && ctx.session.caps.batch {
        *ctx.session.labeled.get_mut() =
            label_of(&text).and_then(|l| Labeled::new(&l)).map(Box::new);
    }
    match Message::parse(&text) {
        // "Clients MUST NOT send messages with tag data exceeding 4094 bytes, this includes
        // tags with or without the client-only prefix" (ircv3.net message-tags); the parser
        // allows the 8191 of a server's line, so a client's is held to its share here.
        Ok(msg) if msg.tags.raw().len() > parley_proto::MAX_CLIENT_TAGS_LEN => ctx.numeric(
            numeric::ERR_INPUTTOOLONG,
            &[],
            Some("Input line was too long"),
        ),
        Ok(msg) if utf8 => command::dispatch(&mut ctx, &msg),
        Ok(msg) => command::utf8::refuse(&mut ctx, &msg),
        Err(ParseError::Empty) => {}
        Err(
            ParseError::BodyTooLong { .. }
            | ParseError::TagsTooLong { .. }
            | ParseError::ClientTagsTooLong { .. },
        ) => ctx.numeric(
            numeric::ERR_INPUTTOOLONG,
            &[],
            Some("Input line was too long"),
        ),
        Err(ParseError::InvalidCommand) => {
            let verb: String = bad_verb(&text).chars().take(32).collect();
            ctx.numeric(
                numeric::ERR_UNKNOWNCOMMAND,
                &[&verb],
                Some("Unknown command"),
            );
        }
        Err(err) => debug!(client = ctx.session.id.0, %err, "unparseable line ignored"),
    }
}

/// Take the user out of the world, tell the people who could see it, and say goodbye; or,
/// for an always-on account, keep it present (`command::always_on`). Returns what to write
/// to the always-on store: an account's presence to keep, or (`None`) to forget.
fn finish(
    shared: &Shared,
    session: &Session,
    outbound: &Arc<Outbound>,
    reason: &EndReason,
) -> Option<(String, Option<StoredPresence>)> {
    // The server's own judgement (a KILL, a ban, a suspension) ends an always-on presence too.
    let keep = !matches!(reason, EndReason::Disconnected(_));
    if command::multiclient::leave(shared, session, outbound) {
        // Another session of the user stays: nobody sees this one go, and always-on has
        // nothing to keep yet.
        say_goodbye(session, outbound, reason);
        return None;
    }
    let account = session.account.as_deref();
    let forget = match always_on::detach(shared, session, outbound, account, keep) {
        Detach::Kept(account, presence) => {
            say_goodbye(session, outbound, reason);
            return Some((account, Some(presence)));
        }
        Detach::QuitAndForget(account) => Some((account, None)),
        Detach::Quit => None,
    };
    let quit_text = reason.quit_text();
    let announcer = Announcer {
        shared,
        actor: outbound,
    };
    let mut announced = Announced::default();
    {
        let mut world = shared.world.lock();
        if let Some(user) = world.users.get(&session.id) {
            if user.registered {
                // In a cluster the others hear it in the stream's order, like everything else.
                let bytes = line(Some(&user.source()), "QUIT", &[], Some(&quit_text));
                let neighbours = Arc::new(world.neighbours(session.id));
                announced =
                    announcer.announce(Line::Bytes(&bytes), &neighbours, |cluster| Event::Quit {
                        uid: cluster.uid_of(session.id),
                        source: user.source(),
                        reason: quit_text.clone(),
                        channels: user.channels.iter().cloned().collect(),
                    });
            }
            announcer.release_nick(&parley_proto::casefold(&user.nick), session.id);
        }
        let channels: Vec<String> = world
            .users
            .get(&session.id)
            .map(|u| u.channels.iter().cloned().collect())
            .unwrap_or_default();
        for key in channels {
            world.leave_channel(session.id, &key);
        }
        world.monitors.clear(session.id);
        if let Some(user) = world.remove_user(session.id) {
            let folded = parley_proto::casefold(&user.nick);
            if world.nicks.get(&folded) == Some(&session.id) {
                world.nicks.remove(&folded);
            }
            if user.registered {
                world.push_whowas(WhowasEntry::of(&user), shared.config.limits.whowas_entries);
                world.monitor_offline(shared.server_name(), &user.nick);
            }
        }
    }
    announcer.publish(announced);
    say_goodbye(session, outbound, reason);
    forget
}

/// The `ERROR` that closes the link, unless the connection is dead already.
fn say_goodbye(session: &Session, outbound: &Outbound, reason: &EndReason) {
    if !outbound.is_killed() {
        let text = match reason {
            EndReason::Shutdown => "Server shutting down".to_string(),
            _ => format!("Closing Link: {} ({})", session.host, reason.quit_text()),
        };
        outbound.close_with(&line(None, "ERROR", &[], Some(&text)));
    }
}

/// The `label` tag of a line, unescaped, even of one whose command does not parse (its 421 is
/// a response like any other); none when the tags themselves are malformed.
fn label_of(text: &str) -> Option<String> {
    let section = text.strip_prefix('@')?.split(' ').next()?;
    let tags = parley_proto::Tags::parse(section).ok()?;
    tags.get("label").map(|label| label.into_owned())
}

/// The word a line used as its command, for ERR_UNKNOWNCOMMAND on a line that did not parse.
fn bad_verb(text: &str) -> &str {
    let mut words = text.split(' ').filter(|w| !w.is_empty()).peekable();
    if words.peek().is_some_and(|w| w.starts_with('@')) {
        words.next();
    }
    if words.peek().is_some_and(|w| w.starts_with(':')) {
        words.next();
    }
    words.next().unwrap_or("*")
}

#[cfg(test)]
mod tests {
    use super::is_message_line;

    #[test]
    fn only_privmsg_and_notice_may_pass_messages_in_flight() {
        for line in [
            &b"PRIVMSG #a :hi\r\n"[..],
            b"notice bob :x\r\n",
            b"@label=1 PRIVMSG #a :hi\r\n",
            b":me!u@h PRIVMSG #a :hi\r\n",
            b"@t=1 :me PRIVMSG #a :hi\r\n",
            b"@+typing=active TAGMSG #a\r\n",
        ] {
            assert!(is_message_line(line), "{}", String::from_utf8_lossy(line));
        }
        for line in [
            &b"PART #a\r\n"[..],
            b"QUIT :bye\r\n",
            b"PRIVMSGX #a :hi\r\n",
            b"@label=1 CHATHISTORY LATEST #a * 10\r\n",
            b"\r\n",
            b"",
        ] {
            assert!(!is_message_line(line), "{}", String::from_utf8_lossy(line));
        }
    }
}
