//! Channel commands against the real server: JOIN, PART, TOPIC, NAMES, LIST, INVITE, KICK and
//! MODE (channel and user), with the exact lines every member sees and the refusals' numerics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{with_command, Client, TestServer};

/// Each client joins `channel` in turn (seeing its own JOIN), then all are drained.
async fn join_all(channel: &str, members: &mut [&mut Client]) {
    for client in members.iter_mut() {
        client.send(&format!("JOIN {channel}")).await;
        let lines = client.sync().await;
        let own = format!(":{} JOIN {channel}", source(&client.nick));
        assert!(lines.contains(&own), "{}: {lines:?}", client.nick);
    }
    for client in members.iter_mut() {
        client.sync().await;
    }
}

/// Send a line and return everything it caused for the sender.
async fn ask(client: &mut Client, line: &str) -> Vec<String> {
    client.send(line).await;
    client.sync().await
}

async fn assert_quiet(client: &mut Client) {
    let lines = client.sync().await;
    assert!(lines.is_empty(), "{} got {lines:?}", client.nick);
}

fn source(nick: &str) -> String {
    format!("{nick}!~{nick}@127.0.0.1")
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|l| l.to_string()).collect()
}

/// A unix timestamp in a reply, checked to be recent.
fn assert_recent(timestamp: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at: u64 = timestamp.parse().expect("a unix timestamp");
    assert!(
        at <= now && now - at < 120,
        "{at} is not recent (now {now})"
    );
}

// ---------------------------------------------------------------------------------------------
// JOIN

#[tokio::test]
async fn join_creates_channel_with_creator_as_op() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    assert_eq!(
        ask(&mut alice, "JOIN #new").await,
        lines(&[
            ":alice!~alice@127.0.0.1 JOIN #new",
            ":parley.local 353 alice = #new :@alice",
            ":parley.local 366 alice #new :End of /NAMES list",
        ])
    );
}

#[tokio::test]
async fn second_joiner_is_seen_by_the_first() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #Room").await;
    // A different case reaches the same channel, shown as its creator spelled it.
    assert_eq!(
        ask(&mut bob, "JOIN #room").await,
        lines(&[
            ":bob!~bob@127.0.0.1 JOIN #Room",
            ":parley.local 353 bob = #Room :@alice bob",
            ":parley.local 366 bob #Room :End of /NAMES list",
        ])
    );
    assert_eq!(
        alice.sync().await,
        lines(&[":bob!~bob@127.0.0.1 JOIN #Room"])
    );
}

#[tokio::test]
async fn join_several_channels_at_once() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    let got = ask(&mut alice, "JOIN #a,#b").await;
    assert_eq!(
        with_command(&got, "JOIN"),
        vec![
            ":alice!~alice@127.0.0.1 JOIN #a",
            ":alice!~alice@127.0.0.1 JOIN #b"
        ]
    );
    assert!(got.contains(&":parley.local 366 alice #a :End of /NAMES list".to_string()));
    assert!(got.contains(&":parley.local 366 alice #b :End of /NAMES list".to_string()));
}

#[tokio::test]
async fn join_keys_go_with_channels_in_order() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #a,#b").await;
    ask(&mut alice, "MODE #a +k k1").await;
    // Without the key only the unkeyed channel lets bob in.
    let refused = ask(&mut bob, "JOIN #a,#b").await;
    assert_eq!(
        refused[0],
        ":parley.local 475 bob #a :Cannot join channel (+k)"
    );
    assert!(refused.contains(&":bob!~bob@127.0.0.1 JOIN #b".to_string()));
    ask(&mut bob, "PART #b").await;
    let got = ask(&mut bob, "JOIN #a,#b k1").await;
    assert_eq!(
        with_command(&got, "JOIN"),
        vec![":bob!~bob@127.0.0.1 JOIN #a", ":bob!~bob@127.0.0.1 JOIN #b"]
    );
}

#[tokio::test]
async fn join_zero_parts_every_channel() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #a,#b").await;
    join_all("#a", &mut [&mut bob]).await;
    alice.sync().await;
    let got = ask(&mut alice, "JOIN 0").await;
    let mut parts: Vec<&String> = with_command(&got, "PART");
    parts.sort();
    assert_eq!(
        parts,
        vec![
            ":alice!~alice@127.0.0.1 PART #a :Left all channels",
            ":alice!~alice@127.0.0.1 PART #b :Left all channels",
            ":alice!~alice@127.0.0.1 PART #lobby :Left all channels",
        ]
    );
    assert_eq!(got.len(), 3, "{got:?}");
    let seen = bob.sync().await;
    assert!(seen.contains(&":alice!~alice@127.0.0.1 PART #a :Left all channels".to_string()));
    // She is on nothing now, so a PART anywhere is refused.
    assert_eq!(
        ask(&mut alice, "PART #a").await,
        lines(&[":parley.local 442 alice #a :You're not on that channel"])
    );
}

#[tokio::test]
async fn join_invalid_names_get_403() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    assert_eq!(
        ask(&mut alice, "JOIN nochan").await,
        lines(&[":parley.local 403 alice nochan :No such channel"])
    );
    assert_eq!(
        ask(&mut alice, "JOIN #").await,
        lines(&[":parley.local 403 alice # :No such channel"])
    );
    let long = format!("#{}", "x".repeat(60));
    assert_eq!(
        ask(&mut alice, &format!("JOIN {long}")).await,
        vec![format!(":parley.local 403 alice {long} :No such channel")]
    );
}

#[tokio::test]
async fn join_past_channels_per_user_gets_405() {
    let server = TestServer::start_with(|c| c.limits.channels_per_user = 2).await;
    let [mut alice] = server.clients(["alice"]).await;
    // #lobby counts: one more fits, the next does not.
    let got = ask(&mut alice, "JOIN #one,#two").await;
    assert!(got.contains(&":alice!~alice@127.0.0.1 JOIN #one".to_string()));
    assert_eq!(
        got.last().unwrap(),
        ":parley.local 405 alice #two :You have joined too many channels"
    );
    assert_eq!(with_command(&got, "JOIN").len(), 1, "{got:?}");
    ask(&mut alice, "PART #one").await;
    let again = ask(&mut alice, "JOIN #two").await;
    assert_eq!(again[0], ":alice!~alice@127.0.0.1 JOIN #two");
}

