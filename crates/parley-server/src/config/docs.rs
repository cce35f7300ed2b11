//! The comment for every section and key, and the commented config built from them
//! ([`Config::to_commented_toml`], what `--print-config` shows): each key with what it does, when
//! a change takes effect, and its default. A test keeps the comments in step with the structs.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{Config, RELOADABLE};

/// The comment above each section in [`Config::to_commented_toml`], in file order.
pub(super) const SECTION_DOCS: &[(&str, &str)] = &[
    (
        "server",
        "Who this server says it is, and how it greets people.",
    ),
    ("listen", "Where the server accepts connections."),
    (
        "limits",
        "A bound on everything a client can grow. Lengths are in bytes.",
    ),
    (
        "flood",
        "Flood protection: each client may send `burst` lines at once, then\n\
         `lines_per_second` on average; lines beyond that wait their turn (nothing is dropped).",
    ),
    (
        "tls",
        "TLS: the certificate the TLS listeners present. With cert and key left empty, a\n\
         self-signed certificate is generated in the data directory on first start and reused;\n\
         its SHA-256 fingerprint is logged at start and printed by `parleyd cert show`.\n\
         With acme_domain set, parleyd gets a certificate from an ACME CA (Let's Encrypt) instead.",
    ),
    (
        "accounts",
        "Accounts: who may chat, how accounts are made, and how password guessing is slowed.",
    ),
    (
        "history",
        "History: every channel and private message is stored with its time and an id, so\n\
         clients can fetch what they missed (IRCv3 draft/chathistory) and offline accounts get\n\
         their private messages at their next login.",
    ),
    (
        "search",
        "Full-text search of history (SEARCH, soju.im/search): a client finds messages by their\n\
         words in the channels it is in and its own private conversations.",
    ),
    (
        "operators",
        "Server operators, named by account (admins, moderators) or by operator block (opers,\n\
         for OPER <name> <password>). Admins may do everything; moderators what\n\
         moderator_permissions lists. Operators see themselves marked with user mode +o.",
    ),
    (
        "metrics",
        "Metrics for Prometheus: connections, users, channels, lines in and out, SendQ\n\
         disconnects, login failures and store write times, at http://ADDRESS/metrics\n\
         (and /healthz: \"ok\", or 503 naming the database or cluster bus that is down).\n\
         Off unless listen names an address.",
    ),
    (
        "web",
        "The web client: https://<host>:<port>/ serves a chat page, and /ws carries IRC over\n\
         WebSocket (IRCv3 text.ircv3.net / binary.ircv3.net) for it and other web clients.\n\
         It uses the [tls] certificate; every limit of a TCP connection applies unchanged.",
    ),
    (
        "webpush",
        "Web push (IRCv3 draft/webpush): the web client notifies of private messages and\n\
         mentions while its tab is closed. The server signs pushes with a VAPID key (ECDSA\n\
         P-256) made on first start in the data directory (webpush_vapid.pem, mode 0600) and\n\
         encrypts them for the browser (RFC 8291); only the browser can read them.",
    ),
    (
        "cluster",
        "Several parleyd nodes as one network (docs/cluster.md): live state crosses a NATS\n\
         server with JetStream, and every node keeps accounts and history in one PostgreSQL\n\
         database (accounts.store = \"postgres\").",
    ),
    ("log", "What the server logs."),
];

