//! `OPER <name> <password>` against operator blocks (`[[operators.opers]]`), line by line on the
//! real server: the right password gets 381 and the MODE, a wrong one or an unknown name the same
//! 464, a block's TLS / host / account rules 491, repeated failures the login lockout; then what
//! an operator is to others (WHOIS 313, WHO's `*`), KILL as the spec has it, and INFO. Every
//! test quotes the sentence of modern.ircdocs.horse it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{account, TestServer};
use parley_server::config::{OperBlock, OperBlockClass};
use parley_server::Config;

const PASSWORD: &str = "correct horse battery";

fn block(name: &str, class: OperBlockClass) -> OperBlock {
    OperBlock {
        name: name.into(),
        password_hash: parley_server::accounts::hash_password(PASSWORD).expect("hash"),
        class,
        require_tls: false,
        hosts: Vec::new(),
        account: String::new(),
    }
}

/// No default room, so what a client reads is only the answers to what it sent.
fn apart(config: &mut Config) {
    config.server.default_channel = String::new();
}

/// "If the client does not send the correct password for the given name, the server replies
/// with an `ERR_PASSWDMISMATCH` message and the request is not successful." / "If the supplied
/// name and password are both correct, and the user is connecting from a valid host, the
/// `RPL_YOUREOPER` message is sent to the user. The user will also receive a MODE message
/// indicating their new user modes" (modern.ircdocs.horse, OPER).
#[tokio::test]
async fn the_right_password_makes_an_operator_and_a_wrong_one_or_name_does_not() {
    let server = TestServer::start_with(|c| {
        apart(c);
        c.operators.opers = vec![block("alice", OperBlockClass::Admin)];
    })
    .await;
    let mut al = server.client("al").await;

    al.send("OPER alice hunter2hunter2").await;
    assert_eq!(
        al.sync().await,
        [":parley.local 464 al :Password incorrect"]
    );
    // An unknown name is answered as a wrong password, so names cannot be found by trying.
    al.send(&format!("OPER nobody :{PASSWORD}")).await;
    assert_eq!(
        al.sync().await,
        [":parley.local 464 al :Password incorrect"]
    );
    // "Both parameters are required for the command to be successful."
    al.send("OPER alice").await;
    assert_eq!(
        al.sync().await,
        [":parley.local 461 al OPER :Not enough parameters"]
    );

    al.send(&format!("OPER ALICE :{PASSWORD}")).await;
    assert_eq!(
        al.sync().await,
        [
            ":parley.local 381 al :You are now an IRC operator (admin)",
            ":al!~al@127.0.0.1 MODE al :+ow",
        ]
    );
    // An admin from its block may do what admins do (D-lines are not a moderator's).
    al.send("STATS d").await;
    assert_eq!(
        al.sync().await,
        [":parley.local 219 al d :End of /STATS report"]
    );
    // A second OPER is answered again, and changes nothing.
    al.send(&format!("OPER alice :{PASSWORD}")).await;
    assert_eq!(
        al.sync().await,
        [":parley.local 381 al :You are now an IRC operator (admin)"]
    );
}

/// A block's class decides what its operator may do: a moderator block gets a moderator's
/// permissions only.
#[tokio::test]
async fn a_moderator_block_gives_only_a_moderators_permissions() {
    let server = TestServer::start_with(|c| {
        apart(c);
        c.operators.opers = vec![block("mo", OperBlockClass::Moderator)];
    })
    .await;
    let mut mo = server.client("mo").await;
    mo.send(&format!("OPER mo :{PASSWORD}")).await;
    assert_eq!(
        mo.sync().await,
        [
            ":parley.local 381 mo :You are now an IRC operator (moderator)",
            ":mo!~mo@127.0.0.1 MODE mo :+ow",
        ]
    );
    mo.send("STATS d").await;
    assert_eq!(
        mo.sync().await,
        [":parley.local 481 mo :Permission Denied - You do not have the required operator privileges"]
    );
}

/// "If the client is not connecting from a valid host for the given name, the server replies
/// with an `ERR_NOOPERHOST` message and the request is not successful." A block's TLS, host and
/// account rules are its valid hosts; its password is not even checked from elsewhere.
#[tokio::test]
async fn a_block_is_refused_with_491_where_its_rules_do_not_let_the_client_in() {
    let server = TestServer::start_with(|c| {
        apart(c);
        let mut tls = block("tls", OperBlockClass::Admin);
        tls.require_tls = true;
        let mut far = block("far", OperBlockClass::Admin);
        far.hosts = vec!["*@192.0.2.*".into(), "198.51.100.0/24".into()];
        let mut boss = block("boss", OperBlockClass::Moderator);
        boss.account = "boss".into();
        let mut near = block("near", OperBlockClass::Moderator);
        near.hosts = vec!["10.0.0.0/8".into(), "~near@127.0.0.*".into()];
        c.operators.opers = vec![tls, far, boss, near];
    })
    .await;
    let mut guest = server.client("near").await;
    for name in ["tls", "far", "boss"] {
        guest.send(&format!("OPER {name} :{PASSWORD}")).await;
        assert_eq!(
            guest.sync().await,
            [":parley.local 491 near :No O-lines for your host"],
            "{name}"
        );
    }
    guest.send("OPER far wrong-password").await;
    assert_eq!(
        guest.sync().await,
        [":parley.local 491 near :No O-lines for your host"]
    );
    guest.send(&format!("OPER near :{PASSWORD}")).await;
    assert_eq!(
        guest.sync().await,
        [
            ":parley.local 381 near :You are now an IRC operator (moderator)",
            ":near!~near@127.0.0.1 MODE near :+ow",
        ]
    );

    // Logged in to the block's account, the same client may use it.
    let mut boss = account(server.addr, "boss").await;
    boss.send(&format!("OPER boss :{PASSWORD}")).await;
    assert_eq!(
        boss.sync().await,
        [
            ":parley.local 381 boss :You are now an IRC operator (moderator)",
            ":boss!~boss@127.0.0.1 MODE boss :+ow",
        ]
    );
}