#[tokio::test]
async fn join_full_channel_gets_471() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "MODE #c +l 2").await;
    join_all("#c", &mut [&mut bob]).await;
    assert_eq!(
        ask(&mut carol, "JOIN #c").await,
        lines(&[":parley.local 471 carol #c :Cannot join channel (+l)"])
    );
    ask(&mut alice, "MODE #c -l").await;
    let got = ask(&mut carol, "JOIN #c").await;
    assert_eq!(got[0], ":carol!~carol@127.0.0.1 JOIN #c");
}

#[tokio::test]
async fn invite_only_needs_an_invite_and_the_invite_is_used_once() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "MODE #c +i").await;
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        lines(&[":parley.local 473 bob #c :Cannot join channel (+i)"])
    );
    assert_eq!(
        ask(&mut alice, "INVITE bob #c").await,
        lines(&[":parley.local 341 alice bob #c"])
    );
    assert_eq!(
        bob.sync().await,
        lines(&[":alice!~alice@127.0.0.1 INVITE bob #c"])
    );
    let got = ask(&mut bob, "JOIN #c").await;
    assert_eq!(got[0], ":bob!~bob@127.0.0.1 JOIN #c");
    ask(&mut bob, "PART #c").await;
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        lines(&[":parley.local 473 bob #c :Cannot join channel (+i)"])
    );
}

#[tokio::test]
async fn banned_mask_gets_474() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "MODE #c +b bob").await;
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        lines(&[":parley.local 474 bob #c :Cannot join channel (+b)"])
    );
    let got = ask(&mut carol, "JOIN #c").await;
    assert_eq!(got[0], ":carol!~carol@127.0.0.1 JOIN #c");
    // A host mask catches everyone from that host.
    ask(&mut alice, "MODE #c -b+b bob *!*@127.0.0.1").await;
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        lines(&[":parley.local 474 bob #c :Cannot join channel (+b)"])
    );
}

#[tokio::test]
async fn wrong_or_missing_key_gets_475() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "MODE #c +k sesame").await;
    for attempt in ["JOIN #c", "JOIN #c wrong", "JOIN #c SESAME"] {
        assert_eq!(
            ask(&mut bob, attempt).await,
            lines(&[":parley.local 475 bob #c :Cannot join channel (+k)"]),
            "{attempt}"
        );
    }
    let got = ask(&mut bob, "JOIN #c sesame").await;
    assert_eq!(got[0], ":bob!~bob@127.0.0.1 JOIN #c");
}

#[tokio::test]
async fn join_without_params_gets_461() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    assert_eq!(
        ask(&mut alice, "JOIN").await,
        lines(&[":parley.local 461 alice JOIN :Not enough parameters"])
    );
}

#[tokio::test]
async fn joining_twice_is_silent() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(ask(&mut bob, "JOIN #c").await, Vec::<String>::new());
    assert_eq!(ask(&mut bob, "JOIN #C").await, Vec::<String>::new());
    assert_quiet(&mut alice).await;
}

// ---------------------------------------------------------------------------------------------
// PART

#[tokio::test]
async fn part_is_seen_by_every_member_with_the_reason() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    let part = ":bob!~bob@127.0.0.1 PART #c :off to lunch";
    assert_eq!(ask(&mut bob, "PART #c :off to lunch").await, lines(&[part]));
    assert_eq!(alice.sync().await, lines(&[part]));
    assert_eq!(carol.sync().await, lines(&[part]));
    // Without a reason the line has none.
    assert_eq!(
        ask(&mut carol, "PART #c").await,
        lines(&[":carol!~carol@127.0.0.1 PART #c"])
    );
    assert_eq!(
        alice.sync().await,
        lines(&[":carol!~carol@127.0.0.1 PART #c"])
    );
    // Bob, gone already, saw nothing of it.
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn part_errors() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut bob, "PART #nowhere").await,
        lines(&[":parley.local 403 bob #nowhere :No such channel"])
    );
    assert_eq!(
        ask(&mut bob, "PART #c").await,
        lines(&[":parley.local 442 bob #c :You're not on that channel"])
    );
    assert_eq!(
        ask(&mut bob, "PART").await,
        lines(&[":parley.local 461 bob PART :Not enough parameters"])
    );
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn empty_channel_disappears() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #gone").await;
    ask(&mut alice, "TOPIC #gone :still here").await;
    assert_eq!(
        with_command(&ask(&mut bob, "LIST #gone").await, "322"),
        vec![":parley.local 322 bob #gone 1 :still here"]
    );
    ask(&mut alice, "PART #gone").await;
    assert_eq!(
        ask(&mut bob, "LIST #gone").await,
        lines(&[
            ":parley.local 321 bob Channel :Users  Name",
            ":parley.local 323 bob :End of /LIST",
        ])
    );
    // Joining again makes a brand new channel: bob is its op and the topic is gone.
    assert_eq!(
        ask(&mut bob, "JOIN #gone").await,
        lines(&[
            ":bob!~bob@127.0.0.1 JOIN #gone",
            ":parley.local 353 bob = #gone :@bob",
            ":parley.local 366 bob #gone :End of /NAMES list",
        ])
    );
}

