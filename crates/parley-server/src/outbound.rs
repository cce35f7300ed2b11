//! A client's outbound byte buffer and the writer task that drains it.
//!
//! Senders append already-serialized lines under a short lock and wake the writer only when the
//! buffer goes from empty to non-empty; the writer then takes everything that piled up and writes it
//! with one syscall. So a busy recipient costs one wake and one write per batch, not per line:
//! wakes and syscalls per delivery are the cost of a chat server, not copying bytes (the `ceiling`
//! relay in parley-bench is built the same way; BENCHMARKS.md has the figures). The buffer is
//! bounded by the send queue limit; a client that lets it overflow is disconnected, never waited
//! for.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long the writer may spend delivering the final `ERROR` line of a connection being closed.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Most output buffers kept for reuse ([`SPARES`]), and the largest capacity kept: at most 4 MiB
/// held for connections that have nothing to send.
const SPARE_COUNT: usize = 128;
const SPARE_CAPACITY: usize = 32 * 1024;

/// Output buffers that connections gave back on going idle, for the next connection that gets
/// output. An idle connection holds no output memory, yet a busy channel's members, which go
/// idle between one message and the next, do not pay an allocation, a free and fresh pages for
/// their buffers each time (a profile of fan-out 1x200x10 had malloc, free and page faults at
/// about a seventh of the server's time). Shared by the whole process; bounded.
static SPARES: Spares = Spares::new();

/// A bounded pile of empty buffers (see [`SPARES`]).
struct Spares(Mutex<Vec<Vec<u8>>>);

impl Spares {
    const fn new() -> Self {
        Spares(Mutex::new(Vec::new()))
    }

    /// An empty buffer, reused if one is spare.
    fn take(&self) -> Vec<u8> {
        self.0.lock().pop().unwrap_or_default()
    }

    /// Keep an emptied buffer for reuse, or give it to the allocator when enough are kept
    /// already or it grew large (a burst's buffer is not kept).
    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > SPARE_CAPACITY {
            return;
        }
        buf.clear();
        let mut spares = self.0.lock();
        if spares.len() < SPARE_COUNT {
            spares.push(buf);
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing; the line was dropped.
    Closed,
    /// This push would have exceeded the send queue; the connection is now being closed.
    SendQueueExceeded,
}

struct Pending {
    buf: Vec<u8>,
    /// Set once the connection is closing: further pushes are dropped.
    closing: bool,
    /// While the connection's own task handles a client's lines, pushes only append: the
    /// replies to a burst (a whole welcome, a JOIN's topic and names) then leave with one wake
    /// and one write instead of as many as the writer can snatch meanwhile. See [`Outbound::cork`].
    corked: bool,
}

/// The outbound side of one connection, shared between everyone who sends to it and its writer.
pub struct Outbound {
    pending: Mutex<Pending>,
    wake: Notify,
    limit: usize,
    /// Cancelled when the connection must end now: it was killed (send queue exceeded, a KILL,
    /// a socket error), or the server is shutting down. A connection's buffer is made a child
    /// of the server's shutdown token ([`Outbound::under`]), so its read loop waits on this one
    /// token for both: one wait fewer in every idle connection's future. `killed` tells which.
    kill: CancellationToken,
    /// Set when the connection was killed, not merely ending with the server: the writer then
    /// stops at once, dropping what is queued, where a shutdown still flushes its goodbye.
    killed: AtomicBool,
    /// Why the connection was killed, for the reader task's QUIT message.
    overflowed: AtomicBool,
    /// Set by [`Outbound::disconnect`]: the QUIT text others see.
    reason: Mutex<Option<String>>,
    /// The negotiated capabilities that change which bytes this client must get
    /// ([`crate::relay::wire`] bits), read by senders choosing a serialized variant.
    wire_caps: AtomicU16,
    /// The notifications this client asked for ([`crate::relay::notify`] bits).
    notify_caps: AtomicU8,
    /// Another session of the same user changed what this connection keeps a copy of (the
    /// nick): its task reads it again before its next line (see `command::multiclient`).
    user_changed: AtomicBool,
}

impl Outbound {
    /// A buffer whose [`Outbound::ending`] also resolves when `shutdown` is cancelled: every
    /// connection's, so its read loop needs no wait of its own for the server's shutdown.
    pub fn under(limit: usize, shutdown: &CancellationToken) -> Self {
        Outbound {
            kill: shutdown.child_token(),
            ..Outbound::new(limit)
        }
    }

