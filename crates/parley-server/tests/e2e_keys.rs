//! The end-to-end key directory (`KEYS`, capability `parley.chat/e2e`, docs/e2e.md) against the
//! real server, on SQLite and (with `PARLEY_TEST_POSTGRES_URL`) on PostgreSQL: publishing and
//! listing devices, claiming one-time keys until only the fallback is left, each key handed out
//! once even to two claimers racing, every FAIL code and limit, another account unable to touch
//! my devices, guests refused. Also the encrypted message itself: a PRIVMSG carrying a ~3000-byte
//! `+parley.chat/e2e` tag is relayed to every session unchanged and CHATHISTORY returns it.
//!
//! Keys here are random 32-byte values in vodozemac's form (unpadded standard base64): the
//! server treats them as opaque, and checks only their shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use common::{command_of, sasl_plain, Client, TestServer};
use parley_server::config::StoreKind;

/// A fresh 32-byte public key as vodozemac's `to_base64()` writes it (43 characters).
fn key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    bytes[8..16].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    bytes[31] = 0xe2;
    STANDARD_NO_PAD.encode(bytes)
}

/// A 64-byte Ed25519 signature's shape (86 characters); the server stores it, clients check it.
fn signature() -> String {
    let mut bytes = [0x5au8; 64];
    bytes[..32].copy_from_slice(&STANDARD_NO_PAD.decode(key()).unwrap());
    STANDARD_NO_PAD.encode(bytes)
}

/// A device's public identity keys.
struct Device {
    curve: String,
    ed25519: String,
    signature: String,
}

