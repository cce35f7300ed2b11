//! The window driven as a person would, without a display: egui_kittest clicks and types
//! through AccessKit, and the offline connection stands in for the server (lines the client
//! sends are read back; server lines are fed in). The `snapshots_*` test also renders the window
//! with wgpu and compares it with the images in `tests/snapshots/`; with no GPU, wgpu uses Mesa's
//! CPU Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`, as `.ci/run` does), or
//! with `WGPU_BACKEND=gl` Mesa's OpenGL through EGL, which draws the same pictures (Mesa 22's
//! lavapipe crashed when held to 128-bit vectors, as on CPUs without AVX2). After a deliberate
//! change of the look, `UPDATE_SNAPSHOTS=1 cargo test -p parley-gui --test ui` rewrites them;
//! look at the new images before checking them in.
//! `live.rs` runs the same window (and the binary) against the real server.

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};
use parley_client::{Auth, Event, State};
use parley_gui::connection::{Offline, OfflineConnector, OfflineHandle};
use parley_gui::notify::Recorder;
use parley_gui::settings::{Settings, Theme};
use parley_gui::{App, Options, Phase};

/// A state past the welcome, logged in as alice, in #lobby and #rust.
fn logged_in_state() -> State {
    let mut state = State::new("alice", "alice");
    state.on_connected(true, Auth::Guest);
    for line in [
        ":srv CAP * LS :server-time echo-message draft/chathistory batch",
        ":srv CAP alice ACK :server-time echo-message draft/chathistory batch",
        ":srv 001 alice :Welcome to Parley, alice",
        ":srv 900 alice alice!a@h alice :You are now logged in as alice",
        ":alice!a@h JOIN #lobby",
        ":alice!a@h JOIN #rust",
        ":srv 332 alice #rust :All things Rust",
        ":srv 353 alice = #rust :@alice bob +carol",
        ":srv 366 alice #rust :End of /NAMES list",
        "@time=2024-05-01T09:30:00.000Z :bob!b@h PRIVMSG #rust :hi alice, ready?",
    ] {
        state.handle_line(line);
    }
    state.set_active_by_name("#rust");
    state
}

struct Setup {
    harness: Harness<'static, App>,
    server: OfflineHandle,
    notes: Recorder,
    config_dir: tempfile::TempDir,
}

fn setup(state: State) -> Setup {
    setup_with(state, Theme::Light, [1000.0, 700.0])
}

fn setup_with(state: State, theme: Theme, size: [f32; 2]) -> Setup {
    let (offline, server) = Offline::new(state);
    let connector = OfflineConnector::default();
    connector.prepared.lock().push_back(offline);
    let notes = Recorder::default();
    let config_dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        theme,
        ..Settings::default()
    };
    // Times in UTC wherever the tests run, so day separators and pictures do not move.
    let options = Options {
        utc_offset: chrono::FixedOffset::east_opt(0),
        ..Options::default()
    };
    let app = App::new(
        settings,
        Some(config_dir.path().to_path_buf()),
        Box::new(connector),
        Box::new(notes.clone()),
        options,
    );
    let harness = Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app);
    Setup {
        harness,
        server,
        notes,
        config_dir,
    }
}

/// Logs in through the dialog.
fn log_in(s: &mut Setup) {
    s.harness.get_by_label("Username").focus();
    s.harness.get_by_label("Username").type_text("alice");
    s.harness.get_by_label("Password").focus();
    s.harness.get_by_label("Password").type_text("secret-pass");
    s.harness.run();
    s.harness.get_by_label("Log in").click();
    s.harness.run();
    s.server.events.lock().push_back(Event::Changed);
    s.harness.run();
}

