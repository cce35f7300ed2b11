//! Issue 24's review, against the real server: what a guest, a member or another account could
//! do with the new features that it should not. Each test is one hole found (or one behaviour
//! checked because it would be an easy one to get wrong), with the spec sentence it holds to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, Client, TestServer};

/// A guest with `caps`, registered as `nick`.
async fn with_caps(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// The value of tag `key` on a wire line.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

const REDACTING: &str =
    "server-time message-tags echo-message batch draft/chathistory draft/message-redaction";

/// message-redaction: "If the client is authorised to delete the message, the server: SHOULD
/// forward this `REDACT` [...]", and `FAIL REDACT REDACT_FORBIDDEN <target> <target-msgid> :You
/// are not authorised to delete this message` otherwise. A guest has no account to prove it
/// wrote a message, only its `nick!user@host`, and anyone can take the nick of a guest who left
/// and send the same user name from the same address (a NAT, a shared bouncer, the web
/// gateway): that is not the author, and must not erase the author's words.
#[tokio::test]
async fn a_guest_cannot_redact_what_an_earlier_guest_with_its_mask_said() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", REDACTING).await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    let mut bob = with_caps(&server, "bob", REDACTING).await;
    bob.send("JOIN #room").await;
    bob.sync().await;
    bob.send("PRIVMSG #room :my own words").await;
    let echo = bob.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let said = tag(&echo, "msgid").expect("msgid").to_string();
    bob.send("QUIT :bye").await;
    bob.expect_closed().await;
    alice.expect(|l| command_of(l) == "QUIT").await;

    let mut mallory = with_caps(&server, "bob", REDACTING).await;
    mallory.send("JOIN #room").await;
    mallory.sync().await;
    mallory.send(&format!("REDACT #room {said}")).await;
    assert_eq!(
        mallory.recv().await,
        format!(
            ":parley.local FAIL REDACT REDACT_FORBIDDEN #room {said} :You are not authorised to delete this message"
        )
    );
    // The message stays in history, and nobody was told it went.
    alice.sync().await;
    alice.send("CHATHISTORY LATEST #room * 10").await;
    let lines = alice.sync().await;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" PRIVMSG #room :my own words")),
        "{lines:#?}"
    );

    // The guest who said it may still take it back, in the same connection.
    let mut carol = with_caps(&server, "carol", REDACTING).await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    carol.send("PRIVMSG #room :oops").await;
    let echo = carol.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let oops = tag(&echo, "msgid").expect("msgid").to_string();
    carol.send(&format!("REDACT #room {oops}")).await;
    let answer = carol.recv().await;
    assert!(
        answer.ends_with(&format!(":carol!~carol@127.0.0.1 REDACT #room {oops}")),
        "{answer}"
    );
}

const MULTI: &str = "batch message-tags echo-message draft/multiline";

/// Channel mode `+C` ("Enables blocking channel messages that contain CTCPs", InspIRCd's
/// noctcp, which ergo follows) against a `draft/multiline` batch: "When delivering multiline
/// batches to clients that have not negotiated the multiline capability, servers MUST deliver
/// the component messages without using a multiline BATCH", so every line, not only the first,
/// reaches such a client as a PRIVMSG of its own, and a CTCP on the second line is a CTCP to
/// them. The batch is refused as a CTCP on the first line is (404), and nobody gets any of it.
#[tokio::test]
async fn no_ctcp_mode_holds_for_every_line_of_a_multiline_batch() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", MULTI).await;
    alice.send("JOIN #quiet").await;
    alice.sync().await;
    alice.send("MODE #quiet +C").await;
    alice.sync().await;
    let mut carol = with_caps(&server, "carol", "message-tags").await;
    carol.send("JOIN #quiet").await;
    carol.sync().await;
    alice.sync().await;

    alice.send("BATCH +1 draft/multiline #quiet").await;
    alice.send("@batch=1 PRIVMSG #quiet :hello").await;
    alice
        .send("@batch=1 PRIVMSG #quiet :\u{1}VERSION\u{1}")
        .await;
    alice.send("BATCH -1").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 404 alice #quiet :Cannot send CTCP to channel (+C): only ACTION is allowed"]
    );
    assert_eq!(carol.sync().await, Vec::<String>::new());

    // A concatenated line is still a line of its own for carol.
    alice.send("BATCH +2 draft/multiline #quiet").await;
    alice.send("@batch=2 PRIVMSG #quiet :hello ").await;
    alice
        .send("@batch=2;draft/multiline-concat PRIVMSG #quiet :\u{1}TIME\u{1}")
        .await;
    alice.send("BATCH -2").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 404 alice #quiet :Cannot send CTCP to channel (+C): only ACTION is allowed"]
    );
    assert_eq!(carol.sync().await, Vec::<String>::new());

    // ACTION is how people talk: a `/me` line in a batch passes.
    alice.send("BATCH +3 draft/multiline #quiet").await;
    alice.send("@batch=3 PRIVMSG #quiet :hello").await;
    alice
        .send("@batch=3 PRIVMSG #quiet :\u{1}ACTION waves\u{1}")
        .await;
    alice.send("BATCH -3").await;
    alice.sync().await;
    let lines = carol.sync().await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[1].ends_with(":alice!~alice@127.0.0.1 PRIVMSG #quiet :\u{1}ACTION waves\u{1}"),
        "{lines:#?}"
    );
}