/// The comment above each key in [`Config::to_commented_toml`], in file order. A test checks that this
/// lists exactly the keys that `Config` serializes, so it cannot fall behind the structs.
pub(super) const KEY_DOCS: &[(&str, &str, &str)] = &[
    (
        "server",
        "name",
        "The server's own name, shown as the source of its replies. Letters, digits,\n\
         '.', '-' and '_' only (like a hostname). In a cluster each node needs its own: left at\n\
         \"parley.local\", a node takes \"<cluster.node_name>.parley.local\", and a node whose\n\
         server.name a live node already uses refuses to start.",
    ),
    (
        "server",
        "network",
        "The network name clients show for this server (NETWORK= in RPL_ISUPPORT). No spaces.",
    ),
    (
        "server",
        "admin_location",
        "Where this server is and who runs it, one line, shown by ADMIN (RPL_ADMINLOC1);\n\
         \"\" says the network's name.",
    ),
    (
        "server",
        "admin_email",
        "How to reach this server's administrators, one line, shown by ADMIN (RPL_ADMINEMAIL);\n\
         \"\" says none is set.",
    ),
    (
        "server",
        "motd",
        "The message of the day, sent to every client that connects. May span several lines.",
    ),
    (
        "server",
        "default_channel",
        "Channel every new client joins after connecting; \"\" turns this off.\n\
         Must start with '#', with no spaces or commas.",
    ),
    (
        "server",
        "default_channel_modes",
        "The default channel's modes, set whenever it is made (at start, after every restart,\n\
         after it emptied): m (moderated), n (no messages from outside), t (only operators set\n\
         the topic), l N (at most N members), e.g. \"+nt\" or \"+mntl 500\". i and k are\n\
         refused: every new user is joined without an invite or key. Nobody gets channel\n\
         operator status there by arriving first; only server operators with the \"channels\"\n\
         permission moderate it and may change these modes until it is made again.",
    ),
    (
        "server",
        "default_channel_topic",
        "The default channel's topic whenever it is made; \"\" for none.",
    ),
    (
        "server",
        "data_dir",
        "Directory for the server's persistent data: the SQLite database, the generated TLS\n\
         certificate, the SCRAM secret. A relative path is taken from this file's directory.\n\
         Left out, it is the platform's data directory: $STATE_DIRECTORY under systemd\n\
         (StateDirectory=), else $XDG_DATA_HOME/parley (~/.local/share/parley) of the user\n\
         running parleyd, so every parleyd command finds the same data wherever it starts.",
    ),
    (
        "listen",
        "plain",
        "Plain-text IRC listeners, each an ip:port, e.g. [\"0.0.0.0:6667\", \"[::]:6667\"].\n\
         The default only accepts connections from this machine; [] turns plain text off.",
    ),
    (
        "listen",
        "tls",
        "TLS IRC listeners, each an ip:port; [] turns TLS off.",
    ),
    (
        "limits",
        "max_clients",
        "Most connections the server accepts at once.",
    ),
    (
        "limits",
        "max_clients_per_ip",
        "Most connections from one IP address at once.",
    ),
    (
        "limits",
        "max_clients_per_cidr",
        "Most connections from one network at once (a /24 for IPv4, a /64 for IPv6).",
    ),
    ("limits", "nick_len", "Longest nickname (1 to 64)."),
    (
        "limits",
        "user_len",
        "Longest username (the ident in USER).",
    ),
    (
        "limits",
        "channel_len",
        "Longest channel name, including its '#' (2 to 200).",
    ),
    ("limits", "topic_len", "Longest channel topic."),
    ("limits", "away_len", "Longest away message."),
    ("limits", "kick_len", "Longest kick reason."),
    (
        "limits",
        "channel_rename_interval_secs",
        "Least seconds between two renames of one channel (RENAME); 0 for none. Server \
         operators and changes of case only are exempt.",
    ),
    (
        "limits",
        "channels_per_user",
        "Most channels one client can be in at once.",
    ),
    (
        "limits",
        "registered_channels_per_account",
        "Most registered channels one account may own. A channel a logged-in user creates\n\
         past this is still made, but not registered (it vanishes with its last member);\n\
         OWNER refuses to hand a channel to an account at the limit. 0: users register none.",
    ),
    (
        "limits",
        "members_per_channel",
        "Most members one channel can have (a channel's +l can only lower it).",
    ),
    (
        "limits",
        "targets_per_message",
        "Most targets in one PRIVMSG/NOTICE (a,b,c counts as 3).",
    ),
    (
        "limits",
        "send_queue_bytes",
        "Bytes of output that may pile up for a slow client before it is\n\
         disconnected with \"SendQ exceeded\" (at least 4096).",
    ),
    (
        "limits",
        "registration_timeout_secs",
        "Seconds a new connection has to finish NICK/USER before it is dropped.",
    ),
    (
        "limits",
        "handshake_timeout_secs",
        "Seconds a TLS or HTTPS connection has to finish its TLS handshake before it is\n\
         dropped (at least 1). It holds one of its address's max_clients_per_ip meanwhile.",
    ),
    (
        "limits",
        "ping_interval_secs",
        "Seconds a client may stay silent before the server sends it a PING.",
    ),
    (
        "limits",
        "ping_timeout_secs",
        "Seconds a client has to answer that PING before it is disconnected.",
    ),
    (
        "limits",
        "whowas_entries",
        "How many departed nicknames WHOWAS remembers; 0 turns WHOWAS off.",
    ),
    (
        "limits",
        "monitor",
        "How many nicknames one client may MONITOR (be told when they come and go);\n\
         0 turns MONITOR off.",
    ),
    (
        "limits",
        "realname_len",
        "Longest realname (USER, SETNAME), 1 to 390.",
    ),
    (
        "limits",
        "read_markers_per_account",
        "Read markers (IRCv3 draft/read-marker, MARKREAD) kept per account, one per channel\n\
         or conversation; past this the oldest are forgotten (at least 1).",
    ),
    (
        "limits",
        "multiline_max_bytes",
        "Most bytes of text in one IRCv3 draft/multiline batch, its lines joined (its\n\
         max-bytes; 512 to 65536). Every recipient gets it all: mind send_queue_bytes.",
    ),
    (
        "limits",
        "multiline_max_lines",
        "Most lines in one draft/multiline batch (its max-lines; 1 to 1000).",
    ),
    ("flood", "enabled", "Whether flood protection is on."),
    (
        "flood",
        "burst",
        "Lines a client may send at once (at least 1).",
    ),
    (
        "flood",
        "lines_per_second",
        "Average lines per second allowed after the burst (more than 0).",
    ),
    (
        "tls",
        "cert",
        "PEM certificate chain file (e.g. server.crt or Let's Encrypt's fullchain.pem);\n\
         \"\" generates a self-signed certificate in the data directory.",
    ),
    (
        "tls",
        "key",
        "PEM private key file for cert (e.g. server.key or privkey.pem).",
    ),
    (
        "tls",
        "sts",
        "Advertise the IRCv3 sts policy on plain-text connections, so clients switch to TLS.",
    ),
    (
        "tls",
        "sts_duration_secs",
        "How long clients remember to use TLS; 0 asks them to forget the policy.",
    ),
    (
        "tls",
        "acme_domain",
        "Get a certificate for this DNS name automatically from an ACME CA (Let's Encrypt),\n\
         e.g. \"chat.example.org\"; \"\" turns this off. The name must resolve to this server and\n\
         port 80 (acme_http_listen) must reach parleyd for the HTTP-01 challenge. Replaces\n\
         cert and key (leave those empty). Until the first certificate arrives the self-signed\n\
         one is served; it is kept in server.data_dir/acme/ and renewed without a restart\n\
         (docs/deploy.md, \"Automatic certificates\"). Setting it agrees to the CA's terms\n\
         of service (for Let's Encrypt, its Subscriber Agreement).",
    ),
    (
        "tls",
        "acme_directory",
        "The ACME CA's directory URL (https). Let's Encrypt's staging directory,\n\
         https://acme-staging-v02.api.letsencrypt.org/directory, is for trying things out.",
    ),
    (
        "tls",
        "acme_email",
        "Contact address the CA may write to about expiry or policy; \"\" gives none.",
    ),
    (
        "tls",
        "acme_ca",
        "PEM file of extra CA certificates to trust for the ACME server's own HTTPS (a\n\
         private ACME CA, or pebble in tests); \"\" trusts the system's CAs only.",
    ),
    (
        "tls",
        "acme_http_listen",
        "Plain-HTTP listeners for the ACME HTTP-01 challenge, each an ip:port; used only with\n\
         acme_domain. The CA connects to port 80; add \"[::]:80\" for IPv6. They answer\n\
         /.well-known/acme-challenge/ and redirect everything else to https.",
    ),
    (
        "tls",
        "acme_renew_days",
        "Renew the certificate when fewer than this many days are left (1 to 365; Let's\n\
         Encrypt's certificates last 90 days).",
    ),
    (
        "accounts",
        "require_login",
        "Connections must log in (SASL PLAIN or PASS account:password) before chatting.\n\
         With false, guests may chat but cannot take a registered account's nick.",
    ),
    (
        "accounts",
        "registration",
        "\"open\": anyone may create an account with REGISTER; \"closed\": only `parleyd users add`.",
    ),
    (
        "accounts",
        "register_before_connect",
        "REGISTER is accepted before the connection is registered (clients create the account\n\
         and log in in one go). With false, REGISTER waits until after the welcome; that needs\n\
         require_login = false, or nobody without an account could get that far.",
    ),
    (
        "accounts",
        "store",
        "Where accounts, history, registered channels, bans and the audit trail are kept:\n\
         \"sqlite\" (the file named by database) or \"postgres\" (the database at postgres_url).",
    ),
    (
        "accounts",
        "database",
        "SQLite database file, relative to server.data_dir unless absolute.",
    ),
    (
        "accounts",
        "postgres_url",
        "PostgreSQL database for store = \"postgres\", e.g. \"postgres://parley@127.0.0.1/parley\".\n\
         Keep a password out of this file: set PARLEY_ACCOUNTS__POSTGRES_URL in the environment.\n\
         TLS: add ?sslmode=disable, prefer, require, verify-ca or verify-full. Without it, a\n\
         database on this machine (loopback, Unix socket) is reached in clear and any other\n\
         with verify-full. Every mode but disable checks the certificate's CA (postgres_ca).",
    ),
    (
        "accounts",
        "postgres_ca",
        "PEM file of the CA that signed the PostgreSQL server's certificate, e.g.\n\
         \"/etc/parley/postgres-ca.pem\"; empty: the system's CA certificates.",
    ),
    (
        "accounts",
        "postgres_client_cert",
        "PEM certificate parleyd shows PostgreSQL (its `cert` authentication); empty: none.\n\
         Needs postgres_client_key.",
    ),
    (
        "accounts",
        "postgres_client_key",
        "PEM private key of postgres_client_cert.",
    ),
    (
        "accounts",
        "min_password_len",
        "Shortest password accepted, in characters.",
    ),
    (
        "accounts",
        "max_password_len",
        "Longest password accepted, in bytes.",
    ),
    (
        "accounts",
        "allow_plaintext_login",
        "Accept passwords over plain text from anywhere (never needed with TLS).",
    ),
    (
        "accounts",
        "plaintext_login_from",
        "Networks (CIDR) whose plain-text logins are accepted even when the above is false;\n\
         the default is this machine only.",
    ),
    (
        "accounts",
        "max_failures",
        "Failed logins for one account within failure_window_secs, from anywhere, before it is\n\
         locked out; logins still being checked count too (more wait), so a burst gets no\n\
         more guesses. Each failure is also answered later than the last (0.25 s up to 4 s).",
    ),
    (
        "accounts",
        "address_max_accounts",
        "Different account names one address's failed logins must name within\n\
         failure_window_secs before the address is locked out: a spray, never one user's\n\
         typos. An IPv6 address counts as its whole /64; loopback (this machine, a local\n\
         reverse proxy) is never locked out as an address, only per account.",
    ),
    (
        "accounts",
        "failure_window_secs",
        "Seconds over which failed logins are counted.",
    ),
    (
        "accounts",
        "lockout_secs",
        "Seconds a locked-out account or address must wait. Short on purpose: anyone can lock\n\
         an account out by guessing, so a long lockout mostly hurts its owner. An admin ends\n\
         one at once, on every running node: parleyd users unlock NAME (or --address IP).",
    ),
    (
        "accounts",
        "scram_iterations",
        "PBKDF2 rounds for new SASL SCRAM-SHA-256 credentials (4096 to 1000000). The client pays\n\
         them at each login (about 0.1 s at 600000 on a desktop core), and so does anyone who\n\
         stole the database, per guess. Existing credentials are redone at the next PLAIN login.",
    ),
    (
        "accounts",
        "multiclient",
        "Several devices, one presence: a login to an account whose user is already connected\n\
         to this node becomes another session of that user (its nick, channels and away state,\n\
         a welcome and a JOIN burst of its channels); what one session sends the others see as\n\
         echo-message would show it, and others see the user leave only with its last session.\n\
         A login after the welcome (AUTHENTICATE, REGISTER) stays a user of its own, and so does\n\
         one on another cluster node. false: every connection is a user of its own.",
    ),
    (
        "accounts",
        "max_sessions",
        "Most sessions (connections) one account may have at once with multiclient (1 to 1000);\n\
         the next login is refused with FAIL * TOO_MANY_SESSIONS and an ERROR.",
    ),
    (
        "accounts",
        "always_on",
        "Keep an account present when its last session leaves: in its channels, holding its\n\
         nick, away, its messages kept for its next login. \"off\", \"opt-in\" (each account\n\
         turns it on with ALWAYSON ON) or \"on\" (every account).",
    ),
    (
        "accounts",
        "always_on_away",
        "The away message of an always-on account while none of its sessions is connected.",
    ),
    (
        "accounts",
        "always_on_limit",
        "Most always-on accounts kept present with no session at once (0 to 1000000); past it\n\
         a leaving session quits as without always-on.",
    ),
    (
        "accounts",
        "replay_limit",
        "Most lines per channel or conversation replayed at login, from the read marker, to a\n\
         client without chathistory taking over an always-on presence (0 to 10000); a notice\n\
         says how many more are in history.",
    ),
    (
        "history",
        "enabled",
        "Store channel and private messages. Off: nothing is kept and nothing replayed.",
    ),
    (
        "history",
        "replay_on_join",
        "Lines of a channel replayed on join to clients without chathistory; 0 turns it off.",
    ),
    (
        "history",
        "max_request",
        "Most messages one CHATHISTORY request returns (at least 1).",
    ),
    (
        "history",
        "max_age_days",
        "Delete messages older than this many days; 0 keeps them forever.",
    ),
    (
        "history",
        "max_rows_per_target",
        "Keep at most this many messages per channel or conversation; 0 means no limit.",
    ),
    (
        "history",
        "prune_interval_secs",
        "Seconds between runs of the pruning task (at least 1).",
    ),
    (
        "search",
        "enabled",
        "Offer full-text search of history (the SEARCH command, capability soju.im/search).\n\
         Needs history.enabled.",
    ),
    (
        "search",
        "default_limit",
        "Messages one SEARCH returns when the client names no limit (1 to max_limit).",
    ),
    (
        "search",
        "max_limit",
        "Most messages one SEARCH returns, whatever limit the client names (1 to 1000).",
    ),
    (
        "search",
        "max_text_len",
        "Longest search text accepted, in bytes (1 to 1000).",
    ),
    (
        "search",
        "max_words",
        "Most words in one search text (1 to 32).",
    ),
    (
        "search",
        "timeout_ms",
        "A search running longer than this is stopped and answered with FAIL SEARCH\n\
         INTERNAL_ERROR (10 to 60000).",
    ),
    (
        "search",
        "burst",
        "Searches a connection may make at once; after them, searches wait their turn (1 to 1000).",
    ),
    (
        "search",
        "per_minute",
        "Searches per minute a connection may make on average after its burst (1 to 6000).",
    ),
    (
        "search",
        "max_concurrent",
        "Searches running at once on the whole server; more wait their turn (1 to 64).",
    ),
    (
        "operators",
        "admins",
        "Accounts with every operator permission, e.g. [\"alice\"].",
    ),
    (
        "operators",
        "moderators",
        "Accounts with the permissions below.",
    ),
    (
        "operators",
        "moderator_permissions",
        "What moderators may do, from: kill, kline, dline, suspend, wallops, notice,\n\
         broadcast, channels (act as owner of any registered channel, see secret channels),\n\
         chghost (CHGHOST: give a user a new username and host).",
    ),
    (
        "operators",
        "auto_oper",
        "Operators get their status at login; with false they send OPER first.",
    ),
    (
        "operators",
        "broadcast",
        "Who may send /broadcast (PRIVMSG $*) to everyone: \"operators\" or \"everyone\".",
    ),
    (
        "operators",
        "broadcast_interval_secs",
        "With broadcast = \"everyone\", seconds between two broadcasts of one user.",
    ),
    (
        "operators",
        "opers",
        "Operator blocks for OPER <name> <password>, as on other IRC servers: one\n\
         [[operators.opers]] table each, with name (what OPER is given), password_hash (the\n\
         Argon2id hash `parleyd oper hash` prints; it reads the password from standard input,\n\
         and a clear password here is refused at load), class (\"moderator\", the default, or\n\
         \"admin\"), require_tls (true: only over TLS or the web client), hosts (user@host masks\n\
         with * and ?, or networks like \"10.0.0.0/8\", one of which must match; [] for anywhere)\n\
         and account (the account the client must be logged in to; \"\" for none). A wrong\n\
         password or an unknown name gets 464, a block that may not be used from here 491;\n\
         failures count against the login lockout (accounts.max_failures).",
    ),
    (
        "metrics",
        "listen",
        "Addresses (ip:port) of the metrics HTTP listener, e.g. [\"127.0.0.1:9100\"];\n\
         [] turns metrics off. The figures are not secret but not for everyone: keep it on\n\
         loopback or a private network.",
    ),
    (
        "web",
        "listen",
        "HTTPS listeners for the web client, each an ip:port; [] turns the web client off.",
    ),
    (
        "web",
        "allowed_origins",
        "Other web origins whose pages may connect, e.g. [\"https://chat.example.org\"];\n\
         the server's own origin is always allowed, and \"*\" allows any page.",
    ),
    (
        "web",
        "session_days",
        "Days a login session (the web client staying logged in across reloads) lasts\n\
         unused; each use starts them again. /logout, a password change, a lock or\n\
         `parleyd users logout NAME` end sessions sooner.",
    ),
    (
        "web",
        "max_sessions",
        "Most login sessions (browsers staying logged in) one account keeps; a new one\n\
         beyond this ends the least recently used.",
    ),
    (
        "webpush",
        "enabled",
        "Offer draft/webpush: accounts register their browsers (WEBPUSH REGISTER) and get\n\
         pushes. Guests cannot; their client is told so.",
    ),
    (
        "webpush",
        "max_subscriptions",
        "Most push subscriptions (browsers, devices) one account keeps (1 to 1000); one more\n\
         is refused with FAIL WEBPUSH MAX_REGISTRATIONS.",
    ),
    (
        "webpush",
        "push_when",
        "\"offline\": push a private message only when the account has no connected session\n\
         (it is also kept for the next login); \"always\": push every private message and\n\
         every channel message that names the account's nick, connected or not.",
    ),
    (
        "webpush",
        "contact",
        "How a push service can reach you (the VAPID sub claim), e.g.\n\
         \"mailto:admin@example.org\"; \"\" sends none.",
    ),
    (
        "webpush",
        "queue",
        "Pushes waiting to be sent (1 to 1000000). A slow push service never holds up chat:\n\
         past this, new pushes are dropped and counted in the log.",
    ),
    (
        "webpush",
        "concurrency",
        "Pushes sent at once (1 to 256).",
    ),
    (
        "webpush",
        "timeout_secs",
        "Longest one push may take, connection included (1 to 300); a push service that\n\
         answers 404 or 410 loses the subscription at once.",
    ),
    (
        "webpush",
        "allow_insecure_endpoints",
        "Hosts (as in the endpoint URL, e.g. [\"127.0.0.1\"]) whose push endpoints may use\n\
         plain http:// and loopback or private addresses. For tests and closed LANs only:\n\
         otherwise an endpoint must be https:// on a public address, so a client cannot make\n\
         the server reach into its own network.",
    ),
    (
        "cluster",
        "enabled",
        "Join a cluster; needs accounts.store = \"postgres\" and a NATS server with JetStream.",
    ),
    (
        "cluster",
        "nats_url",
        "The NATS server, e.g. \"nats://127.0.0.1:4222\" (tls:// for TLS). Keep a password\n\
         out of this file: set PARLEY_CLUSTER__NATS_URL in the environment.",
    ),
    (
        "cluster",
        "node_name",
        "This node's name, unique in the cluster (letters, digits, - and _).",
    ),
    (
        "cluster",
        "lease_secs",
        "A node not heard from for this long is taken for dead: its users quit everywhere\n\
         and their nicks are free again.",
    ),
    (
        "cluster",
        "prefix",
        "Prefix of the JetStream stream and buckets, so clusters can share a NATS server.",
    ),
    (
        "cluster",
        "nodes",
        "Every node's name, this one's included, e.g. [\"n1\", \"n2\"]. Events, heartbeats\n\
         and snapshots from any other name are dropped. Required unless insecure = true.",
    ),
    (
        "cluster",
        "nats_user",
        "This node's own NATS user; its permissions in nats-server let it publish only\n\
         as this node (docs/cluster.md has the nats-server config).",
    ),
    (
        "cluster",
        "nats_password",
        "The NATS user's password. Keep it out of this file: set\n\
         PARLEY_CLUSTER__NATS_PASSWORD in the environment. Never printed.",
    ),
    (
        "cluster",
        "nats_token",
        "A NATS token instead of nats_user and nats_password (PARLEY_CLUSTER__NATS_TOKEN).\n\
         Never printed.",
    ),
    (
        "cluster",
        "nats_nkey_seed_file",
        "A file holding this node's NATS user nkey seed (SU...), instead of a user and\n\
         password: nats-server lists the node as { nkey: U... } (docs/cluster.md). Keep the\n\
         file readable by parleyd's user only.",
    ),
    (
        "cluster",
        "nats_nkey_seed",
        "The nkey seed itself instead of nats_nkey_seed_file; keep it out of this file:\n\
         set PARLEY_CLUSTER__NATS_NKEY_SEED in the environment. Never printed.",
    ),
    (
        "cluster",
        "nats_creds_file",
        "A NATS .creds file (user JWT and nkey seed) for nats-server in operator mode,\n\
         instead of the other logins. Keep it readable by parleyd's user only.",
    ),
    (
        "cluster",
        "nats_tls_ca",
        "PEM file of the CA that signed the NATS server's certificate; set, it makes TLS\n\
         to NATS required.",
    ),
    (
        "cluster",
        "nats_tls_cert",
        "PEM client certificate this node presents to NATS (with nats_tls_key); nats-server\n\
         can map it to the node's user (verify_and_map).",
    ),
    (
        "cluster",
        "nats_tls_key",
        "PEM private key of nats_tls_cert.",
    ),
    (
        "cluster",
        "insecure",
        "Run without NATS credentials and without a list of nodes. Anyone who reaches the\n\
         NATS server then reads every private message and can forge any event: only for a\n\
         private test network.",
    ),
    (
        "log",
        "level",
        "One of trace, debug, info, warn, error, off; or tracing filter directives\n\
         such as \"info,parley_server=debug\".",
    ),
];

