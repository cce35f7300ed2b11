//! The channel features of issue 24 item 10, against the real server over real sockets: bot
//! mode (`+B`), the no-CTCP channel mode (`+C`), the mute extban (`+b $m:`), STATUSMSG,
//! UTF8ONLY, ELIST, INVITE with no arguments and `draft/channel-rename`. Each test quotes the
//! sentence of the spec (ircv3.net, modern.ircdocs.horse, or the ircd documentation where the
//! feature has no spec) that it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, Client, TestServer};

/// A server without the default room, so nobody hears anything they did not ask for.
async fn quiet_server() -> TestServer {
    TestServer::start_with(|c| c.server.default_channel = String::new()).await
}

fn source(nick: &str) -> String {
    format!("{nick}!~{nick}@127.0.0.1")
}

async fn ask(client: &mut Client, line: &str) -> Vec<String> {
    client.send(line).await;
    client.sync().await
}

/// A registered client that asked for `caps` first.
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

/// The ISUPPORT tokens of a fresh registration.
async fn isupport(server: &TestServer) -> Vec<String> {
    let mut probe = server.connect().await;
    probe.send("NICK probe").await;
    probe.send("USER probe 0 * :Probe").await;
    let burst = probe.sync().await;
    burst
        .iter()
        .filter(|l| command_of(l) == "005")
        .flat_map(|l| {
            let params = l.split(" :").next().unwrap_or("");
            params
                .split(' ')
                .skip(3)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A line's value of tag `key` (`Some("")` for a tag without a value).
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';').find_map(|t| match t.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if t == key => Some(""),
        _ => None,
    })
}

/// ircv3.net/specs/extensions/bot-mode: "Servers publishing the BOT ISUPPORT token let clients
/// mark themselves as bots by setting a user mode. The value of the BOT token is the mode
/// character which is used to enable bot mode and is also the flag used in WHO responses of
/// bots (e.g. BOT=B or BOT=b)." "This numeric is returned as part of a bot's WHOIS reply."
/// "When a RPL_WHOREPLY (352) numeric is returned for a bot, the character used as the value
/// of the ISUPPORT BOT token is returned in the flags (alongside H|G)." "The bot tag
/// indicates that the given user is a bot. This tag SHOULD be added by the server to all
/// commands sent by a bot [...] This tag MUST only be sent to users who have requested the
/// message-tags capability."
#[tokio::test]
async fn bot_mode_shows_in_whois_who_and_the_bot_tag() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(tokens.contains(&"BOT=B".to_string()), "{tokens:?}");

    let [mut robot, mut carl] = server.clients(["robot", "carl"]).await;
    let mut tagged = with_caps(&server, "tagged", "message-tags").await;
    assert_eq!(
        ask(&mut robot, "MODE robot +B").await,
        [format!(":{} MODE robot :+B", source("robot"))]
    );
    assert_eq!(
        ask(&mut robot, "MODE robot").await,
        [":parley.local 221 robot +B"]
    );

    let whois = ask(&mut carl, "WHOIS robot").await;
    assert!(
        whois.contains(&":parley.local 335 carl robot :is a bot on Parley".to_string()),
        "{whois:?}"
    );
    assert_eq!(
        ask(&mut carl, "WHO robot").await,
        [
            ":parley.local 352 carl * ~robot 127.0.0.1 parley.local robot HB :0 Test robot",
            ":parley.local 315 carl robot :End of WHO list",
        ]
    );

    for who in [&mut carl, &mut tagged] {
        ask(who, "JOIN #bots").await;
    }
    ask(&mut robot, "JOIN #bots").await;
    // "This tag SHOULD be added by the server to all commands sent by a bot (e.g. PRIVMSG,
    // JOIN, MODE, NOTICE, and all others)": its JOIN too.
    let join = tagged.expect(|l| l.contains(" JOIN #bots")).await;
    assert_eq!(tag(&join, "bot"), Some(""), "{join}");
    carl.expect(|l| l == format!(":{} JOIN #bots", source("robot")))
        .await;
    robot.sync().await;
    carl.sync().await;
    robot.send("PRIVMSG #bots :beep boop").await;
    let got = tagged.expect(|l| l.contains(" PRIVMSG #bots ")).await;
    assert_eq!(tag(&got, "bot"), Some(""), "{got}");
    assert!(
        got.ends_with(&format!(" :{} PRIVMSG #bots :beep boop", source("robot"))),
        "{got}"
    );
    // Without message-tags: the plain line, no tag at all.
    carl.expect(|l| l == format!(":{} PRIVMSG #bots :beep boop", source("robot")))
        .await;
    // A private message too.
    robot.send("PRIVMSG tagged :hi").await;
    let private = tagged.expect(|l| l.contains(" PRIVMSG tagged ")).await;
    assert_eq!(tag(&private, "bot"), Some(""), "{private}");

    // Unmarked: no 335, no B, no tag.
    ask(&mut robot, "MODE robot -B").await;
    let whois = ask(&mut carl, "WHOIS robot").await;
    assert!(!whois.iter().any(|l| command_of(l) == "335"), "{whois:?}");
    let who = ask(&mut carl, "WHO robot").await;
    assert!(who[0].contains(" robot H :0 "), "{who:?}");
    robot.send("PRIVMSG #bots :human now").await;
    let got = tagged.expect(|l| l.contains(" :human now")).await;
    assert_eq!(tag(&got, "bot"), None, "{got}");
}

