//! The search panel and the read-marker badges, driven as a person would (egui_kittest through
//! AccessKit) over the offline connection: lines the client sends are read back, the server's
//! answers are the spec's example lines (soju's `search` extension; `draft/read-marker`).

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use parley_client::{Auth, Event, SearchStatus, State};
use parley_gui::connection::{Offline, OfflineConnector, OfflineHandle};
use parley_gui::notify::Recorder;
use parley_gui::search;
use parley_gui::settings::Settings;
use parley_gui::{App, Options};

/// Past the welcome with `caps`, logged in as alice, in #chan and #lobby, looking at #lobby.
fn logged_in_state(caps: &str) -> State {
    let mut state = State::new("alice", "alice");
    state.on_connected(true, Auth::Guest);
    for line in [
        format!(":srv CAP * LS :{caps}"),
        format!(":srv CAP alice ACK :{caps}"),
        ":srv 001 alice :Welcome to Parley, alice".to_string(),
        ":srv 900 alice alice!a@h alice :You are now logged in as alice".to_string(),
        ":alice!a@h JOIN #chan".to_string(),
        ":alice!a@h JOIN #lobby".to_string(),
    ] {
        state.handle_line(&line);
    }
    state.set_active_by_name("#lobby");
    state
}

struct Setup {
    harness: Harness<'static, App>,
    server: OfflineHandle,
    _config_dir: tempfile::TempDir,
}

fn setup(state: State) -> Setup {
    let (offline, server) = Offline::new(state);
    let connector = OfflineConnector::default();
    connector.prepared.lock().push_back(offline);
    let config_dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        utc_offset: chrono::FixedOffset::east_opt(0),
        ..Options::default()
    };
    let app = App::new(
        Settings::default(),
        Some(config_dir.path().to_path_buf()),
        Box::new(connector),
        Box::new(Recorder::default()),
        options,
    );
    let mut harness = Harness::builder()
        .with_size([1100.0, 700.0])
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app);
    harness.get_by_label("Username").focus();
    harness.get_by_label("Username").type_text("alice");
    harness.get_by_label("Password").focus();
    harness.get_by_label("Password").type_text("secret-pass");
    harness.run();
    harness.get_by_label("Log in").click();
    harness.run();
    server.events.lock().push_back(Event::Changed);
    harness.run();
    Setup {
        harness,
        server,
        _config_dir: config_dir,
    }
}

#[test]
fn ctrl_f_searches_and_a_click_opens_the_hits_conversation() {
    let mut s = setup(logged_in_state(
        "soju.im/search batch server-time message-tags",
    ));
    s.server.take_sent();
    s.harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    s.harness.run();
    s.harness
        .get_by_label("Search messages")
        .type_text("#chan fast");
    s.harness.run();
    s.harness.get_by_label("Find").click();
    s.harness.run();
    // "[c] SEARCH text=fast;in=#chan;limit=2", with our page size.
    assert_eq!(s.server.take_sent(), ["SEARCH text=fast;in=#chan;limit=50"]);
    s.harness
        .get_by_label_contains("Searching for \u{201c}fast\u{201d} in #chan");
    s.server.receive(&[
        ":irc.host BATCH +ID soju.im/search",
        "@batch=ID;msgid=1234;time=2019-01-04T14:33:26.123Z :bill!indent@host PRIVMSG #chan :That was fast!",
        "@batch=ID;msgid=1235;time=2019-01-04T14:35:26.123Z :jackie!indent@host PRIVMSG #chan :Fasting is hard.",
        ":irc.host BATCH -ID",
    ]);
    s.harness.run();
    s.harness
        .get_by_label_contains("2 results for \u{201c}fast\u{201d} in #chan");
    s.harness
        .get_by_label("2019-01-04 14:35 #chan jackie: Fasting is hard.");
    assert!(
        s.harness.query_by_label("Older results").is_none(),
        "one short page is all there is"
    );
    s.harness
        .get_by_label("2019-01-04 14:33 #chan bill: That was fast!")
        .click();
    s.harness.run();
    assert_eq!(s.server.state.lock().active().name, "#chan");
    s.harness.get_by_label_contains("#chan: no topic set");
    // The toolbar's button opens the box too; Close search ends the search.
    s.harness.get_by_label("Close search").click();
    s.harness.run();
    assert!(s.server.state.lock().search_results().is_none());
    assert!(s.harness.query_by_label("Search messages").is_none());
    s.harness.get_by_label("Search").click();
    s.harness.run();
    s.harness.get_by_label("Search messages");
}

#[test]
fn a_refusal_shows_in_the_panel_and_no_cap_no_search() {
    let mut s = setup(logged_in_state("soju.im/search batch server-time"));
    s.harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    s.harness.run();
    s.harness.get_by_label("Search messages").type_text("x");
    s.harness.run();
    s.harness.get_by_label("Find").click();
    s.harness.run();
    s.server
        .receive(&[":irc.host FAIL SEARCH INVALID_PARAMS in :Invalid parameters"]);
    s.harness.run();
    s.harness.get_by_label_contains(
        "The search for \u{201c}x\u{201d} failed: Invalid parameters (INVALID_PARAMS)",
    );

    let mut plain = setup(logged_in_state("batch server-time"));
    assert!(plain.harness.query_by_label("Search").is_none());
    plain
        .harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    plain.harness.run();
    assert!(plain.harness.query_by_label("Search messages").is_none());
}

#[test]
fn headers_say_what_was_found() {
    let mut state = logged_in_state("soju.im/search batch server-time");
    state
        .act(parley_client::input::parse("/search fast").expect("parses"))
        .expect("sent");
    let results = state.search_results().expect("a search");
    assert_eq!(
        search::header(results),
        "Searching for \u{201c}fast\u{201d}\u{2026}"
    );
    state.handle_line(":srv BATCH +b search");
    state.handle_line(
        "@batch=b;time=2019-01-04T14:36:00.000Z :dave!d@h PRIVMSG alice :\x01ACTION runs fast\x01",
    );
    state.handle_line(":srv BATCH -b");
    let results = state.search_results().expect("a search");
    assert_eq!(results.status, SearchStatus::Done { more: false });
    assert_eq!(search::header(results), "1 result for \u{201c}fast\u{201d}");
    let rows = search::rows(results, &chrono::Utc);
    assert_eq!(
        rows.iter().map(|r| r.label()).collect::<Vec<_>>(),
        ["2019-01-04 14:36 dave * dave: runs fast"]
    );
}

#[test]
fn a_marker_from_another_device_clears_the_badge() {
    // Item 3 of issue 26: read on the phone, the badge goes here.
    let mut s = setup(logged_in_state("draft/read-marker batch server-time"));
    s.server.receive(&[
        "@time=2024-05-01T09:30:00.000Z :bob!b@h PRIVMSG #chan :one",
        "@time=2024-05-01T09:31:00.000Z :bob!b@h PRIVMSG #chan :two",
    ]);
    s.harness.run();
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "#chan 2");
    s.server
        .receive(&[":srv MARKREAD #chan timestamp=2024-05-01T09:30:00.000Z"]);
    s.harness.run();
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "#chan 1");
    s.server
        .receive(&[":srv MARKREAD #chan timestamp=2024-05-01T09:31:00.000Z"]);
    s.harness.run();
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "#chan");
    assert_eq!(
        s.server.state.lock().buffer("#chan").map(|b| b.unread),
        Some(0)
    );
}