#[test]
fn login_dialog_logs_in_and_remembers_the_server_but_not_the_password() {
    let mut s = setup(logged_in_state());
    assert!(matches!(s.harness.state().phase, Phase::Login));
    s.harness.get_by_label("Register");
    log_in(&mut s);
    assert!(matches!(s.harness.state().phase, Phase::Chat));
    // The chat window: topic, side list, members, messages.
    s.harness.get_by_label_contains("#rust: All things Rust");
    s.harness.get_by_label_contains("#lobby");
    s.harness.get_by_label_contains("@alice");
    s.harness.get_by_label_contains("+carol");
    s.harness.get_by_label_contains("hi alice, ready?");
    s.harness
        .get_by_label_contains("Connected to localhost:6697 (TLS) as alice");
    let saved = std::fs::read_to_string(s.config_dir.path().join("gui.toml")).expect("saved");
    assert!(saved.contains("user = \"alice\""), "{saved}");
    assert!(!saved.contains("secret-pass"), "{saved}");
}

#[test]
fn login_errors_are_plain_words_in_the_dialog() {
    // Not yet past the welcome: the server's answer decides.
    let mut s = setup(State::new("alice", "alice"));
    s.harness.get_by_label("Log in").click();
    s.harness.run();
    s.harness.get_by_label("Enter your username.");
    s.harness.get_by_label("Username").focus();
    s.harness.get_by_label("Username").type_text("alice");
    s.harness.get_by_label("Register").click();
    s.harness.run();
    s.harness
        .get_by_label("Choose a password for the new account.");
    // A refused login comes back to the dialog.
    s.harness.get_by_label("Password").focus();
    s.harness.get_by_label("Password").type_text("wrong");
    s.harness.get_by_label("Log in").click();
    // The spinner keeps repainting while logging in.
    s.harness.run_steps(3);
    s.harness.get_by_label("Logging in…");
    s.server.events.lock().push_back(Event::Closed {
        reason: Some(parley_client::login_refusal(
            "Invalid account name or password",
        )),
    });
    s.harness.run();
    assert!(matches!(s.harness.state().phase, Phase::Login));
    // Said once: not followed by the same thing in parentheses.
    s.harness
        .get_by_label("The username or password was not accepted.");
}

#[test]
fn enter_sends_shift_enter_makes_a_new_line() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.take_sent();
    let input = s
        .harness
        .get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("first line");
    s.harness.run();
    s.harness
        .key_press_modifiers(egui::Modifiers::SHIFT, egui::Key::Enter);
    s.harness.run();
    s.harness
        .get_by_role(egui::accesskit::Role::MultilineTextInput)
        .type_text("second line");
    s.harness.run();
    assert!(s.server.take_sent().is_empty(), "Shift+Enter must not send");
    s.harness.key_press(egui::Key::Enter);
    s.harness.run();
    assert_eq!(
        s.server.take_sent(),
        ["PRIVMSG #rust :first line", "PRIVMSG #rust :second line"]
    );
    assert_eq!(s.harness.state().input, "");
}

#[test]
fn send_button_and_short_commands() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.take_sent();
    for (typed, expected) in [
        ("hello everyone", "PRIVMSG #rust :hello everyone"),
        ("/msg bob psst", "PRIVMSG bob :psst"),
        ("/broadcast all hands", "PRIVMSG $* :all hands"),
        ("/create_group team", "LIST #team"),
        ("/join_group ops", "JOIN #ops"),
        ("/group_msg ops deploying", "PRIVMSG #ops :deploying"),
        ("/leave_group ops", "PART #ops"),
        ("/topic #rust Rust 2024", "TOPIC #rust :Rust 2024"),
    ] {
        let input = s
            .harness
            .get_by_role(egui::accesskit::Role::MultilineTextInput);
        input.focus();
        input.type_text(typed);
        s.harness.run();
        s.harness.get_by_label("Send").click();
        s.harness.run();
        assert_eq!(s.server.take_sent(), [expected], "{typed}");
    }
    // The private message opened (and focused) a conversation with bob.
    s.harness.get_by_label("Private conversation with bob");
    // A mistake is explained in the message area.
    let input = s
        .harness
        .get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("/frobnicate");
    s.harness.run();
    s.harness.get_by_label("Send").click();
    s.harness.run();
    s.harness
        .get_by_label_contains("unknown command /frobnicate");
    // /exit quits and closes the window.
    let input = s
        .harness
        .get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("/exit");
    s.harness.run();
    s.harness.get_by_label("Send").click();
    s.harness.run();
    assert!(s.harness.state().quit);
    assert!(s.server.take_sent()[0].starts_with("QUIT"));
}