/// InspIRCd's noctcp module (there is no spec for it; ergo and InspIRCd agree): channel mode C
/// "Enables blocking channel messages that contain CTCPs." ACTION (`/me`) is how people talk,
/// so it passes; every other CTCP gets 404 ERR_CANNOTSENDTOCHAN with the reason, operators'
/// too. CHANMODES lists it among the flags.
#[tokio::test]
async fn no_ctcp_mode_refuses_ctcp_but_action() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(
        tokens.contains(&"CHANMODES=beIq,k,l,Cimnst".to_string()),
        "{tokens:?}"
    );
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #quiet").await;
    ask(&mut bob, "JOIN #quiet").await;
    alice.sync().await;
    assert_eq!(
        ask(&mut alice, "MODE #quiet +C").await,
        [format!(":{} MODE #quiet +C", source("alice"))]
    );
    bob.expect(|l| l.ends_with("MODE #quiet +C")).await;
    let modes = ask(&mut bob, "MODE #quiet").await;
    assert_eq!(modes[0], ":parley.local 324 bob #quiet +Cnt", "{modes:?}");

    let refused =
        ":parley.local 404 bob #quiet :Cannot send CTCP to channel (+C): only ACTION is allowed";
    assert_eq!(
        ask(&mut bob, "PRIVMSG #quiet :\u{1}VERSION\u{1}").await,
        [refused]
    );
    assert_eq!(
        ask(&mut bob, "PRIVMSG #quiet :\u{1}PING 12345\u{1}").await,
        [refused]
    );
    // A CTCP NOTICE is not answered (never is a NOTICE), and not relayed either.
    assert!(ask(&mut bob, "NOTICE #quiet :\u{1}VERSION x\u{1}")
        .await
        .is_empty());
    // The operator too: the mode is the channel's, lifted with -C.
    assert_eq!(
        ask(&mut alice, "PRIVMSG #quiet :\u{1}TIME\u{1}").await,
        [":parley.local 404 alice #quiet :Cannot send CTCP to channel (+C): only ACTION is allowed"]
    );
    assert!(ask(&mut bob, "PRIVMSG #quiet :\u{1}ACTION waves\u{1}")
        .await
        .is_empty());
    assert_eq!(
        alice.sync().await,
        [format!(
            ":{} PRIVMSG #quiet :\u{1}ACTION waves\u{1}",
            source("bob")
        )]
    );

    ask(&mut alice, "MODE #quiet -C").await;
    bob.sync().await;
    assert!(ask(&mut bob, "PRIVMSG #quiet :\u{1}VERSION\u{1}")
        .await
        .is_empty());
    alice
        .expect(|l| l.ends_with("PRIVMSG #quiet :\u{1}VERSION\u{1}"))
        .await;
}

