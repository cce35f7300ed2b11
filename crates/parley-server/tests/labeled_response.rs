//! IRCv3 `labeled-response` (ircv3.net/specs/extensions/labeled-response) against the real
//! server: every reply to a labeled command carries the label exactly once (one line tagged,
//! several in one `labeled-response` batch, none as `ACK`), whatever the command waits for on
//! the way, with the batch nesting rules of ircv3.net/specs/extensions/batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{sasl_plain, Client, TestServer};

const LABELING: &str = "labeled-response batch";

/// A registered guest with `caps` enabled.
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

/// A line without its `@tags`.
fn untagged(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, l)| l),
        None => line,
    }
}

/// Check that `lines` are exactly one `labeled-response` batch for `label` and return its
/// lines, each without its tags, after checking that each carries the batch tag (and nothing
/// else carries the label).
fn labeled_batch(lines: &[String], label: &str) -> Vec<String> {
    let first = lines.first().expect("a batch start");
    assert_eq!(tag(first, "label"), Some(label), "{lines:#?}");
    // From the server the client is on (a cluster node has a name of its own).
    let (server, id) = untagged(first)
        .split_once(" BATCH +")
        .and_then(|(server, r)| Some((server, r.strip_suffix(" labeled-response")?)))
        .filter(|(server, _)| server.ends_with("parley.local"))
        .unwrap_or_else(|| panic!("not a labeled-response batch start: {lines:#?}"));
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("{server} BATCH -{id}").as_str()),
        "{lines:#?}"
    );
    let inner = &lines[1..lines.len() - 1];
    for line in inner {
        assert_eq!(tag(line, "batch"), Some(id), "{lines:#?}");
        assert_eq!(tag(line, "label"), None, "the label is on the start only");
    }
    inner.iter().map(|l| untagged(l).to_string()).collect()
}

/// "If a response consists of more than one message, a batch MUST be used to group them into a
/// single logical response. The start of the batch MUST be tagged with the `label` tag."
/// JOIN's own JOIN line, the topic (332/333) and the names (353/366) are that response.
#[tokio::test]
async fn join_answers_with_one_batch_holding_join_topic_and_names() {
    let server = TestServer::start().await;
    let mut op = server.client("opal").await;
    op.send("JOIN #talk").await;
    op.send("TOPIC #talk :all things").await;
    op.sync().await;
    let mut c = with_caps(&server, "lara", LABELING).await;
    op.sync().await;
    c.send("@label=j1 JOIN #talk").await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "j1");
    assert_eq!(inner.len(), 5, "{lines:#?}");
    assert!(inner[0].starts_with(":lara!"), "{lines:#?}");
    assert!(inner[0].ends_with(" JOIN #talk"), "{lines:#?}");
    assert_eq!(inner[1], ":parley.local 332 lara #talk :all things");
    assert!(inner[2].starts_with(":parley.local 333 lara #talk opal"));
    assert_eq!(inner[3], ":parley.local 353 lara = #talk :@opal lara");
    assert_eq!(inner[4], ":parley.local 366 lara #talk :End of /NAMES list");
    // The others see the JOIN unlabeled, outside any batch.
    let seen = op.sync().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with(":lara!") && seen[0].ends_with(" JOIN #talk"));
}

/// "For any message received from a client that includes this tag, the server MUST include the
/// same tag and value in any response produced from this message": 421 for a command the server
/// does not know, whether it parses as a command or not.
#[tokio::test]
async fn unknown_commands_are_answered_under_the_label() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "uma", LABELING).await;
    c.send("@label=u1 FROBNICATE now").await;
    assert_eq!(
        c.recv().await,
        "@label=u1 :parley.local 421 uma FROBNICATE :Unknown command"
    );
    c.send("@label=u2 P1NG now").await;
    assert_eq!(
        c.recv().await,
        "@label=u2 :parley.local 421 uma P1NG :Unknown command"
    );
    assert!(c.sync().await.is_empty());
}