#[tokio::test]
async fn part_several_channels_at_once() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#a", &mut [&mut alice, &mut bob]).await;
    join_all("#b", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut bob, "PART #a,#b :done").await,
        lines(&[
            ":bob!~bob@127.0.0.1 PART #a :done",
            ":bob!~bob@127.0.0.1 PART #b :done",
        ])
    );
    assert_eq!(
        alice.sync().await,
        lines(&[
            ":bob!~bob@127.0.0.1 PART #a :done",
            ":bob!~bob@127.0.0.1 PART #b :done",
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// TOPIC

#[tokio::test]
async fn topic_set_and_query() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut alice, "TOPIC #c").await,
        lines(&[":parley.local 331 alice #c :No topic is set"])
    );
    let change = ":alice!~alice@127.0.0.1 TOPIC #c :hello world";
    assert_eq!(
        ask(&mut alice, "TOPIC #c :hello world").await,
        lines(&[change])
    );
    assert_eq!(bob.sync().await, lines(&[change]));

    let got = ask(&mut bob, "TOPIC #c").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], ":parley.local 332 bob #c :hello world");
    let when = got[1]
        .strip_prefix(":parley.local 333 bob #c alice ")
        .expect("333 with the setter");
    assert_recent(when);

    // A joiner gets the topic between its JOIN and the names.
    let joined = ask(&mut carol, "JOIN #c").await;
    assert_eq!(joined[0], ":carol!~carol@127.0.0.1 JOIN #c");
    assert_eq!(joined[1], ":parley.local 332 carol #c :hello world");
    assert!(joined[2].starts_with(":parley.local 333 carol #c alice "));
    assert_eq!(joined[3], ":parley.local 353 carol = #c :@alice bob carol");
}

#[tokio::test]
async fn topic_can_be_cleared() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut alice, "TOPIC #c :temporary").await;
    bob.sync().await;
    let clear = ":alice!~alice@127.0.0.1 TOPIC #c :";
    assert_eq!(ask(&mut alice, "TOPIC #c :").await, lines(&[clear]));
    assert_eq!(bob.sync().await, lines(&[clear]));
    assert_eq!(
        ask(&mut bob, "TOPIC #c").await,
        lines(&[":parley.local 331 bob #c :No topic is set"])
    );
}

#[tokio::test]
async fn topic_lock_is_for_ops_until_lifted() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut bob, "TOPIC #c :mine now").await,
        lines(&[":parley.local 482 bob #c :You're not channel operator"])
    );
    assert_quiet(&mut alice).await;
    ask(&mut alice, "MODE #c -t").await;
    bob.sync().await;
    let change = ":bob!~bob@127.0.0.1 TOPIC #c :mine now";
    assert_eq!(ask(&mut bob, "TOPIC #c :mine now").await, lines(&[change]));
    assert_eq!(alice.sync().await, lines(&[change]));
}

#[tokio::test]
async fn topic_outside_the_channel() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "MODE #c -t").await;
    assert_eq!(
        ask(&mut bob, "TOPIC #c :drive-by").await,
        lines(&[":parley.local 442 bob #c :You're not on that channel"])
    );
    assert_eq!(
        ask(&mut bob, "TOPIC #nowhere :x").await,
        lines(&[":parley.local 403 bob #nowhere :No such channel"])
    );
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn topic_is_cut_to_topic_len() {
    let server = TestServer::start_with(|c| c.limits.topic_len = 10).await;
    let [mut alice] = server.clients(["alice"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "TOPIC #c :0123456789abcdef").await,
        lines(&[":alice!~alice@127.0.0.1 TOPIC #c :0123456789"])
    );
    let got = ask(&mut alice, "TOPIC #c").await;
    assert_eq!(got[0], ":parley.local 332 alice #c :0123456789");
}

// ---------------------------------------------------------------------------------------------
// NAMES

#[tokio::test]
async fn names_show_op_and_voice_prefixes() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    ask(&mut alice, "MODE #c +v bob").await;
    assert_eq!(
        carol.sync().await,
        lines(&[":alice!~alice@127.0.0.1 MODE #c +v bob"])
    );
    assert_eq!(
        ask(&mut carol, "NAMES #c").await,
        lines(&[
            ":parley.local 353 carol = #c :@alice +bob carol",
            ":parley.local 366 carol #c :End of /NAMES list",
        ])
    );
}

#[tokio::test]
async fn multi_prefix_shows_every_prefix() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut alice, "MODE #c +v alice").await;
    assert_eq!(
        with_command(&ask(&mut bob, "NAMES #c").await, "353"),
        vec![":parley.local 353 bob = #c :@alice bob"]
    );
    assert_eq!(
        ask(&mut bob, "CAP REQ :multi-prefix").await,
        lines(&[":parley.local CAP bob ACK :multi-prefix"])
    );
    assert_eq!(
        with_command(&ask(&mut bob, "NAMES #c").await, "353"),
        vec![":parley.local 353 bob = #c :@+alice bob"]
    );
}

/// The server keeps a channel's NAMES list between joins; every kind of change must still show.
#[tokio::test]
async fn names_follow_joins_nick_changes_modes_and_parts() {
    async fn names(client: &mut Client) -> Vec<String> {
        let reply = ask(client, "NAMES #c").await;
        with_command(&reply, "353")
            .into_iter()
            .map(|l| l.rsplit_once(" :").map_or("", |(_, n)| n).to_string())
            .collect()
    }
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(names(&mut alice).await, ["@alice bob"]);

    join_all("#c", &mut [&mut carol]).await;
    alice.sync().await;
    bob.sync().await;
    assert_eq!(names(&mut alice).await, ["@alice bob carol"]);

    ask(&mut bob, "NICK robert").await;
    carol.sync().await;
    assert_eq!(names(&mut alice).await, ["@alice robert carol"]);

    ask(&mut alice, "MODE #c +v carol").await;
    assert_eq!(names(&mut alice).await, ["@alice robert +carol"]);
    assert_eq!(names(&mut carol).await, ["@alice robert +carol"]);

    ask(&mut bob, "PART #c").await;
    assert_eq!(names(&mut alice).await, ["@alice +carol"]);
}