/// Failed OPERs count against the login lockout: past `accounts.max_failures` even the right
/// password is refused until the lockout ends.
#[tokio::test]
async fn repeated_failures_lock_the_name_out() {
    let server = TestServer::start_with(|c| {
        apart(c);
        c.accounts.max_failures = 2;
        c.operators.opers = vec![block("alice", OperBlockClass::Admin)];
    })
    .await;
    let mut al = server.client("al").await;
    for _ in 0..2 {
        al.send("OPER alice wrong-password").await;
        assert_eq!(
            al.sync().await,
            [":parley.local 464 al :Password incorrect"]
        );
    }
    al.send(&format!("OPER alice :{PASSWORD}")).await;
    let answer = al.sync().await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(
        answer[0].starts_with(":parley.local 464 al :Too many failed attempts; try again in "),
        "{answer:?}"
    );
    // Another name is not locked by alice's failures.
    al.send("OPER bob wrong-password").await;
    assert_eq!(
        al.sync().await,
        [":parley.local 464 al :Password incorrect"]
    );
}

/// "When a `KILL` command is used, the client being killed receives the `KILL` message, and the
/// `<source>` of the message SHOULD be the operator who performed the command. The user being
/// killed and every user sharing a channel with them receives a QUIT message [...] typically
/// [of] the form: `\"Killed (<killer> (<reason>))\"` [...] The user being killed then receives
/// the ERROR message, typically containing a `<reason>` of `\"Closing Link: <servername>
/// (Killed (<killer> (<reason>)))\"`." Others see the operator in WHOIS (313) and WHO (`*`).
#[tokio::test]
async fn kill_as_the_spec_has_it_and_an_operator_as_others_see_one() {
    let server = TestServer::start_with(|c| {
        apart(c);
        c.operators.opers = vec![block("root", OperBlockClass::Admin)];
    })
    .await;
    let [mut root, mut victim, mut watcher] = server.clients(["root", "victim", "watcher"]).await;
    root.send(&format!("OPER root :{PASSWORD}")).await;
    root.sync().await;

    // "RPL_WHOISOPERATOR (313) `<client> <nick> :is an IRC operator`"
    watcher.send("WHOIS root").await;
    let whois = watcher.sync().await;
    assert!(
        whois.contains(&":parley.local 313 watcher root :is an IRC operator (admin)".to_string()),
        "{whois:?}"
    );
    // RPL_WHOREPLY: "`<client> <channel> <username> <host> <server> <nick> <flags> :<hopcount>
    // <realname>`"; flags: "Then, if the user is a server operator, the ASTERISK ('*', 0x2A)".
    watcher.send("WHO root").await;
    assert_eq!(
        watcher.sync().await,
        [
            ":parley.local 352 watcher * ~root 127.0.0.1 parley.local root H* :0 Test root",
            ":parley.local 315 watcher root :End of WHO list",
        ]
    );

    victim.send("JOIN #room").await;
    victim.sync().await;
    watcher.send("JOIN #room").await;
    watcher.sync().await;
    victim.sync().await;

    root.send("KILL victim :be nice").await;
    assert_eq!(
        root.sync().await,
        [":parley.local NOTICE root :Killed victim"]
    );
    assert_eq!(
        victim.expect_closed().await,
        [
            ":root!~root@127.0.0.1 KILL victim :be nice",
            "ERROR :Closing Link: parley.local (Killed (root (be nice)))",
        ]
    );
    watcher
        .expect(|l| l == ":victim!~victim@127.0.0.1 QUIT :Killed (root (be nice))")
        .await;
}

/// "Upon receiving an `INFO` command, the server will respond with zero or more `RPL_INFO`
/// replies, followed by one `RPL_ENDOFINFO` numeric." (modern.ircdocs.horse, INFO)
#[tokio::test]
async fn info_describes_the_server_and_ends_with_374() {
    let server = TestServer::start_with(apart).await;
    let mut c = server.client("curious").await;
    c.send("INFO").await;
    let lines = c.sync().await;
    let (last, info) = lines.split_last().expect("an answer");
    assert_eq!(last, ":parley.local 374 curious :End of INFO list");
    assert!(info.len() >= 3, "{lines:?}");
    assert!(info
        .iter()
        .all(|l| l.starts_with(":parley.local 371 curious :")));
    assert_eq!(
        info[0],
        format!(
            ":parley.local 371 curious :parley.local runs {}, the Parley chat server (parleyd)",
            parley_server::VERSION
        )
    );
    c.send("INFO elsewhere.example").await;
    assert_eq!(
        c.sync().await,
        [":parley.local 402 curious elsewhere.example :No such server"]
    );
}