/// The mute extban. modern.ircdocs.horse, EXTBAN: "The EXTBAN parameter is used to indicate
/// the extended ban masks that the server supports [...] <prefix>,<types>". Ours is `$` with
/// `a` (account) and `m` (mute). Ergo's mute (`m:`) and charybdis's acting extbans: "Ban
/// exceptions on acting extbans exempt that user from matching an extban of that type". A
/// muted user joins and reads, and gets 404 on speaking; voice and operator status lift it,
/// as they lift `+b` and `+q`.
#[tokio::test]
async fn mute_extban_lets_join_but_not_speak() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(tokens.contains(&"EXTBAN=$,am".to_string()), "{tokens:?}");
    let [mut alice, mut bob, mut carl] = server.clients(["alice", "bob", "carl"]).await;
    ask(&mut alice, "JOIN #m").await;
    assert_eq!(
        ask(&mut alice, "MODE #m +b $m:bob").await,
        [format!(":{} MODE #m +b $m:bob!*@*", source("alice"))]
    );
    // Not a ban: bob joins.
    let joined = ask(&mut bob, "JOIN #m").await;
    assert_eq!(
        joined[0],
        format!(":{} JOIN #m", source("bob")),
        "{joined:?}"
    );
    ask(&mut carl, "JOIN #m").await;
    alice.sync().await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #m :can you hear me").await,
        [":parley.local 404 bob #m :Cannot send to channel (you are muted)"]
    );
    // Others still speak, and bob reads them.
    ask(&mut carl, "PRIVMSG #m :carl here").await;
    bob.expect(|l| l.ends_with("PRIVMSG #m :carl here")).await;
    alice.sync().await;
    let list = ask(&mut alice, "MODE #m +b").await;
    assert!(
        list[0].starts_with(":parley.local 367 alice #m $m:bob!*@* alice "),
        "{list:?}"
    );

    // Voice lifts it.
    ask(&mut alice, "MODE #m +v bob").await;
    bob.sync().await;
    assert!(ask(&mut bob, "PRIVMSG #m :voiced").await.is_empty());
    carl.expect(|l| l.ends_with("PRIVMSG #m :voiced")).await;
    ask(&mut alice, "MODE #m -v bob").await;
    bob.sync().await;
    // So does an exception.
    ask(&mut alice, "MODE #m +e $m:bob").await;
    bob.sync().await;
    assert!(ask(&mut bob, "PRIVMSG #m :excepted").await.is_empty());
    ask(&mut alice, "MODE #m -e $m:bob!*@*").await;
    bob.sync().await;
    // And lifting the mute.
    assert_eq!(
        ask(&mut bob, "PRIVMSG #m :again").await,
        [":parley.local 404 bob #m :Cannot send to channel (you are muted)"]
    );
    ask(&mut alice, "MODE #m -b $m:bob!*@*").await;
    bob.sync().await;
    assert!(ask(&mut bob, "PRIVMSG #m :free").await.is_empty());
    alice.expect(|l| l.ends_with("PRIVMSG #m :free")).await;
    // A mute must name someone.
    assert_eq!(
        ask(&mut alice, "MODE #m +b $m:").await,
        Vec::<String>::new()
    );
}

/// modern.ircdocs.horse, STATUSMSG Parameter: "The STATUSMSG parameter indicates that the server
/// supports a method for clients to send a message via the PRIVMSG / NOTICE commands to those
/// people on a channel with (one of) the specified channel membership prefixes." `@#chan`
/// reaches the operators, `+#chan` the voiced and the operators; the target they see keeps its
/// prefix, only members may send one, and it is not kept in the channel's history (which every
/// member may read).
#[tokio::test]
async fn statusmsg_reaches_only_the_prefix_it_names() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(tokens.contains(&"STATUSMSG=@+".to_string()), "{tokens:?}");
    let [mut op, mut voiced, mut plain, mut outsider] =
        server.clients(["op", "voiced", "plain", "outsider"]).await;
    let mut echo = with_caps(&server, "echo", "echo-message").await;
    ask(&mut op, "JOIN #staff").await;
    for who in [&mut voiced, &mut plain, &mut echo] {
        ask(who, "JOIN #staff").await;
    }
    ask(&mut op, "MODE #staff +v voiced").await;
    for who in [&mut op, &mut voiced, &mut plain, &mut echo] {
        who.sync().await;
    }

    // To the operators: only op gets it, with the prefix kept; echo (the sender) its echo.
    assert_eq!(
        ask(&mut echo, "PRIVMSG @#staff :ops only").await,
        [format!(":{} PRIVMSG @#staff :ops only", source("echo"))]
    );
    assert_eq!(
        op.sync().await,
        [format!(":{} PRIVMSG @#staff :ops only", source("echo"))]
    );
    assert!(voiced.sync().await.is_empty());
    assert!(plain.sync().await.is_empty());

    // To the voiced and up: voiced and op.
    ask(&mut plain, "NOTICE +#staff :voices too").await;
    let line = format!(":{} NOTICE +#staff :voices too", source("plain"));
    assert_eq!(op.sync().await, std::slice::from_ref(&line));
    assert_eq!(voiced.sync().await, [line]);
    assert!(echo.sync().await.is_empty());

    // Not from outside the channel, even where +n is off.
    ask(&mut op, "MODE #staff -n").await;
    for who in [&mut voiced, &mut plain, &mut echo] {
        who.sync().await;
    }
    assert_eq!(
        ask(&mut outsider, "PRIVMSG @#staff :let me in").await,
        [":parley.local 404 outsider #staff :Cannot send to channel (only its members may message its operators)"]
    );
    assert!(op.sync().await.is_empty());
    // A channel that does not exist is 403 as ever.
    assert_eq!(
        ask(&mut op, "PRIVMSG @#nowhere :hi").await,
        [":parley.local 403 op #nowhere :No such channel"]
    );
}