#[test]
fn new_group_and_message_user_dialogs() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.take_sent();
    s.harness.get_by_label("New group").click();
    s.harness.run();
    s.harness.get_by_label("Group name").type_text("design");
    s.harness.run();
    s.harness.get_by_label("Create").click();
    s.harness.run();
    assert_eq!(s.server.take_sent(), ["LIST #design"]);
    assert!(
        s.harness.query_by_label("Create").is_none(),
        "the dialog closed"
    );

    s.harness.get_by_label("Message user").click();
    s.harness.run();
    s.harness.get_by_label("Username").type_text("dave");
    s.harness.run();
    s.harness.get_by_label("Open").click();
    s.harness.run();
    assert_eq!(
        s.server.state.lock().active().name,
        "dave",
        "the private conversation is focused"
    );
    s.harness
        .get_by_label_contains("Private conversation with dave");
}

#[test]
fn switching_buffers_clears_badges_and_mentions_notify() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.receive(&[
        ":bob!b@h PRIVMSG #lobby :plain chatter",
        ":bob!b@h PRIVMSG #lobby :alice: lunch?",
        ":erin!e@h PRIVMSG alice :hello there",
    ]);
    s.harness.run();
    let notes = s.notes.0.lock().clone();
    assert_eq!(
        notes,
        [
            ("bob in #lobby".to_string(), "alice: lunch?".to_string()),
            ("erin (private)".to_string(), "hello there".to_string())
        ]
    );
    // Badges: "1!" (a mention among the unread) for #lobby and for erin.
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "erin 1!");
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "#lobby 1!")
        .click();
    s.harness.run();
    s.harness.get_by_label_contains("#lobby: no topic set");
    s.harness.get_by_label_contains("alice: lunch?");
    assert_eq!(
        s.server.state.lock().buffer("#lobby").map(|b| b.mentions),
        Some(0)
    );
}

#[test]
fn notifications_can_be_turned_off_and_theme_switched() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.harness.get_by_label("Settings").click();
    s.harness.run();
    s.harness
        .get_by_label("Desktop notifications for mentions and private messages")
        .click();
    s.harness.run();
    s.harness.get_by_label("Dark").click();
    s.harness.run();
    s.harness.get_by_label("Close").click();
    s.harness.run();
    assert_eq!(s.harness.state().settings.theme, Theme::Dark);
    assert!(!s.harness.state().settings.notifications);
    assert!(
        s.harness.ctx.theme() == egui::Theme::Dark,
        "the dark theme is applied"
    );
    let saved = std::fs::read_to_string(s.config_dir.path().join("gui.toml")).expect("saved");
    assert!(
        saved.contains("notifications = false") && saved.contains("theme = \"dark\""),
        "{saved}"
    );
    s.server
        .receive(&[":erin!e@h PRIVMSG alice :are you there?"]);
    s.harness.run();
    assert!(s.notes.0.lock().is_empty(), "notifications are off");
    // The in-app notice still shows.
    s.harness.get_by_label("erin (private)");
}

#[test]
fn load_older_asks_the_server_for_history() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.take_sent();
    s.harness.get_by_label("Load older messages").click();
    s.harness.run();
    let sent = s.server.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with("CHATHISTORY BEFORE #rust timestamp=2024-05-01T09:30:00.000Z"),
        "{sent:?}"
    );
    s.server.receive(&[
        ":srv BATCH +h1 chathistory #rust",
        "@batch=h1;time=2024-04-30T18:00:00.000Z :carol!c@h PRIVMSG #rust :an older message",
        ":srv BATCH -h1",
    ]);
    s.harness.run();
    s.harness.get_by_label_contains("an older message");
    s.harness.get_by_label_contains("Tuesday, 30 April 2024");
}