/// "Servers MUST respond with a labeled `ACK` message when a client sends a labeled command that
/// normally produces no response. [...] `:irc.example.com ACK`"
#[tokio::test]
async fn a_command_with_no_answer_gets_a_labeled_ack() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "ada", LABELING).await;
    c.send("@label=a1 PONG nothing").await;
    assert_eq!(c.recv().await, "@label=a1 :parley.local ACK");
    c.send("@label=p1 PING hello").await;
    assert_eq!(
        c.recv().await,
        "@label=p1 :parley.local PONG parley.local :hello"
    );
}

/// "When a client sends a message to itself, the server MUST NOT include the label tag, except
/// for any acknowledgment sent with the `echo-message` mechanism."
#[tokio::test]
async fn a_message_to_yourself_is_delivered_unlabeled_and_echoed_labeled() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "sam", "labeled-response batch echo-message").await;
    c.send("@label=s1 PRIVMSG sam :note to self").await;
    let lines = c.sync().await;
    assert_eq!(lines.len(), 2, "the echo and the delivery: {lines:#?}");
    let labeled: Vec<&String> = lines.iter().filter(|l| tag(l, "label").is_some()).collect();
    assert_eq!(labeled.len(), 1, "{lines:#?}");
    assert_eq!(tag(labeled[0], "label"), Some("s1"));
    for line in &lines {
        assert!(
            untagged(line).starts_with(":sam!") && line.ends_with(" PRIVMSG sam :note to self"),
            "{lines:#?}"
        );
    }
    // Without echo-message the delivery is no acknowledgment: the label goes on an ACK.
    let mut plain = with_caps(&server, "pam", LABELING).await;
    plain.send("@label=s2 PRIVMSG pam :memo").await;
    let lines = plain.sync().await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.contains(&"@label=s2 :parley.local ACK".to_string()));
    assert!(lines
        .iter()
        .any(|l| l.starts_with(":pam!") && l.ends_with(" PRIVMSG pam :memo")));
}

/// "Servers MUST include the tag in exactly one logical message": a message to several targets
/// is echoed once per target, so the echoes (and an error for a target that failed) go in one
/// batch.
#[tokio::test]
async fn a_message_to_several_targets_is_one_labeled_batch() {
    let server = TestServer::start().await;
    let mut bob = server.client("bob").await;
    let mut c = with_caps(&server, "meg", "labeled-response batch echo-message").await;
    c.send("JOIN #room").await;
    c.sync().await;
    bob.sync().await;
    c.send("@label=m2 PRIVMSG #room,bob,nobody :hello all")
        .await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "m2");
    assert_eq!(inner.len(), 3, "{lines:#?}");
    assert!(inner[0].starts_with(":meg!") && inner[0].ends_with(" PRIVMSG #room :hello all"));
    assert!(inner[1].starts_with(":meg!") && inner[1].ends_with(" PRIVMSG bob :hello all"));
    assert_eq!(
        inner[2],
        ":parley.local 401 meg nobody :No such nick/channel"
    );
    let got = bob.sync().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with(":meg!") && got[0].ends_with(" PRIVMSG bob :hello all"));
    // One target and an away reply: still one logical response.
    bob.send("AWAY :lunch").await;
    bob.sync().await;
    c.send("@label=m3 PRIVMSG bob :are you there").await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "m3");
    assert_eq!(inner.len(), 2, "{lines:#?}");
    assert!(
        inner[0].ends_with(" PRIVMSG bob :are you there"),
        "{lines:#?}"
    );
    assert_eq!(inner[1], ":parley.local 301 meg bob :lunch");
}

