//! The window driven as a person would, without a display: egui_kittest clicks and types
//! through AccessKit, and the offline connection stands in for the server (lines the client
//! sends are read back; server lines are fed in). No pixels are rendered.

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
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
    let (offline, server) = Offline::new(state);
    let connector = OfflineConnector::default();
    connector.prepared.lock().push_back(offline);
    let notes = Recorder::default();
    let config_dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        theme: Theme::Light,
        ..Settings::default()
    };
    let app = App::new(
        settings,
        Some(config_dir.path().to_path_buf()),
        Box::new(connector),
        Box::new(notes.clone()),
        Options::default(),
    );
    let harness = Harness::builder()
        .with_size([1000.0, 700.0])
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
        reason: Some("login failed: SASL authentication failed".into()),
    });
    s.harness.run();
    assert!(matches!(s.harness.state().phase, Phase::Login));
    s.harness
        .get_by_label_contains("The username or password was not accepted.");
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