#[test]
fn unknown_certificate_asks_with_the_fingerprint() {
    let mut s = setup(logged_in_state());
    s.harness.get_by_label("Username").focus();
    s.harness.get_by_label("Username").type_text("alice");
    s.harness.get_by_label("Log in").click();
    s.harness.run();
    let fingerprint =
        parley_client::Fingerprint::parse(&format!("{}AB", "AB:".repeat(31))).expect("fingerprint");
    s.server
        .events
        .lock()
        .push_back(Event::UntrustedCertificate {
            server: "localhost:6697".into(),
            fingerprint,
            message: "unknown certificate".into(),
        });
    s.harness.run();
    s.harness.get_by_label("Unknown certificate");
    s.harness.get_by_label(&fingerprint.to_string());
    s.harness.get_by_label("Cancel").click();
    s.harness.run();
    s.harness
        .get_by_label("Not connected: the certificate was not trusted.");
}

/// The chat input field.
fn input(s: &Setup) -> egui_kittest::Node<'_> {
    s.harness
        .get_by_role(egui::accesskit::Role::MultilineTextInput)
}

#[test]
fn tab_completes_nicks_and_up_recalls_sent_lines() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    s.server.receive(&[":bea!b@h JOIN #rust"]);
    s.harness.run();
    s.server.take_sent();
    input(&s).focus();
    input(&s).type_text("b");
    s.harness.run();
    s.harness.key_press(egui::Key::Tab);
    s.harness.run();
    assert_eq!(
        s.harness.state().input,
        "bea: ",
        "at the line start: addressed"
    );
    s.harness.key_press(egui::Key::Tab);
    s.harness.run();
    assert_eq!(s.harness.state().input, "bob: ", "Tab again: the next one");
    assert!(input(&s).is_focused(), "Tab did not leave the field");
    // Typing goes on after the completion, where the cursor was put.
    input(&s).type_text("ask c");
    s.harness.run();
    s.harness.key_press(egui::Key::Tab);
    s.harness.run();
    input(&s).type_text("too");
    s.harness.run();
    assert_eq!(s.harness.state().input, "bob: ask carol too");
    s.harness.key_press(egui::Key::Enter);
    s.harness.run();
    input(&s).type_text("second");
    s.harness.run();
    s.harness.key_press(egui::Key::Enter);
    s.harness.run();
    assert_eq!(
        s.server.take_sent(),
        ["PRIVMSG #rust :bob: ask carol too", "PRIVMSG #rust :second"]
    );
    // Up recalls what was sent, newest first; Down comes back to the (empty) new line.
    input(&s).type_text("draft");
    s.harness.run();
    s.harness.key_press(egui::Key::ArrowUp);
    s.harness.run();
    assert_eq!(s.harness.state().input, "second");
    s.harness.key_press(egui::Key::ArrowUp);
    s.harness.run();
    assert_eq!(s.harness.state().input, "bob: ask carol too");
    s.harness.key_press(egui::Key::ArrowDown);
    s.harness.key_press(egui::Key::ArrowDown);
    s.harness.run();
    assert_eq!(
        s.harness.state().input,
        "draft",
        "the line being typed is kept"
    );
    // A recalled line is sent again with Enter.
    s.harness.key_press(egui::Key::ArrowUp);
    s.harness.run();
    s.harness.key_press(egui::Key::Enter);
    s.harness.run();
    assert_eq!(s.server.take_sent(), ["PRIVMSG #rust :second"]);
}