impl Config {
    /// The effective configuration as TOML, with a comment above every section and key saying what it
    /// does and its default. Parses back to an equal `Config`.
    pub fn to_commented_toml(&self) -> String {
        let mut printable = self.without_secrets();
        // Only a Config built in code can hold a non-UTF-8 path, and TOML cannot spell one.
        printable.server.data_dir = PathBuf::from(self.server.data_dir.to_string_lossy().as_ref());
        let values = toml::Table::try_from(&printable)
            .expect("a Config with a UTF-8 data_dir always serializes to a TOML table");
        let defaults = default_table();

        let mut out = String::from(
            "# Parley server (parleyd) configuration.\n\
             # Every key is optional: one left out takes the default named in its comment.\n",
        );
        for (section, section_help) in SECTION_DOCS {
            out.push('\n');
            push_comment(&mut out, section_help);
            let _ = writeln!(out, "[{section}]");
            for (_, key, help) in KEY_DOCS.iter().filter(|(s, _, _)| s == section) {
                let value = values.get(*section).and_then(|table| table.get(*key));
                let default = defaults.get(*section).and_then(|table| table.get(*key));
                let (Some(value), Some(default)) = (value, default) else {
                    continue;
                };
                out.push('\n');
                let when = if RELOADABLE.contains(&(section, key)) {
                    "Takes effect on reload (SIGHUP or REHASH)."
                } else {
                    "Changing it needs a restart."
                };
                push_comment(
                    &mut out,
                    &format!("{help}\n{when}\nDefault: {}", one_line_value(default)),
                );
                let _ = writeln!(out, "{key} = {value}");
            }
        }
        out
    }
}

fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// A value written on one line (newlines escaped), for the "Default:" part of a comment.
pub(super) fn one_line_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => {
            let mut quoted = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    '\t' => quoted.push_str("\\t"),
                    c if c.is_control() => {
                        let _ = write!(quoted, "\\u{:04X}", u32::from(c));
                    }
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            quoted
        }
        other => other.to_string(),
    }
}

pub(super) fn default_table() -> toml::Table {
    toml::Table::try_from(Config::default()).expect("the default Config serializes to a TOML table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_commented_toml() {
        let text = Config::default().to_commented_toml();
        let parsed = Config::from_toml_str(&text).expect("commented default config parses");
        assert_eq!(parsed, Config::default());
        assert!(text.contains("# Longest nickname (1 to 64).\n# Changing it needs a restart.\n# Default: 30\nnick_len = 30\n"));
        assert!(text.contains("[limits]\n"));
    }

    #[test]
    fn changed_config_round_trips_through_commented_toml() {
        let mut config = Config::default();
        config.server.motd = "line \"one\"\nline two\\ with a tab\t".to_owned();
        config.server.default_channel = String::new();
        config.listen.plain = vec!["0.0.0.0:6667".to_owned(), "[::1]:7000".to_owned()];
        config.flood.lines_per_second = 0.25;
        config.flood.enabled = false;
        config.log.level = "info,parley_server=debug".to_owned();
        let text = config.to_commented_toml();
        assert_eq!(
            Config::from_toml_str(&text).expect("commented config parses"),
            config
        );
        // Comments name the default even when the value differs from it.
        assert!(text.contains("# Default: true\nenabled = false\n"));
    }

    #[test]
    fn every_section_and_key_is_documented() {
        let defaults = default_table();
        let documented_sections: Vec<&str> = SECTION_DOCS.iter().map(|(s, _)| *s).collect();
        let mut serialized_sections: Vec<&str> = defaults.keys().map(String::as_str).collect();
        serialized_sections.sort_unstable();
        let mut sorted = documented_sections.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, serialized_sections);
        for section in documented_sections {
            let table = defaults
                .get(section)
                .and_then(toml::Value::as_table)
                .expect("every documented section is a table");
            let mut serialized: Vec<&str> = table.keys().map(String::as_str).collect();
            serialized.sort_unstable();
            let mut documented: Vec<&str> = KEY_DOCS
                .iter()
                .filter(|(s, _, _)| *s == section)
                .map(|(_, k, _)| *k)
                .collect();
            documented.sort_unstable();
            assert_eq!(documented, serialized, "keys of [{section}]");
        }
    }
}