fn device() -> Device {
    Device {
        curve: key(),
        ed25519: key(),
        signature: signature(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The server on `backend`; `None` when PostgreSQL is not configured (and not required).
async fn server(backend: Backend, name: &str) -> Option<TestServer> {
    match backend {
        Backend::Sqlite => Some(
            TestServer::start_with(|config| {
                config.accounts.store = StoreKind::Sqlite;
                config.server.default_channel = String::new();
            })
            .await,
        ),
        Backend::Postgres => {
            let url = common::postgres::database_for(&format!("e2e-keys-{name}"))?;
            Some(
                TestServer::start_with(move |config| {
                    config.accounts.store = StoreKind::Postgres;
                    config.accounts.postgres_url = url;
                    config.server.default_channel = String::new();
                })
                .await,
            )
        }
    }
}

/// A session logged in to `account` (created on first use, password `<account>-password`),
/// with `caps` negotiated too. A second session of an account is the same user (multiclient).
async fn login(server: &TestServer, account: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = account.to_owned();
    c.send("CAP LS 302").await;
    c.send(&format!("NICK {account}")).await;
    c.send(&format!("USER {account} 0 * :{account}")).await;
    c.send(&format!("REGISTER {account} * {account}-password"))
        .await;
    // A second session's NICK gets a 433 (its user holds the nick) before the REGISTER answer.
    let registered = c.expect_skipping_errors(|l| l.contains(" REGISTER ")).await;
    if !registered.contains("REGISTER SUCCESS") {
        assert!(registered.contains("ACCOUNT_EXISTS"), "{registered}");
        c.send("CAP REQ :sasl").await;
        c.expect(|l| l.contains(" ACK :sasl")).await;
        c.send("AUTHENTICATE PLAIN").await;
        c.expect(|l| l == "AUTHENTICATE +").await;
        let password = format!("{account}-password");
        c.send(&format!("AUTHENTICATE {}", sasl_plain(account, &password)))
            .await;
        c.expect_numeric("903").await;
    }
    if !caps.is_empty() {
        c.send(&format!("CAP REQ :{caps}")).await;
        c.expect(|l| l.contains(" ACK ")).await;
    }
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// The lines `line` is answered with (everything before a PING's answer).
async fn ask(c: &mut Client, line: &str) -> Vec<String> {
    c.send(line).await;
    c.sync().await
}

/// A line from the server (any node's name: no `!` in the source), without its source.
fn from_server(line: &str) -> &str {
    line.strip_prefix(':')
        .and_then(|rest| rest.split_once(' '))
        .filter(|(source, _)| !source.contains('!'))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("not from the server: {line}"))
}

/// The one line `line` is answered with, without its source.
async fn ask_one(c: &mut Client, line: &str) -> String {
    let answer = ask(c, line).await;
    assert_eq!(answer.len(), 1, "{line} -> {answer:#?}");
    from_server(&answer[0]).to_owned()
}

async fn upload(c: &mut Client, d: &Device) -> String {
    ask_one(
        c,
        &format!("KEYS UPLOAD {} {} {}", d.curve, d.ed25519, d.signature),
    )
    .await
}

/// `KEYS LIST nick`: the devices' `(curve, ed25519, sig)` and the END line, each checked to
/// name `nick` and `account`.
async fn list(c: &mut Client, nick: &str, account: &str) -> Vec<(String, String, String)> {
    let answer = ask(c, &format!("KEYS LIST {nick}")).await;
    let (end, devices) = answer.split_last().expect("an answer");
    assert_eq!(from_server(end), format!("KEYS END {nick} {account}"));
    devices
        .iter()
        .map(|line| {
            let prefix = format!("KEYS DEVICE {nick} {account} ");
            let rest = from_server(line)
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line}"));
            let words: Vec<&str> = rest.split(' ').collect();
            assert_eq!(words.len(), 3, "{line}");
            (words[0].into(), words[1].into(), words[2].into())
        })
        .collect()
}

fn listed(d: &Device) -> (String, String, String) {
    (d.curve.clone(), d.ed25519.clone(), d.signature.clone())
}

/// The key a `KEYS CLAIMED` line hands out, checked to name `nick`, `account` and `curve`.
fn claimed_key(line: &str, nick: &str, account: &str, curve: &str) -> String {
    let prefix = format!("KEYS CLAIMED {nick} {account} {curve} ");
    from_server(line)
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not a claim of {curve}: {line}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Publishing, listing and claiming.

async fn publish_list_and_claim(backend: Backend) {
    let Some(server) = server(backend, "claim").await else {
        return;
    };
    let mut alice = login(&server, "alice", "").await;
    let mut bob = login(&server, "bob", "").await;

    // Nobody has published anything yet: an END alone, for anyone, own nick included.
    assert!(list(&mut bob, "alice", "alice").await.is_empty());
    assert!(list(&mut alice, "alice", "alice").await.is_empty());

    let phone = device();
    assert_eq!(
        upload(&mut alice, &phone).await,
        format!("KEYS UPLOADED {}", phone.curve)
    );
    // Publishing it again changes nothing.
    assert_eq!(
        upload(&mut alice, &phone).await,
        format!("KEYS UPLOADED {}", phone.curve)
    );
    assert_eq!(list(&mut bob, "alice", "alice").await, vec![listed(&phone)]);
    assert_eq!(
        list(&mut alice, "ALICE", "alice").await,
        vec![listed(&phone)],
        "any spelling of the nick (echoed as sent); the account is shown casefolded"
    );

    let one_time: Vec<String> = (0..3).map(|_| key()).collect();
    let fallback = key();
    let curve = &phone.curve;
    assert_eq!(
        ask_one(
            &mut alice,
            &format!("KEYS OTK {curve} {}", one_time.join(","))
        )
        .await,
        format!("KEYS COUNT {curve} 3")
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS FALLBACK {curve} {fallback}")).await,
        format!("KEYS COUNT {curve} 3"),
        "the fallback key is not a one-time key"
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {curve}")).await,
        format!("KEYS COUNT {curve} 3")
    );

    // Each one-time key once, then the fallback key, again and again.
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let line = ask(&mut bob, &format!("KEYS CLAIM alice {curve}")).await;
        assert_eq!(line.len(), 1, "{line:?}");
        got.insert(claimed_key(&line[0], "alice", "alice", curve));
    }
    assert_eq!(got, one_time.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {curve}")).await,
        format!("KEYS COUNT {curve} 0")
    );
    for _ in 0..2 {
        let line = ask(&mut bob, &format!("KEYS CLAIM alice {curve}")).await;
        assert_eq!(claimed_key(&line[0], "alice", "alice", curve), fallback);
    }
    // A new fallback key replaces the old one.
    let fallback2 = key();
    ask_one(&mut alice, &format!("KEYS FALLBACK {curve} {fallback2}")).await;
    let line = ask(&mut bob, &format!("KEYS CLAIM alice {curve}")).await;
    assert_eq!(claimed_key(&line[0], "alice", "alice", curve), fallback2);

    // A device with no key at all.
    let laptop = device();
    upload(&mut alice, &laptop).await;
    assert_eq!(
        ask_one(&mut bob, &format!("KEYS CLAIM alice {}", laptop.curve)).await,
        format!(
            "FAIL KEYS NO_KEYS alice {} :That device has no key left to claim",
            laptop.curve
        )
    );
    assert_eq!(
        list(&mut bob, "alice", "alice").await,
        vec![listed(&phone), listed(&laptop)],
        "oldest first"
    );

    // Removing a device takes its keys: published again, it has none.
    let tablet = device();
    upload(&mut alice, &tablet).await;
    ask_one(&mut alice, &format!("KEYS OTK {} {}", tablet.curve, key())).await;
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS REMOVE {}", tablet.curve)).await,
        format!("KEYS REMOVED {}", tablet.curve)
    );
    assert_eq!(list(&mut bob, "alice", "alice").await.len(), 2);
    assert!(
        ask_one(&mut bob, &format!("KEYS CLAIM alice {}", tablet.curve))
            .await
            .starts_with("FAIL KEYS NO_KEYS ")
    );
    upload(&mut alice, &tablet).await;
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {}", tablet.curve)).await,
        format!("KEYS COUNT {} 0", tablet.curve)
    );
}