/// modern.ircdocs.horse, ELIST Parameter: "M: Searching based on a mask." "N: Searching based
/// on a non-matching !mask. i.e., the opposite of M." "U: Searching based on user count within
/// the channel, via the "<val" and ">val" modifiers to search for a channel that has less or
/// more than val users, respectively." "C: Searching based on channel creation time, via the
/// "C<val" and "C>val" modifiers to search for a channel that was created either less than
/// val minutes ago, or more than val minutes ago, respectively" (T likewise for the topic).
/// Secret channels stay hidden from non-members whatever the query.
#[tokio::test]
async fn elist_filters_by_mask_user_count_and_age() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(tokens.contains(&"ELIST=CMNTU".to_string()), "{tokens:?}");
    let [mut a, mut b, mut c, mut looker] = server.clients(["a", "b", "c", "looker"]).await;
    for chan in ["#rust", "#rustaceans", "#spam"] {
        ask(&mut a, &format!("JOIN {chan}")).await;
    }
    ask(&mut b, "JOIN #rust").await;
    ask(&mut c, "JOIN #rust").await;
    ask(&mut a, "TOPIC #rust :the language").await;
    ask(&mut c, "JOIN #hidden").await;
    ask(&mut c, "MODE #hidden +s").await;
    a.sync().await;

    async fn listed(client: &mut Client, query: &str) -> Vec<String> {
        ask(client, query)
            .await
            .iter()
            .filter(|l| command_of(l) == "322")
            .map(|l| l.split(' ').nth(3).unwrap_or("").to_string())
            .collect()
    }
    assert_eq!(
        listed(&mut looker, "LIST").await,
        ["#rust", "#rustaceans", "#spam"]
    );
    assert_eq!(
        listed(&mut looker, "LIST #rust*").await,
        ["#rust", "#rustaceans"]
    );
    assert_eq!(listed(&mut looker, "LIST !*rust*").await, ["#spam"]);
    assert_eq!(listed(&mut looker, "LIST >2").await, ["#rust"]);
    assert_eq!(
        listed(&mut looker, "LIST <2").await,
        ["#rustaceans", "#spam"]
    );
    assert_eq!(
        listed(&mut looker, "LIST #r*,<3").await,
        ["#rustaceans"],
        "conditions hold together"
    );
    assert_eq!(listed(&mut looker, "LIST C<60").await.len(), 3);
    assert!(listed(&mut looker, "LIST C>60").await.is_empty());
    assert_eq!(listed(&mut looker, "LIST T<60").await, ["#rust"]);
    // The exact form still works, and a secret channel stays secret to a mask.
    assert_eq!(listed(&mut looker, "LIST #SPAM").await, ["#spam"]);
    assert!(listed(&mut looker, "LIST #hid*").await.is_empty());
    assert_eq!(listed(&mut c, "LIST #hid*").await, ["#hidden"]);
    let whole = ask(&mut looker, "LIST >0").await;
    assert_eq!(
        whole.first().map(String::as_str),
        Some(":parley.local 321 looker Channel :Users  Name")
    );
    assert_eq!(
        whole.last().map(String::as_str),
        Some(":parley.local 323 looker :End of /LIST")
    );
}

/// modern.ircdocs.horse, RPL_INVITELIST (336): "Sent to a client as a reply to the INVITE
/// command when used with no parameter, to indicate a channel the client was invited to."
/// RPL_ENDOFINVITELIST (337): "<client> :End of /INVITE list". An invite used up by the join
/// it let in is gone from the list.
#[tokio::test]
async fn invite_alone_lists_pending_invites() {
    let server = quiet_server().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [":parley.local 337 bob :End of /INVITE list"]
    );
    for chan in ["#two", "#one"] {
        ask(&mut alice, &format!("JOIN {chan}")).await;
        ask(&mut alice, &format!("INVITE bob {chan}")).await;
    }
    ask(&mut alice, "MODE #two +s").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [
            ":parley.local 336 bob #one",
            ":parley.local 336 bob #two",
            ":parley.local 337 bob :End of /INVITE list",
        ]
    );
    ask(&mut bob, "JOIN #one").await;
    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [
            ":parley.local 336 bob #two",
            ":parley.local 337 bob :End of /INVITE list",
        ]
    );
    // One parameter is still too few.
    assert_eq!(
        ask(&mut bob, "INVITE alice").await,
        [":parley.local 461 bob INVITE :Not enough parameters"]
    );
}

const NOT_UTF8: &str =
    "INVALID_UTF8 :Message rejected, your IRC software MUST use UTF-8 encoding on this network";