#[tokio::test]
async fn a_long_names_list_is_split_into_lines_under_the_limit() {
    let server = TestServer::start().await;
    let nicks: Vec<String> = (0..40)
        .map(|i| format!("member{i:02}-with-a-long-nick"))
        .collect();
    let mut members = Vec::new();
    for nick in &nicks {
        let mut client = server.client(nick).await;
        client.send("JOIN #big").await;
        client.sync().await;
        members.push(client);
    }
    let last = members.last_mut().expect("40 members");
    let reply = ask(last, "NAMES #big").await;
    let lines = with_command(&reply, "353");
    assert!(lines.len() >= 3, "{lines:?}");
    let mut shown = Vec::new();
    for line in &lines {
        assert!(line.len() + 2 <= 512, "{line}");
        let (_, names) = line.split_once(" :").expect("a trailing list");
        shown.extend(
            names
                .split(' ')
                .map(|n| n.trim_start_matches('@').to_string()),
        );
    }
    assert_eq!(shown, nicks);
    assert_eq!(
        reply.last().map(String::as_str),
        Some(":parley.local 366 member39-with-a-long-nick #big :End of /NAMES list")
    );
}

#[tokio::test]
async fn userhost_in_names_shows_full_sources() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut bob, "CAP REQ :userhost-in-names").await;
    assert_eq!(
        ask(&mut bob, "NAMES #c").await,
        lines(&[
            ":parley.local 353 bob = #c :@alice!~alice@127.0.0.1 bob!~bob@127.0.0.1",
            ":parley.local 366 bob #c :End of /NAMES list",
        ])
    );
}

#[tokio::test]
async fn names_for_unknown_channel_is_just_the_end() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    assert_eq!(
        ask(&mut alice, "NAMES #nowhere").await,
        lines(&[":parley.local 366 alice #nowhere :End of /NAMES list"])
    );
}

#[tokio::test]
async fn invisible_users_are_hidden_from_outsiders() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut bob, "MODE bob +i").await;
    assert_eq!(
        with_command(&ask(&mut carol, "NAMES #c").await, "353"),
        vec![":parley.local 353 carol = #c :@alice"]
    );
    assert_eq!(
        with_command(&ask(&mut alice, "NAMES #c").await, "353"),
        vec![":parley.local 353 alice = #c :@alice bob"]
    );
}

// ---------------------------------------------------------------------------------------------
// LIST

#[tokio::test]
async fn list_shows_member_counts_and_topics() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#a", &mut [&mut alice, &mut bob]).await;
    ask(&mut alice, "JOIN #b").await;
    ask(&mut alice, "TOPIC #a :about a").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "LIST").await,
        lines(&[
            ":parley.local 321 bob Channel :Users  Name",
            ":parley.local 322 bob #a 2 :about a",
            ":parley.local 322 bob #b 1 :",
            ":parley.local 322 bob #lobby 2 :",
            ":parley.local 323 bob :End of /LIST",
        ])
    );
}

#[tokio::test]
async fn list_filters_by_name() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    ask(&mut alice, "JOIN #a,#b,#c").await;
    assert_eq!(
        ask(&mut alice, "LIST #a,#C,#missing").await,
        lines(&[
            ":parley.local 321 alice Channel :Users  Name",
            ":parley.local 322 alice #a 1 :",
            ":parley.local 322 alice #c 1 :",
            ":parley.local 323 alice :End of /LIST",
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// INVITE

#[tokio::test]
async fn invite_tells_both_sides() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "INVITE BOB #c").await,
        lines(&[":parley.local 341 alice bob #c"])
    );
    assert_eq!(
        bob.sync().await,
        lines(&[":alice!~alice@127.0.0.1 INVITE bob #c"])
    );
}

#[tokio::test]
async fn invite_errors() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut alice, "INVITE nobody #c").await,
        lines(&[":parley.local 401 alice nobody :No such nick/channel"])
    );
    assert_eq!(
        ask(&mut carol, "INVITE bob #c").await,
        lines(&[":parley.local 442 carol #c :You're not on that channel"])
    );
    assert_eq!(
        ask(&mut alice, "INVITE bob #c").await,
        lines(&[":parley.local 443 alice bob #c :is already on channel"])
    );
    assert_eq!(
        ask(&mut alice, "INVITE carol").await,
        lines(&[":parley.local 461 alice INVITE :Not enough parameters"])
    );
    // On an invite-only channel only ops may invite; anyone may otherwise.
    ask(&mut alice, "MODE #c +i").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "INVITE carol #c").await,
        lines(&[":parley.local 482 bob #c :You're not channel operator"])
    );
    assert_quiet(&mut carol).await;
    ask(&mut alice, "MODE #c -i").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "INVITE carol #c").await,
        lines(&[":parley.local 341 bob carol #c"])
    );
    assert_eq!(
        carol.sync().await,
        lines(&[":bob!~bob@127.0.0.1 INVITE carol #c"])
    );
}

/// A member may invite on a `-i` channel, but only an operator's invite lets someone past a ban
/// (as `+I` does): otherwise any member could bring back whoever the operators banned.
#[tokio::test]
async fn only_an_operators_invite_overrides_a_ban() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut alice, "MODE #c +b carol").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "INVITE carol #c").await,
        lines(&[":parley.local 341 bob carol #c"])
    );
    carol.sync().await;
    assert_eq!(
        ask(&mut carol, "JOIN #c").await,
        lines(&[":parley.local 474 carol #c :Cannot join channel (+b)"])
    );
    assert_quiet(&mut alice).await;
    // The operator's invite is the exception a ban allows, once.
    assert_eq!(
        ask(&mut alice, "INVITE carol #c").await,
        lines(&[":parley.local 341 alice carol #c"])
    );
    carol.sync().await;
    let got = ask(&mut carol, "JOIN #c").await;
    assert_eq!(got[0], ":carol!~carol@127.0.0.1 JOIN #c");
    ask(&mut carol, "PART #c").await;
    assert_eq!(
        ask(&mut carol, "JOIN #c").await,
        lines(&[":parley.local 474 carol #c :Cannot join channel (+b)"])
    );
}

