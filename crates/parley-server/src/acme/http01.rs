//! The plain-HTTP listener for the ACME HTTP-01 challenge (RFC 8555 §8.3): it answers
//! `GET /.well-known/acme-challenge/<token>` with the key authorization and redirects every other
//! GET to the https web client, so nothing but the challenge is ever served in plain text.
//!
//! One request per connection, a bounded head, a short timeout and a cap on connections in
//! flight: the listener faces the whole internet on port 80 and must cost next to nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::Challenges;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Time a client has to send its request head and take the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head read; a validator's GET is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Connections served at once; more are closed at accept.
const MAX_IN_FLIGHT: usize = 64;

/// Connections served at once from one address, so one slow client cannot take every slot
/// from the CA's validators (which come from several addresses).
const MAX_IN_FLIGHT_PER_IP: usize = 4;

/// Connections in flight per address; an entry leaves with its last connection.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut table = self.0.lock();
        let count = table.entry(ip).or_insert(0);
        if *count >= MAX_IN_FLIGHT_PER_IP {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut table = self.table.0.lock();
        if let Some(count) = table.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

/// Serve `listener` until shutdown. `redirect` is the https origin everything else goes to
/// (`None`: there is no web listener, so other paths get 404).
pub async fn serve(
    listener: TcpListener,
    challenges: Arc<Challenges>,
    redirect: Option<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let local = listener.local_addr().ok();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let per_address = Arc::new(PerAddress::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(listener = ?local, %err, "ACME HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = per_address.take(crate::listener::canonical_peer(peer).ip()) else {
            debug!(%peer, "ACME HTTP listener: too many connections from this address; closed");
            continue;
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            debug!(%peer, "ACME HTTP listener busy; connection closed");
            continue;
        };
        let challenges = challenges.clone();
        let redirect = redirect.clone();
        tasks.spawn(async move {
            let answered =
                tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &challenges, redirect)).await;
            if let Ok(Err(err)) = answered {
                debug!(%peer, %err, "ACME HTTP request failed");
            }
            drop((permit, slot));
        });
    }
    info!(listener = ?local, "ACME HTTP listener closed");
}

async fn answer(
    mut stream: TcpStream,
    challenges: &Challenges,
    redirect: Option<String>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let response = respond(method, target, challenges, redirect.as_deref());
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The whole HTTP response for one request line.
fn respond(method: &str, target: &str, challenges: &Challenges, redirect: Option<&str>) -> String {
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response("405 Method Not Allowed", "", "use GET\n", head_only);
    }
    if let Some(token) = target.strip_prefix(CHALLENGE_PREFIX) {
        return match challenges.answer(token).filter(|_| is_token(token)) {
            Some(key_authorization) => response("200 OK", "", &key_authorization, head_only),
            None => response("404 Not Found", "", "no such challenge\n", head_only),
        };
    }
    match redirect {
        // Only a path of ours goes into Location, behind the configured name, so this is
        // no open redirect whatever the Host header says.
        Some(origin) if target.starts_with('/') && !target.starts_with("//") => {
            let location = format!("Location: {origin}{target}\r\n");
            response("301 Moved Permanently", &location, "use https\n", head_only)
        }
        Some(origin) => {
            let location = format!("Location: {origin}/\r\n");
            response("301 Moved Permanently", &location, "use https\n", head_only)
        }
        None => response(
            "404 Not Found",
            "",
            "this server speaks IRC over TLS; there is no web page here\n",
            head_only,
        ),
    }
}

/// ACME tokens are base64url (RFC 8555 §8.3); anything else is no token of ours.
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn response(status: &str, extra_headers: &str, body: &str, head_only: bool) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if head_only { "" } else { body }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges() -> Challenges {
        let challenges = Challenges::default();
        challenges
            .0
            .write()
            .insert("tok-EN_1".to_owned(), "tok-EN_1.thumb".to_owned());
        challenges
    }

    #[test]
    fn one_address_gets_a_few_slots_and_gives_them_back() {
        let table = Arc::new(PerAddress::default());
        let ip: IpAddr = [192, 0, 2, 1].into();
        let slots: Vec<_> = (0..MAX_IN_FLIGHT_PER_IP)
            .map(|_| table.take(ip).expect("a slot"))
            .collect();
        assert!(table.take(ip).is_none(), "one more is refused");
        assert!(
            table.take([192, 0, 2, 2].into()).is_some(),
            "others still get in"
        );
        drop(slots);
        assert!(table.take(ip).is_some());
        assert_eq!(table.0.lock().len(), 0, "no entry outlives its connections");
    }

    #[test]
    fn answers_the_challenge_and_nothing_else_in_plain_text() {
        let c = challenges();
        let origin = Some("https://chat.example.org:8443");
        let ok = respond("GET", "/.well-known/acme-challenge/tok-EN_1", &c, origin);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntok-EN_1.thumb"), "{ok}");
        let unknown = respond("GET", "/.well-known/acme-challenge/other", &c, origin);
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
        let page = respond("GET", "/index.html?x=1", &c, origin);
        assert!(page.starts_with("HTTP/1.1 301"), "{page}");
        assert!(
            page.contains("\r\nLocation: https://chat.example.org:8443/index.html?x=1\r\n"),
            "{page}"
        );
        let sneaky = respond("GET", "//evil.example/x", &c, origin);
        assert!(
            sneaky.contains("\r\nLocation: https://chat.example.org:8443/\r\n"),
            "{sneaky}"
        );
        let post = respond("POST", "/", &c, origin);
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let no_web = respond("GET", "/", &c, None);
        assert!(no_web.starts_with("HTTP/1.1 404"), "{no_web}");
    }
}
