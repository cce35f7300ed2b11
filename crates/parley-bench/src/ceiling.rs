//! The `ceiling` target: a bare relay that registers anyone and forwards channel and private
//! lines with no checks at all, built like parleyd's hot path (serialize once, append to each
//! recipient's bounded byte buffer, wake its writer only when the buffer goes from empty to
//! non-empty, one write per batch), since a relay's cost is wakes and syscalls per delivered line,
//! not copying bytes. It shows what this machine can do with the same client load, so every table
//! says how close a real server gets. Not a server for people.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use parking_lot::Mutex;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::client::{LineReader, Stream};

/// A peer that lets this much pile up is cut off (the relay's send queue).
const SEND_QUEUE: usize = 16 << 20;
const NAMES_PER_LINE: usize = 40;

struct Peer {
    nick: Mutex<String>,
    out: Mutex<Vec<u8>>,
    wake: Notify,
    dead: AtomicBool,
}

impl Peer {
    fn push(&self, bytes: &[u8]) {
        let mut out = self.out.lock();
        if out.len() + bytes.len() > SEND_QUEUE {
            self.dead.store(true, Ordering::Relaxed);
            self.wake.notify_one();
            return;
        }
        let was_empty = out.is_empty();
        out.extend_from_slice(bytes);
        drop(out);
        if was_empty {
            self.wake.notify_one();
        }
    }
}

#[derive(Default)]
struct World {
    nicks: HashMap<String, Arc<Peer>>,
    /// Membership as a snapshot senders clone and walk without holding the lock.
    channels: HashMap<String, Arc<[Arc<Peer>]>>,
}

/// Serve until the process ends; returns only if the listener fails.
pub async fn serve(listener: TcpListener) -> Result<()> {
    let world = Arc::new(Mutex::new(World::default()));
    loop {
        let (tcp, _) = listener.accept().await.context("accepting")?;
        tcp.set_nodelay(true).ok();
        let world = world.clone();
        tokio::spawn(async move {
            let (read, write) = tokio::io::split(Stream::Plain(tcp));
            connection(world, read, write).await;
        });
    }
}

/// Bind `addr` and serve on the current runtime in a background task; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tokio::spawn(serve(listener));
    Ok(local)
}

async fn connection(world: Arc<Mutex<World>>, read: ReadHalf<Stream>, write: WriteHalf<Stream>) {
    let peer = Arc::new(Peer {
        nick: Mutex::new(String::new()),
        out: Mutex::new(Vec::new()),
        wake: Notify::new(),
        dead: AtomicBool::new(false),
    });
    let writer = tokio::spawn(write_loop(peer.clone(), write));
    let mut reader = LineReader::from_read_half(read);
    let mut joined: Vec<String> = Vec::new();
    let mut source = String::new();
    let mut user_seen = false;
    let mut line_out = Vec::with_capacity(512);
    while let Ok(Some(line)) = reader.next_line().await {
        if peer.dead.load(Ordering::Relaxed) {
            break;
        }
        let (command, rest) = split_word(line);
        match command {
            b"NICK" => {
                let nick = String::from_utf8_lossy(rest).into_owned();
                source = format!("{nick}!b@ceiling");
                world.lock().nicks.insert(nick.clone(), peer.clone());
                *peer.nick.lock() = nick;
            }
            b"USER" if !user_seen => {
                user_seen = true;
                let nick = peer.nick.lock().clone();
                peer.push(
                    format!(":ceiling 001 {nick} :Welcome\r\n:ceiling 422 {nick} :No MOTD\r\n")
                        .as_bytes(),
                );
            }
            b"PING" => {
                line_out.clear();
                line_out.extend_from_slice(b":ceiling PONG ceiling ");
                line_out.extend_from_slice(rest);
                line_out.extend_from_slice(b"\r\n");
                peer.push(&line_out);
            }
            b"JOIN" => {
                let channel = String::from_utf8_lossy(rest).into_owned();
                let members = {
                    let mut world = world.lock();
                    let entry = world
                        .channels
                        .entry(channel.clone())
                        .or_insert_with(|| Arc::from(Vec::new()));
                    let mut next: Vec<Arc<Peer>> = entry.iter().cloned().collect();
                    next.push(peer.clone());
                    *entry = Arc::from(next);
                    entry.clone()
                };
                joined.push(channel.clone());
                let announce = format!(":{source} JOIN {channel}\r\n");
                for member in members.iter() {
                    member.push(announce.as_bytes());
                }
                let nick = peer.nick.lock().clone();
                let mut names = Vec::new();
                for chunk in members.chunks(NAMES_PER_LINE) {
                    let list: Vec<String> = chunk.iter().map(|m| m.nick.lock().clone()).collect();
                    names.extend_from_slice(
                        format!(":ceiling 353 {nick} = {channel} :{}\r\n", list.join(" "))
                            .as_bytes(),
                    );
                }
                names.extend_from_slice(
                    format!(":ceiling 366 {nick} {channel} :End of /NAMES list.\r\n").as_bytes(),
                );
                peer.push(&names);
            }
            b"PRIVMSG" | b"NOTICE" => {
                let (target, _) = split_word(rest);
                line_out.clear();
                line_out.push(b':');
                line_out.extend_from_slice(source.as_bytes());
                line_out.push(b' ');
                line_out.extend_from_slice(line);
                line_out.extend_from_slice(b"\r\n");
                let target = String::from_utf8_lossy(target);
                if target.starts_with('#') {
                    let members = world.lock().channels.get(target.as_ref()).cloned();
                    for member in members.iter().flat_map(|m| m.iter()) {
                        if !Arc::ptr_eq(member, &peer) {
                            member.push(&line_out);
                        }
                    }
                } else {
                    let to = world.lock().nicks.get(target.as_ref()).cloned();
                    if let Some(to) = to {
                        to.push(&line_out);
                    }
                }
            }
            b"QUIT" => {
                peer.push(b"ERROR :Closing Link\r\n");
                break;
            }
            _ => {}
        }
    }
    {
        let mut world = world.lock();
        let nick = peer.nick.lock().clone();
        world.nicks.remove(&nick);
        for channel in joined {
            if let Some(members) = world.channels.get_mut(&channel) {
                let next: Vec<Arc<Peer>> = members
                    .iter()
                    .filter(|m| !Arc::ptr_eq(m, &peer))
                    .cloned()
                    .collect();
                *members = Arc::from(next);
            }
        }
    }
    peer.dead.store(true, Ordering::Relaxed);
    peer.wake.notify_one();
    let _ = writer.await;
}

async fn write_loop(peer: Arc<Peer>, mut write: WriteHalf<Stream>) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        std::mem::swap(&mut *peer.out.lock(), &mut batch);
        if !batch.is_empty() {
            if write.write_all(&batch).await.is_err() {
                peer.dead.store(true, Ordering::Relaxed);
                return;
            }
            continue;
        }
        if peer.dead.load(Ordering::Relaxed) {
            let _ = write.shutdown().await;
            return;
        }
        peer.wake.notified().await;
    }
}

fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', line) {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &[]),
    }
}

/// Run the relay on its own runtime until killed (the `ceiling` subcommand).
pub fn run_blocking(addr: SocketAddr) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "ceiling relay listening on {}",
            listener.local_addr().context("local address")?
        );
        serve(listener).await
    })
}