#[test]
fn loading_older_history_keeps_the_view_still() {
    let mut s = setup(logged_in_state());
    log_in(&mut s);
    let newer: Vec<String> = (0..60)
        .map(|n| {
            format!("@time=2024-05-01T10:{n:02}:00.000Z :bob!b@h PRIVMSG #rust :message {n:02}")
        })
        .collect();
    s.server
        .receive(&newer.iter().map(String::as_str).collect::<Vec<_>>());
    s.harness.run();
    // Up at the top, where older history is loaded.
    s.harness.get_by_label("Load older messages").scroll_to_me();
    s.harness.run();
    let before = s.harness.get_by_label_contains("message 00").rect();
    s.server.take_sent();
    s.harness.get_by_label("Load older messages").click();
    s.harness.run();
    assert_eq!(s.server.take_sent().len(), 1, "asked for older lines");
    let mut batch = vec![":srv BATCH +h1 chathistory #rust".to_string()];
    batch.extend((0..30).map(|n| {
        format!(
            "@batch=h1;time=2024-04-30T12:{n:02}:00.000Z :carol!c@h PRIVMSG #rust :older {n:02}"
        )
    }));
    batch.push(":srv BATCH -h1".to_string());
    s.server
        .receive(&batch.iter().map(String::as_str).collect::<Vec<_>>());
    s.harness.run();
    s.harness.get_by_label_contains("older 29");
    let after = s.harness.get_by_label_contains("message 00").rect();
    assert!(
        (after.top() - before.top()).abs() < 1.0,
        "the line on show stayed put: {before:?} -> {after:?}"
    );
    // The older lines are above, a scroll away.
    s.harness.get_by_label("Load older messages").scroll_to_me();
    s.harness.run();
    let oldest = s.harness.get_by_label_contains("older 00").rect();
    let now = s.harness.get_by_label_contains("message 00").rect();
    assert!(oldest.top() < now.top(), "{oldest:?} above {now:?}");
}

/// A chat with a bit of everything the main window shows: a day separator, a join notice, an
/// action, a mention, an own line, unread and mention badges, members with prefixes. Every line
/// carries its time, so the picture does not depend on when the test runs.
fn lively_state() -> State {
    let mut state = State::new("alice", "alice");
    state.on_connected(true, Auth::Guest);
    for line in [
        ":srv CAP * LS :server-time echo-message draft/chathistory batch",
        ":srv CAP alice ACK :server-time echo-message draft/chathistory batch",
        ":srv 001 alice :Welcome to Parley, alice",
        ":srv 900 alice alice!a@h alice :You are now logged in as alice",
        "@time=2024-05-01T09:00:00.000Z :alice!a@h JOIN #lobby",
        "@time=2024-05-01T09:00:00.000Z :alice!a@h JOIN #rust",
        "@time=2024-05-01T09:00:00.000Z :srv 332 alice #rust :All things Rust",
        ":srv 353 alice = #rust :@alice bob +carol",
        ":srv 366 alice #rust :End of /NAMES list",
        "@time=2024-05-01T09:00:00.000Z :alice!a@h JOIN #design",
        ":srv 353 alice = #design :alice erin",
        ":srv 366 alice #design :End of /NAMES list",
        "@time=2024-05-01T09:30:00.000Z :bob!b@h PRIVMSG #rust :hi alice, ready?",
        "@time=2024-05-01T09:31:00.000Z :carol!c@h PRIVMSG #rust :\x01ACTION waves\x01",
        "@time=2024-05-02T08:00:00.000Z :dave!d@h JOIN #rust",
        "@time=2024-05-02T08:01:00.000Z :dave!d@h PRIVMSG #rust :morning! the 0.3 release is tagged",
        "@time=2024-05-02T08:02:00.000Z :alice!a@h PRIVMSG #rust :nice, thanks dave",
        "@time=2024-05-02T08:03:00.000Z :bob!b@h PRIVMSG #rust :alice: can you review the reconnect patch?",
        "@time=2024-05-02T08:04:00.000Z :erin!e@h PRIVMSG #design :new icons are up",
        "@time=2024-05-02T08:05:00.000Z :dave!d@h PRIVMSG alice :lunch at noon?",
    ] {
        state.handle_line(line);
    }
    state.set_active_by_name("#rust");
    state
}