/// "Start and end messages of one batch MAY refer to another batch. If they do, they both MUST
/// have batch tag, and they MUST refer to the same batch." (ircv3.net batch): CHATHISTORY's
/// `chathistory` batch nests inside the labeled-response batch, its messages keep their own
/// batch tag, and the history read (an asynchronous step) is still answered under the label.
#[tokio::test]
async fn chathistory_nests_its_batch_in_the_labeled_response() {
    let server = TestServer::start().await;
    let mut c = with_caps(
        &server,
        "hal",
        "labeled-response batch message-tags server-time draft/chathistory",
    )
    .await;
    c.send("JOIN #past").await;
    c.send("PRIVMSG #past :one").await;
    c.send("PRIVMSG #past :two").await;
    c.sync().await;
    c.send("@label=h1 CHATHISTORY LATEST #past * 10").await;
    let lines = c.sync().await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(tag(&lines[0], "label"), Some("h1"));
    let outer = untagged(&lines[0])
        .strip_prefix(":parley.local BATCH +")
        .and_then(|r| r.strip_suffix(" labeled-response"))
        .expect("labeled-response batch");
    assert_eq!(tag(&lines[1], "batch"), Some(outer), "{lines:#?}");
    let inner = untagged(&lines[1])
        .strip_prefix(":parley.local BATCH +")
        .and_then(|r| r.strip_suffix(" chathistory #past"))
        .expect("chathistory batch inside");
    for (line, text) in lines[2..4].iter().zip(["one", "two"]) {
        assert_eq!(tag(line, "batch"), Some(inner), "{lines:#?}");
        assert_eq!(line.matches("batch=").count(), 1, "one batch tag: {line}");
        assert!(line.ends_with(&format!(" PRIVMSG #past :{text}")), "{line}");
    }
    assert_eq!(
        lines[4],
        format!("@batch={outer} :parley.local BATCH -{inner}")
    );
    assert_eq!(lines[5], format!(":parley.local BATCH -{outer}"));
}

/// The label holds on a command sent before registration, and on the SASL exchange, whose
/// answer waits for the password check (an asynchronous step).
#[tokio::test]
async fn labels_hold_before_registration_and_through_sasl() {
    let server = TestServer::start().await;
    server.create_account("vera", "vera-password-1").await;
    let mut c = server.connect().await;
    c.nick = "vera".into();
    c.send("CAP LS 302").await;
    c.send("CAP REQ :labeled-response batch sasl").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("@label=n1 NICK vera").await;
    assert_eq!(c.recv().await, "@label=n1 :parley.local ACK");
    c.send("USER vera 0 * :Vera").await;
    c.send("@label=s1 AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "@label=s1 AUTHENTICATE +");
    c.send(&format!(
        "@label=s2 AUTHENTICATE {}",
        sasl_plain("vera", "vera-password-1")
    ))
    .await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "s2");
    assert_eq!(inner.len(), 2, "{lines:#?}");
    assert!(
        inner[0].starts_with(":parley.local 900 vera "),
        "{lines:#?}"
    );
    assert_eq!(
        inner[1],
        ":parley.local 903 vera :SASL authentication successful"
    );
}

/// REGISTER after registration: the account is created on the blocking pool, and its answer
/// (REGISTER SUCCESS and 900) still comes under the label.
#[tokio::test]
async fn register_is_answered_under_the_label() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "rita", LABELING).await;
    c.send("@label=r1 REGISTER * * rita-password-1").await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "r1");
    assert!(
        inner.iter().any(|l| l.contains(" REGISTER SUCCESS rita ")),
        "{lines:#?}"
    );
    assert!(
        inner
            .iter()
            .any(|l| l.starts_with(":parley.local 900 rita ")),
        "{lines:#?}"
    );
}

/// "This specification depends on the `batch` capability which MUST be negotiated to use
/// labeled responses." Without `batch` a label is not used at all: no tag, no ACK.
#[tokio::test]
async fn without_batch_labels_are_not_used() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "nora", "labeled-response").await;
    c.send("@label=x1 PING y").await;
    assert_eq!(c.recv().await, ":parley.local PONG parley.local :y");
    c.send("@label=x2 PONG nothing").await;
    assert!(c.sync().await.is_empty(), "no ACK without batch");
}