#[tokio::test]
async fn publish_list_and_claim_on_sqlite() {
    publish_list_and_claim(Backend::Sqlite).await;
}

#[tokio::test]
async fn publish_list_and_claim_on_postgres() {
    publish_list_and_claim(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Two claimers racing for the same device's keys.

async fn racing_claimers_never_share_a_key(backend: Backend) {
    let Some(server) = server(backend, "race").await else {
        return;
    };
    let mut alice = login(&server, "alice", "").await;
    let mut bob = login(&server, "bob", "").await;
    let mut carol = login(&server, "carol", "").await;
    let phone = device();
    upload(&mut alice, &phone).await;
    let one_time: Vec<String> = (0..20).map(|_| key()).collect();
    let fallback = key();
    let curve = &phone.curve;
    for ten in one_time.chunks(10) {
        ask_one(&mut alice, &format!("KEYS OTK {curve} {}", ten.join(","))).await;
    }
    ask_one(&mut alice, &format!("KEYS FALLBACK {curve} {fallback}")).await;

    // Both send all their claims at once, each line of both in flight together: 30 claims
    // for 20 one-time keys.
    let claims = format!("KEYS CLAIM alice {curve}\r\n").repeat(15);
    bob.send_raw(claims.as_bytes()).await;
    carol.send_raw(claims.as_bytes()).await;
    let (bob_lines, carol_lines) = tokio::join!(bob.sync(), carol.sync());
    let keys: Vec<String> = bob_lines
        .iter()
        .chain(&carol_lines)
        .map(|line| claimed_key(line, "alice", "alice", curve))
        .collect();
    assert_eq!(keys.len(), 30);
    let handed_out: Vec<&String> = keys.iter().filter(|k| **k != fallback).collect();
    let distinct: BTreeSet<&String> = handed_out.iter().copied().collect();
    assert_eq!(
        handed_out.len(),
        20,
        "every one-time key handed out: {keys:#?}"
    );
    assert_eq!(
        distinct.len(),
        20,
        "no one-time key handed out twice: {keys:#?}"
    );
    assert_eq!(distinct, one_time.iter().collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn racing_claimers_never_share_a_key_on_sqlite() {
    racing_claimers_never_share_a_key(Backend::Sqlite).await;
}

#[tokio::test]
async fn racing_claimers_never_share_a_key_on_postgres() {
    racing_claimers_never_share_a_key(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Refusals: every FAIL code, the limits, and other accounts.

async fn refusals(backend: Backend) {
    let Some(server) = server(backend, "refusals").await else {
        return;
    };
    let mut alice = login(&server, "alice", "").await;
    let mut bob = login(&server, "bob", "").await;
    let mut guest = server.client("guest").await;
    let phone = device();
    upload(&mut alice, &phone).await;
    let curve = phone.curve.clone();
    ask_one(&mut alice, &format!("KEYS OTK {curve} {}", key())).await;

    // KEY_MISMATCH: the same device key with another signing key, or by another account.
    let forged = Device {
        curve: curve.clone(),
        ed25519: key(),
        signature: signature(),
    };
    let mismatch = format!(
        "FAIL KEYS KEY_MISMATCH {curve} :That device key is published already with other keys \
         or by another account"
    );
    assert_eq!(upload(&mut alice, &forged).await, mismatch);
    assert_eq!(upload(&mut bob, &phone).await, mismatch);
    assert_eq!(
        list(&mut bob, "alice", "alice").await,
        vec![listed(&phone)],
        "unchanged"
    );
    assert!(list(&mut alice, "bob", "bob").await.is_empty(), "not moved");

    // UNKNOWN_DEVICE: bob cannot add keys to, count, or remove alice's device.
    let unknown = |curve: &str, text: &str| format!("FAIL KEYS UNKNOWN_DEVICE {curve} :{text}");
    let upload_first = "Your account has no device with that key; KEYS UPLOAD it first";
    for line in [
        format!("KEYS OTK {curve} {}", key()),
        format!("KEYS FALLBACK {curve} {}", key()),
        format!("KEYS COUNT {curve}"),
    ] {
        assert_eq!(
            ask_one(&mut bob, &line).await,
            unknown(&curve, upload_first),
            "{line}"
        );
    }
    assert_eq!(
        ask_one(&mut bob, &format!("KEYS REMOVE {curve}")).await,
        unknown(&curve, "Your account has no device with that key")
    );
    assert_eq!(list(&mut bob, "alice", "alice").await, vec![listed(&phone)]);
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {curve}")).await,
        format!("KEYS COUNT {curve} 1"),
        "bob's keys were not added"
    );
    // A device of another account is no device of the nick's: nothing to claim.
    let bobs = device();
    upload(&mut bob, &bobs).await;
    ask_one(&mut bob, &format!("KEYS FALLBACK {} {}", bobs.curve, key())).await;
    assert!(
        ask_one(&mut alice, &format!("KEYS CLAIM alice {}", bobs.curve))
            .await
            .starts_with(&format!("FAIL KEYS NO_KEYS alice {} :", bobs.curve))
    );

    // NO_SUCH_NICK, NO_ACCOUNT.
    assert_eq!(
        ask_one(&mut alice, "KEYS LIST nobody").await,
        "FAIL KEYS NO_SUCH_NICK nobody :No such nick"
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS CLAIM nobody {curve}")).await,
        "FAIL KEYS NO_SUCH_NICK nobody :No such nick"
    );
    assert_eq!(
        ask_one(&mut alice, "KEYS LIST guest").await,
        "FAIL KEYS NO_ACCOUNT guest :That user is not logged in, so has no keys"
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS CLAIM guest {curve}")).await,
        "FAIL KEYS NO_ACCOUNT guest :That user is not logged in, so has no keys"
    );

    // ACCOUNT_REQUIRED: a guest can do nothing, not even look.
    for line in [
        "KEYS LIST alice".to_owned(),
        format!("KEYS CLAIM alice {curve}"),
        format!("KEYS UPLOAD {} {} {}", key(), key(), signature()),
        format!("KEYS COUNT {curve}"),
        "KEYS".to_owned(),
    ] {
        assert_eq!(
            ask_one(&mut guest, &line).await,
            "FAIL KEYS ACCOUNT_REQUIRED * :Encryption keys are kept per account: log in first",
            "{line}"
        );
    }

    // INVALID_PARAMS: unknown subcommands, wrong counts, keys of the wrong shape.
    let invalid = |sub: &str| format!("FAIL KEYS INVALID_PARAMS {sub} :");
    let (k, s) = (key(), signature());
    for (line, sub) in [
        ("KEYS".to_owned(), "*"),
        ("KEYS FROB x".to_owned(), "FROB"),
        (format!("KEYS UPLOAD {k} {k}"), "UPLOAD"),
        (format!("KEYS UPLOAD {k} {k} {s} extra"), "UPLOAD"),
        (format!("KEYS UPLOAD {k}= {k} {s}"), "UPLOAD"),
        (format!("KEYS UPLOAD {k} {k} {k}"), "UPLOAD"),
        (format!("KEYS UPLOAD {} {k} {s}", &k[..42]), "UPLOAD"),
        (
            format!("KEYS UPLOAD {} {k} {s}", k.replace(['A', 'B', 'C'], "-")),
            "UPLOAD",
        ),
        (format!("KEYS OTK {curve} {k},not-a-key"), "OTK"),
        (format!("KEYS OTK {curve} {k},,{k}"), "OTK"),
        (format!("KEYS OTK {curve}"), "OTK"),
        (format!("KEYS FALLBACK {curve} short"), "FALLBACK"),
        ("KEYS COUNT".to_owned(), "COUNT"),
        ("KEYS REMOVE x".to_owned(), "REMOVE"),
        ("KEYS LIST".to_owned(), "LIST"),
        ("KEYS CLAIM alice".to_owned(), "CLAIM"),
        ("KEYS CLAIM alice short".to_owned(), "CLAIM"),
    ] {
        let answer = ask_one(&mut alice, &line).await;
        assert!(answer.starts_with(&invalid(sub)), "{line} -> {answer}");
    }
}

#[tokio::test]
async fn refusals_on_sqlite() {
    refusals(Backend::Sqlite).await;
}

#[tokio::test]
async fn refusals_on_postgres() {
    refusals(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Limits: devices per account, keys per line and per device, claims per minute.

async fn limits(backend: Backend) {
    let Some(server) = server(backend, "limits").await else {
        return;
    };
    let mut alice = login(&server, "alice", "").await;
    let devices: Vec<Device> = (0..10).map(|_| device()).collect();
    for d in &devices {
        assert_eq!(
            upload(&mut alice, d).await,
            format!("KEYS UPLOADED {}", d.curve)
        );
    }
    let eleventh = device();
    assert_eq!(
        upload(&mut alice, &eleventh).await,
        format!(
            "FAIL KEYS TOO_MANY_DEVICES {} :An account may have at most 10 devices; KEYS REMOVE \
             an old one first",
            eleventh.curve
        )
    );
    // Publishing one it has is still fine; removing one makes room.
    assert!(upload(&mut alice, &devices[3])
        .await
        .starts_with("KEYS UPLOADED "));
    ask_one(&mut alice, &format!("KEYS REMOVE {}", devices[9].curve)).await;
    assert!(upload(&mut alice, &eleventh)
        .await
        .starts_with("KEYS UPLOADED "));
    assert_eq!(list(&mut alice, "alice", "alice").await.len(), 10);

    // Ten keys fill a line (512 bytes); 100 unclaimed per device, and a line past that adds
    // none.
    let curve = &devices[0].curve;
    let keys = |n: usize| (0..n).map(|_| key()).collect::<Vec<_>>().join(",");
    let eleven = format!("KEYS OTK {curve} {}", keys(11));
    assert_eq!(
        ask_one(&mut alice, &eleven).await,
        "417 alice :Input line was too long"
    );
    let first = keys(10);
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS OTK {curve} {first}")).await,
        format!("KEYS COUNT {curve} 10")
    );
    // Keys it has already are not counted twice.
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS OTK {curve} {first}")).await,
        format!("KEYS COUNT {curve} 10")
    );
    for n in 2..10 {
        assert_eq!(
            ask_one(&mut alice, &format!("KEYS OTK {curve} {}", keys(10))).await,
            format!("KEYS COUNT {curve} {}", n * 10)
        );
    }
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS OTK {curve} {}", keys(9))).await,
        format!("KEYS COUNT {curve} 99")
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS OTK {curve} {}", keys(2))).await,
        format!(
            "FAIL KEYS TOO_MANY_KEYS {curve} :A device may have at most 100 unclaimed one-time \
             keys; none were added"
        )
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {curve}")).await,
        format!("KEYS COUNT {curve} 99")
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS OTK {curve} {}", keys(1))).await,
        format!("KEYS COUNT {curve} 100")
    );
}

#[tokio::test]
async fn limits_on_sqlite() {
    limits(Backend::Sqlite).await;
}

#[tokio::test]
async fn limits_on_postgres() {
    limits(Backend::Postgres).await;
}

/// At most 30 claims a minute per claiming account (kept in memory, so one backend suffices).
#[tokio::test]
async fn claims_are_rate_limited_per_account() {
    let server = server(Backend::Sqlite, "rate").await.expect("SQLite");
    let mut alice = login(&server, "alice", "").await;
    let mut bob = login(&server, "bob", "").await;
    let mut carol = login(&server, "carol", "").await;
    let phone = device();
    upload(&mut alice, &phone).await;
    let curve = &phone.curve;
    ask_one(&mut alice, &format!("KEYS FALLBACK {curve} {}", key())).await;
    let lines = ask(
        &mut bob,
        &format!("KEYS CLAIM alice {curve}\r\n").repeat(31),
    )
    .await;
    assert_eq!(lines.len(), 31);
    assert!(
        lines[..30].iter().all(|l| l.contains(" KEYS CLAIMED ")),
        "{lines:#?}"
    );
    assert_eq!(
        lines[30],
        ":parley.local FAIL KEYS RATE_LIMITED alice :Too many key claims from your account; \
         wait a minute"
    );
    // The count is per account: another one still may; a second session of bob's may not.
    assert!(ask_one(&mut carol, &format!("KEYS CLAIM alice {curve}"))
        .await
        .starts_with("KEYS CLAIMED "));
    let mut bob2 = login(&server, "bob", "").await;
    assert!(ask_one(&mut bob2, &format!("KEYS CLAIM alice {curve}"))
        .await
        .starts_with("FAIL KEYS RATE_LIMITED "));
}

#[tokio::test]
async fn the_capability_is_advertised_and_keys_is_in_help() {
    let server = server(Backend::Sqlite, "cap").await.expect("SQLite");
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(
        ls.split([' ', ':']).any(|cap| cap == "parley.chat/e2e"),
        "{ls}"
    );
    c.send("CAP REQ :parley.chat/e2e").await;
    c.expect(|l| l.ends_with(" ACK :parley.chat/e2e")).await;
    c.send("CAP END").await;
    c.register("carol").await;
    let help = ask(&mut c, "HELP KEYS").await;
    assert!(help.iter().any(|l| l.contains("KEYS UPLOAD")), "{help:#?}");
}

// ---------------------------------------------------------------------------------------------
// The encrypted message: a big client-only tag, relayed and stored unchanged.

/// The value of tag `key` on a wire line.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

const CAPS: &str = "message-tags server-time echo-message batch draft/chathistory";

async fn big_encrypted_message(backend: Backend) {
    let Some(server) = server(backend, "message").await else {
        return;
    };
    let mut alice = login(&server, "alice", CAPS).await;
    let mut alice2 = login(&server, "alice", CAPS).await;
    let mut bob = login(&server, "bob", CAPS).await;
    let mut bob2 = login(&server, "bob", CAPS).await;
    let mut plain = server.client("plain").await;

    // What a Parley client sends: one Olm ciphertext per device of both accounts (bob's two,
    // alice's other one), about 3000 bytes in all, well under the 4094 a client's tags may be.
    let sender = key();
    let entry = |kind: u8| {
        let body = STANDARD_NO_PAD.encode(vec![kind.wrapping_mul(37); 700]);
        format!("{}:{kind}:{body}", key())
    };
    let payload = format!("v1:{sender},{},{},{}", entry(0), entry(1), entry(0));
    assert!((2900..4000).contains(&payload.len()), "{}", payload.len());
    let sent = format!("@+parley.chat/e2e={payload} PRIVMSG bob :[encrypted message]");
    alice.send(&sent).await;

    // bob's two sessions, alice's own echo and her other session: the tag, untouched.
    for (who, c) in [
        ("bob", &mut bob),
        ("bob2", &mut bob2),
        ("alice", &mut alice),
        ("alice2", &mut alice2),
    ] {
        let line = c.expect(|l| l.contains(" PRIVMSG bob ")).await;
        assert_eq!(
            tag(&line, "+parley.chat/e2e"),
            Some(payload.as_str()),
            "{who}"
        );
        assert!(
            line.ends_with(" PRIVMSG bob :[encrypted message]"),
            "{who}: {line}"
        );
    }
    // Someone without message-tags (another IRC client) would see just the placeholder.
    alice
        .send(&sent.replace("PRIVMSG bob", "PRIVMSG plain"))
        .await;
    let line = plain.expect(|l| l.contains(" PRIVMSG plain ")).await;
    assert_eq!(
        line,
        ":alice!~alice@127.0.0.1 PRIVMSG plain :[encrypted message]"
    );

    // History keeps the ciphertext (and only it), for both sides and every session.
    for (who, c, with) in [("bob", &mut bob2, "alice"), ("alice", &mut alice2, "bob")] {
        let lines = ask(c, &format!("CHATHISTORY LATEST {with} * 10")).await;
        let stored: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" PRIVMSG bob "))
            .collect();
        assert_eq!(stored.len(), 1, "{who}: {lines:#?}");
        assert_eq!(
            tag(stored[0], "+parley.chat/e2e"),
            Some(payload.as_str()),
            "{who}"
        );
        assert!(stored[0].ends_with(" :[encrypted message]"), "{who}");
        assert!(tag(stored[0], "msgid").is_some(), "{who}");
    }
}

#[tokio::test]
async fn a_big_encrypted_message_is_relayed_and_stored_unchanged_on_sqlite() {
    big_encrypted_message(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_big_encrypted_message_is_relayed_and_stored_unchanged_on_postgres() {
    big_encrypted_message(Backend::Postgres).await;
}

/// Every answer goes to the asking session only, as `command_of` reads it.
#[tokio::test]
async fn answers_go_to_the_asking_session_only() {
    let server = server(Backend::Sqlite, "sessions").await.expect("SQLite");
    let mut alice = login(&server, "alice", "").await;
    let mut alice2 = login(&server, "alice", "").await;
    let phone = device();
    let answer = ask(
        &mut alice,
        &format!(
            "KEYS UPLOAD {} {} {}",
            phone.curve, phone.ed25519, phone.signature
        ),
    )
    .await;
    assert_eq!(answer.len(), 1);
    assert_eq!(command_of(&answer[0]), "KEYS");
    assert!(alice2.sync().await.is_empty());
}

/// An account's name is shown casefolded, the form the device signature covers.
#[tokio::test]
async fn a_mixed_case_account_is_shown_casefolded() {
    let server = server(Backend::Sqlite, "case").await.expect("SQLite");
    let mut dana = login(&server, "Dana", "").await;
    let mut bob = login(&server, "bob", "").await;
    let phone = device();
    upload(&mut dana, &phone).await;
    assert_eq!(list(&mut bob, "Dana", "dana").await, vec![listed(&phone)]);
    ask_one(
        &mut dana,
        &format!("KEYS FALLBACK {} {}", phone.curve, key()),
    )
    .await;
    let line = ask(&mut bob, &format!("KEYS CLAIM dana {}", phone.curve)).await;
    claimed_key(&line[0], "dana", "dana", &phone.curve);
}

/// In a cluster the directory is the shared PostgreSQL database: a device published on one
/// node is listed on another, and claimers on both nodes at once each get different keys.
#[tokio::test]
async fn a_cluster_shares_the_directory() {
    let Some(cluster) =
        common::cluster::Cluster::start(2, |_, c| c.server.default_channel = String::new()).await
    else {
        return;
    };
    let mut alice = login(&cluster.nodes[0], "alice", "").await;
    let mut carol = login(&cluster.nodes[0], "carol", "").await;
    let mut bob = login(&cluster.nodes[1], "bob", "").await;
    bob.await_whois("alice").await;
    let phone = device();
    upload(&mut alice, &phone).await;
    let curve = &phone.curve;
    let one_time: Vec<String> = (0..10).map(|_| key()).collect();
    let fallback = key();
    ask_one(
        &mut alice,
        &format!("KEYS OTK {curve} {}", one_time.join(",")),
    )
    .await;
    ask_one(&mut alice, &format!("KEYS FALLBACK {curve} {fallback}")).await;
    assert_eq!(list(&mut bob, "alice", "alice").await, vec![listed(&phone)]);

    let claims = format!("KEYS CLAIM alice {curve}\r\n").repeat(7);
    bob.send_raw(claims.as_bytes()).await;
    carol.send_raw(claims.as_bytes()).await;
    let (bob_lines, carol_lines) = tokio::join!(bob.sync(), carol.sync());
    let keys: Vec<String> = bob_lines
        .iter()
        .chain(&carol_lines)
        .map(|line| claimed_key(line, "alice", "alice", curve))
        .collect();
    let handed_out: Vec<&String> = keys.iter().filter(|k| **k != fallback).collect();
    let distinct: BTreeSet<&String> = handed_out.iter().copied().collect();
    assert_eq!(keys.len(), 14);
    assert_eq!(handed_out.len(), 10, "{keys:#?}");
    assert_eq!(
        distinct,
        one_time.iter().collect::<BTreeSet<_>>(),
        "{keys:#?}"
    );
    assert_eq!(
        ask_one(&mut alice, &format!("KEYS COUNT {curve}")).await,
        format!("KEYS COUNT {curve} 0")
    );
}