/// Over the WebSocket transport (TLS, so a `require_tls` block lets it in): the same OPER, the
/// same 381 and MODE as over TCP.
#[tokio::test]
async fn oper_over_a_websocket_counts_as_tls() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|c| {
        apart(c);
        c.web.listen = vec!["127.0.0.1:0".into()];
        let mut tls = block("tls", OperBlockClass::Admin);
        tls.require_tls = true;
        c.operators.opers = vec![tls];
    })
    .await;
    let web = server.running.web_addrs()[0];
    let stream = common::tls_connect(
        web,
        common::client_config_trusting(&server.generated_cert_pem()),
    )
    .await
    .expect("TLS handshake with the web listener");
    let request = format!("wss://localhost:{}/ws", web.port())
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    for line in ["NICK webop", "USER webop 0 * :Web Op"] {
        ws.send(Message::text(line)).await.expect("send");
    }
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains(" 376 ") || l.contains(" 422 "))
    {
        seen.push(next_text(&mut ws).await);
    }
    ws.send(Message::text(format!("OPER tls :{PASSWORD}")))
        .await
        .expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        ":parley.local 381 webop :You are now an IRC operator (admin)"
    );
    assert_eq!(
        next_text(&mut ws).await,
        ":webop!~webop@127.0.0.1 MODE webop :+ow"
    );
}

/// The next IRC line on a WebSocket, text or binary.
async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Binary(data) => return String::from_utf8_lossy(&data).into_owned(),
            _ => continue,
        }
    }
}

/// WALLOPS goes "to all currently connected users who have set the 'w' user mode for
/// themselves" (modern.ircdocs.horse, WALLOPS): in a cluster, on every node.
#[tokio::test]
async fn wallops_reaches_w_users_on_every_node() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, c| {
        c.operators.opers = vec![block("root", OperBlockClass::Admin)];
    })
    .await
    else {
        return;
    };
    let mut root = cluster.client(0, "root").await;
    let mut near = cluster.client(0, "near").await;
    let mut far = cluster.client(1, "far").await;
    let mut deaf = cluster.client(1, "deaf").await;
    far.send("MODE far +w").await;
    far.sync().await;
    near.send("MODE near +w").await;
    near.sync().await;
    root.await_whois("far").await;
    root.send(&format!("OPER root :{PASSWORD}")).await;
    root.sync().await;
    root.send("WALLOPS :maintenance at noon").await;
    root.sync().await;
    let wallops = ":root!~root@127.0.0.1 WALLOPS :maintenance at noon";
    near.expect(|l| l == wallops).await;
    far.expect(|l| l == wallops).await;
    // deaf has no +w; by the time it sees far's next message, a WALLOPS would have come first.
    far.send("PRIVMSG deaf :after").await;
    far.sync().await;
    let after = deaf
        .expect(|l| l.ends_with("PRIVMSG deaf :after") || l.contains("WALLOPS"))
        .await;
    assert!(after.ends_with("PRIVMSG deaf :after"), "{after}");
}

/// `parleyd oper hash`, the real binary: the password from standard input (never an argument),
/// one Argon2id PHC line out that a block then accepts, and the password nowhere in what it
/// prints; a password the account rules refuse prints no hash.
#[tokio::test]
async fn parleyd_oper_hash_prints_a_hash_an_operator_block_accepts() {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let run = |input: &'static str| {
        let dir = dir.path().to_path_buf();
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
                .arg("--data-dir")
                .arg(&dir)
                .args(["oper", "hash"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("parleyd runs");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).await.expect("write");
            drop(stdin);
            let out = tokio::time::timeout(common::TIMEOUT, child.wait_with_output())
                .await
                .expect("parleyd ends in time")
                .expect("output");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, stdout, stderr) = run("correct horse battery\n").await;
    assert!(ok, "{stderr}");
    let hash = stdout.trim_end().to_owned();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains("horse") && !stderr.contains("horse"));

    let (ok, stdout, stderr) = run("short\n").await;
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("too short"), "{stderr}");

    let server = TestServer::start_with(|c| {
        apart(c);
        let mut printed = block("printed", OperBlockClass::Moderator);
        printed.password_hash = hash;
        c.operators.opers = vec![printed];
    })
    .await;
    let mut c = server.client("printed").await;
    c.send(&format!("OPER printed :{PASSWORD}")).await;
    assert_eq!(
        c.sync().await,
        [
            ":parley.local 381 printed :You are now an IRC operator (moderator)",
            ":printed!~printed@127.0.0.1 MODE printed :+ow",
        ]
    );
}