/// ircv3.net/specs/extensions/utf8-only: "Servers publishing this token MUST NOT relay content
/// (such as PRIVMSG or NOTICE message data, channel topics, or realnames) containing
/// non-UTF-8 data to clients." "When sent with the FAIL command, it indicates that the
/// client's message was rejected because it contained invalid UTF-8 data." The example:
/// "Server: FAIL PRIVMSG INVALID_UTF8 :Message rejected, your IRC software MUST use UTF-8
/// encoding on this network".
#[tokio::test]
async fn utf8only_refuses_lines_that_are_not_utf8() {
    let server = quiet_server().await;
    let tokens = isupport(&server).await;
    assert!(tokens.contains(&"UTF8ONLY".to_string()), "{tokens:?}");
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #u").await;
    ask(&mut bob, "JOIN #u").await;
    ask(&mut alice, "TOPIC #u :before").await;
    bob.sync().await;

    // Latin-1 "café": refused whole, relayed to nobody.
    bob.send_raw(b"PRIVMSG #u :caf\xe9\r\n").await;
    assert_eq!(
        bob.sync().await,
        [format!(":parley.local FAIL PRIVMSG {NOT_UTF8}")]
    );
    bob.send_raw(b"TOPIC #u :\xff\xfe\r\n").await;
    assert_eq!(
        bob.sync().await,
        [format!(":parley.local FAIL TOPIC {NOT_UTF8}")]
    );
    // A NOTICE is never answered, and not relayed either.
    bob.send_raw(b"NOTICE #u :\xc3\r\n").await;
    assert!(bob.sync().await.is_empty());
    assert!(alice.sync().await.is_empty(), "nothing reached alice");
    let topic = ask(&mut bob, "TOPIC #u").await;
    assert_eq!(topic[0], ":parley.local 332 bob #u :before", "{topic:?}");

    // UTF-8 goes through byte for byte.
    ask(&mut bob, "PRIVMSG #u :café ☕").await;
    assert_eq!(
        alice.sync().await,
        [format!(":{} PRIVMSG #u :café ☕", source("bob"))]
    );

    // Before registration too: a realname that is not UTF-8 is refused, not mangled.
    let mut carl = server.connect().await;
    carl.send("NICK carl").await;
    carl.send_raw(b"USER carl 0 * :R\xe9al Name\r\n").await;
    assert_eq!(
        carl.sync().await,
        [format!(":parley.local FAIL USER {NOT_UTF8}")]
    );
    carl.send("USER carl 0 * :Real Name").await;
    carl.expect_numeric("001").await;
}

mod websocket {
    //! The same features over the WebSocket transport (issue 24 item 12): a binary WebSocket
    //! message may carry any bytes, so UTF8ONLY must hold there too; and STATUSMSG.

    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Message;

    type Ws =
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

    async fn ws_connect(server: &TestServer) -> Ws {
        let addr = server.running.web_addrs()[0];
        let mut request = format!("wss://localhost:{}/ws", addr.port())
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("binary.ircv3.net"),
        );
        let stream = common::tls_connect(
            addr,
            common::client_config_trusting(&server.generated_cert_pem()),
        )
        .await
        .expect("TLS handshake with the web listener");
        let (ws, _) = tokio::time::timeout(
            common::TIMEOUT,
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        ws
    }

    async fn send(ws: &mut Ws, bytes: &[u8]) {
        ws.send(Message::binary(bytes.to_vec()))
            .await
            .expect("send");
    }