/// Compares with the checked-in image. Lavapipe rasterizes the same on every machine with the
/// same Mesa; the threshold only forgives anti-aliasing rounding, not a moved widget.
fn snapshot(s: &mut Setup, name: &str) {
    s.harness.remove_cursor();
    s.harness.run();
    s.harness.snapshot_options(
        name,
        &SnapshotOptions::new().threshold(1.0).max_failed_pixels(8),
    );
}

/// All pictures come from one harness, as a person goes from logging in to switching themes,
/// so the software renderer is set up once. A failing picture does not hide the others: all
/// are compared and reported together when the harness is dropped.
#[test]
fn snapshots_of_the_login_dialog_and_the_chat_in_both_themes() {
    let mut s = setup_with(lively_state(), Theme::Light, [640.0, 520.0]);
    s.harness.get_by_label("Username").focus();
    s.harness.get_by_label("Username").type_text("alice");
    s.harness.get_by_label("Register").click();
    s.harness.run();
    s.harness
        .get_by_label("Choose a password for the new account.");
    snapshot(&mut s, "login_dialog");

    s.harness.set_size(egui::vec2(1000.0, 600.0));
    log_in(&mut s);
    s.harness.get_by_label_contains("can you review");
    snapshot(&mut s, "chat_light");

    s.harness.get_by_label("Dark theme").click();
    s.harness.run();
    assert_eq!(s.harness.state().settings.theme, Theme::Dark);
    snapshot(&mut s, "chat_dark");
}

/// Logged in as alice on a server with client tags, echo, MONITOR and read markers, in #rust
/// with a message from bob that can be answered (it has a msgid), and a conversation with dave.
fn ircv3_state() -> State {
    let mut state = State::new("alice", "alice");
    state.on_connected(true, Auth::Guest);
    let caps = "server-time echo-message message-tags batch draft/chathistory";
    for line in [
        &format!(":srv CAP * LS :{caps}"),
        &format!(":srv CAP alice ACK :{caps}"),
        ":srv 001 alice :Welcome to Parley, alice",
        ":srv 005 alice MONITOR=100 :are supported",
        "@time=2024-05-02T08:00:00.000Z :alice!a@h JOIN #rust",
        ":srv 353 alice = #rust :@alice bob carol",
        ":srv 366 alice #rust :End of /NAMES list",
        "@time=2024-05-02T08:01:00.000Z;msgid=m1 :bob!b@h PRIVMSG #rust :is the 0.3 release tagged?",
        "@time=2024-05-02T08:02:00.000Z;msgid=m2;+draft/reply=m1 :carol!c@h PRIVMSG #rust :yes, this morning",
        "@msgid=m3;+draft/reply=m1;+draft/react=🎉 :carol!c@h TAGMSG #rust",
        "@time=2024-05-02T08:03:00.000Z;msgid=m4 :dave!d@h PRIVMSG alice :lunch?",
        ":srv 730 alice :dave!d@h",
        "@time=2024-05-02T08:04:00.000Z;msgid=m5 :erin!e@h PRIVMSG alice :hello",
        ":srv 731 alice :erin",
    ] {
        state.handle_line(line);
    }
    state.set_active_by_name("#rust");
    state
}