/// An operator who invited and was then deopped did so as an operator; a member's invite
/// followed by an operator's upgrades it (and the reverse does not downgrade it).
#[tokio::test]
async fn a_members_later_invite_does_not_weaken_an_operators() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut alice, "MODE #c +b carol").await;
    bob.sync().await;
    ask(&mut alice, "INVITE carol #c").await;
    ask(&mut bob, "INVITE carol #c").await;
    carol.sync().await;
    let got = ask(&mut carol, "JOIN #c").await;
    assert_eq!(got[0], ":carol!~carol@127.0.0.1 JOIN #c");
}

#[tokio::test]
async fn invite_to_an_away_user_says_so() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut bob, "AWAY :at lunch").await;
    assert_eq!(
        ask(&mut alice, "INVITE bob #c").await,
        lines(&[
            ":parley.local 341 alice bob #c",
            ":parley.local 301 alice bob :at lunch",
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// KICK

#[tokio::test]
async fn kick_is_seen_by_all_with_default_reason() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    let kick = ":alice!~alice@127.0.0.1 KICK #c bob :alice";
    assert_eq!(ask(&mut alice, "KICK #c bob").await, lines(&[kick]));
    assert_eq!(bob.sync().await, lines(&[kick]));
    assert_eq!(carol.sync().await, lines(&[kick]));
    let kick = ":alice!~alice@127.0.0.1 KICK #c carol :be nice";
    assert_eq!(
        ask(&mut alice, "KICK #c CAROL :be nice").await,
        lines(&[kick])
    );
    assert_eq!(carol.sync().await, lines(&[kick]));
    assert_eq!(
        with_command(&ask(&mut alice, "NAMES #c").await, "353"),
        vec![":parley.local 353 alice = #c :@alice"]
    );
}

#[tokio::test]
async fn kick_several_targets() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    assert_eq!(
        ask(&mut alice, "KICK #c bob,ghost,carol :bye").await,
        lines(&[
            ":alice!~alice@127.0.0.1 KICK #c bob :bye",
            ":parley.local 441 alice ghost #c :They aren't on that channel",
            ":alice!~alice@127.0.0.1 KICK #c carol :bye",
        ])
    );
    assert_eq!(
        carol.sync().await,
        lines(&[
            ":alice!~alice@127.0.0.1 KICK #c bob :bye",
            ":alice!~alice@127.0.0.1 KICK #c carol :bye",
        ])
    );
}

#[tokio::test]
async fn kick_errors() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut bob, "KICK #c alice").await,
        lines(&[":parley.local 482 bob #c :You're not channel operator"])
    );
    assert_eq!(
        ask(&mut alice, "KICK #c carol").await,
        lines(&[":parley.local 441 alice carol #c :They aren't on that channel"])
    );
    assert_eq!(
        ask(&mut carol, "KICK #c bob").await,
        lines(&[":parley.local 442 carol #c :You're not on that channel"])
    );
    assert_eq!(
        ask(&mut alice, "KICK #nowhere bob").await,
        lines(&[":parley.local 403 alice #nowhere :No such channel"])
    );
    assert_eq!(
        ask(&mut alice, "KICK #c").await,
        lines(&[":parley.local 461 alice KICK :Not enough parameters"])
    );
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn kicked_user_can_no_longer_speak() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    ask(&mut bob, "PRIVMSG #c :before").await;
    assert_eq!(
        alice.sync().await,
        lines(&[":bob!~bob@127.0.0.1 PRIVMSG #c :before"])
    );
    ask(&mut alice, "KICK #c bob :out").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :after").await,
        lines(&[":parley.local 404 bob #c :Cannot send to channel (+n)"])
    );
    assert_quiet(&mut alice).await;
}

// ---------------------------------------------------------------------------------------------
// MODE (channel)

#[tokio::test]
async fn mode_query_shows_defaults_and_creation_time() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    ask(&mut alice, "JOIN #c").await;
    let got = ask(&mut alice, "MODE #c").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], ":parley.local 324 alice #c +nt");
    assert_recent(
        got[1]
            .strip_prefix(":parley.local 329 alice #c ")
            .expect("329"),
    );
    assert_eq!(
        ask(&mut alice, "MODE #nowhere").await,
        lines(&[":parley.local 403 alice #nowhere :No such channel"])
    );
}

#[tokio::test]
async fn member_modes_are_announced_in_one_line() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    let change = ":alice!~alice@127.0.0.1 MODE #c +ov bob carol";
    assert_eq!(
        ask(&mut alice, "MODE #c +ov BOB carol").await,
        lines(&[change])
    );
    assert_eq!(bob.sync().await, lines(&[change]));
    assert_eq!(carol.sync().await, lines(&[change]));
    assert_eq!(
        with_command(&ask(&mut alice, "NAMES #c").await, "353"),
        vec![":parley.local 353 alice = #c :@alice @bob +carol"]
    );
    // Bob, an op now, takes it back from himself and hands carol the op.
    let change = ":bob!~bob@127.0.0.1 MODE #c -o+o bob carol";
    assert_eq!(
        ask(&mut bob, "MODE #c -o+o bob carol").await,
        lines(&[change])
    );
    assert_eq!(alice.sync().await, lines(&[change]));
    let seen = ask(&mut carol, "NAMES #c").await;
    assert_eq!(seen[0], change);
    assert_eq!(
        with_command(&seen, "353"),
        vec![":parley.local 353 carol = #c :@alice bob @carol"]
    );
}

#[tokio::test]
async fn moderated_channel_lets_only_voiced_and_ops_speak() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol]).await;
    ask(&mut alice, "MODE #c +mv carol").await;
    bob.sync().await;
    carol.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :can I talk?").await,
        lines(&[":parley.local 404 bob #c :Cannot send to channel (+m)"])
    );
    assert_eq!(
        ask(&mut carol, "PRIVMSG #c :I can").await,
        Vec::<String>::new()
    );
    ask(&mut alice, "PRIVMSG #c :so can I").await;
    assert_eq!(
        bob.sync().await,
        lines(&[
            ":carol!~carol@127.0.0.1 PRIVMSG #c :I can",
            ":alice!~alice@127.0.0.1 PRIVMSG #c :so can I",
        ])
    );
}

