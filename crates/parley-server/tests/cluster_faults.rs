//! The fault suite: three nodes (n1 and n2 in-process, n3 the real `parleyd` binary), two users
//! on each in one channel, a burst of lines before and after a fault that hits n3: paused
//! (SIGSTOP for longer than the lease), killed (SIGKILL), or cut off from NATS (a proxy that
//! black-holes its link for longer than the lease). After each, the suite checks what
//! docs/cluster.md promises: only n3's users were disconnected; the others lost no channel line
//! and got none twice, all in one order; n3's nicks are free again; and n3, when it comes back,
//! did not take n1 or n2 for dead (their users and nick claims are intact everywhere).
//! Every wait is bounded; the lease is the smallest allowed (2 s) so a scenario takes seconds.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{client_with_caps, BinaryNode, Cluster};
use common::proxy::Proxy;
use common::{command_of, Client};
use tokio::time::Instant;

/// `cluster.lease_secs` of every node: the smallest allowed.
const LEASE: Duration = Duration::from_secs(2);
const LEASE_ENV: (&str, &str) = ("PARLEY_CLUSTER__LEASE_SECS", "2");
const CHANNEL: &str = "#faults";
/// Lines each sender sends in one burst.
const BURST: usize = 5;
/// How long anything that takes about a lease may take before the test fails: generous, since
/// the machine running the suite may be busy. It bounds a hang; it is no speed claim.
const WITHIN: Duration = Duration::from_secs(30);
/// The users: two on each node (index into the cluster's nodes; 2 is n3, the one hit).
const USERS: [(&str, usize); 6] = [
    ("alice", 0),
    ("amy", 0),
    ("bob", 1),
    ("ben", 1),
    ("carol", 2),
    ("cid", 2),
];
const HIT: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// SIGSTOP n3 for longer than the lease, then SIGCONT.
    Pause,
    /// SIGKILL n3.
    Kill,
    /// Silently drop every byte between n3 and NATS for longer than the lease, then mend it.
    Cut,
}

/// A member of the channel and what it saw there.
struct Member {
    client: Client,
    node: usize,
    /// `nick: text` of every channel line, in the order it arrived.
    lines: Vec<String>,
    /// Nicks whose QUIT it saw.
    quits: Vec<String>,
}

struct Scene {
    cluster: Cluster,
    n3: BinaryNode,
    proxy: Option<Proxy>,
    members: Vec<Member>,
}

impl Scene {
    /// The cluster, n3 reaching NATS through a proxy when `proxied`, and every user in the
    /// channel, each seeing all six there.
    async fn start(proxied: bool) -> Option<Scene> {
        let cluster = Cluster::start(2, |_, c| c.cluster.lease_secs = LEASE.as_secs()).await?;
        let proxy = match proxied {
            true => Some(
                Proxy::start(SocketAddr::from((
                    [127, 0, 0, 1],
                    cluster.nats.as_ref()?.port(),
                )))
                .await,
            ),
            false => None,
        };
        let nats_url = proxy.as_ref().map(Proxy::nats_url);
        let mut envs = vec![LEASE_ENV];
        if let Some(url) = &nats_url {
            envs.push(("PARLEY_CLUSTER__NATS_URL", url.as_str()));
        }
        let n3 = cluster.spawn_binary("n3", &envs).await;
        let mut scene = Scene {
            cluster,
            n3,
            proxy,
            members: Vec::new(),
        };
        for (nick, node) in USERS {
            // echo-message: every member sees every line, its own included, where the stream
            // put it, so all members' sequences must be equal.
            let mut client = client_with_caps(scene.addr(node), nick, "echo-message").await;
            client.send(&format!("JOIN {CHANNEL}")).await;
            scene.members.push(Member {
                client: {
                    client.sync().await;
                    client
                },
                node,
                lines: Vec::new(),
                quits: Vec::new(),
            });
        }
        for member in &mut scene.members {
            await_members(&mut member.client, USERS.len()).await;
        }
        Some(scene)
    }

    fn addr(&self, node: usize) -> SocketAddr {
        match node {
            HIT => self.n3.addr,
            i => self.cluster.nodes[i].addr,
        }
    }