/// "The tag value is chosen by the client and MUST be treated as an opaque identifier [...]
/// The value MUST NOT exceed 64 bytes." A label is sent back exactly as given (escaped as it
/// came); a label past 64 bytes, or one without a value ("which has a required value"), is not
/// a label: the command is answered without one, never under a shortened label.
#[tokio::test]
async fn labels_are_opaque_and_bounded() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "olga", LABELING).await;
    let longest = "é".repeat(32);
    c.send(&format!("@label={longest} PING a")).await;
    assert_eq!(
        c.recv().await,
        format!("@label={longest} :parley.local PONG parley.local :a")
    );
    c.send("@label=a\\sb\\:c PING b").await;
    assert_eq!(
        c.recv().await,
        "@label=a\\sb\\:c :parley.local PONG parley.local :b"
    );
    let overlong = format!("{longest}x");
    c.send(&format!("@label={overlong} PING c")).await;
    assert_eq!(c.recv().await, ":parley.local PONG parley.local :c");
    c.send("@label= PING d").await;
    assert_eq!(c.recv().await, ":parley.local PONG parley.local :d");
    c.send("@label PING e").await;
    assert_eq!(c.recv().await, ":parley.local PONG parley.local :e");
    assert!(c.sync().await.is_empty());
}

/// The WebSocket transport answers labeled commands as TCP does: JOIN's reply is one
/// labeled-response batch there too.
#[tokio::test]
async fn labeled_join_over_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server =
        TestServer::start_with(|config| config.web.listen = vec!["127.0.0.1:0".into()]).await;
    let port = server.running.web_addrs()[0].port();
    let tls = common::tls_connect(
        server.running.web_addrs()[0],
        common::client_config_trusting(&server.generated_cert_pem()),
    )
    .await
    .expect("TLS handshake with the web listener");
    let request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("WebSocket handshake");
    for line in [
        "CAP LS 302",
        "CAP REQ :labeled-response batch",
        "NICK wendy",
        "USER wendy 0 * :Wendy",
        "CAP END",
        "@label=w1 JOIN #web",
        "PING :done",
    ] {
        ws.send(Message::text(line)).await.expect("send");
    }
    let mut lines = Vec::new();
    let mut seen_start = false;
    loop {
        let message = tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        let Message::Text(text) = message else {
            continue;
        };
        let line = text.to_string();
        if line.ends_with(" PONG parley.local :done") {
            break;
        }
        seen_start |= tag(&line, "label").is_some();
        if seen_start {
            lines.push(line);
        }
    }
    let inner = labeled_batch(&lines, "w1");
    assert_eq!(inner.len(), 3, "{lines:#?}");
    assert!(inner[0].starts_with(":wendy!") && inner[0].ends_with(" JOIN #web"));
    assert_eq!(inner[1], ":parley.local 353 wendy = #web :@wendy");
    assert_eq!(inner[2], ":parley.local 366 wendy #web :End of /NAMES list");
}

/// In a cluster the user's own JOIN is sent at once and the others' copies come from the
/// stream; under a label it is still one batch with the names, and the members on the other
/// node see the JOIN once, unlabeled.
#[tokio::test]
async fn labeled_join_in_a_cluster_is_one_batch() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let (mut alice, mut bob) = cluster.alice_and_bob_talk("hi").await;
    bob.send("JOIN #both").await;
    bob.sync().await;
    let mut c = cluster.nodes[0].connect().await;
    c.nick = "lena".into();
    c.send("CAP LS 302").await;
    c.send("CAP REQ :labeled-response batch").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("NICK lena").await;
    c.send("USER lena 0 * :lena").await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    bob.sync().await;
    c.send("@label=c1 JOIN #both").await;
    let lines = c.sync().await;
    let inner = labeled_batch(&lines, "c1");
    assert_eq!(inner.len(), 3, "{lines:#?}");
    assert!(inner[0].starts_with(":lena!") && inner[0].ends_with(" JOIN #both"));
    assert!(
        inner[1].starts_with(":n1.parley.local 353 lena = #both :"),
        "{lines:#?}"
    );
    assert_eq!(
        inner[2],
        ":n1.parley.local 366 lena #both :End of /NAMES list"
    );
    bob.expect(|l| l.starts_with(":lena!") && l.ends_with(" JOIN #both"))
        .await;
    let rest = bob.sync().await;
    assert!(rest.is_empty(), "one JOIN for bob: {rest:?}");
    let _ = alice.sync().await;
}