#[tokio::test]
async fn no_external_messages_blocks_outsiders_until_lifted() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :hello from outside").await,
        lines(&[":parley.local 404 bob #c :Cannot send to channel (+n)"])
    );
    assert_quiet(&mut alice).await;
    assert_eq!(
        ask(&mut alice, "MODE #c -n").await,
        lines(&[":alice!~alice@127.0.0.1 MODE #c -n"])
    );
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :hello from outside").await,
        Vec::<String>::new()
    );
    assert_eq!(
        alice.sync().await,
        lines(&[":bob!~bob@127.0.0.1 PRIVMSG #c :hello from outside"])
    );
}

#[tokio::test]
async fn key_and_limit_are_set_shown_and_removed() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "MODE #c +kl sesame 5").await,
        lines(&[":alice!~alice@127.0.0.1 MODE #c +kl sesame 5"])
    );
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":parley.local 324 alice #c +ntkl sesame 5"
    );
    // Outsiders learn that there is a key, not what it is.
    assert_eq!(
        ask(&mut bob, "MODE #c").await[0],
        ":parley.local 324 bob #c +ntkl * 5"
    );
    assert_eq!(
        ask(&mut alice, "MODE #c -k sesame").await,
        lines(&[":alice!~alice@127.0.0.1 MODE #c -k *"])
    );
    assert_eq!(
        ask(&mut alice, "MODE #c -l").await,
        lines(&[":alice!~alice@127.0.0.1 MODE #c -l"])
    );
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":parley.local 324 alice #c +nt"
    );
    assert_eq!(
        ask(&mut alice, "MODE #c +k :bad key").await,
        lines(&[":parley.local 525 alice #c :Key is not well-formed"])
    );
}

#[tokio::test]
async fn ban_list_add_show_remove() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    let end = ":parley.local 368 alice #c :End of channel ban list";
    assert_eq!(ask(&mut alice, "MODE #c +b").await, lines(&[end]));

    let add = ":alice!~alice@127.0.0.1 MODE #c +bb mallory!*@* *!*@10.0.0.1";
    assert_eq!(
        ask(&mut alice, "MODE #c +bb mallory *@10.0.0.1").await,
        lines(&[add])
    );
    assert_eq!(bob.sync().await, lines(&[add]));

    let listed = ask(&mut alice, "MODE #c b").await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (line, mask) in listed.iter().zip(["mallory!*@*", "*!*@10.0.0.1"]) {
        let when = line
            .strip_prefix(&format!(":parley.local 367 alice #c {mask} alice "))
            .unwrap_or_else(|| panic!("367 for {mask}: {line}"));
        assert_recent(when);
    }
    assert_eq!(listed[2], end);

    // Removal matches the normalized mask, whatever case it is given in.
    let remove = ":alice!~alice@127.0.0.1 MODE #c -b mallory!*@*";
    assert_eq!(
        ask(&mut alice, "MODE #c -b MALLORY").await,
        lines(&[remove])
    );
    assert_eq!(bob.sync().await, lines(&[remove]));
    assert_eq!(
        ask(&mut alice, "MODE #c -b mallory").await,
        Vec::<String>::new()
    );
    assert_eq!(
        with_command(&ask(&mut alice, "MODE #c +b").await, "367").len(),
        1
    );
}

#[tokio::test]
async fn ban_masks_that_would_break_the_line_are_refused() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    // A mask with a space (or an empty one) cannot be a middle parameter of the MODE line.
    assert_eq!(
        ask(&mut alice, "MODE #c +b :two words").await,
        Vec::<String>::new()
    );
    assert_eq!(ask(&mut alice, "MODE #c +b :").await, Vec::<String>::new());
    assert_quiet(&mut bob).await;
    assert_eq!(
        ask(&mut alice, "MODE #c +b").await,
        lines(&[":parley.local 368 alice #c :End of channel ban list"])
    );
}

#[tokio::test]
async fn at_most_six_parameter_modes_per_command() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "MODE #c +bbbbbbb m1 m2 m3 m4 m5 m6 m7").await,
        lines(&[
            ":alice!~alice@127.0.0.1 MODE #c +bbbbbb m1!*@* m2!*@* m3!*@* m4!*@* m5!*@* m6!*@*"
        ])
    );
    assert_eq!(
        with_command(&ask(&mut alice, "MODE #c +b").await, "367").len(),
        6
    );
}

#[tokio::test]
async fn unknown_mode_char_gets_472() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "MODE #c +zm").await,
        lines(&[
            ":alice!~alice@127.0.0.1 MODE #c +m",
            ":parley.local 472 alice z :is unknown mode char to me",
        ])
    );
}

#[tokio::test]
async fn non_op_cannot_change_modes() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    assert_eq!(
        ask(&mut bob, "MODE #c +mo bob").await,
        lines(&[":parley.local 482 bob #c :You're not channel operator"])
    );
    assert_eq!(
        ask(&mut carol, "MODE #c -n").await,
        lines(&[":parley.local 482 carol #c :You're not channel operator"])
    );
    assert_quiet(&mut alice).await;
    assert_eq!(
        ask(&mut bob, "MODE #c").await[0],
        ":parley.local 324 bob #c +nt"
    );
    // Anyone may look at the ban list.
    assert_eq!(
        ask(&mut carol, "MODE #c +b").await,
        lines(&[":parley.local 368 carol #c :End of channel ban list"])
    );
}