    fn unaffected(&mut self) -> impl Iterator<Item = &mut Member> {
        self.members.iter_mut().filter(|m| m.node != HIT)
    }

    /// Each member on a node in `from` sends `BURST` lines tagged `label`, round-robin; returns
    /// what was sent as `nick: text`.
    async fn burst(&mut self, label: &str, from: &[usize]) -> Vec<String> {
        let mut sent = Vec::new();
        for i in 0..BURST {
            for member in self.members.iter_mut().filter(|m| from.contains(&m.node)) {
                let text = format!("{label} {} {i}", member.client.nick);
                member
                    .client
                    .send(&format!("PRIVMSG {CHANNEL} :{text}"))
                    .await;
                sent.push(format!("{}: {text}", member.client.nick));
            }
        }
        sent
    }

    /// Every member on `nodes` reads until it has seen every line of `sent` and a QUIT of every
    /// nick in `quits` (bounded), then a little longer for any duplicate.
    async fn collect(&mut self, nodes: &[usize], sent: &[String], quits: &[&str]) {
        for member in self.members.iter_mut().filter(|m| nodes.contains(&m.node)) {
            member.read_until(sent, quits).await;
        }
    }
}

impl Member {
    async fn read_until(&mut self, sent: &[String], quits: &[&str]) {
        let deadline = Instant::now() + WITHIN;
        let done = |m: &Member| {
            sent.iter().all(|l| m.lines.contains(l))
                && quits.iter().all(|q| m.quits.iter().any(|seen| seen == q))
        };
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.client.recv_within(left).await else {
                panic!(
                    "{}: within {WITHIN:?}, saw channel lines {:?} and quits {:?}; missing lines \
                     {:?}, quits {:?}",
                    self.client.nick,
                    self.lines,
                    self.quits,
                    sent.iter()
                        .filter(|l| !self.lines.contains(l))
                        .collect::<Vec<_>>(),
                    quits
                        .iter()
                        .filter(|q| !self.quits.iter().any(|s| s == *q))
                        .collect::<Vec<_>>(),
                );
            };
            self.take(&line);
        }
        // A duplicate would come right behind: give it a moment to show.
        while let Some(line) = self.client.recv_within(Duration::from_millis(300)).await {
            self.take(&line);
        }
    }

    fn take(&mut self, line: &str) {
        let line = match line.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
            None => line,
        };
        let nick = line
            .strip_prefix(':')
            .and_then(|l| l.split('!').next())
            .unwrap_or("")
            .to_owned();
        match command_of(line) {
            "PRIVMSG" => {
                let marker = format!(" PRIVMSG {CHANNEL} :");
                if let Some((_, text)) = line.split_once(&marker) {
                    self.lines.push(format!("{nick}: {text}"));
                }
            }
            "QUIT" => self.quits.push(nick),
            _ => {}
        }
    }
}

/// Poll NAMES until the channel has `count` members on this client's node.
async fn await_members(client: &mut Client, count: usize) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let names = client.names(CHANNEL).await;
        if names.len() == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: NAMES {CHANNEL} never had {count} members; last {names:?}",
            client.nick
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// NAMES of the channel without the `@`/`+` prefixes.
async fn nicks_in_channel(client: &mut Client) -> BTreeSet<String> {
    client
        .names(CHANNEL)
        .await
        .into_iter()
        .map(|n| n.trim_start_matches(['@', '+']).to_owned())
        .collect()
}