/// A labeled client on node 0 of a two-node cluster, with bob (plain) on node 1, each known on
/// the other's node. `change` adjusts the nodes' config.
async fn cluster_pair(
    change: impl Fn(usize, &mut parley_server::Config),
    nick: &str,
) -> Option<(common::cluster::Cluster, Client, Client)> {
    let cluster = common::cluster::Cluster::start(2, change).await?;
    let mut me = with_caps(
        &cluster.nodes[0],
        nick,
        "labeled-response batch echo-message",
    )
    .await;
    let mut bob = cluster.client(1, "bob").await;
    bob.await_whois(nick).await;
    me.await_whois("bob").await;
    bob.sync().await;
    Some((cluster, me, bob))
}

/// "Servers MUST include the tag in exactly one logical message" and "If a response consists
/// of more than one message, a batch MUST be used to group them into a single logical
/// response": in a cluster the echoes come back from the stream, and still both go in the one
/// batch, and nothing carries the label after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_to_several_targets_in_a_cluster_is_one_labeled_batch() {
    let Some((_cluster, mut meg, mut bob)) = cluster_pair(|_, _| {}, "meg").await else {
        return;
    };
    meg.send("JOIN #room").await;
    meg.sync().await;
    meg.send("@label=k1 PRIVMSG #room,bob :hello all").await;
    let lines = meg.sync().await;
    let inner = labeled_batch(&lines, "k1");
    assert_eq!(
        inner,
        [
            ":meg!~meg@127.0.0.1 PRIVMSG #room :hello all",
            ":meg!~meg@127.0.0.1 PRIVMSG bob :hello all"
        ],
        "{lines:#?}"
    );
    bob.expect_next(":meg!~meg@127.0.0.1 PRIVMSG bob :hello all")
        .await;
    assert_eq!(meg.sync().await, Vec::<String>::new(), "nothing after it");
}

/// "If a response consists of more than one message, a batch MUST be used to group them into
/// a single logical response": the echo from the stream and the 301 of an away user on the
/// other node are one response.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_to_an_away_user_in_a_cluster_is_one_labeled_batch() {
    let Some((_cluster, mut meg, mut bob)) = cluster_pair(|_, _| {}, "meg").await else {
        return;
    };
    bob.send("AWAY :lunch").await;
    bob.sync().await;
    meg.await_reply("WHOIS bob", |l| l.contains(" 301 meg bob "))
        .await;
    meg.send("@label=k2 PRIVMSG bob :are you there").await;
    let lines = meg.sync().await;
    let inner = labeled_batch(&lines, "k2");
    assert_eq!(
        inner,
        [
            ":meg!~meg@127.0.0.1 PRIVMSG bob :are you there",
            ":n1.parley.local 301 meg bob :lunch"
        ],
        "{lines:#?}"
    );
    bob.expect_next(":meg!~meg@127.0.0.1 PRIVMSG bob :are you there")
        .await;
    assert_eq!(meg.sync().await, Vec::<String>::new(), "nothing after it");
}

/// "Servers MUST include the tag in exactly one logical message": a channel operator's MODE
/// giving a user on the other node `+o` is answered with the one MODE line, labeled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mode_in_a_cluster_is_answered_with_one_labeled_line() {
    let Some((_cluster, mut meg, mut bob)) = cluster_pair(|_, _| {}, "meg").await else {
        return;
    };
    meg.send("JOIN #ops").await;
    meg.sync().await;
    bob.await_reply("NAMES #ops", |l| l.contains(" 353 ") && l.contains("@meg"))
        .await;
    bob.send("JOIN #ops").await;
    bob.sync().await;
    meg.expect(|l| l == ":bob!~bob@127.0.0.1 JOIN #ops").await;
    meg.send("@label=k3 MODE #ops +o bob").await;
    assert_eq!(
        meg.sync().await,
        ["@label=k3 :meg!~meg@127.0.0.1 MODE #ops +o bob"]
    );
    bob.expect(|l| l == ":meg!~meg@127.0.0.1 MODE #ops +o bob")
        .await;
    assert_eq!(meg.sync().await, Vec::<String>::new(), "nothing after it");
}