#[tokio::test]
async fn op_on_non_member_or_unknown_nick() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        ask(&mut alice, "MODE #c +o bob").await,
        lines(&[":parley.local 441 alice bob #c :They aren't on that channel"])
    );
    assert_eq!(
        ask(&mut alice, "MODE #c +v ghost").await,
        lines(&[":parley.local 401 alice ghost :No such nick/channel"])
    );
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn changes_that_change_nothing_are_not_announced() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    join_all("#c", &mut [&mut alice, &mut bob]).await;
    for noop in [
        "MODE #c +n",
        "MODE #c +nt",
        "MODE #c -mi",
        "MODE #c +o alice",
        "MODE #c -v bob",
        "MODE #c -l",
        "MODE #c -k",
        "MODE #c -b nobody",
    ] {
        assert_eq!(ask(&mut alice, noop).await, Vec::<String>::new(), "{noop}");
    }
    assert_quiet(&mut bob).await;
    // A repeat of a limit already set is a no-op too.
    ask(&mut alice, "MODE #c +l 9").await;
    bob.sync().await;
    assert_eq!(ask(&mut alice, "MODE #c +l 9").await, Vec::<String>::new());
    assert_quiet(&mut bob).await;
}

// ---------------------------------------------------------------------------------------------
// MODE (user)

#[tokio::test]
async fn user_mode_invisible() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        lines(&[":parley.local 221 alice +"])
    );
    assert_eq!(
        ask(&mut alice, "MODE alice +i").await,
        lines(&[":alice!~alice@127.0.0.1 MODE alice :+i"])
    );
    assert_eq!(ask(&mut alice, "MODE alice +i").await, Vec::<String>::new());
    assert_eq!(
        ask(&mut alice, "MODE ALICE").await,
        lines(&[":parley.local 221 alice +i"])
    );
    // Only the user hears of it.
    assert_quiet(&mut bob).await;
    assert_eq!(
        ask(&mut alice, "MODE alice -i").await,
        lines(&[":alice!~alice@127.0.0.1 MODE alice :-i"])
    );
}

#[tokio::test]
async fn user_mode_refusals() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = server.clients(["alice", "bob"]).await;
    assert_eq!(
        ask(&mut alice, "MODE bob +i").await,
        lines(&[":parley.local 502 alice :Cant change mode for other users"])
    );
    assert_eq!(
        ask(&mut alice, "MODE bob").await,
        lines(&[":parley.local 502 alice :Cant change mode for other users"])
    );
    assert_eq!(
        ask(&mut alice, "MODE ghost +i").await,
        lines(&[":parley.local 401 alice ghost :No such nick/channel"])
    );
    assert_eq!(
        ask(&mut alice, "MODE alice +z").await,
        lines(&[":parley.local 501 alice :Unknown MODE flag"])
    );
    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        lines(&[":parley.local 221 alice +"])
    );
    assert_eq!(
        ask(&mut alice, "MODE").await,
        lines(&[":parley.local 461 alice MODE :Not enough parameters"])
    );
}

// ---------------------------------------------------------------------------------------------
// Lists of targets (issue 24, item 5)

/// modern.ircdocs.horse, NAMES message: "The channel names are evaluated one-by-one. For each
/// channel that exists and they are able to see the users in, the server returns one of more
/// `RPL_NAMREPLY` numerics containing the users joined to the channel and a single
/// `RPL_ENDOFNAMES` numeric. If the channel name is invalid or the channel does not exist, one
/// `RPL_ENDOFNAMES` numeric containing the given channel name should be returned. [...] Users with
/// the invisible user mode set are not shown in channel responses unless the requesting client is
/// also joined to that channel."
#[tokio::test]
async fn names_of_a_list_answers_each_channel_in_turn() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol, mut dave] =
        server.clients(["alice", "bob", "carol", "dave"]).await;
    join_all("#a", &mut [&mut alice]).await;
    ask(&mut dave, "MODE dave +i").await;
    join_all("#b", &mut [&mut bob, &mut dave]).await;

    // carol is on neither: invisible dave is left out of #b, #nope and the invalid name end at once.
    assert_eq!(
        ask(&mut carol, "NAMES #a,#nope,inv@lid,#B").await,
        lines(&[
            ":parley.local 353 carol = #a :@alice",
            ":parley.local 366 carol #a :End of /NAMES list",
            ":parley.local 366 carol #nope :End of /NAMES list",
            ":parley.local 366 carol inv@lid :End of /NAMES list",
            ":parley.local 353 carol = #b :@bob",
            ":parley.local 366 carol #b :End of /NAMES list",
        ])
    );
    // dave is on #b, so he sees himself there; #a's answer follows in the order asked.
    assert_eq!(
        ask(&mut dave, "NAMES #b,#a").await,
        lines(&[
            ":parley.local 353 dave = #b :@bob dave",
            ":parley.local 366 dave #b :End of /NAMES list",
            ":parley.local 353 dave = #a :@alice",
            ":parley.local 366 dave #a :End of /NAMES list",
        ])
    );
}

/// modern.ircdocs.horse, KICK message: "The server MUST NOT send KICK messages with multiple
/// users to clients." Each target gets its own KICK line with the given comment, seen by every
/// member (the kicked ones included), and both are gone afterwards.
#[tokio::test]
async fn kick_of_a_list_sends_one_line_per_target_to_every_member() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol, mut dave] =
        server.clients(["alice", "bob", "carol", "dave"]).await;
    join_all("#c", &mut [&mut alice, &mut bob, &mut carol, &mut dave]).await;
    let kicks = lines(&[
        ":alice!~alice@127.0.0.1 KICK #c bob :out you go",
        ":alice!~alice@127.0.0.1 KICK #c carol :out you go",
    ]);
    assert_eq!(
        ask(&mut alice, "KICK #c bob,carol :out you go").await,
        kicks
    );
    assert_eq!(dave.sync().await, kicks);
    // bob left with the first line, so he hears only his own; carol was still there for bob's.
    assert_eq!(bob.sync().await, kicks[..1].to_vec());
    assert_eq!(carol.sync().await, kicks);
    assert_eq!(
        with_command(&ask(&mut dave, "NAMES #c").await, "353"),
        vec![":parley.local 353 dave = #c :@alice dave"]
    );
    // "If no comment is given, the server SHOULD use a default message instead": for each target.
    join_all("#c", &mut [&mut bob, &mut carol]).await;
    alice.sync().await;
    assert_eq!(
        ask(&mut alice, "KICK #c bob,carol").await,
        lines(&[
            ":alice!~alice@127.0.0.1 KICK #c bob :alice",
            ":alice!~alice@127.0.0.1 KICK #c carol :alice",
        ])
    );
}