/// `NICK wanted` from `client` until it is taken (bounded by `WITHIN` from `since`); how long
/// after `since` it became free.
async fn take_nick(client: &mut Client, wanted: &str, since: Instant) -> Duration {
    let old = client.nick.clone();
    loop {
        client.send(&format!("NICK {wanted}")).await;
        let lines = client.sync().await;
        if lines
            .iter()
            .any(|l| l.ends_with(&format!(" NICK :{wanted}")))
        {
            client.nick = wanted.to_owned();
            return since.elapsed();
        }
        assert!(
            lines.iter().any(|l| command_of(l) == "433"),
            "{old}: NICK {wanted} -> {lines:?}"
        );
        assert!(
            since.elapsed() < WITHIN,
            "{wanted} was still taken {WITHIN:?} after the fault"
        );
        // Nothing tells a user that a nick became free: poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who holds `nick`'s claim in the cluster's nick bucket (a uid), read as the harness's admin.
async fn claim_holder(scene: &Scene, nick: &str) -> Option<String> {
    let admin = scene.cluster.nats.as_ref()?.admin().await;
    let bucket = async_nats::jetstream::new(admin)
        .get_key_value(format!("{}_nicks", scene.cluster.prefix))
        .await
        .expect("the nick bucket");
    let key: String = nick.bytes().map(|b| format!("{b:02x}")).collect();
    bucket
        .get(format!("n.{key}"))
        .await
        .expect("read the nick bucket")
        .map(|uid| String::from_utf8_lossy(&uid).into_owned())
}

async fn claims(scene: &Scene, nicks: &[&str]) -> Vec<(String, Option<String>)> {
    let mut held = Vec::new();
    for nick in nicks {
        held.push((nick.to_string(), claim_holder(scene, nick).await));
    }
    held
}

/// Each of `nodes`' members saw every line of `sent` exactly once, none from elsewhere, all
/// of them in one order.
fn assert_one_order(scene: &Scene, nodes: &[usize], sent: &[String], phase: &str) {
    let mut orders: Vec<(&str, &Vec<String>)> = Vec::new();
    for member in scene.members.iter().filter(|m| nodes.contains(&m.node)) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in &member.lines {
            *counts.entry(line.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{phase}: {} got lines twice: {twice:?}",
            member.client.nick
        );
        let strays: Vec<_> = member.lines.iter().filter(|l| !sent.contains(l)).collect();
        assert!(
            strays.is_empty(),
            "{phase}: {} got lines nobody sent in this phase: {strays:?}",
            member.client.nick
        );
        assert_eq!(
            member.lines.len(),
            sent.len(),
            "{phase}: {}",
            member.client.nick
        );
        orders.push((&member.client.nick, &member.lines));
    }
    for (nick, order) in &orders[1..] {
        assert_eq!(
            *order, orders[0].1,
            "{phase}: {nick} saw the channel in another order than {}",
            orders[0].0
        );
    }
}

/// One scenario, start to end; prints what it measured.
async fn scenario(fault: Fault) {
    let Some(mut scene) = Scene::start(fault == Fault::Cut).await else {
        return;
    };
    let everyone = [0, 1, HIT];
    let others = [0, 1];
    let hit_nicks: Vec<&str> = USERS.iter().filter(|u| u.1 == HIT).map(|u| u.0).collect();
    let other_nicks: Vec<&str> = USERS.iter().filter(|u| u.1 != HIT).map(|u| u.0).collect();

    let before = scene.burst("before", &everyone).await;
    scene.collect(&everyone, &before, &[]).await;
    assert_one_order(&scene, &everyone, &before, "before the fault");
    for member in &mut scene.members {
        member.lines.clear();
    }

    let claimed = claims(&scene, &other_nicks).await;
    assert!(
        claimed.iter().all(|(_, holder)| holder.is_some()),
        "the live users' nicks are claimed: {claimed:?}"
    );

    let hit = Instant::now();
    match fault {
        Fault::Pause => scene.n3.pause(),
        Fault::Kill => scene.n3.kill().await,
        Fault::Cut => scene.proxy.as_ref().expect("a proxied scene").black_hole(),
    }
    // The others talk on while n3 is gone, and see its users quit once its lease ran out.
    let mut sent = scene.burst("during", &others).await;
    scene.collect(&others, &sent, &hit_nicks).await;
    let quit_after = hit.elapsed();
    // Their claims go soon after (read from the bucket, so nothing here changes what follows).
    let released_after = loop {
        let held = claims(&scene, &hit_nicks).await;
        if held.iter().all(|(_, holder)| holder.is_none()) {
            break hit.elapsed();
        }
        assert!(
            hit.elapsed() < WITHIN,
            "n3's nick claims still held {WITHIN:?} after the fault: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut back_after = None;
    if fault != Fault::Kill {
        // Hold the fault well past the others' judgement, as a long pause or cut would.
        let hold = LEASE * 3;
        tokio::time::sleep(hold.saturating_sub(hit.elapsed())).await;
        let fault_lasted = hit.elapsed();
        match fault {
            Fault::Pause => scene.n3.resume(),
            _ => {
                let proxy = scene.proxy.as_ref().expect("a proxied scene");
                assert!(
                    proxy.dropped() > 0,
                    "the black hole dropped nothing: n3's link carried no traffic"
                );
                proxy.forward();
            }
        }
        let mended = Instant::now();
        // n3 learns it was taken for dead and drops its own users, and only them.
        for member in scene.members.iter_mut().filter(|m| m.node == HIT) {
            let lines = member.client.expect_closed().await;
            let closing = lines.iter().rev().find(|l| command_of(l) == "ERROR");
            assert!(
                closing.is_some_and(|l| l.contains("lost contact")),
                "{}: closed without the lost-contact ERROR: {lines:?}",
                member.client.nick
            );
            for line in &lines {
                member.take(line);
            }
            let wrong: Vec<_> = member
                .quits
                .iter()
                .filter(|q| other_nicks.contains(&q.as_str()))
                .collect();
            assert!(
                wrong.is_empty(),
                "{}: n3 quit users of live nodes on resume: {wrong:?}",
                member.client.nick
            );
        }
        back_after = Some((fault_lasted, mended.elapsed()));
        // A stale judgement from n3 would be published within a lease or two of its return:
        // give it that long to do harm before checking nothing was harmed.
        tokio::time::sleep(LEASE * 2).await;
    }

    let after = scene.burst("after", &others).await;
    scene.collect(&others, &after, &[]).await;
    sent.extend(after);
    assert_one_order(&scene, &others, &sent, "during and after the fault");
    for member in scene.unaffected() {
        let wrong: Vec<_> = member
            .quits
            .iter()
            .filter(|q| !hit_nicks.contains(&q.as_str()))
            .collect();
        assert!(
            wrong.is_empty(),
            "{} saw users of live nodes quit: {wrong:?}",
            member.client.nick
        );
        assert_eq!(
            nicks_in_channel(&mut member.client).await,
            other_nicks.iter().map(|n| n.to_string()).collect(),
            "{}: the channel after the fault",
            member.client.nick
        );
    }

    // n3's nicks are free: users on n1 and n2 take them.
    let mut heirs = Vec::new();
    for (i, nick) in hit_nicks.iter().enumerate() {
        let mut heir = scene.cluster.client(i % 2, &format!("heir{i}")).await;
        let free_after = take_nick(&mut heir, nick, hit).await;
        heirs.push((nick.to_string(), free_after));
    }

    if fault != Fault::Kill {
        // n3 did not take n1 or n2 for dead: it still knows their users, and their nicks are
        // still theirs (a stale NodeDown would have released their claims).
        let mut probe = scene.n3.client("probe").await;
        let deadline = Instant::now() + WITHIN;
        loop {
            let names = nicks_in_channel(&mut probe).await;
            let wanted: BTreeSet<String> = other_nicks.iter().map(|n| n.to_string()).collect();
            if names == wanted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n3 after its return lists {names:?} in {CHANNEL}, not {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for nick in &other_nicks {
            probe.send(&format!("NICK {nick}")).await;
            let lines = probe.sync().await;
            assert!(
                lines.iter().any(|l| command_of(l) == "433"),
                "n3 after its return let its user take {nick}, a live user's nick: {lines:?}"
            );
        }
        assert_eq!(
            claims(&scene, &other_nicks).await,
            claimed,
            "the live users' nick claims after n3's return"
        );
        // And its users can come back.
        let mut again = scene.n3.client("carol2").await;
        again.send(&format!("JOIN {CHANNEL}")).await;
        await_members(&mut again, other_nicks.len() + 1).await;
    }

    eprintln!(
        "{fault:?}: n3's users quit on n1/n2 {quit_after:?} after the fault, their claims \
         released after {released_after:?}; fault lasted / n3 dropped its users after return: {back_after:?}; \
         nicks free after {heirs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_node_drops_only_its_own_users() {
    scenario(Fault::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_drops_only_its_own_users() {
    scenario(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_nats_drops_only_its_own_users() {
    scenario(Fault::Cut).await;
}