/// message-tags: "Client-only tags are client-initiated tags that servers MUST attach as-is to
/// any relevant message relayed to other clients", and the escapes of tag values (`\:` for
/// `;`, `\s` for a space, `\\` for a backslash) must survive being stored: CHATHISTORY replays
/// the message "with the same tags as the original message" (batch/chathistory).
#[tokio::test]
async fn client_tag_escapes_come_back_from_history_intact() {
    let server = TestServer::start().await;
    let caps = "message-tags server-time echo-message batch draft/chathistory";
    let mut alice = with_caps(&server, "alice", caps).await;
    alice.send("JOIN #lobby").await;
    alice.sync().await;
    let mut bob = with_caps(&server, "bob", caps).await;
    bob.send("JOIN #lobby").await;
    bob.sync().await;
    alice.sync().await;
    alice
        .send("@+example.com/v=a\\sb\\:c\\\\d PRIVMSG #lobby :escaped")
        .await;
    let echo = alice.expect(|l| l.contains(" PRIVMSG ")).await;
    assert_eq!(
        tag(&echo, "+example.com/v"),
        Some("a\\sb\\:c\\\\d"),
        "{echo}"
    );
    let live = bob.expect(|l| l.contains(" PRIVMSG ")).await;
    assert_eq!(
        tag(&live, "+example.com/v"),
        Some("a\\sb\\:c\\\\d"),
        "{live}"
    );
    bob.send("CHATHISTORY LATEST #lobby * 10").await;
    let lines = bob.sync().await;
    let replayed = lines
        .iter()
        .find(|l| l.ends_with(" PRIVMSG #lobby :escaped"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(
        tag(replayed, "+example.com/v"),
        Some("a\\sb\\:c\\\\d"),
        "{replayed}"
    );
}

/// multiline: "all client-only tags associated with the message must be sent attached to the
/// initial BATCH command", and message-tags: "Client-only tags are client-initiated tags that
/// servers MUST attach as-is to any relevant message relayed to other clients". So a reply
/// (`+draft/reply`) sent as a multiline message reaches clients with the capability on the
/// opening BATCH, and clients without it on the first line ("Any tags that would have been
/// added to the batch, e.g. message IDs, account tags etc MUST be included on the first message
/// line to be sent"), is kept in history with that first line, and a bot's batch carries the
/// `bot` tag like its other messages (bot-mode: "This tag SHOULD be added by the server to all
/// commands sent by a bot").
#[tokio::test]
async fn a_multiline_message_keeps_its_client_tags_and_the_bot_tag() {
    let server = TestServer::start().await;
    let full = "batch message-tags echo-message draft/multiline draft/chathistory";
    let mut alice = with_caps(&server, "alice", full).await;
    let mut bob = with_caps(&server, "bob", full).await;
    let mut carol = with_caps(&server, "carol", "message-tags").await;
    let mut dave = server.client("dave").await;
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.send("JOIN #room").await;
        c.sync().await;
    }
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.sync().await;
    }
    alice.send("MODE alice +B").await;
    alice.sync().await;

    alice
        .send("@+draft/reply=abc;+example.com/x=a\\sb BATCH +1 draft/multiline #room")
        .await;
    alice.send("@batch=1 PRIVMSG #room :hello").await;
    alice.send("@batch=1 PRIVMSG #room :world").await;
    alice.send("BATCH -1").await;
    let echo = alice.sync().await;
    assert_eq!(echo.len(), 4, "{echo:#?}");
    let msgid = tag(&echo[0], "msgid").expect("msgid").to_string();
    let opening = bob.sync().await;
    let reference = opening[0]
        .split(" BATCH +")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("an opening BATCH")
        .to_string();
    assert_eq!(
        opening[0],
        format!(
            "@bot;msgid={msgid};+draft/reply=abc;+example.com/x=a\\sb :alice!~alice@127.0.0.1 BATCH +{reference} draft/multiline #room"
        )
    );
    assert_eq!(echo[0], opening[0], "the echo is the same batch");
    assert_eq!(
        carol.sync().await,
        [
            format!(
                "@bot;msgid={msgid};+draft/reply=abc;+example.com/x=a\\sb :alice!~alice@127.0.0.1 PRIVMSG #room :hello"
            ),
            "@bot :alice!~alice@127.0.0.1 PRIVMSG #room :world".to_string(),
        ]
    );
    assert_eq!(
        dave.sync().await,
        [
            ":alice!~alice@127.0.0.1 PRIVMSG #room :hello",
            ":alice!~alice@127.0.0.1 PRIVMSG #room :world",
        ]
    );

    // History keeps the tags with the first line, whose msgid is the message's.
    bob.send("CHATHISTORY LATEST #room * 10").await;
    let lines = bob.sync().await;
    let first = lines
        .iter()
        .find(|l| l.ends_with(" PRIVMSG #room :hello"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(tag(first, "msgid"), Some(msgid.as_str()), "{first}");
    assert_eq!(tag(first, "+draft/reply"), Some("abc"), "{first}");
    assert_eq!(tag(first, "+example.com/x"), Some("a\\sb"), "{first}");
}

/// LIST's ELIST conditions are told from channel names by their first character; a name or
/// mask that starts with a character of more than one byte (valid UTF-8, so UTF8ONLY lets it
/// through) is a name like any other: "If the exact name of a channel is given, the only
/// information about this channel is requested" (modern.ircdocs.horse, LIST), and a LIST that
/// matches nothing is still 321 and 323. It must not end the connection (or the server).
#[tokio::test]
async fn list_with_a_multibyte_first_character_is_answered() {
    let server = TestServer::start().await;
    let mut c = server.client("alice").await;
    for asked in ["é", "€*,>1", "!é*"] {
        c.send(&format!("LIST {asked}")).await;
        let lines = c.sync().await;
        assert_eq!(
            lines.first().map(String::as_str),
            Some(":parley.local 321 alice Channel :Users  Name"),
            "LIST {asked}: {lines:#?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some(":parley.local 323 alice :End of /LIST"),
            "LIST {asked}: {lines:#?}"
        );
    }
}

/// channel-rename: "Server implementations might choose to limit the renaming of channels to
/// privileged individuals in order to prevent abuse, using appropriate error responses." A
/// registered channel's name is its owner's (OWNER: only the owner, or an operator with the
/// `channels` permission, may hand it over or drop it); a channel operator the owner trusted
/// with +o must not be able to move the registration away and take the old name for itself.
/// An unregistered channel stays renameable by its operators.
#[tokio::test]
async fn only_the_owner_renames_a_registered_channel() {
    let server = TestServer::start().await;
    let mut alice = common::account(server.addr, "alice").await;
    alice.send("JOIN #club").await;
    alice.sync().await;
    alice.send("OWNER #club").await;
    let owner = alice.sync().await;
    assert!(
        owner
            .iter()
            .any(|l| l.ends_with("#club is registered to alice")),
        "{owner:?}"
    );
    let mut bob = server.client("bob").await;
    bob.send("JOIN #club").await;
    bob.sync().await;
    alice.send("MODE #club +o bob").await;
    alice.sync().await;
    bob.sync().await;

    bob.send("RENAME #club #bobs").await;
    assert_eq!(
        bob.sync().await,
        [":parley.local FAIL RENAME CANNOT_RENAME #club #bobs :Only the channel's owner (or a server operator) can rename a registered channel"]
    );
    assert_eq!(alice.sync().await, Vec::<String>::new());

    // The owner may; and bob, operator of his own unregistered channel, may rename that.
    alice.send("RENAME #club #society").await;
    let renamed = alice.sync().await;
    assert!(
        renamed.iter().any(|l| l.ends_with(" PART #club")),
        "{renamed:?}"
    );
    bob.sync().await;
    bob.send("JOIN #den").await;
    bob.sync().await;
    bob.send("RENAME #den #lair").await;
    let renamed = bob.sync().await;
    assert!(
        renamed.iter().any(|l| l.ends_with(" JOIN #lair")),
        "{renamed:?}"
    );
}

/// utf8-only: "Servers publishing this token MUST NOT relay content (such as PRIVMSG or NOTICE
/// message data, channel topics, or realnames) containing non-UTF-8 data to clients." Client
/// tags are content too: a TAGMSG or PRIVMSG whose tag value is not UTF-8 is refused whole
/// (`FAIL <command> INVALID_UTF8`), relayed to nobody and not kept.
#[tokio::test]
async fn client_tags_that_are_not_utf8_are_refused() {
    let server = TestServer::start().await;
    let caps = "message-tags echo-message batch draft/chathistory";
    let mut alice = with_caps(&server, "alice", caps).await;
    let mut bob = with_caps(&server, "bob", caps).await;
    for c in [&mut alice, &mut bob] {
        c.send("JOIN #u").await;
        c.sync().await;
    }
    alice.sync().await;
    let refusal = |verb: &str| {
        format!(
            ":parley.local FAIL {verb} INVALID_UTF8 :Message rejected, your IRC software MUST use UTF-8 encoding on this network"
        )
    };
    alice.send_raw(b"@+typing=\xff\xfe TAGMSG #u\r\n").await;
    assert_eq!(alice.sync().await, [refusal("TAGMSG")]);
    alice
        .send_raw(b"@+draft/react=caf\xe9 PRIVMSG #u :hi\r\n")
        .await;
    assert_eq!(alice.sync().await, [refusal("PRIVMSG")]);
    assert_eq!(bob.sync().await, Vec::<String>::new());
    bob.send("CHATHISTORY LATEST #u * 10").await;
    let lines = bob.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains(" PRIVMSG #u ")),
        "{lines:#?}"
    );
}