/// modern.ircdocs.horse, JOIN message: "Servers MUST process the parameters of this command as
/// lists on incoming commands from clients". An invalid name in the list is answered with
/// ERR_NOSUCHCHANNEL (403) and the rest are still joined: the spec's JOIN lists 403 and not
/// ERR_BADCHANMASK (476, deprecated there even for KICK), and ergo answers 403 the same way.
#[tokio::test]
async fn join_list_with_an_invalid_name_joins_the_valid_ones() {
    let server = TestServer::start().await;
    let [mut alice] = server.clients(["alice"]).await;
    assert_eq!(
        ask(&mut alice, "JOIN #valid,inv@lid,#also").await,
        lines(&[
            ":alice!~alice@127.0.0.1 JOIN #valid",
            ":parley.local 353 alice = #valid :@alice",
            ":parley.local 366 alice #valid :End of /NAMES list",
            ":parley.local 403 alice inv@lid :No such channel",
            ":alice!~alice@127.0.0.1 JOIN #also",
            ":parley.local 353 alice = #also :@alice",
            ":parley.local 366 alice #also :End of /NAMES list",
        ])
    );
}

/// modern.ircdocs.horse, JOIN message: "with the first `<key>` being used for the first
/// `<channel>`, the second `<key>` being used for the second `<channel>`, etc." Keys given in the
/// wrong order open neither channel; in the right order both.
#[tokio::test]
async fn join_two_keyed_channels_pairs_keys_in_order() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #a,#b").await;
    ask(&mut alice, "MODE #a +k key1").await;
    ask(&mut alice, "MODE #b +k key2").await;
    assert_eq!(
        ask(&mut bob, "JOIN #a,#b key2,key1").await,
        lines(&[
            ":parley.local 475 bob #a :Cannot join channel (+k)",
            ":parley.local 475 bob #b :Cannot join channel (+k)",
        ])
    );
    let got = ask(&mut bob, "JOIN #a,#b key1,key2").await;
    assert_eq!(
        with_command(&got, "JOIN"),
        vec![":bob!~bob@127.0.0.1 JOIN #a", ":bob!~bob@127.0.0.1 JOIN #b"]
    );
    assert!(!got.iter().any(|l| common::is_error_reply(l)), "{got:?}");
    // Pairing is by position, so an empty item in the channel list still takes its key's place
    // (ergo pairs the same way): #b is third, so it gets the third key.
    let [mut carol] = server.clients(["carol"]).await;
    let got = ask(&mut carol, "JOIN #a,,#b key1,skipped,key2").await;
    assert_eq!(
        with_command(&got, "JOIN"),
        vec![
            ":carol!~carol@127.0.0.1 JOIN #a",
            ":carol!~carol@127.0.0.1 JOIN #b"
        ]
    );
    assert!(!got.iter().any(|l| common::is_error_reply(l)), "{got:?}");
}

/// modern.ircdocs.horse, Secret channel mode: "This mode is standard, and the mode letter used
/// for it is "+s"." A channel operator sets and unsets it, everyone in the channel sees the
/// change, MODE #chan (324) shows it, ISUPPORT lists it among CHANMODES' flags and 004 among
/// the channel modes; a member who is not an operator gets 482.
#[tokio::test]
async fn secret_mode_set_by_operators_and_shown() {
    let server = TestServer::start_with(|c| c.server.default_channel = String::new()).await;
    let mut probe = server.connect().await;
    probe.send("NICK probe").await;
    probe.send("USER probe 0 * :Probe").await;
    let burst = probe.sync().await.join("\n");
    assert!(burst.contains("CHANMODES=beIq,k,l,Cimnst"), "{burst}");
    assert!(
        burst.contains(" 004 probe parley.local ") && burst.contains(" CbeIiklmnoqstv"),
        "{burst}"
    );

    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut bob, "JOIN #c").await;
    alice.sync().await;
    assert_eq!(
        ask(&mut alice, "MODE #c +s").await,
        vec![format!(":{} MODE #c +s", source("alice"))]
    );
    assert_eq!(
        bob.sync().await,
        vec![format!(":{} MODE #c +s", source("alice"))]
    );
    assert_eq!(
        ask(&mut bob, "MODE #c").await[0],
        ":parley.local 324 bob #c +nst"
    );
    assert_eq!(
        ask(&mut bob, "MODE #c -s").await,
        lines(&[":parley.local 482 bob #c :You're not channel operator"])
    );
    assert_eq!(
        ask(&mut alice, "MODE #c -s").await,
        vec![format!(":{} MODE #c -s", source("alice"))]
    );
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "MODE #c").await[0],
        ":parley.local 324 bob #c +nt"
    );
}

/// RFC 2811, Private and Secret Channels: "When a channel is "secret", in addition to the
/// restriction above, the server will act as if the channel does not exist for queries like the
/// TOPIC, LIST, NAMES commands." A non-member asking a secret channel's TOPIC gets 442, as from
/// ergo, and never the topic text; a member still reads it.
#[tokio::test]
async fn secret_channel_topic_hidden_from_non_members() {
    let server = TestServer::start_with(|c| c.server.default_channel = String::new()).await;
    let [mut alice, mut carol] = server.clients(["alice", "carol"]).await;
    ask(&mut alice, "JOIN #c").await;
    ask(&mut alice, "TOPIC #c :the plan").await;
    ask(&mut alice, "MODE #c +s").await;
    assert_eq!(
        ask(&mut carol, "TOPIC #c").await,
        lines(&[":parley.local 442 carol #c :You're not on that channel"])
    );
    assert_eq!(
        ask(&mut alice, "TOPIC #c").await[0],
        ":parley.local 332 alice #c :the plan"
    );
    ask(&mut alice, "MODE #c -s").await;
    assert_eq!(
        ask(&mut carol, "TOPIC #c").await[0],
        ":parley.local 332 carol #c :the plan"
    );
}
