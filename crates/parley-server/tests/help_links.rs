//! `HELP`/`HELPOP` and `LINKS` against the real server, reply by reply as modern.ircdocs.horse
//! gives them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;

/// "When receiving a HELP command, servers MUST either: reply with a single ERR_HELPNOTFOUND
/// message; or reply with a single RPL_HELPSTART message, then arbitrarily many RPL_HELPTXT
/// messages, then a single RPL_ENDOFHELP." "The RPL_HELPSTART message SHOULD be some sort of
/// title and the first RPL_HELPTXT message SHOULD be empty."
#[tokio::test]
async fn help_answers_with_a_topic_or_one_not_found() {
    let server = TestServer::start().await;
    let mut c = server.client("hugo").await;
    c.send("HELP").await;
    assert_eq!(
        c.sync().await,
        [
            ":parley.local 704 hugo * :** Parley help **",
            ":parley.local 705 hugo * :",
            ":parley.local 705 hugo * :Send HELP <command> for help on one command, for example HELP JOIN.",
            ":parley.local 706 hugo * :HELP USERCMDS lists the commands everyone may use, HELP OPERCMDS the operators' ones.",
        ]
    );
    // "The <subject> MUST be the one requested by the client, but may be casefolded".
    c.send("HELP join").await;
    assert_eq!(
        c.sync().await,
        [
            ":parley.local 704 hugo JOIN :JOIN <channel>[,<channel>...] [<key>[,<key>...]]",
            ":parley.local 705 hugo JOIN :",
            ":parley.local 705 hugo JOIN :Joins channels, creating those that do not exist (you become their operator).",
            ":parley.local 706 hugo JOIN :JOIN 0 leaves every channel you are in.",
        ]
    );
    // HELPOP is the same command for clients that send it.
    c.send("HELPOP PRIVMSG").await;
    let lines = c.sync().await;
    assert_eq!(
        lines.first().map(String::as_str),
        Some(":parley.local 704 hugo PRIVMSG :PRIVMSG <target>[,<target>...] :<text>")
    );
    assert!(lines
        .last()
        .is_some_and(|l| l.starts_with(":parley.local 706 hugo PRIVMSG :")));
    // An unknown subject: one 524; one that would be an invalid parameter shows as `*`.
    c.send("HELP frobnicate").await;
    assert_eq!(
        c.sync().await,
        [":parley.local 524 hugo FROBNICATE :No help available on this topic"]
    );
    c.send("HELP :unknown subject").await;
    assert_eq!(
        c.sync().await,
        [":parley.local 524 hugo * :No help available on this topic"]
    );
}

/// The indexes list every command, and each listed command has its own help.
#[tokio::test]
async fn every_listed_command_has_help() {
    let server = TestServer::start().await;
    let mut c = server.client("iris").await;
    let mut listed = Vec::new();
    for index in ["USERCMDS", "OPERCMDS"] {
        c.send(&format!("HELP {index}")).await;
        for line in c.sync().await {
            assert!(line.starts_with(":parley.local 70"), "{line}");
            let text = line.split_once(&format!(" {index} :")).expect("subject").1;
            listed.extend(
                text.split([' ', ':'])
                    .filter(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_uppercase()))
                    .map(str::to_string),
            );
        }
    }
    assert!(listed.len() > 40, "{listed:?}");
    for command in listed {
        c.send(&format!("HELP {command}")).await;
        let lines = c.sync().await;
        assert!(
            lines[0].starts_with(&format!(":parley.local 704 iris {command} :")),
            "{command}: {lines:#?}"
        );
    }
}

/// "With LINKS, a user can list all servers which are known by the server answering the query,
/// usually including the server itself. [...] a server MUST send replies back using zero or
/// more RPL_LINKS messages and mark the end of the list using a RPL_ENDOFLINKS message."
/// RPL_LINKS is `<client> * <server> :<hopcount> <server info>`.
#[tokio::test]
async fn links_lists_this_server() {
    let server = TestServer::start().await;
    let mut c = server.client("lin").await;
    c.send("LINKS").await;
    assert_eq!(
        c.sync().await,
        [
            ":parley.local 364 lin * parley.local :0 Parley (Parley)",
            ":parley.local 365 lin * :End of /LINKS list",
        ]
    );
}

/// "With LINKS, a user can list all servers which are known by the server answering the
/// query": in a cluster, the node answering lists itself and the other nodes it hears from.
#[tokio::test]
async fn links_lists_the_cluster_nodes_heard_from() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    // Both nodes have seen each other's users once alice and bob have talked.
    let (mut alice, _bob) = cluster.alice_and_bob_talk("hello").await;
    alice.send("LINKS").await;
    assert_eq!(
        alice.sync().await,
        [
            ":n1.parley.local 364 alice * n1.parley.local :0 Parley (Parley)",
            ":n1.parley.local 364 alice * n2.parley.local :1 Parley (Parley cluster node n2)",
            ":n1.parley.local 365 alice * :End of /LINKS list",
        ]
    );
}