#[test]
fn reply_and_react_from_a_messages_menu_and_see_who_is_typing() {
    let mut s = setup(ircv3_state());
    log_in(&mut s);
    s.server.take_sent();
    // "+draft/reply=<msgid>": the reply shows what it answers; the reaction is counted.
    s.harness
        .get_by_label_contains("↪ bob: is the 0.3 release tagged?");
    s.harness.get_by_label("🎉 1");
    // Reply from the message's menu: the next line carries the tag.
    s.harness
        .get_by_label_contains("08:01  bob  is the 0.3 release tagged?")
        .click_secondary();
    s.harness.run();
    s.harness.get_by_label("Reply").click();
    s.harness.run();
    s.harness
        .get_by_label("Replying to bob: is the 0.3 release tagged?");
    input(&s).focus();
    input(&s).type_text("great, trying it now");
    s.harness.run();
    // "The typing=active notification SHOULD be sent by clients continuously while the user is
    // making updates to the text-input field"; throttled to one per 3 s.
    assert_eq!(s.server.take_sent(), ["@+typing=active TAGMSG #rust"]);
    s.harness.key_press(egui::Key::Enter);
    s.harness.run();
    assert_eq!(
        s.server.take_sent(),
        ["@+draft/reply=m1 PRIVMSG #rust :great, trying it now"]
    );
    assert!(s.harness.query_by_label_contains("Replying to").is_none());
    // React from the menu: "@+draft/reply=123;+draft/react=👋 TAGMSG #channel".
    s.harness
        .get_by_label_contains("08:01  bob  is the 0.3 release tagged?")
        .click_secondary();
    s.harness.run();
    s.harness.get_by_label("👍").click();
    s.harness.run();
    assert_eq!(
        s.server.take_sent(),
        ["@+draft/reply=m1;+draft/react=👍 TAGMSG #rust"]
    );
    // The echo counts it; clicking a reaction under the message adds the same one.
    s.server
        .receive(&["@msgid=m9;+draft/reply=m1;+draft/react=👍 :alice!a@h TAGMSG #rust"]);
    s.harness.run();
    s.harness.get_by_label("🎉 1").click();
    s.harness.run();
    assert_eq!(
        s.server.take_sent(),
        ["@+draft/reply=m1;+draft/react=🎉 TAGMSG #rust"]
    );
    s.harness.get_by_label("👍 1");
    // Someone typing shows under the messages, and goes with their message.
    s.server.receive(&["@+typing=active :bob!b@h TAGMSG #rust"]);
    s.harness.run();
    s.harness.get_by_label("bob is typing…");
    s.server
        .receive(&["@time=2024-05-02T08:09:00.000Z :bob!b@h PRIVMSG #rust :thanks"]);
    s.harness.run();
    assert!(s.harness.query_by_label("bob is typing…").is_none());
    // A reply chosen here does not follow the user into another conversation.
    s.harness
        .get_by_label_contains("08:01  bob  is the 0.3 release tagged?")
        .click_secondary();
    s.harness.run();
    s.harness.get_by_label("Reply").click();
    s.harness.run();
    s.harness.get_by_label_contains("Replying to bob");
    s.harness.get_by_label_contains("• dave").click();
    s.harness.run();
    assert!(s.harness.query_by_label_contains("Replying to").is_none());
    assert_eq!(s.harness.state().replying_to, None);
    // Who of the private conversations is online, from MONITOR.
    s.harness.get_by_label_contains("• dave");
    assert!(s.harness.query_by_label_contains("• erin").is_none());
    s.harness.get_by_label_contains("erin").hover();
    s.harness.run();
    s.harness.get_by_label("erin is offline");
}

#[test]
fn typing_notices_can_be_turned_off() {
    let mut s = setup(ircv3_state());
    log_in(&mut s);
    s.server.take_sent();
    s.harness.get_by_label("Settings").click();
    s.harness.run();
    s.harness
        .get_by_label("Show others when I am typing")
        .click();
    s.harness.run();
    s.harness.get_by_label("Close").click();
    s.harness.run();
    assert!(!s.harness.state().settings.typing_notices);
    input(&s).focus();
    input(&s).type_text("quiet");
    s.harness.run();
    assert!(s.server.take_sent().is_empty());
}

#[test]
fn snapshot_of_replies_reactions_typing_and_presence() {
    let mut s = setup_with(ircv3_state(), Theme::Light, [760.0, 420.0]);
    log_in(&mut s);
    // Paused lasts 30 s: the picture does not depend on a slow machine.
    s.server.receive(&["@+typing=paused :bob!b@h TAGMSG #rust"]);
    s.harness.run();
    s.harness.get_by_label("bob is typing…");
    snapshot(&mut s, "chat_ircv3");
}