    pub fn new(limit: usize) -> Self {
        Outbound {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                closing: false,
                corked: false,
            }),
            wake: Notify::new(),
            limit,
            kill: CancellationToken::new(),
            killed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            reason: Mutex::new(None),
            wire_caps: AtomicU16::new(0),
            notify_caps: AtomicU8::new(0),
            user_changed: AtomicBool::new(false),
        }
    }

    pub fn wire_caps(&self) -> u16 {
        self.wire_caps.load(Ordering::Relaxed)
    }

    pub fn set_wire_caps(&self, bits: u16) {
        self.wire_caps.store(bits, Ordering::Relaxed);
    }

    pub fn notify_caps(&self) -> u8 {
        self.notify_caps.load(Ordering::Relaxed)
    }

    pub fn set_notify_caps(&self, bits: u8) {
        self.notify_caps.store(bits, Ordering::Relaxed);
    }

    /// Tell this session's connection that its user changed under it (see `user_changed`).
    pub fn mark_user_changed(&self) {
        self.user_changed.store(true, Ordering::Relaxed);
    }

    /// Whether the user changed since the last call: a plain load per line handled, and a
    /// write only when it did (senders read this struct's other atomics on every delivery).
    pub fn take_user_changed(&self) -> bool {
        self.user_changed.load(Ordering::Relaxed)
            && self.user_changed.swap(false, Ordering::Relaxed)
    }

    /// Append one or more complete lines. Never blocks on the network.
    pub fn push(&self, bytes: &[u8]) -> Result<(), PushError> {
        if self.append(bytes)? {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Append like [`Outbound::push`], but leave the wake-up (if one is due) to `held`, which
    /// gives it when the whole group of pushes is done. A group of messages then reaches each
    /// recipient in one write, where waking at once would let the writer send the first line
    /// alone while the rest are still being appended.
    pub fn push_held(
        self: &Arc<Self>,
        bytes: &[u8],
        held: &mut HeldWakes,
    ) -> Result<(), PushError> {
        if self.append(bytes)? {
            held.0.push(Arc::clone(self));
        }
        Ok(())
    }

    /// Append under the lock; true when the writer must be woken (the buffer was empty and
    /// nobody holds it corked).
    fn append(&self, bytes: &[u8]) -> Result<bool, PushError> {
        let mut pending = self.pending.lock();
        if pending.closing {
            return Err(PushError::Closed);
        }
        if pending.buf.len() + bytes.len() > self.limit {
            pending.closing = true;
            pending.buf.clear();
            drop(pending);
            self.overflowed.store(true, Ordering::Relaxed);
            crate::metrics::record_sendq_disconnect();
            self.killed.store(true, Ordering::Release);
            self.kill.cancel();
            self.wake.notify_one();
            return Err(PushError::SendQueueExceeded);
        }
        let wake = pending.buf.is_empty() && !pending.corked;
        if pending.buf.capacity() == 0 {
            pending.buf = SPARES.take();
        }
        pending.buf.extend_from_slice(bytes);
        Ok(wake)
    }

    /// Hold back the writer's wake-ups until [`Outbound::uncork`]; lines still append in order.
    /// Only the connection's own task corks, and only while it handles lines without waiting,
    /// so what others send it is held back for microseconds at most.
    pub fn cork(&self) {
        self.pending.lock().corked = true;
    }

    /// Let the writer go again, waking it if anything piled up while corked.
    pub fn uncork(&self) {
        let mut pending = self.pending.lock();
        pending.corked = false;
        let wake = !pending.buf.is_empty();
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queue a last line (usually `ERROR`) and stop accepting more; the writer flushes and closes.
    pub fn close_with(&self, last: &[u8]) {
        let mut pending = self.pending.lock();
        if !pending.closing {
            pending.buf.extend_from_slice(last);
            pending.closing = true;
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Close this connection for a reason of the server's (a KILL, a ban): the client gets an
    /// `ERROR` with it, and everyone who sees the user leave gets it as the QUIT text.
    pub fn disconnect(&self, reason: &str) {
        *self.reason.lock() = Some(reason.to_string());
        let text = format!("ERROR :Closing Link: ({reason})\r\n");
        self.close_with(text.as_bytes());
    }

    /// An operator's KILL, as modern.ircdocs.horse has it: the `kill` line (`KILL <nick>
    /// :<comment>` from the operator) first, then `ERROR :Closing Link: <server> (<reason>)`;
    /// everyone who sees the user leave gets `reason` as the QUIT text.
    pub fn killed_by(&self, kill: &[u8], server: &str, reason: &str) {
        *self.reason.lock() = Some(reason.to_string());
        let mut last = kill.to_vec();
        last.extend_from_slice(format!("ERROR :Closing Link: {server} ({reason})\r\n").as_bytes());
        self.close_with(&last);
    }

    /// The reason given to [`Outbound::disconnect`], if any.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// End the connection at once, without waiting for the queue to drain.
    pub fn kill(&self) {
        self.pending.lock().closing = true;
        self.killed.store(true, Ordering::Release);
        self.kill.cancel();
        self.wake.notify_one();
    }

    /// Resolves when the connection must end: it was killed, or (for a buffer made
    /// [`Outbound::under`] the server's shutdown token) the server is shutting down;
    /// [`Outbound::is_killed`] tells which. The future itself, not an `async fn` around it: it
    /// sits in every idle connection's `select!`.
    pub fn ending(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }

    /// Killed: the connection ends at once (not merely with the server).
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// True when the connection was closed because its send queue overflowed.
    pub fn send_queue_exceeded(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Give the pending buffer back ([`SPARES`]) if nothing is queued.
    fn release_if_empty(&self) {
        let mut pending = self.pending.lock();
        if pending.buf.is_empty() && pending.buf.capacity() > 0 {
            let buf = std::mem::take(&mut pending.buf);
            drop(pending);
            SPARES.give(buf);
        }
    }

    /// Take what is pending, leaving `spare` (emptied) in its place; returns whether closing.
    fn take(&self, spare: &mut Vec<u8>) -> bool {
        spare.clear();
        let mut pending = self.pending.lock();
        std::mem::swap(&mut pending.buf, spare);
        pending.closing
    }
}

/// Writers whose wake-up [`Outbound::push_held`] put off; woken when this is dropped.
#[derive(Default)]
pub struct HeldWakes(Vec<Arc<Outbound>>);

impl Drop for HeldWakes {
    fn drop(&mut self) {
        for outbound in self.0.drain(..) {
            outbound.wake.notify_one();
        }
    }
}

/// Drain `outbound` into `sink` until the connection closes. Runs as its own task, one per
/// connection, so its future is kept small: it is most of what an idle connection's writer costs
/// (tokio gives a task a cell rounded up to 128 bytes; this one fits 256 where a `select!` on
/// the kill and the wake-up, a `write_all` beside the kill and the final flush's timers made it
/// 384 plain and 512 with TLS). So: the one thing it waits on while idle is `wake`, which a kill
/// notifies too; a write that the socket takes at once (the common case) holds no future; and
/// the rest, a write that must wait for the peer and the final flush, is boxed when it happens.
#[allow(clippy::manual_async_fn)] // on purpose: an `async fn` keeps its arguments twice
pub fn run_writer<O, W>(outbound: O, mut sink: W) -> impl std::future::Future<Output = ()>
where
    O: std::ops::Deref<Target = Outbound>,
    W: AsyncWrite + Unpin,
{
    async move {
        let mut batch = Vec::new();
        loop {
            // Killed: what is still queued is dropped, not written.
            if outbound.is_killed() {
                break;
            }
            let closing = outbound.take(&mut batch);
            if !batch.is_empty() {
                // One try, holding nothing across a wait: a socket with room takes the whole
                // batch here. The rest, if any, waits for the peer in a boxed future.
                let tried = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(try_write(&mut sink, cx, &batch))
                })
                .await;
                let written = match tried {
                    Ok(written) => written,
                    Err(_) => {
                        outbound.kill();
                        break;
                    }
                };
                if written < batch.len() {
                    match Box::pin(write_unless_killed(&outbound, &mut sink, &batch[written..]))
                        .await
                    {
                        Written::All => {}
                        Written::Killed => break,
                        Written::Failed => {
                            outbound.kill();
                            break;
                        }
                    }
                }
                crate::metrics::record_sent(&batch);
                // More may have arrived while writing; look again before sleeping.
                continue;
            }
            if closing {
                break;
            }
            // Going idle: give back both buffers (for reuse by whoever gets output next, up to a
            // bound), so an idle connection holds no output memory.
            // Under load this point is rarely reached, and the buffers keep their capacity
            // (profiling showed reallocation on every write otherwise).
            SPARES.give(std::mem::take(&mut batch));
            outbound.release_if_empty();
            // New output and a kill both notify `wake` (a permit is kept if neither waits yet).
            outbound.wake.notified().await;
        }
        Box::pin(finish(&outbound, sink)).await;
    }
}

/// How [`write_unless_killed`] ended.
enum Written {
    /// All of it was written.
    All,
    /// The connection was killed first; what was not written is dropped.
    Killed,
    /// The socket failed.
    Failed,
}

/// One `poll_write` of `batch`: how much the socket took (nothing if it is full).
fn try_write<W: AsyncWrite + Unpin>(
    sink: &mut W,
    cx: &mut std::task::Context<'_>,
    batch: &[u8],
) -> std::io::Result<usize> {
    match std::pin::Pin::new(sink).poll_write(cx, batch) {
        std::task::Poll::Ready(Ok(written)) => Ok(written.min(batch.len())),
        std::task::Poll::Ready(Err(err)) => Err(err),
        std::task::Poll::Pending => Ok(0),
    }
}

/// Write all of `rest`, unless the connection is killed first: a peer that stopped reading must
/// not hold its writer, nor the end of its connection.
async fn write_unless_killed<W: AsyncWrite + Unpin>(
    outbound: &Outbound,
    sink: &mut W,
    rest: &[u8],
) -> Written {
    let mut write = std::pin::pin!(sink.write_all(rest));
    tokio::select! {
        result = &mut write => return match result {
            Ok(()) => Written::All,
            Err(_) => Written::Failed,
        },
        _ = outbound.ending() => {}
    }
    if outbound.is_killed() {
        return Written::Killed;
    }
    // The server is shutting down: the write may go on, briefly, so the goodbye that follows
    // has its chance, but a peer that does not read does not hold the shutdown up.
    match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, write).await {
        Ok(Ok(())) => Written::All,
        Ok(Err(_)) => Written::Failed,
        Err(_) => Written::Killed,
    }
}

/// The end of a writer: a last word to a peer that overflowed its queue, then the socket's
/// shutdown, each briefly; then wake the reader, in case the close came from elsewhere (a KILL)
/// and the peer stays silent.
async fn finish<W: AsyncWrite + Unpin>(outbound: &Outbound, mut sink: W) {
    if outbound.send_queue_exceeded() {
        // The peer is not reading; try once, briefly, to tell it why before hanging up.
        let _ = tokio::time::timeout(
            FINAL_FLUSH_TIMEOUT,
            sink.write_all(b"ERROR :Closing Link: SendQ exceeded\r\n"),
        )
        .await;
    }
    let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, sink.shutdown()).await;
    outbound.killed.store(true, Ordering::Release);
    outbound.kill.cancel();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::{run_writer, Outbound, Spares, SPARE_CAPACITY, SPARE_COUNT};

    #[tokio::test]
    async fn an_idle_connection_holds_no_output_buffer() {
        let outbound = Arc::new(Outbound::new(1 << 16));
        let (sink, mut client) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(run_writer(outbound.clone(), sink));
        outbound.push(b"PING :one\r\n").expect("pushed");
        let mut got = vec![0u8; 11];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, b"PING :one\r\n");
        // The writer goes idle after the write: its buffer goes back (bounded wait).
        let mut idle = false;
        for _ in 0..200 {
            if outbound.pending.lock().buf.capacity() == 0 {
                idle = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(idle, "an idle connection kept its output buffer");
        outbound.kill();
        writer.await.expect("writer ends");
    }

    /// A batch the socket cannot take at once goes out whole and in order once the peer reads
    /// (the writer's boxed wait, past its one quick try).
    #[tokio::test]
    async fn a_batch_larger_than_the_socket_takes_arrives_whole() {
        let outbound = Arc::new(Outbound::new(1 << 20));
        let (sink, mut client) = tokio::io::duplex(64);
        let writer = tokio::spawn(run_writer(outbound.clone(), sink));
        let lines: Vec<u8> = (0..500)
            .flat_map(|i| format!("PRIVMSG #room :line {i}\r\n").into_bytes())
            .collect();
        outbound.push(&lines).expect("pushed");
        let mut got = vec![0u8; lines.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
            .await
            .expect("delivered in time")
            .expect("read");
        assert_eq!(got, lines);
        outbound.kill();
        writer.await.expect("writer ends");
    }

    /// A peer that stopped reading does not hold its writer: a kill ends it while its write
    /// waits for room.
    #[tokio::test]
    async fn a_kill_ends_a_writer_blocked_on_a_peer_that_does_not_read() {
        let outbound = Arc::new(Outbound::new(1 << 20));
        let (sink, client) = tokio::io::duplex(64);
        let writer = tokio::spawn(run_writer(outbound.clone(), sink));
        outbound.push(&[b'x'; 4096]).expect("pushed");
        // The writer is now waiting for room that never comes (bounded wait for it to start).
        for _ in 0..200 {
            if outbound.pending.lock().buf.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            outbound.pending.lock().buf.is_empty(),
            "the writer took the batch"
        );
        outbound.kill();
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer ends despite the full socket")
            .expect("writer ends");
        drop(client);
    }

    /// A buffer made under the server's shutdown token ends with it (one wait serves a
    /// connection for both) but is not killed: the goodbye queued after is still written.
    #[tokio::test]
    async fn a_shutdown_ends_the_wait_but_the_goodbye_is_still_written() {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let outbound = Arc::new(Outbound::under(1 << 16, &shutdown));
        let (sink, mut client) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(run_writer(outbound.clone(), sink));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), outbound.ending())
            .await
            .expect("ends with the server");
        assert!(!outbound.is_killed(), "a shutdown is not a kill");
        outbound.close_with(b"ERROR :Server shutting down\r\n");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got, b"ERROR :Server shutting down\r\n");
        writer.await.expect("writer ends");
        assert!(
            outbound.is_killed(),
            "a finished writer marks the buffer dead"
        );
    }

    /// Killed while idle: queued output is dropped, not written, and the writer ends.
    #[tokio::test]
    async fn a_killed_writer_drops_what_is_queued() {
        let outbound = Arc::new(Outbound::new(1 << 16));
        outbound.push(b"PING :lost\r\n").expect("pushed");
        outbound.kill();
        let mut sink = Vec::new();
        run_writer(&*outbound, &mut sink).await;
        assert!(sink.is_empty(), "wrote {sink:?} after a kill");
    }

    #[test]
    fn spare_buffers_are_reused_and_bounded_in_number_and_size() {
        let spares = Spares::new();
        let mut used = Vec::with_capacity(512);
        used.extend_from_slice(b"PRIVMSG #room :hi\r\n");
        spares.give(used);
        let reused = spares.take();
        assert!(reused.is_empty() && reused.capacity() >= 512);
        assert_eq!(spares.take().capacity(), 0, "only what was given back");
        spares.give(Vec::with_capacity(SPARE_CAPACITY + 1));
        assert_eq!(spares.take().capacity(), 0, "a large buffer is not kept");
        for _ in 0..SPARE_COUNT + 10 {
            spares.give(Vec::with_capacity(64));
        }
        assert_eq!(spares.0.lock().len(), SPARE_COUNT);
    }
}