    /// Lines up to the PONG answering a fresh PING, as `Client::sync`.
    async fn sync(ws: &mut Ws) -> Vec<String> {
        send(ws, b"PING ws-sync").await;
        let mut lines = Vec::new();
        loop {
            let message = tokio::time::timeout(common::TIMEOUT, ws.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("valid message");
            let line = match message {
                Message::Text(text) => text.to_string(),
                Message::Binary(data) => String::from_utf8(data.to_vec()).expect("UTF-8 out"),
                _ => continue,
            };
            if line.contains(" PONG ") && line.ends_with("ws-sync") {
                return lines;
            }
            lines.push(line);
        }
    }

    #[tokio::test]
    async fn utf8only_and_statusmsg_hold_over_websocket() {
        let server = TestServer::start_with(|c| {
            c.server.default_channel = String::new();
            c.web.listen = vec!["127.0.0.1:0".into()];
        })
        .await;
        let mut ws = ws_connect(&server).await;
        send(&mut ws, b"NICK webby").await;
        send(&mut ws, b"USER webby 0 * :Web").await;
        let burst = sync(&mut ws).await;
        assert!(burst.iter().any(|l| l.contains(" UTF8ONLY")), "{burst:?}");
        let [mut op, mut plain] = server.clients(["op", "plain"]).await;
        ask(&mut op, "JOIN #w").await;
        ask(&mut plain, "JOIN #w").await;
        send(&mut ws, b"JOIN #w").await;
        sync(&mut ws).await;
        op.sync().await;
        plain.sync().await;

        send(&mut ws, b"PRIVMSG #w :\xff\xfe").await;
        assert_eq!(
            sync(&mut ws).await,
            [format!(":parley.local FAIL PRIVMSG {NOT_UTF8}")]
        );
        assert!(op.sync().await.is_empty());

        send(&mut ws, b"PRIVMSG @#w :ops only").await;
        assert!(sync(&mut ws).await.is_empty());
        assert_eq!(
            op.sync().await,
            [":webby!~webby@127.0.0.1 PRIVMSG @#w :ops only"]
        );
        assert!(plain.sync().await.is_empty());
    }
}

/// ircv3.net/specs/extensions/channel-rename: "A channel rename preserves all channel state,
/// such as membership, mode and topic." "The server to client command MUST always include the
/// third parameter, an empty string MAY be used if no reason is provided." Fallback: "Send the
/// client a PART message for the old channel name, with part message matching the rename
/// reason if given" and "Send the client a JOIN message followed by the usual messages that
/// would be sent if the client had joined the new channel normally (RPL_TOPIC,
/// RPL_TOPICWHOTIME, RPL_NAMREPLY, RPL_ENDOFNAMES etc)." "This fallback SHOULD NOT be used if
/// the rename only changes the case of the channel name". "Implementations MUST allow channels
/// to be renamed while only changing the casing of a channel name."
#[tokio::test]
async fn rename_moves_a_channel_with_its_state_and_history() {
    let server = quiet_server().await;
    let mut probe = server.connect().await;
    probe.send("CAP LS 302").await;
    let ls = probe.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(ls.contains("draft/channel-rename"), "{ls}");

    let caps = "draft/channel-rename";
    let mut alice = with_caps(&server, "alice", caps).await;
    let mut bob = with_caps(
        &server,
        "bob",
        &format!("{caps} draft/chathistory batch server-time message-tags"),
    )
    .await;
    let mut carl = server.client("carl").await;
    ask(&mut alice, "JOIN #boaring").await;
    ask(&mut bob, "JOIN #boaring").await;
    ask(&mut carl, "JOIN #boaring").await;
    ask(&mut alice, "TOPIC #boaring :all about boats").await;
    ask(&mut alice, "MODE #boaring +b $m:troll").await;
    ask(&mut carl, "PRIVMSG #boaring :said before").await;
    bob.expect(|l| l.ends_with("PRIVMSG #boaring :said before"))
        .await;
    alice.sync().await;
    bob.sync().await;

    assert_eq!(
        ask(&mut alice, "RENAME #boaring #boring :Typo fix").await,
        [format!(
            ":{} RENAME #boaring #boring :Typo fix",
            source("alice")
        )]
    );
    let seen = bob.expect(|l| l.contains(" RENAME ")).await;
    assert!(
        seen.ends_with(&format!(
            ":{} RENAME #boaring #boring :Typo fix",
            source("alice")
        )),
        "{seen}"
    );
    let fallback = carl.sync().await;
    let set_at = fallback
        .iter()
        .find(|l| command_of(l) == "333")
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("")
        .to_string();
    assert_eq!(
        fallback,
        [
            format!(":{} PART #boaring :Typo fix", source("carl")),
            format!(":{} JOIN #boring", source("carl")),
            ":parley.local 332 carl #boring :all about boats".to_string(),
            format!(":parley.local 333 carl #boring alice {set_at}"),
            ":parley.local 353 carl = #boring :@alice bob carl".to_string(),
            ":parley.local 366 carl #boring :End of /NAMES list".to_string(),
        ]
    );
    // Everything else came along.
    let modes = ask(&mut carl, "MODE #boring +b").await;
    assert!(
        modes[0].contains(" 367 carl #boring $m:troll!*@* alice "),
        "{modes:?}"
    );
    assert_eq!(
        ask(&mut carl, "NAMES #boaring").await,
        [":parley.local 366 carl #boaring :End of /NAMES list"],
        "the old name is gone"
    );
    assert!(ask(&mut carl, "PRIVMSG #boring :said after")
        .await
        .is_empty());
    bob.expect(|l| l.ends_with("PRIVMSG #boring :said after"))
        .await;
    alice.sync().await;
    // The history moved with it: the old line is the new channel's.
    bob.send("CHATHISTORY LATEST #boring * 10").await;
    let history = bob.sync().await;
    let texts: Vec<&String> = history.iter().filter(|l| l.contains(" PRIVMSG ")).collect();
    assert_eq!(texts.len(), 2, "{history:?}");
    assert!(
        texts[0].ends_with("PRIVMSG #boring :said before"),
        "{history:?}"
    );

    // Without a reason: the third parameter is there, empty.
    assert_eq!(
        ask(&mut alice, "RENAME #boring #Boring").await,
        [format!(":{} RENAME #boring #Boring :", source("alice"))]
    );
    bob.expect(|l| l.contains(" RENAME #boring #Boring :"))
        .await;
    // A change of case only: no fallback.
    assert!(carl.sync().await.is_empty());
    let modes = ask(&mut carl, "MODE #boring").await;
    assert!(
        modes[0].starts_with(":parley.local 324 carl #Boring +"),
        "{modes:?}"
    );
    // labeled-response: the renamer's own RENAME answers its label.
    let mut dana = with_caps(
        &server,
        "dana",
        "draft/channel-rename labeled-response batch",
    )
    .await;
    ask(&mut dana, "JOIN #dana").await;
    assert_eq!(
        ask(&mut dana, "@label=r1 RENAME #dana #danas :mine").await,
        [format!(
            "@label=r1 :{} RENAME #dana #danas :mine",
            source("dana")
        )]
    );
    // Spec, Security Considerations: "Server implementations might choose to implement a
    // per-channel cooldown system using appropriate error responses, to prevent abuse. For
    // example flooding large channels with the fallback burst."
    assert_eq!(
        ask(&mut alice, "RENAME #Boring #again").await,
        [":parley.local FAIL RENAME CANNOT_RENAME #Boring #again :This channel has been renamed recently"]
    );
}

/// ircv3.net/specs/extensions/channel-rename, Errors: "FAIL RENAME CHANNEL_NAME_IN_USE
/// <old-channel> <new-channel> :The channel name is already taken", "FAIL RENAME
/// CANNOT_RENAME <old-channel> <new-channel> :The channel cannot be renamed"; "If existing
/// error numerics (such as ERR_CHANOPRIVSNEEDED, ERR_NOTONCHANNEL, ERR_NEEDMOREPARAMS) are
/// more appropriate, they SHOULD be used instead." "Server implementations MAY prevent channel
/// renames that change the prefix type".
#[tokio::test]
async fn rename_errors_follow_the_spec() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #evil").await;
    ask(&mut alice, "JOIN #good").await;
    ask(&mut bob, "JOIN #evil").await;
    alice.sync().await;
    assert_eq!(
        ask(&mut bob, "RENAME #evil #nice").await,
        [":parley.local 482 bob #evil :You're not channel operator"]
    );
    assert_eq!(
        ask(&mut bob, "RENAME #good #nice").await,
        [":parley.local 442 bob #good :You're not on that channel"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #evil").await,
        [":parley.local 461 alice RENAME :Not enough parameters"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #nowhere #else").await,
        [":parley.local 403 alice #nowhere :No such channel"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #evil #GOOD :Don't be evil").await,
        [":parley.local FAIL RENAME CHANNEL_NAME_IN_USE #evil #GOOD :The channel name is already taken"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #evil &local").await,
        [":parley.local FAIL RENAME CANNOT_RENAME #evil &local :You cannot change a channel prefix type"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #evil #bad,name").await,
        [":parley.local FAIL RENAME CANNOT_RENAME #evil #bad,name :That is not a valid channel name"]
    );
    // The default room is named by the config, not by whoever holds +o there.
    ask(&mut alice, "MODE #lobby +o alice").await;
    let lobby = ask(&mut alice, "RENAME #lobby #hall").await;
    assert!(
        lobby.last().is_some_and(
            |l| l.contains(" 482 ") || l.contains("FAIL RENAME CANNOT_RENAME #lobby #hall")
        ),
        "{lobby:?}"
    );
    assert!(bob
        .sync()
        .await
        .iter()
        .all(|l| !l.contains("RENAME") && !l.contains(" PART ")));
}

/// "A channel rename preserves all channel state": a registered channel is stored under its
/// new name (and no longer under the old one), so it comes back renamed after a restart.
#[tokio::test]
async fn a_renamed_registered_channel_stays_renamed_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let addr = first.plain_addrs()[0];
    let mut alice = common::account(addr, "alice").await;
    ask(&mut alice, "JOIN #club").await;
    ask(&mut alice, "TOPIC #club :members only").await;
    let owner = ask(&mut alice, "OWNER #club").await;
    assert!(
        owner
            .iter()
            .any(|l| l.ends_with("#club is registered to alice")),
        "{owner:?}"
    );
    ask(&mut alice, "RENAME #club #society :grown up").await;
    // A stored message after the rename means the writer has the rename behind it.
    ask(&mut alice, "PRIVMSG #society :hello").await;
    first.shutdown();
    assert!(first.wait(std::time::Duration::from_secs(5)).await);
    drop(alice);

    let second = parley_server::start(common::test_config(&dir))
        .await
        .expect("restart");
    let mut look = Client::connect(second.plain_addrs()[0]).await;
    look.register("looker").await;
    let list = ask(&mut look, "LIST").await;
    let rows: Vec<&String> = list.iter().filter(|l| command_of(l) == "322").collect();
    assert!(
        rows.iter()
            .any(|l| l.ends_with(" 322 looker #society 0 :members only")),
        "{list:?}"
    );
    assert!(!rows.iter().any(|l| l.contains(" #club ")), "{list:?}");
    second.shutdown();
}

/// The same rules across a cluster (parleyd nodes on one nats-server and one PostgreSQL): a
/// mute set on one node silences a member on another, a STATUSMSG reaches only the operators
/// on every node, the bot tag comes with a remote bot's message, and a RENAME reaches the other
/// node's members as RENAME or as its fallback. Skips without nats-server and PostgreSQL
/// (CI requires them).
#[tokio::test]
async fn channel_features_hold_across_a_cluster() {
    use common::cluster::{client_with_caps, Cluster};
    let Some(cluster) =
        Cluster::start(2, |_, config| config.server.default_channel = String::new()).await
    else {
        return;
    };
    let caps = "draft/channel-rename message-tags";
    let mut alice = client_with_caps(cluster.nodes[0].addr, "alice", caps).await;
    let mut bob = cluster.client(1, "bob").await;
    let mut carol = client_with_caps(cluster.nodes[1].addr, "carol", caps).await;
    bob.await_whois("alice").await;
    carol.await_whois("alice").await;
    ask(&mut alice, "JOIN #x").await;
    bob.send("JOIN #x").await;
    bob.expect(|l| l.contains(" 366 bob #x ")).await;
    carol.send("JOIN #x").await;
    carol.expect(|l| l.contains(" 366 carol #x ")).await;
    alice
        .expect(|l| l.starts_with(":carol!") && l.contains(" JOIN "))
        .await;
    ask(&mut alice, "MODE #x +o carol").await;
    ask(&mut alice, "MODE #x +b $m:bob").await;
    bob.expect(|l| l.ends_with("MODE #x +b $m:bob!*@*")).await;
    carol.expect(|l| l.ends_with("MODE #x +b $m:bob!*@*")).await;

    // The mute, set on node 0, holds on node 1.
    assert_eq!(
        ask(&mut bob, "PRIVMSG #x :hello?").await,
        [":n2.parley.local 404 bob #x :Cannot send to channel (you are muted)"]
    );

    // A STATUSMSG from node 0 reaches the operator on node 1, not the plain member.
    ask(&mut alice, "MODE alice +B").await;
    alice.send("PRIVMSG @#x :ops meeting").await;
    let got = carol.expect(|l| l.contains(" PRIVMSG @#x ")).await;
    assert!(
        got.ends_with(":alice!~alice@127.0.0.1 PRIVMSG @#x :ops meeting"),
        "{got}"
    );
    assert_eq!(
        tag(&got, "bot"),
        Some(""),
        "a remote bot's message is tagged: {got}"
    );
    alice.send("PRIVMSG #x :everyone").await;
    let next = bob.expect(|l| l.contains(" PRIVMSG ")).await;
    assert_eq!(next, ":alice!~alice@127.0.0.1 PRIVMSG #x :everyone");

    // A rename on node 0: RENAME to carol (the capability), the fallback to bob.
    ask(&mut alice, "RENAME #x #y :moving").await;
    let renamed = carol.expect(|l| l.contains(" RENAME ")).await;
    assert!(
        renamed.ends_with(":alice!~alice@127.0.0.1 RENAME #x #y :moving"),
        "{renamed}"
    );
    bob.expect_next(":bob!~bob@127.0.0.1 PART #x :moving").await;
    bob.expect_next(":bob!~bob@127.0.0.1 JOIN #y").await;
    let names = bob.expect(|l| command_of(l) == "353").await;
    assert_eq!(names, ":n2.parley.local 353 bob = #y :@alice bob @carol");
    // And node 1 knows the channel by its new name.
    bob.expect(|l| command_of(l) == "366").await;
    let modes = ask(&mut bob, "MODE #y +b").await;
    assert!(modes[0].contains(" 367 bob #y $m:bob!*@* "), "{modes:?}");
}