/// "Servers MUST include the tag in exactly one logical message": a broadcast to everyone
/// (`$*`) echoed with echo-message is answered by that echo, labeled, and no `ACK` besides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_in_a_cluster_is_answered_by_its_labeled_echo() {
    let everyone = |_: usize, c: &mut parley_server::Config| {
        c.operators.broadcast = parley_server::config::BroadcastPolicy::Everyone;
    };
    let Some((_cluster, mut meg, mut bob)) = cluster_pair(everyone, "meg").await else {
        return;
    };
    meg.send("@label=k4 PRIVMSG $* :hello everyone").await;
    assert_eq!(
        meg.sync().await,
        ["@label=k4 :meg!~meg@127.0.0.1 PRIVMSG $* :hello everyone"]
    );
    bob.expect(|l| l == ":meg!~meg@127.0.0.1 PRIVMSG $* :hello everyone")
        .await;
    assert_eq!(meg.sync().await, Vec::<String>::new(), "nothing after it");
}

/// "Servers MUST include the tag in exactly one logical message": a server operator outside
/// the default room who changes its modes sees the change at once in a cluster, and that line
/// is the answer under the label, not an unlabeled line and an `ACK` besides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operators_mode_from_outside_the_room_in_a_cluster_is_one_labeled_line() {
    let with_room_and_oper = |_: usize, c: &mut parley_server::Config| {
        c.server.default_channel = "#lobby".into();
        c.operators.opers = vec![parley_server::config::OperBlock {
            name: "boss".into(),
            password_hash: parley_server::accounts::hash_password("boss-password-1").expect("hash"),
            class: parley_server::config::OperBlockClass::Admin,
            require_tls: false,
            hosts: Vec::new(),
            account: String::new(),
        }];
    };
    let Some((_cluster, mut meg, mut bob)) = cluster_pair(with_room_and_oper, "meg").await else {
        return;
    };
    meg.send("OPER boss boss-password-1").await;
    meg.send("PART #lobby").await;
    let lines = meg.sync().await;
    assert!(lines.iter().any(|l| l.contains(" 381 meg ")), "{lines:?}");
    meg.send("@label=k5 MODE #lobby +m").await;
    assert_eq!(
        meg.sync().await,
        ["@label=k5 :meg!~meg@127.0.0.1 MODE #lobby +m"]
    );
    bob.expect(|l| l == ":meg!~meg@127.0.0.1 MODE #lobby +m")
        .await;
    assert_eq!(meg.sync().await, Vec::<String>::new(), "nothing after it");
}

/// "When a client sends a message to itself, the server MUST NOT include the label tag, except
/// for any acknowledgment sent with the `echo-message` mechanism": in a cluster too, the
/// message reaches its sender once as a recipient, unlabeled, and once as the labeled echo;
/// without echo-message, once, and the label goes on an `ACK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_to_yourself_in_a_cluster_is_delivered_once_and_echoed_once() {
    let Some((cluster, mut sam, _bob)) = cluster_pair(|_, _| {}, "sam").await else {
        return;
    };
    sam.send("@label=k6 PRIVMSG sam :note to self").await;
    let mut lines = sam.sync().await;
    lines.sort_by_key(|l| tag(l, "label").is_some());
    assert_eq!(lines.len(), 2, "the delivery and the echo: {lines:#?}");
    assert_eq!(tag(&lines[0], "label"), None, "{lines:#?}");
    assert_eq!(tag(&lines[1], "label"), Some("k6"), "{lines:#?}");
    for line in &lines {
        assert_eq!(
            untagged(line),
            ":sam!~sam@127.0.0.1 PRIVMSG sam :note to self"
        );
    }
    let mut pam = with_caps(&cluster.nodes[0], "pam", LABELING).await;
    pam.send("@label=k7 PRIVMSG pam :memo").await;
    let memo = ":pam!~pam@127.0.0.1 PRIVMSG pam :memo";
    let mut lines = pam.sync().await;
    // The delivery is no response: it may come from the stream after the ACK.
    if !lines.iter().any(|l| l == memo) {
        lines.push(pam.expect(|l| l == memo).await);
    }
    lines.sort();
    assert_eq!(lines, [memo, "@label=k7 :n1.parley.local ACK"]);
    assert_eq!(sam.sync().await, Vec::<String>::new(), "nothing after it");
    assert_eq!(pam.sync().await, Vec::<String>::new(), "nothing after it");
}