/// Every message on `sub` for `within`, as payload texts.
async fn drain(sub: &mut async_nats::Subscriber, within: std::time::Duration) -> Vec<String> {
    use futures_util::StreamExt;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, sub.next()).await {
        seen.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    seen
}

/// Issue 24's new cluster events about a user (SETNAME's Realname, Multiline, Wallops, Rename,
/// ReadMarker, Redact) are "user-level events [that] must come from that node" (cluster/trust.rs),
/// as the older ones are: n3, with its own bus credentials and on its own subject, cannot
/// change the realname of alice (on n1), speak a multiline message or a WALLOPS as her, or
/// rename her channel. (KILL and INVITE are by design events one node sends about another's
/// users; they are not tried here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cannot_send_the_new_events_about_another_nodes_user() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let prefix = cluster.prefix.clone();
    let watcher = cluster.nats.as_ref().expect("own bus").admin().await;
    let mut events = watcher.subscribe(format!("{prefix}.ev.*")).await.unwrap();
    watcher.flush().await.unwrap();
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;
    bob.await_whois("alice").await;
    alice.await_whois("bob").await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    bob.join_after("#room", &["@alice"]).await;
    bob.send("MODE bob +w").await;
    bob.sync().await;
    let seen = drain(&mut events, std::time::Duration::from_millis(300)).await;
    let uid = seen
        .iter()
        .find_map(|payload| {
            let value: serde_json::Value = serde_json::from_str(payload).ok()?;
            let user = value.get("event")?.get("user")?;
            (user.get("nick")?.as_str()? == "alice")
                .then(|| user.get("uid")?.as_str().map(str::to_owned))?
        })
        .expect("alice's UserUp crossed the bus");
    let source = "alice!~alice@127.0.0.1";
    let forged = [
        serde_json::json!({"type": "Realname", "uid": uid, "source": source,
            "realname": "forged realname"}),
        serde_json::json!({"type": "Multiline", "uid": uid, "msgid": "forged1", "time_ms": 1,
            "verb": "PRIVMSG", "source": source, "account": null, "to": "#room",
            "target": {"Channel": "#room"}, "lines": [["forged multiline", false]]}),
        serde_json::json!({"type": "Wallops", "uid": uid,
            "line": format!(":{source} WALLOPS :forged wallops\r\n")}),
        serde_json::json!({"type": "Rename", "uid": uid, "source": source, "account": null,
            "old": "#room", "new": "#stolen", "reason": "forged"}),
        serde_json::json!({"type": "ReadMarker", "uid": uid, "account": "alice",
            "target": "#room", "time_ms": 1}),
        serde_json::json!({"type": "Redact", "uid": uid, "source": source, "account": null,
            "msgid": "forged2", "time_ms": 1, "target": {"Channel": "#room"}, "to": "#room",
            "redacted": "x", "reason": null}),
    ];
    let impostor = cluster.nats_as("n3").await.expect("n3's credentials work");
    let js = async_nats::jetstream::new(impostor.clone());
    for (eid, event) in forged.into_iter().enumerate() {
        let payload = serde_json::json!({"node": "n3", "incarnation": 1, "eid": eid + 1,
            "event": event})
        .to_string();
        js.publish(format!("{prefix}.ev.n3"), payload.into())
            .await
            .expect("n3 may publish on its own subject")
            .await
            .expect("the stream took it");
    }
    impostor.flush().await.unwrap();

    // Part of the scenario, as in cluster_bus.rs: time in which a forgery could have acted.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    alice.send("PRIVMSG #room :the real alice").await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG #room :the real alice")
        .await;
    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l == ":n2.parley.local 311 bob alice ~alice 127.0.0.1 * :Test alice"),
        "{whois:#?}"
    );
    assert_eq!(
        bob.names("#room").await.len(),
        2,
        "#room is still #room on n2"
    );
}
