// Parley web client: the IRC protocol and the chat state, with no DOM and no network, so
// `node --test` checks it and app.js only renders. Mirrors parley-client (input.rs, state.rs):
// the same short commands, the same buffers, unread counts and history loading.

export const HISTORY_BATCH = 50;
/** The IRCV3BEARER token type of Parley's login sessions. */
export const SESSION_TOKEN_TYPE = 'parley.chat/session';
export const MAX_LINES_PER_BUFFER = 2000;
const WANTED_CAPS = [
  'account-notify', 'account-tag', 'batch', 'draft/chathistory', 'echo-message', 'extended-join',
  'message-tags', 'multi-prefix', 'sasl', 'server-time', 'userhost-in-names',
  'draft/account-registration', 'draft/read-marker', 'labeled-response',
  // Reactions from history: CHATHISTORY returns TAGMSG only to clients with event-playback.
  'draft/event-playback',
  // Server-side search: soju's name for the extension and the draft one (see "Search" below).
  'soju.im/search', 'draft/search',
  // Push notifications while the tab is closed (push.js, sw.js).
  'draft/webpush',
];
/** How long typing notices to a target that refused one (401, 404, ...) stay unsent. */
export const TYPING_REFUSED_MS = 60000;
/**
 * End-to-end encryption (docs/e2e.md): Parley's terminal and desktop clients carry an encrypted
 * private message in this client-only tag, with a placeholder body. This browser has no keys
 * (vodozemac in WebAssembly is not built yet), so such a message is shown as E2E_NOTICE, never
 * as the placeholder, and writing to a peer who encrypts gets E2E_CLEAR_HINT once.
 */
export const E2E_TAG = '+parley.chat/e2e';
export const E2E_NOTICE = '\u{1F512} Encrypted message \u2014 this browser cannot read end-to-end encrypted messages; read it in Parley\'s terminal or desktop client';
export const E2E_CLEAR_HINT = 'This browser sends in clear text: the server can read what you write here. %s\'s messages are end-to-end encrypted by a Parley app; for an encrypted conversation, use Parley\'s terminal or desktop client.';

/** How many nick colours style.css defines (.nick-c0 ... .nick-c11), as parley-gui's palettes. */
export const NICK_COLOURS = 12;

// Typing notifications (ircv3.net/specs/client-tags/typing). "Input event handlers MUST be
// throttled so that any `typing` notification is not sent within 3 seconds of another one for a
// given target." A receiver assumes typing goes on until "At least 6 seconds have passed since the
// last `typing=active` notification" or "At least 30 seconds have elapsed since the last
// `typing=paused` notification"; we send `paused` once the user has not typed for as long as an
// `active` lasts at the other end.
export const TYPING_THROTTLE_MS = 3000;
export const TYPING_ACTIVE_MS = 6000;
export const TYPING_PAUSED_MS = 30000;
export const TYPING_IDLE_MS = 6000;
/** The reactions offered under a message (ircv3.net/specs/client-tags/react: any value goes). */
export const REACTIONS = ['\u{1F44D}', '\u2764\uFE0F', '\u{1F602}', '\u{1F389}', '\u{1F62E}', '\u{1F440}'];
/** The react spec sets no limit and suggests clients pick one: a reaction is a symbol, not a text. */
export const MAX_REACTION_BYTES = 64;
/** Messages whose reactions a buffer remembers (the oldest are forgotten first, like its lines). */
const MAX_REACTED_MESSAGES = MAX_LINES_PER_BUFFER;
/** At most one MARKREAD per conversation this often, however fast its lines arrive. */
export const READ_MARKER_INTERVAL_MS = 1000;
/** WHOIS replies (RFC 2812 and modern.ircdocs.horse): shown where /whois was asked. */
const WHOIS_NUMERICS = new Set([
  '276', '301', '307', '311', '312', '313', '317', '318', '319', '320', '330', '338', '378', '379', '671',
]);

// --- Lines -----------------------------------------------------------------------------------

const TAG_UNESCAPES = { ':': ';', s: ' ', '\\': '\\', r: '\r', n: '\n' };

export function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, c) => (c in TAG_UNESCAPES ? TAG_UNESCAPES[c] : c));
}

export function escapeTag(value) {
  return value.replace(/\\/g, '\\\\').replace(/;/g, '\\:').replace(/ /g, '\\s').replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** `line` with message tags in front: {'+typing': 'active'} -> '@+typing=active line'. */
export function withTags(tags, line) {
  const entries = Object.entries(tags);
  if (!entries.length) return line;
  return '@' + entries.map(([k, v]) => (v === '' ? k : `${k}=${escapeTag(v)}`)).join(';') + ' ' + line;
}

/** Parse one IRC line (no CRLF) into {tags, source, command, params}; null if empty. */
export function parseLine(line) {
  let rest = line.replace(/[\r\n]+$/, '');
  const tags = {};
  if (rest.startsWith('@')) {
    const space = rest.indexOf(' ');
    if (space < 0) return null;
    for (const tag of rest.slice(1, space).split(';')) {
      if (!tag) continue;
      const eq = tag.indexOf('=');
      if (eq < 0) tags[tag] = '';
      else tags[tag.slice(0, eq)] = unescapeTag(tag.slice(eq + 1));
    }
    rest = rest.slice(space + 1).replace(/^ +/, '');
  }
  let source = null;
  if (rest.startsWith(':')) {
    const space = rest.indexOf(' ');
    if (space < 0) return null;
    source = rest.slice(1, space);
    rest = rest.slice(space + 1).replace(/^ +/, '');
  }
  const params = [];
  while (rest.length) {
    if (rest.startsWith(':')) {
      params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(' ');
    if (space < 0) {
      params.push(rest);
      break;
    }
    params.push(rest.slice(0, space));
    rest = rest.slice(space + 1).replace(/^ +/, '');
  }
  if (!params.length) return null;
  const command = params.shift().toUpperCase();
  return { tags, source, command, params };
}

/** Build a line: the last parameter gets a ':' when it needs one. */
export function ircLine(command, ...params) {
  const parts = [command];
  params.forEach((p, i) => {
    const last = i === params.length - 1;
    if (last && (p === '' || p.includes(' ') || p.startsWith(':'))) parts.push(':' + p);
    else parts.push(p);
  });
  return parts.join(' ');
}

export function nickOf(source) {
  if (!source) return '';
  const bang = source.indexOf('!');
  return bang < 0 ? source : source.slice(0, bang);
}

/** RFC 1459 case folding, as the server's CASEMAPPING. */
export function casefold(name) {
  return name.toLowerCase().replace(/[[\]\\~]/g, (c) => ({ '[': '{', ']': '}', '\\': '|', '~': '^' })[c]);
}

/** Case folding under an ISUPPORT CASEMAPPING value: 'ascii' folds only A-Z (parleyd's). */
export function casefoldAs(mapping, name) {
  if (mapping === 'ascii') return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return casefold(name);
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text`. */
export function fnv1a32(text) {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/**
 * The colour (index into the palette) of a person: the rule all Parley clients share, the
 * FNV-1a hash of their casefolded account name, or of their nick for guests, so a person keeps
 * their colour across nick changes and clients.
 */
export function nickColour(key, mapping = 'ascii') {
  return fnv1a32(casefoldAs(mapping, key || '')) % NICK_COLOURS;
}

export const isChannel = (name) => /^[#&]/.test(name);

/** UTF-8 safe base64, for SASL PLAIN (btoa alone only takes Latin-1). */
/**
 * The server's words for a refused login (904, 464) as one sentence, as the other Parley clients
 * say it: a lockout says how long in minutes ("try again in 5 minutes"), a wrong password says
 * so once, and anything else is the server's own reason.
 */
export function loginRefusal(serverText) {
  const text = (serverText || '').trim();
  const locked = /too many failed logins/i.test(text);
  if (locked) {
    const seconds = Number((/try again in (\d+) seconds?/i.exec(text) || [])[1]);
    if (!Number.isFinite(seconds)) return 'Too many failed logins; try again later.';
    if (seconds < 60) return `Too many failed logins; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`;
    const minutes = Math.ceil(seconds / 60);
    return `Too many failed logins; try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
  }
  const lower = text.toLowerCase();
  if (!lower || lower.includes('invalid account name or password') || lower.includes('password incorrect')
      || lower.startsWith('sasl authentication failed')) {
    return 'The username or password was not accepted.';
  }
  return `The server refused the login: ${text}`;
}

export function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

// --- Input: what the user types ----------------------------------------------------------------

export const COMMANDS = [
  ['join', '/join <#channel> [key]', 'join a channel'],
  ['part', '/part [#channel] [reason]', 'leave a channel (default: this one)'],
  ['msg', '/msg <nick|#channel> <text>', 'send a message'],
  ['query', '/query <nick> [text]', 'open a private conversation'],
  ['me', '/me <action>', 'send an action'],
  ['nick', '/nick <newnick>', 'change your nick'],
  ['topic', '/topic [#channel] [text]', 'show or set the topic'],
  ['whois', '/whois <nick>', 'who is that?'],
  ['away', '/away [message]', 'set away; without a message: back'],
  ['quit', '/quit [reason]', 'disconnect'],
  ['logout', '/logout', 'log out: end this browser\'s session and forget it'],
  ['exit', '/exit', 'disconnect'],
  ['help', '/help', 'this list'],
  ['broadcast', '/broadcast <text>', 'message everyone on the server (if allowed)'],
  ['create_group', '/create_group <name>', 'create a new group (fails if it exists)'],
  ['join_group', '/join_group <name>', 'join a group'],
  ['group_msg', '/group_msg <name> <text>', 'message a group'],
  ['leave_group', '/leave_group <name>', 'leave a group'],
  ['search', '/search [#channel|nick] <words>', 'search the history on the server; alone: older results'],
  ['close', '/close', 'close this conversation'],
  ['typing', '/typing on|off', 'tell others when you are typing (on by default)'],
  ['quote', '/quote <raw IRC line>', 'send a raw protocol line'],
];

export class InputError extends Error {}

function splitWord(s) {
  s = s.replace(/^\s+/, '');
  const space = s.indexOf(' ');
  return space < 0 ? [s, ''] : [s.slice(0, space), s.slice(space + 1).replace(/^\s+/, '')];
}

function checkName(what, name) {
  if (/[\s,\u0000-\u001f\u007f]/.test(name)) {
    throw new InputError(`"${name}" is not a valid ${what}: spaces, commas and control characters are not allowed`);
  }
  if (new TextEncoder().encode(name).length > 50) {
    throw new InputError(`"${name}" is not a valid ${what}: it is longer than 50 bytes`);
  }
}

function channelName(name) {
  checkName('channel name', name);
  return isChannel(name) ? name : '#' + name;
}

function nickName(nick) {
  checkName('nick', nick);
  if (/^[#&0-9:-]/.test(nick)) {
    throw new InputError(`"${nick}" is not a valid nick: a nick cannot start with a digit, '-', ':', '#' or '&'`);
  }
  return nick;
}

function groupName(rest, usage) {
  const [name, extra] = splitWord(rest);
  if (!name || extra.trim()) throw new InputError('usage: ' + usage);
  const channel = channelName(name);
  if (channel.length < 2) throw new InputError('usage: ' + usage);
  return channel;
}

/** Parse a line of input into an action ({type, ...}); throws InputError with a helpful text. */
export function parseInput(line) {
  line = line.replace(/[\r\n]+$/, '');
  if (/[\r\n\0]/.test(line)) throw new InputError('line contains a line break or NUL, which IRC cannot carry');
  if (!line.trim()) throw new InputError('nothing to send');
  if (!line.startsWith('/')) return { type: 'say', text: line };
  const commandLine = line.slice(1);
  if (commandLine.startsWith('/')) return { type: 'say', text: commandLine };
  let [name, rest] = splitWord(commandLine);
  rest = rest.trim();
  name = name.toLowerCase();
  const usage = (u) => new InputError('usage: ' + u);
  const text = (u) => {
    if (!rest) throw usage(u);
    return rest;
  };
  switch (name) {
    case 'join': case 'j': {
      const [channel, key] = splitWord(rest);
      if (!channel) throw usage('/join <#channel> [key]');
      return { type: 'join', channel: channelName(channel), key: splitWord(key)[0] || null };
    }
    case 'part': case 'leave': {
      const [first, after] = splitWord(rest);
      if (isChannel(first)) return { type: 'part', channel: first, reason: after.trim() || null };
      return { type: 'part', channel: null, reason: rest || null };
    }
    case 'msg': case 'privmsg': case 'm': {
      const [target, body] = splitWord(rest);
      if (!target || !body.trim()) throw usage('/msg <nick|#channel> <text>');
      return { type: 'msg', target, text: body };
    }
    case 'query': case 'q': {
      const [nick, body] = splitWord(rest);
      if (!nick) throw usage('/query <nick> [text]');
      return { type: 'query', nick: nickName(nick), text: body.trim() || null };
    }
    case 'me': return { type: 'me', text: text('/me <action>') };
    case 'nick': {
      const [nick, extra] = splitWord(rest);
      if (!nick || extra.trim()) throw usage('/nick <newnick>');
      return { type: 'nick', nick: nickName(nick) };
    }
    case 'topic': {
      const [first, after] = splitWord(rest);
      if (isChannel(first)) return { type: 'topic', channel: first, topic: after.trim() || null };
      return { type: 'topic', channel: null, topic: rest || null };
    }
    case 'whois': case 'wi': {
      const [nick] = splitWord(rest);
      if (!nick) throw usage('/whois <nick>');
      return { type: 'whois', nick };
    }
    case 'away': return { type: 'away', message: rest || null };
    case 'quit': return { type: 'quit', reason: rest || null };
    case 'exit': return { type: 'quit', reason: null };
    case 'logout': return { type: 'logout' };
    case 'help': case 'h': case '?': return { type: 'help' };
    case 'broadcast': case 'wall': return { type: 'broadcast', text: text('/broadcast <text>') };
    case 'create_group': return { type: 'create_group', channel: groupName(rest, '/create_group <name>') };
    case 'join_group': return { type: 'join_group', channel: groupName(rest, '/join_group <name>') };
    case 'leave_group': return { type: 'leave_group', channel: groupName(rest, '/leave_group <name>') };
    case 'group_msg': {
      const [group, body] = splitWord(rest);
      if (!group || !body.trim()) throw usage('/group_msg <name> <text>');
      return { type: 'group_msg', channel: groupName(group, '/group_msg <name> <text>'), text: body };
    }
    case 'search': case 'grep': {
      // A first word that is a channel limits the search to it; a nick is recognised by
      // ChatState.search, which knows the open conversations.
      if (!rest) return { type: 'search_more' };
      const [first, after] = splitWord(rest);
      if (isChannel(first) && after.trim()) return { type: 'search', text: after.trim(), target: first };
      return { type: 'search', text: rest, target: null };
    }
    case 'close': case 'wc': return { type: 'close' };
    case 'typing': {
      const value = rest.toLowerCase();
      if (value !== 'on' && value !== 'off') throw usage('/typing on|off');
      return { type: 'typing', on: value === 'on' };
    }
    case 'quote': case 'raw': return { type: 'raw', line: text('/quote <raw IRC line>') };
    default: throw new InputError(`unknown command /${name}; type /help for the list of commands`);
  }
}

// --- State: buffers, members, login -----------------------------------------------------------

const SERVER = '*server*';

function newBuffer(name, kind, key) {
  return {
    key, name, kind, lines: [], unread: 0, mention: false, members: new Map(), topic: '',
    historyDone: kind === 'server', historyLoading: false, msgids: new Set(),
    // Who is typing here: casefolded nick -> {nick, state: 'active' | 'paused', at}.
    typing: new Map(),
    // Reactions: msgid of the message reacted to -> Map reaction -> {who: Set, nicks: [], own}.
    reactions: new Map(),
    // The read marker (draft/read-marker): the time read up to, null while unknown; the
    // `time` tag of the newest line read here not yet sent, and when a MARKREAD last went.
    readAt: null, readPending: null, readSentAt: -Infinity,
    // MONITOR (query buffers): true online, false offline, null not known.
    online: null,
  };
}

/** The kinds of line that are messages (PRIVMSG, NOTICE), as opposed to events and errors. */
const MESSAGE_KINDS = new Set(['msg', 'action', 'notice']);

/** The reaction a message carries: react "MUST be used in conjunction with the `+draft/reply`" tag. */
export function reactionOf(msg) {
  const value = msg.tags['+draft/react'];
  const parent = msg.tags['+draft/reply'];
  if (!value || !parent || new TextEncoder().encode(value).length > MAX_REACTION_BYTES) return null;
  return { parent, value };
}

/** Whether someone's typing notification still holds (the receiver's rules of the typing spec). */
function typingLasts(t, now) {
  return now - t.at < (t.state === 'paused' ? TYPING_PAUSED_MS : TYPING_ACTIVE_MS);
}

/** "alice is typing…", "alice and bob are typing…", "4 people are typing…". */
export function typingText(nicks) {
  if (!nicks.length) return '';
  if (nicks.length === 1) return `${nicks[0]} is typing\u2026`;
  if (nicks.length <= 3) return `${nicks.slice(0, -1).join(', ')} and ${nicks.at(-1)} are typing\u2026`;
  return `${nicks.length} people are typing\u2026`;
}

function timeOf(tags) {
  const t = tags && tags.time ? Date.parse(tags.time) : NaN;
  return Number.isNaN(t) ? Date.now() : t;
}

/**
 * The whole client state. `handle(line)` and `act(action)` return the lines to send; `changed`
 * is bumped on every change so the UI knows when to redraw.
 */
export class ChatState {
  constructor() {
    this.buffers = new Map([[SERVER, newBuffer('server', 'server', SERVER)]]);
    this.active = SERVER;
    this.nick = '';
    this.account = null;
    this.caps = new Set();
    this.available = new Map();
    this.phase = 'disconnected'; // connecting | registered | failed | disconnected
    this.error = '';
    this.login = null;
    this.batches = new Map();
    this.pendingCreates = [];
    this.pendingFocus = null;
    // Who is logged in as whom, keyed by casefolded nick: from account-tag, extended-join,
    // account-notify and WHOIS; a nick not in it is a guest or not yet known.
    this.accounts = new Map();
    this.casemapping = 'rfc1459';
    // /whois asked: casefolded nick -> the buffer key its answer goes to.
    this.whoisAsked = new Map();
    // The server's greeting (001 and the MOTD), repeated in the first conversation opened.
    this.welcome = [];
    this.welcomeShown = false;
    this.changed = 0;
    // Login session (see "Login sessions" below).
    this.sessionToken = null;
    this.sessionEnded = false;
    this.loggingOut = false;
    this.loggedOut = false;
    // Lines to send that arose inside a change (a new private conversation to MONITOR, a read
    // marker): handle() and act() return them with their own, takeOutgoing() hands them over.
    this.outgoing = [];
    // Whether the user can see the page (app.js keeps it): only then is a conversation read.
    this.visible = true;
    // Typing notifications we send, per casefolded target: {name, sent, sentAt, want, lastInput}.
    this.typingOut = new Map();
    this.sendTyping = true;
    // labeled-response: the label of each typing notice in flight -> its casefolded target, so
    // a refusal (a 401 for someone offline, a 404 in a moderated channel) is not shown as an
    // error at every keystroke; and the targets that refused, until when.
    this.typingLabels = new Map();
    this.typingRefused = new Map();
    this.labelSeq = 0;
    // MONITOR (ISUPPORT): null when the server has no MONITOR, else its limit (Infinity: none).
    this.monitorLimit = null;
    this.monitored = new Set();
    // The current server-side search and its results (see "Search"), and the msgid of a hit
    // opened from them, for the page to show.
    this.searching = null;
    this.focusMsgid = null;
    // The time, in ms; the tests set their own.
    this.clock = () => Date.now();
    // Web push for this browser: 'off', 'asking' (WEBPUSH REGISTER sent) or 'on' (answered).
    this.push = 'off';
  }

  // Accounts and colours

  /** The account `nick` is logged in as, or null (a guest, or not known yet). */
  accountOf(nick) { return this.accounts.get(casefold(nick)) || null; }

  setAccount(nick, account) {
    if (!nick) return;
    if (account && account !== '*') this.accounts.set(casefold(nick), account);
    else this.accounts.delete(casefold(nick));
    this.changed++;
  }

  /** The palette index of a person: by account when known, by nick for guests. */
  colourOf(nick, account = undefined) {
    const known = account === undefined ? this.accountOf(nick) : account;
    return nickColour(known || nick, this.casemapping);
  }

  // Buffers

  key(name) { return name === SERVER ? SERVER : casefold(name); }
  find(name) { return this.buffers.get(this.key(name)); }
  activeBuffer() { return this.buffers.get(this.active); }

  buffer(name, kind) {
    const key = this.key(name);
    let buffer = this.buffers.get(key);
    if (!buffer) {
      buffer = newBuffer(name, kind, key);
      this.buffers.set(key, buffer);
      if (kind === 'query') this.opened(buffer);
    }
    return buffer;
  }

  /** A new private conversation: watch whether they are online, ask how far it was read. */
  opened(buffer) {
    if (this.phase !== 'registered') return;
    this.monitor([buffer.name]);
    // read-marker: "except for user targets where they have to request the initial read
    // timestamp by sending a `MARKREAD` client get command".
    if (this.readMarkers_()) this.outgoing.push(ircLine('MARKREAD', buffer.name));
  }

  /** Read markers are kept per account: a guest has none, and a FAIL MARKREAD ends them here. */
  readMarkers_() {
    return this.caps.has('draft/read-marker') && !!this.account && !this.noReadMarker;
  }

  /** Lines that arose inside changes (MONITOR, MARKREAD), for the caller to send. */
  takeOutgoing(now = this.clock()) {
    const out = this.outgoing.splice(0);
    if (this.phase === 'registered') out.push(...this.readMarkers(now));
    return out;
  }

  /** Send what is due every second or so: typing states, read markers; expire others' typing. */
  tick(now = this.clock()) {
    for (const buffer of this.buffers.values()) {
      for (const [key, t] of buffer.typing) {
        if (!typingLasts(t, now)) {
          buffer.typing.delete(key);
          this.changed++;
        }
      }
    }
    return [...this.flushTyping(now), ...this.takeOutgoing(now)];
  }

  /** The page was hidden or shown again: what is in view when it comes back is read. */
  setVisible(visible) {
    this.visible = visible;
    if (visible) this.markRead(this.activeBuffer());
  }

  // Read markers (ircv3.net/specs/extensions/read-marker)

  /** The conversation is read up to its newest message: remember to say so (MARKREAD). */
  markRead(buffer) {
    if (!buffer || !this.visible || buffer.kind === 'server' || !this.readMarkers_()) return;
    // "The timestamp MUST correspond to a previous message `time` tag."
    let last = null;
    for (let i = buffer.lines.length - 1; i >= 0 && !last; i--) {
      const line = buffer.lines[i];
      if (line.stamp && MESSAGE_KINDS.has(line.kind)) last = line;
    }
    if (!last || (buffer.readAt !== null && last.time <= buffer.readAt)) return;
    buffer.readPending = last.stamp;
  }

  readMarkers(now) {
    const out = [];
    for (const buffer of this.buffers.values()) {
      if (!buffer.readPending || now - buffer.readSentAt < READ_MARKER_INTERVAL_MS) continue;
      out.push(ircLine('MARKREAD', buffer.name, `timestamp=${buffer.readPending}`));
      const at = Date.parse(buffer.readPending);
      if (!Number.isNaN(at) && (buffer.readAt === null || at > buffer.readAt)) buffer.readAt = at;
      buffer.readPending = null;
      buffer.readSentAt = now;
    }
    return out;
  }

  /**
   * MARKREAD from the server: on JOIN, as the answer to ours, and when another session of the
   * account read further. "If there is no known last message read timestamp, the `timestamp`
   * parameter is a literal `*`."
   */
  on_MARKREAD(msg) {
    const [target, stamp] = msg.params;
    const buffer = target && this.find(target);
    if (!buffer || !stamp || !stamp.startsWith('timestamp=')) return [];
    const at = Date.parse(stamp.slice('timestamp='.length));
    if (Number.isNaN(at) || (buffer.readAt !== null && at <= buffer.readAt)) return [];
    buffer.readAt = at;
    if (buffer.readPending && Date.parse(buffer.readPending) <= at) buffer.readPending = null;
    // The badge counts what is still unread after the marker.
    let unread = 0;
    let mention = false;
    for (const line of buffer.lines) {
      if (line.unread && line.time <= at) line.unread = false;
      if (line.unread) {
        unread++;
        mention = mention || !!line.mention;
      }
    }
    buffer.unread = unread;
    buffer.mention = mention;
    this.changed++;
    return [];
  }

  // MONITOR (ircv3.net/specs/extensions/monitor): online/offline of private conversations

  /** `MONITOR + a,b` for those not watched yet, within the server's limit. */
  monitor(names) {
    if (this.monitorLimit === null || this.phase !== 'registered') return;
    const fresh = [];
    for (const name of names) {
      const key = this.key(name);
      if (this.monitored.has(key) || isChannel(name) || this.monitored.size >= this.monitorLimit) continue;
      this.monitored.add(key);
      fresh.push(name);
    }
    // "the length of the target list is limited only by the buffer size of 512 chars"
    let list = [];
    const flush = () => {
      if (list.length) this.outgoing.push(ircLine('MONITOR', '+', list.join(',')));
      list = [];
    };
    for (const name of fresh) {
      if ([...list, name].join(',').length > 400) flush();
      list.push(name);
    }
    flush();
  }

  unmonitor(name) {
    if (!this.monitored.delete(this.key(name))) return;
    this.outgoing.push(ircLine('MONITOR', '-', name));
  }

  presence(msg, online) {
    for (const entry of (msg.params[1] || '').split(',')) {
      const buffer = entry && this.find(nickOf(entry));
      if (buffer && buffer.kind === 'query' && buffer.online !== online) {
        buffer.online = online;
        this.changed++;
      }
    }
    return [];
  }

  /** RPL_MONONLINE: "either a target has just become online, or ... is online". */
  on_730(msg) { return this.presence(msg, true); }
  /** RPL_MONOFFLINE */
  on_731(msg) { return this.presence(msg, false); }
  /** ERR_MONLISTFULL `<limit> <targets>`: those are not watched; the list just shows no dot. */
  on_734(msg) {
    for (const name of (msg.params[2] || '').split(',')) this.monitored.delete(this.key(name));
    return [];
  }

  /** The buffers in the order the sidebar shows them: server, channels, then conversations. */
  bufferList() {
    const order = { server: 0, channel: 1, query: 2 };
    return [...this.buffers.values()]
      .sort((a, b) => order[a.kind] - order[b.kind] || a.name.localeCompare(b.name));
  }

  setActive(name) {
    const key = this.key(name);
    if (!this.buffers.has(key)) return;
    this.active = key;
    const buffer = this.buffers.get(key);
    buffer.unread = 0;
    buffer.mention = false;
    for (const line of buffer.lines) line.unread = false;
    this.markRead(buffer);
    this.changed++;
  }

  addLine(buffer, line) {
    if (line.msgid) {
      if (buffer.msgids.has(line.msgid)) return;
      buffer.msgids.add(line.msgid);
    }
    // Keep time order when live and history lines meet.
    let i = buffer.lines.length;
    while (i > 0 && buffer.lines[i - 1].time > line.time) i--;
    buffer.lines.splice(i, 0, line);
    if (buffer.lines.length > MAX_LINES_PER_BUFFER) buffer.lines.shift();
    if (line.encrypted && buffer.kind === 'query') buffer.e2ePeer = true;
    // Read on another device already (the read marker is past it): not unread here. History is
    // unread only when newer than a known read marker (missed while away).
    const read = buffer.readAt !== null && line.time <= buffer.readAt;
    const missed = line.history && buffer.readAt !== null && !read;
    if (buffer.key !== this.active && !line.own && (!line.history || missed) && !line.seen && line.kind !== 'event' && !read) {
      line.unread = true;
      buffer.unread++;
      if (buffer.kind === 'query' || (this.nick && line.text && line.text.toLowerCase().includes(this.nick.toLowerCase()))) {
        line.mention = true;
        buffer.mention = true;
      }
    }
    if (buffer.key === this.active) this.markRead(buffer);
    this.changed++;
  }

  info(text, kind = 'event', bufferName = null) {
    const buffer = bufferName ? this.find(bufferName) || this.buffers.get(SERVER) : this.buffers.get(SERVER);
    this.addLine(buffer, { time: Date.now(), nick: '', text, kind });
  }

  /**
   * Words from the server for whoever reads (the welcome, server notices, broadcasts): in the
   * server buffer, and in the conversation in view too, so they are not missed.
   */
  announce(line) {
    const inView = this.active !== SERVER;
    // Read where it is in view: no unread count for its copy in the server buffer.
    this.addLine(this.buffers.get(SERVER), inView ? { ...line, seen: true } : line);
    if (inView) this.addLine(this.activeBuffer(), { ...line, msgid: null });
  }

  /** An error goes to the server buffer and, when that is not in view, to the active one too. */
  error_(text) {
    this.info(text, 'error');
    if (this.active !== SERVER) this.addLine(this.activeBuffer(), { time: Date.now(), nick: '', text, kind: 'error' });
  }

  // Connecting

  /** The first lines of a connection; `login` is {nick, password, register}. */
  start(login) {
    this.login = { ...login };
    this.nick = login.nick;
    this.phase = 'connecting';
    this.error = '';
    this.caps.clear();
    this.available.clear();
    this.changed++;
    return ['CAP LS 302', ircLine('NICK', login.nick), ircLine('USER', login.nick, '0', '*', login.nick)];
  }

  fail(text) {
    this.phase = 'failed';
    this.error = text;
    this.info(text, 'error');
    return [];
  }

  disconnected(reason) {
    if (this.phase !== 'failed') this.phase = 'disconnected';
    for (const b of this.buffers.values()) b.members.clear();
    this.info(reason || 'Disconnected', 'error');
  }

  /** Handle one line from the server; returns the lines to send back. */
  handle(raw) {
    const out = this.handleLine(raw);
    return [...this.takeOutgoing(), ...out];
  }

  handleLine(raw) {
    const msg = parseLine(raw);
    if (!msg) return [];
    if (msg.tags.label && msg.command !== 'BATCH' && this.typingLabels.has(msg.tags.label) && this.typingAnswer(msg)) return [];
    const batchId = msg.tags.batch;
    if (batchId && this.batches.has(batchId) && msg.command !== 'BATCH') {
      this.batches.get(batchId).lines.push(msg);
      return [];
    }
    if (WHOIS_NUMERICS.has(msg.command)) return this.whoisReply(msg);
    const handler = this[`on_${msg.command}`];
    if (handler) return handler.call(this, msg) || [];
    if (/^[45]\d\d$/.test(msg.command)) {
      this.error_(msg.params.slice(1).join(' '));
    } else if (/^\d\d\d$/.test(msg.command)) {
      this.info(msg.params.slice(1).join(' '));
    }
    return [];
  }

  on_PING(msg) { return [ircLine('PONG', ...msg.params)]; }

  // Web push (IRCv3 draft/webpush): push.js subscribes the browser and sends what
  // webpushRegister() builds; the server's answer says whether this browser is notified.

  /** The server's VAPID key when this connection may subscribe (the cap, and an account). */
  webpushKey() {
    if (!this.caps.has('draft/webpush') || !this.account) return null;
    return capValue(this.available.get('draft/webpush'), 'vapid');
  }

  on_WEBPUSH(msg) {
    const sub = (msg.params[0] || '').toUpperCase();
    if (sub === 'REGISTER') {
      if (this.push !== 'on') this.info('Notifications are on: this browser shows private messages and mentions while Parley is closed.');
      this.push = 'on';
    } else if (sub === 'UNREGISTER') {
      if (this.push !== 'off') this.info('Notifications are off for this browser.');
      this.push = 'off';
    }
    this.changed++;
    return [];
  }

  on_CAP(msg) {
    const sub = (msg.params[1] || '').toUpperCase();
    if (sub === 'LS') {
      const more = msg.params[2] === '*';
      for (const cap of msg.params[more ? 3 : 2].split(' ').filter(Boolean)) {
        const eq = cap.indexOf('=');
        this.available.set(eq < 0 ? cap : cap.slice(0, eq), eq < 0 ? '' : cap.slice(eq + 1));
      }
      if (more) return [];
      const want = WANTED_CAPS.filter((c) => this.available.has(c));
      if (this.login.register && !this.available.has('draft/account-registration')) {
        return [...this.fail('This server does not offer account registration; log in instead.'), 'QUIT'];
      }
      return want.length ? [ircLine('CAP', 'REQ', want.join(' '))] : this.authenticate();
    }
    if (sub === 'ACK') {
      for (const cap of msg.params[2].split(' ').filter(Boolean)) this.caps.add(cap.replace(/^-/, ''));
      if (this.phase === 'connecting') return this.authenticate();
    }
    if (sub === 'NAK' && this.phase === 'connecting') return this.authenticate();
    return [];
  }

  /** After CAP: log in with SASL PLAIN, or REGISTER, or go straight on. */
  authenticate() {
    const { register, password } = this.login;
    if (this.login.token) return this.authenticateWithToken();
    if (register) return [ircLine('REGISTER', this.login.nick, '*', password)];
    if (password && this.caps.has('sasl')) return ['AUTHENTICATE PLAIN'];
    return ['CAP END'];
  }

  on_AUTHENTICATE(msg) {
    if (msg.params[0] !== '+') return [];
    if (this.login.token) return this.tokenResponse();
    const { nick, password } = this.login;
    return ['AUTHENTICATE ' + base64(`${nick}\0${nick}\0${password}`)];
  }

  on_900(msg) {
    this.account = msg.params[2];
    this.setAccount(this.nick, this.account);
    this.info(msg.params[3] || 'Logged in');
    return [];
  }
  on_903() { return this.phase === 'connecting' ? ['CAP END'] : []; }
  on_904(msg) {
    if (this.login.token) return this.tokenRefused(msg);
    return [...this.fail(loginRefusal(msg.params[1])), 'QUIT'];
  }
  on_902(msg) { return this.on_904(msg); }
  on_905(msg) { return this.on_904(msg); }

  on_REGISTER(msg) {
    if (msg.params[0] === 'SUCCESS') {
      this.account = msg.params[1];
      this.info(msg.params[2] || 'Account created');
      return this.phase === 'connecting' ? ['CAP END'] : [];
    }
    return [];
  }

  on_FAIL(msg) {
    const text = msg.params[msg.params.length - 1];
    if (msg.params[0] === 'SESSION') return this.sessionFailed(text);
    if (msg.params[0] === 'SEARCH') return this.searchFailed(msg);
    if (msg.params[0] === 'WEBPUSH') {
      this.push = 'off';
      this.error_(`Notifications: ${text}`);
      return [];
    }
    if (msg.params[0] === 'MARKREAD') {
      // Read markers are a convenience: when the server cannot keep them, stop asking quietly.
      this.noReadMarker = true;
      for (const buffer of this.buffers.values()) buffer.readPending = null;
      return [];
    }
    if (msg.params[0] === 'REGISTER' && this.phase === 'connecting') return [...this.fail(text), 'QUIT'];
    this.error_(text);
    return [];
  }

  on_001(msg) {
    this.nick = msg.params[0];
    this.phase = 'registered';
    this.greet(msg.params[1] || 'Welcome');
    return this.afterWelcome();
  }

  /** A line of the server's welcome: shown now, and kept for the first conversation opened. */
  greet(text) {
    const line = { time: Date.now(), nick: '', text, kind: 'notice' };
    if (!this.welcomeShown && this.welcome.length < 100) this.welcome.push(line);
    this.announce(line);
  }

  on_372(msg) { this.greet((msg.params[1] || '').replace(/^- ?/, '')); return []; }
  on_375() { return []; }
  on_376() { return []; }

  on_005(msg) {
    for (const token of msg.params.slice(1, -1)) {
      const [name, value] = token.split('=');
      if (name === 'CASEMAPPING' && value) this.casemapping = value;
      // "This token takes an optional parameter, of the maximum amount of targets a client may
      // have in their monitor list.  If no parameter is specified, there is no limit."
      if (name === 'MONITOR' && this.monitorLimit === null) {
        const limit = Number(value);
        this.monitorLimit = value && Number.isInteger(limit) && limit > 0 ? limit : Infinity;
        this.monitor([...this.buffers.values()].filter((b) => b.kind === 'query').map((b) => b.name));
      }
    }
    this.info(msg.params.slice(1).join(' '));
    return [];
  }

  on_ACCOUNT(msg) { this.setAccount(nickOf(msg.source), msg.params[0]); return []; }

  /** A WHOIS reply, in the conversation where /whois was asked (the server buffer otherwise). */
  whoisReply(msg) {
    const [, nick = '', ...rest] = msg.params;
    const folded = casefold(nick);
    const key = this.whoisAsked.get(folded);
    const buffer = (key && this.buffers.get(key)) || this.buffers.get(SERVER);
    const last = rest[rest.length - 1] || '';
    let text;
    switch (msg.command) {
      case '311': text = `${nick} is ${rest[0]}@${rest[1]} (${last})`; break;
      case '312': text = `${nick} is on ${rest[0]} (${last})`; break;
      case '317': text = `${nick} has been idle ${duration(Number(rest[0]))}`; break;
      case '319': text = `${nick} is in ${last}`; break;
      case '330':
        text = `${nick} is logged in as ${rest[0]}`;
        this.setAccount(nick, rest[0]);
        break;
      case '301': text = `${nick} is away: ${last}`; break;
      case '318': text = `End of WHOIS for ${nick}`; this.whoisAsked.delete(folded); break;
      default: text = `${nick} ${last}`;
    }
    if (msg.command === '301' && !key) return this.handleAway(msg);
    this.addLine(buffer, { time: timeOf(msg.tags), nick: '', text, kind: 'event' });
    return [];
  }

  handleAway(msg) {
    const buffer = this.find(msg.params[1]) || this.buffers.get(SERVER);
    this.addLine(buffer, { time: timeOf(msg.tags), nick: '', text: `${msg.params[1]} is away: ${msg.params[2] || ''}`, kind: 'event' });
    return [];
  }

  /** 401/402 for a nick being looked up belong with its WHOIS answer. */
  on_401(msg) {
    const key = this.whoisAsked.get(casefold(msg.params[1] || ''));
    if (!key || !this.buffers.get(key)) { this.error_(msg.params.slice(1).join(' ')); return []; }
    this.addLine(this.buffers.get(key), { time: Date.now(), nick: '', text: `${msg.params[1]}: ${msg.params[2] || 'no such nick'}`, kind: 'error' });
    return [];
  }

  on_402(msg) { return this.on_401(msg); }

  /** The channels this connection is in, for rejoining after a reconnect (a left one is not). */
  joinedChannels() {
    return [...this.buffers.values()].filter((b) => b.kind === 'channel' && b.joined).map((b) => b.name);
  }

  /**
   * 421 for TAGMSG: a server that offers message-tags without TAGMSG (the spec requires it).
   * Typing notices and reactions stop quietly instead of an error at every keystroke.
   */
  on_421(msg) {
    if ((msg.params[1] || '').toUpperCase() === 'TAGMSG') {
      this.noTagmsg = true;
      this.typingOut.clear();
      this.changed++;
      return [];
    }
    this.error_(msg.params.slice(1).join(' '));
    return [];
  }

  on_433(msg) {
    // Logging in to an account whose nick another session of it holds (the laptop and the
    // phone): this one takes the nick with a '_' more, as other clients do, so both stay in
    // (and share read markers). A guest is told the nick is taken.
    const loggingIn = !this.login.register && (this.login.password || this.login.token);
    if (this.phase === 'connecting' && loggingIn && this.nick.length < this.login.nick.length + 3) {
      this.nick += '_';
      return [ircLine('NICK', this.nick)];
    }
    if (this.phase === 'connecting') return [...this.fail(`The nick ${msg.params[1]} is in use`), 'QUIT'];
    this.error_(`The nick ${msg.params[1]} is in use`);
    return [];
  }

  on_ERROR(msg) {
    if (this.phase === 'connecting') this.fail(msg.params[0]);
    else this.info(msg.params[0], 'error');
    return [];
  }

  // Channels and members

  isMe(nick) { return casefold(nick) === casefold(this.nick); }

  on_JOIN(msg) {
    const nick = nickOf(msg.source);
    const channel = msg.params[0];
    // extended-join: JOIN <channel> <account> :<realname>, '*' for no account.
    if (msg.params.length >= 3) this.setAccount(nick, msg.params[1]);
    const buffer = this.buffer(channel, 'channel');
    if (this.isMe(nick)) {
      buffer.members.clear();
      buffer.joined = true;
      const focus = this.pendingFocus && casefold(this.pendingFocus) === casefold(channel);
      if (focus || this.active === SERVER) {
        this.pendingFocus = null;
        this.setActive(channel);
        // The first conversation after logging in also shows the server's welcome.
        if (!this.welcomeShown) {
          this.welcomeShown = true;
          for (const line of this.welcome) this.addLine(buffer, { ...line });
          this.welcome = [];
        }
      }
      this.changed++;
      if (this.caps.has('draft/chathistory') && !buffer.lines.some((l) => l.msgid)) {
        buffer.historyLoading = true;
        return [ircLine('CHATHISTORY', 'LATEST', channel, '*', String(HISTORY_BATCH))];
      }
      return [];
    }
    buffer.members.set(nick, '');
    this.addLine(buffer, { time: timeOf(msg.tags), nick, text: `${nick} joined ${channel}`, kind: 'event' });
    return [];
  }

  removeMember(channel, nick, text) {
    const buffer = this.find(channel);
    if (!buffer) return;
    if (this.isMe(nick)) {
      buffer.joined = false;
      buffer.members.clear();
    } else {
      for (const m of [...buffer.members.keys()]) if (casefold(m) === casefold(nick)) buffer.members.delete(m);
      // typing: "The sender leaves the channel or quits the server".
      this.stopTyping(buffer, nick);
    }
    this.addLine(buffer, { time: Date.now(), nick, text, kind: 'event' });
  }

  on_PART(msg) {
    const nick = nickOf(msg.source);
    if (this.isMe(nick)) {
      this.leave(msg.params[0]);
      return [];
    }
    this.removeMember(msg.params[0], nick, `${nick} left ${msg.params[0]}${msg.params[1] ? ` (${msg.params[1]})` : ''}`);
    return [];
  }

  /** We left a channel: it leaves the list (a kick keeps it, so the reason can be read). */
  leave(channel) {
    const key = this.key(channel);
    if (!this.buffers.has(key)) return;
    this.buffers.delete(key);
    if (this.active === key) {
      const next = this.bufferList().find((b) => b.kind === 'channel');
      this.active = next ? next.key : SERVER;
    }
    this.changed++;
  }

  on_KICK(msg) {
    const by = nickOf(msg.source);
    this.removeMember(msg.params[0], msg.params[1], `${msg.params[1]} was kicked by ${by} (${msg.params[2] || ''})`);
    return [];
  }

  on_QUIT(msg) {
    const nick = nickOf(msg.source);
    this.accounts.delete(casefold(nick));
    for (const buffer of this.buffers.values()) {
      this.stopTyping(buffer, nick);
      const member = [...buffer.members.keys()].find((m) => casefold(m) === casefold(nick));
      if (member !== undefined) {
        buffer.members.delete(member);
        this.addLine(buffer, { time: timeOf(msg.tags), nick, text: `${nick} quit (${msg.params[0] || ''})`, kind: 'event' });
      }
    }
    return [];
  }

  on_NICK(msg) {
    const old = nickOf(msg.source);
    const nick = msg.params[0];
    if (this.isMe(old)) this.nick = nick;
    const account = this.accountOf(old);
    this.accounts.delete(casefold(old));
    if (account) this.accounts.set(casefold(nick), account);
    for (const buffer of this.buffers.values()) {
      const member = [...buffer.members.keys()].find((m) => casefold(m) === casefold(old));
      if (member !== undefined) {
        const prefix = buffer.members.get(member);
        buffer.members.delete(member);
        buffer.members.set(nick, prefix);
        this.addLine(buffer, { time: timeOf(msg.tags), nick, text: `${old} is now known as ${nick}`, kind: 'event' });
      }
    }
    this.changed++;
    return [];
  }

  on_353(msg) {
    const buffer = this.buffer(msg.params[2], 'channel');
    for (const entry of (msg.params[3] || '').split(' ').filter(Boolean)) {
      const prefix = entry.match(/^[~&@%+]*/)[0];
      buffer.members.set(nickOf(entry.slice(prefix.length)), prefix);
    }
    this.changed++;
    return [];
  }

  on_366() { return []; }

  on_MODE(msg) {
    const [target, modes, ...args] = msg.params;
    const buffer = isChannel(target) && this.find(target);
    if (!buffer || !modes) return [];
    let adding = true;
    for (const c of modes) {
      if (c === '+' || c === '-') { adding = c === '+'; continue; }
      const symbol = { o: '@', v: '+', h: '%' }[c];
      const takesArg = 'ovhbeIqkl'.includes(c) && (adding || 'ovhbeIq'.includes(c));
      const arg = takesArg ? args.shift() : null;
      if (symbol && arg) {
        const member = [...buffer.members.keys()].find((m) => casefold(m) === casefold(arg));
        if (member !== undefined) {
          const current = buffer.members.get(member).replace(symbol, '');
          buffer.members.set(member, adding ? '@%+'.split('').filter((s) => s === symbol || current.includes(s)).join('') : current);
        }
      }
    }
    this.addLine(buffer, { time: timeOf(msg.tags), nick: '', text: `${nickOf(msg.source)} sets mode ${msg.params.slice(1).join(' ')}`, kind: 'event' });
    return [];
  }

  on_332(msg) { this.buffer(msg.params[1], 'channel').topic = msg.params[2] || ''; this.changed++; return []; }
  on_331(msg) { this.buffer(msg.params[1], 'channel').topic = ''; this.changed++; return []; }
  on_TOPIC(msg) {
    const buffer = this.buffer(msg.params[0], 'channel');
    buffer.topic = msg.params[1] || '';
    this.addLine(buffer, { time: timeOf(msg.tags), nick: '', text: `${nickOf(msg.source)} changed the topic to: ${buffer.topic}`, kind: 'event' });
    return [];
  }

  // /create_group: LIST tells whether the channel exists (a 322 for it) before joining.
  on_322(msg) {
    const pending = this.pendingCreates[0];
    if (pending && casefold(pending.channel) === casefold(msg.params[1])) pending.exists = true;
    return [];
  }

  on_323() {
    const pending = this.pendingCreates.shift();
    if (!pending) return [];
    if (pending.exists) {
      this.error_(`The group ${pending.channel} already exists; use /join_group ${pending.channel.slice(1)} to join it`);
      return [];
    }
    this.pendingFocus = pending.channel;
    return [ircLine('JOIN', pending.channel)];
  }

  on_321() { return []; }

  // Messages

  messageLine(msg, history) {
    const from = nickOf(msg.source);
    let text = msg.params[1] || '';
    let kind = msg.command === 'NOTICE' ? 'notice' : 'msg';
    const action = /^\u0001ACTION (.*)\u0001?$/.exec(text);
    if (action) {
      kind = 'action';
      text = action[1].replace(/\u0001$/, '');
    } else if (text.startsWith('\u0001')) {
      return null; // other CTCP
    }
    // account-tag names the sender's account on each message; live ones also update the map.
    const tagged = 'account' in msg.tags ? msg.tags.account : undefined;
    if (tagged !== undefined && !history && from) this.setAccount(from, tagged);
    // Ciphertext this browser cannot read: say so instead of showing the placeholder.
    const encrypted = msg.command === 'PRIVMSG' && E2E_TAG in msg.tags;
    if (encrypted) {
      text = E2E_NOTICE;
      kind = 'msg';
    }
    return {
      encrypted,
      time: timeOf(msg.tags), nick: from, text, kind, msgid: msg.tags.msgid || null,
      stamp: msg.tags.time || null, replyTo: msg.tags['+draft/reply'] || null,
      own: this.isMe(from), history,
      account: tagged !== undefined ? tagged || null : this.accountOf(from),
    };
  }

  /** Which buffer a PRIVMSG/NOTICE belongs in. */
  targetBuffer(msg) {
    const from = nickOf(msg.source);
    // STATUSMSG (`PRIVMSG @#chan`) belongs in the channel's conversation.
    const target = msg.params[0].replace(/^[~@%+]+(?=[#&])/, '');
    if (isChannel(target)) return this.buffer(target, 'channel');
    if (target.startsWith('$')) return this.buffers.get(SERVER);
    if (!msg.source || !from.length || from.includes('.') || (msg.command === 'NOTICE' && this.phase !== 'registered')) {
      return this.buffers.get(SERVER);
    }
    return this.buffer(this.isMe(from) ? target : from, 'query');
  }

  on_PRIVMSG(msg, history = false) {
    if (msg.params.length < 2) return [];
    const line = this.messageLine(msg, history);
    if (!line) return [];
    const buffer = this.targetBuffer(msg);
    // typing: "A message is received from the sender" ends their typing.
    this.stopTyping(buffer, line.nick);
    // Broadcasts and the server's own notices are for whoever reads: shown where they look too.
    const fromServer = buffer.kind === 'server' && this.phase === 'registered' && !history;
    if (msg.params[0].startsWith('$')) line.text = `[broadcast] ${line.text}`;
    const fresh = !line.msgid || !buffer.msgids.has(line.msgid);
    if (fromServer) this.announce(line);
    else this.addLine(buffer, line);
    // react: "An example of a reaction with an additional message body" counts as a reaction too.
    const reaction = reactionOf(msg);
    if (reaction && fresh && buffer.kind !== 'server') this.addReaction(buffer, msg, reaction);
    return [];
  }

  /**
   * TAGMSG (message-tags): a typing notification or a reaction. Typing never opens a
   * conversation; a reaction in a private one opens it, as a message would.
   */
  on_TAGMSG(msg, history = false) {
    const from = nickOf(msg.source);
    if (!from || !msg.params.length) return [];
    const own = this.isMe(from);
    const reaction = reactionOf(msg);
    const target = msg.params[0].replace(/^[~@%+]+(?=[#&])/, '');
    let buffer;
    if (isChannel(target)) buffer = this.find(target);
    else if (target.startsWith('$') || from.includes('.')) return [];
    else if (reaction) buffer = this.buffer(own ? target : from, 'query');
    else buffer = this.find(own ? target : from);
    if (!buffer) return [];
    if (reaction) this.addReaction(buffer, msg, reaction);
    if (own || history) return [];
    const state = msg.tags['+typing'];
    if (state === 'active' || state === 'paused') {
      buffer.typing.set(casefold(from), { nick: from, state, at: this.clock() });
      this.changed++;
    } else {
      // `typing=done`, or any other message from them (a reaction): no longer typing.
      this.stopTyping(buffer, from);
    }
    return [];
  }

  // Typing (ircv3.net/specs/client-tags/typing)

  stopTyping(buffer, nick) {
    if (buffer && nick && buffer.typing.delete(casefold(nick))) this.changed++;
  }

  /** Who is typing in a conversation now (never ourselves), in the order they started. */
  typers(buffer = this.activeBuffer(), now = this.clock()) {
    if (!buffer) return [];
    return [...buffer.typing.values()].filter((t) => typingLasts(t, now) && !this.isMe(t.nick)).map((t) => t.nick);
  }

  /**
   * The text input changed (app.js calls this on every edit): `typing=active` while there is
   * text that is not a /command, `done` when it is cleared; other conversations the user typed
   * in are done. Returns the lines due now; tick() sends the rest (paused, throttled ones).
   * `edited` false: only the conversation in view changed (nothing typed there yet).
   */
  typingInput(text, now = this.clock(), edited = true) {
    const buffer = this.activeBuffer();
    const here = buffer && buffer.kind !== 'server' ? buffer.key : null;
    for (const [key, entry] of this.typingOut) if (key !== here) entry.want = 'done';
    if (here) {
      // "while the user is making updates to the text-input field and the text is not a
      // "/slash command"" (`//` starts a line that begins with a slash: a message).
      const composing = text.trim() !== '' && (!text.startsWith('/') || text.startsWith('//'));
      let entry = edited ? this.typingOut.get(here) : null;
      if (!entry && composing && edited) {
        entry = { name: buffer.name, sent: 'done', sentAt: -Infinity, want: 'done', lastInput: now };
        this.typingOut.set(here, entry);
      }
      if (entry) {
        entry.want = composing ? 'active' : 'done';
        if (composing) entry.lastInput = now;
      }
    }
    return this.flushTyping(now);
  }

  /**
   * The answer to a labeled typing notice: an error means the target takes none for a while
   * (swallowed: the user did not ask for it); anything else (the echo, ACK) is handled as usual.
   */
  typingAnswer(msg) {
    const key = this.typingLabels.get(msg.tags.label);
    this.typingLabels.delete(msg.tags.label);
    if (msg.command !== 'FAIL' && !/^[45]\d\d$/.test(msg.command)) return false;
    this.typingRefused.set(key, this.clock() + TYPING_REFUSED_MS);
    const entry = this.typingOut.get(key);
    if (entry) entry.sent = 'done';
    return true;
  }

  /** The message was sent to `target`: typing there is done. */
  typingSent(target, now = this.clock()) {
    const entry = this.typingOut.get(this.key(target));
    if (!entry) return [];
    entry.want = 'done';
    return this.flushTyping(now);
  }

  flushTyping(now) {
    if (!this.caps.has('message-tags') || this.phase !== 'registered' || this.noTagmsg) {
      this.typingOut.clear();
      return [];
    }
    const out = [];
    for (const [key, entry] of this.typingOut) {
      let want = this.sendTyping ? entry.want : 'done';
      if (want === 'active' && now - entry.lastInput >= TYPING_IDLE_MS) want = 'paused';
      // `active` "continuously" while the user types; `paused` and `done` once.
      const due = want !== entry.sent || (want === 'active' && entry.lastInput > entry.sentAt);
      if (!due) {
        if (want === 'done') this.typingOut.delete(key);
        continue;
      }
      // "not sent within 3 seconds of another one for a given target": tick() sends it later.
      if (now - entry.sentAt < TYPING_THROTTLE_MS) continue;
      // Someone MONITOR says is offline, or a target that just refused one: nobody to tell.
      const buffer = this.buffers.get(key);
      if ((buffer && buffer.online === false) || (this.typingRefused.get(key) || 0) > now) {
        if (want === 'done') this.typingOut.delete(key);
        continue;
      }
      if (want !== 'active' && entry.sent === 'done') {
        // Never said we were typing here: nothing to take back.
        if (want === 'done') this.typingOut.delete(key);
        continue;
      }
      const tags = { '+typing': want };
      if (this.caps.has('labeled-response')) {
        const label = `typing-${++this.labelSeq}`;
        this.typingLabels.set(label, key);
        // Answers never come for a line lost with its connection: keep the map small.
        if (this.typingLabels.size > 64) this.typingLabels.delete(this.typingLabels.keys().next().value);
        out.push(withTags({ label, ...tags }, ircLine('TAGMSG', entry.name)));
      } else {
        out.push(withTags(tags, ircLine('TAGMSG', entry.name)));
      }
      entry.sent = want;
      entry.sentAt = now;
      if (want === 'done') this.typingOut.delete(key);
    }
    return out;
  }

  // Replies and reactions (ircv3.net/specs/client-tags/reply, /react)

  /** The message a reply answers, when it is in the buffer. */
  parentOf(buffer, msgid) {
    return (msgid && buffer.lines.find((l) => l.msgid === msgid)) || null;
  }

  /** Count a reaction once per person (their account, else their nick) and value. */
  addReaction(buffer, msg, { parent, value }) {
    const id = msg.tags.msgid;
    if (id) {
      if (buffer.msgids.has(`react:${id}`)) return false;
      buffer.msgids.add(`react:${id}`);
    }
    const from = nickOf(msg.source);
    const account = 'account' in msg.tags ? msg.tags.account || null : this.accountOf(from);
    const who = account ? `account:${casefold(account)}` : `nick:${casefold(from)}`;
    let byValue = buffer.reactions.get(parent);
    if (!byValue) {
      byValue = new Map();
      buffer.reactions.set(parent, byValue);
      if (buffer.reactions.size > MAX_REACTED_MESSAGES) buffer.reactions.delete(buffer.reactions.keys().next().value);
    }
    let entry = byValue.get(value);
    if (!entry) {
      if (byValue.size >= REACTIONS.length * 4) return false; // a wall of different ones is noise
      entry = { who: new Set(), nicks: [], own: false };
      byValue.set(value, entry);
    }
    if (entry.who.has(who)) return false;
    entry.who.add(who);
    entry.nicks.push(from);
    const mine = this.isMe(from) || (account && this.account && casefold(account) === casefold(this.account));
    if (mine) entry.own = true;
    this.changed++;
    return true;
  }

  /** The reactions under a message: [{value, count, nicks, own}], in the order they came. */
  reactionsOf(buffer, msgid) {
    const byValue = msgid && buffer.reactions.get(msgid);
    if (!byValue) return [];
    return [...byValue].map(([value, e]) => ({ value, count: e.who.size, nicks: e.nicks, own: e.own }));
  }

  /** Whether this conversation can carry replies and reactions (and typing). */
  canTag(buffer = this.activeBuffer()) {
    return !!buffer && buffer.kind !== 'server' && this.caps.has('message-tags') && this.phase === 'registered'
      && !this.noTagmsg;
  }

  on_NOTICE(msg, history = false) { return this.on_PRIVMSG(msg, history); }

  // History

  on_BATCH(msg) {
    const ref = msg.params[0];
    if (ref.startsWith('+')) {
      this.batches.set(ref.slice(1), { type: msg.params[1], target: msg.params[2], lines: [], label: msg.tags.label });
      return [];
    }
    const batch = this.batches.get(ref.slice(1));
    this.batches.delete(ref.slice(1));
    if (!batch) return [];
    if (batch.label && this.typingLabels.has(batch.label)) {
      // Several lines answering a typing notice: refused if any of them is an error.
      const refused = batch.lines.some((l) => l.command === 'FAIL' || /^[45]\d\d$/.test(l.command));
      if (refused) {
        this.typingAnswer({ command: 'FAIL', tags: { label: batch.label } });
        return [];
      }
      this.typingLabels.delete(batch.label);
    }
    if (SEARCH_BATCH_TYPES.includes(batch.type)) return this.searchAnswer(batch);
    if (batch.type !== 'chathistory') {
      for (const inner of batch.lines) this.handle(serialize(inner));
      return [];
    }
    const buffer = this.buffer(batch.target, isChannel(batch.target) ? 'channel' : 'query');
    let added = 0;
    for (const inner of batch.lines) {
      // CHATHISTORY returns client tags: reactions show as they did live (typing never does).
      const reaction = reactionOf(inner);
      const at = timeOf(inner.tags);
      if (inner.tags.time && (buffer.oldest === undefined || at < buffer.oldest)) buffer.oldest = at;
      if (inner.command === 'TAGMSG') {
        if (reaction && this.addReaction(buffer, inner, reaction)) added++;
        continue;
      }
      if (inner.command !== 'PRIVMSG' && inner.command !== 'NOTICE') continue;
      const line = this.messageLine(inner, true);
      if (!line) continue;
      const before = buffer.lines.length;
      this.addLine(buffer, line);
      added += buffer.lines.length - before;
      if (reaction && buffer.lines.length > before) this.addReaction(buffer, inner, reaction);
    }
    buffer.historyLoading = false;
    if (batch.lines.length < HISTORY_BATCH || added === 0) buffer.historyDone = true;
    this.changed++;
    return [];
  }

  /** CHATHISTORY BEFORE the oldest line of a buffer (scrolling up); [] when nothing is left. */
  loadOlder(name = null) {
    const buffer = name ? this.find(name) : this.activeBuffer();
    if (!buffer || buffer.kind === 'server' || buffer.historyDone || buffer.historyLoading) return [];
    if (!this.caps.has('draft/chathistory') || this.phase !== 'registered') return [];
    buffer.historyLoading = true;
    // The oldest line, or the oldest reaction when a page held only reactions.
    const oldest = buffer.lines.find((l) => l.msgid);
    const time = Math.min(oldest ? oldest.time : Infinity, buffer.oldest ?? Infinity);
    const reference = Number.isFinite(time) ? `timestamp=${new Date(time).toISOString()}` : '*';
    if (reference === '*') return [ircLine('CHATHISTORY', 'LATEST', buffer.name, '*', String(HISTORY_BATCH))];
    return [ircLine('CHATHISTORY', 'BEFORE', buffer.name, reference, String(HISTORY_BATCH))];
  }

  // Login sessions: the web client stays logged in across a reload with a token from the server
  // (SESSION NEW, after a password login), never with the password. The page keeps the token;
  // a login with it is SASL IRCV3BEARER. A refused token ends the session here too: the page
  // forgets it and shows the login form, so a reload never loops.

  /** Whether the server logs in with our session tokens. */
  offersSessions() {
    return (this.available.get('sasl') || '').split(',').includes('IRCV3BEARER');
  }

  authenticateWithToken() {
    if (this.caps.has('sasl') && this.offersSessions()) return ['AUTHENTICATE IRCV3BEARER'];
    this.sessionEnded = true;
    return [...this.fail('This server no longer keeps you logged in; log in again.'), 'QUIT'];
  }

  tokenResponse() {
    const { account, token } = this.login;
    return ['AUTHENTICATE ' + base64(`${account || ''}\0${SESSION_TOKEN_TYPE}\0${token}`)];
  }

  /** A refused token: forgotten, unless the refusal passes (a lockout, the server unable to check). */
  tokenRefused(msg) {
    const reason = msg.params[1] || '';
    const passing = /too many failed|unavailable|try again/i.test(reason);
    if (!passing) this.sessionEnded = true;
    return [...this.fail(passing ? loginRefusal(reason) : 'Your session ended; log in again.'), 'QUIT'];
  }

  /** After the welcome: ask for a session after a password login, or reopen the saved view. */
  afterWelcome() {
    const out = [];
    if (this.login.token) this.sessionToken = this.login.token;
    else if (this.login.remember && this.account && this.offersSessions()) {
      out.push(ircLine('SESSION', 'NEW', this.login.label || 'web client'));
    }
    const view = this.login.resume;
    if (view) {
      for (const channel of view.channels || []) {
        if (!isChannel(channel)) continue;
        if (view.active && casefold(view.active) === casefold(channel)) this.pendingFocus = channel;
        out.push(ircLine('JOIN', channel));
      }
      for (const nick of view.queries || []) {
        if (!nick || isChannel(nick) || /[\s,]/.test(nick)) continue;
        this.buffer(nick, 'query');
        if (this.caps.has('draft/chathistory')) {
          this.find(nick).historyLoading = true;
          out.push(ircLine('CHATHISTORY', 'LATEST', nick, '*', String(HISTORY_BATCH)));
        }
      }
      // The one in view first, so the default channel's join does not take the view meanwhile.
      if (view.active && this.pendingFocus) this.buffer(view.active, 'channel');
      if (view.active && this.find(view.active)) this.setActive(view.active);
    }
    return out;
  }

  /** What to reopen after a reload: joined channels, open private conversations, the one in view. */
  view() {
    const channels = [];
    const queries = [];
    for (const b of this.buffers.values()) {
      if (b.kind === 'channel' && b.joined) channels.push(b.name);
      else if (b.kind === 'query') queries.push(b.name);
    }
    const active = this.activeBuffer();
    return { channels, queries, active: active && active.kind !== 'server' ? active.name : null };
  }

  on_SESSION(msg) {
    const sub = (msg.params[0] || '').toUpperCase();
    if (sub === 'NEW' && msg.params[1]) {
      this.sessionToken = msg.params[1];
      this.changed++;
    } else if (sub === 'REVOKED' && this.loggingOut) {
      return this.loggedOut_();
    }
    return [];
  }

  sessionFailed(text) {
    this.error_(text);
    // Logging out goes on here even when the server could not end the session: this page
    // forgets the token all the same.
    return this.loggingOut ? this.loggedOut_() : [];
  }

  logout() {
    this.loggingOut = true;
    if (this.sessionToken) return [ircLine('SESSION', 'REVOKE')];
    return this.loggedOut_();
  }

  loggedOut_() {
    this.loggingOut = false;
    this.loggedOut = true;
    this.sessionToken = null;
    this.changed++;
    return [ircLine('QUIT', 'Logged out')];
  }

  // What the user asked for

  /** Turn an action (from parseInput) into lines; throws InputError when it cannot be done. */
  act(action) {
    const out = this.perform(action);
    return [...this.takeOutgoing(), ...out];
  }

  perform(action) {
    const connected = this.phase === 'registered';
    if (!connected && action.type !== 'help') throw new InputError('not connected to the server; the line was not sent');
    const active = this.activeBuffer();
    const activeTarget = (why) => {
      if (active.kind === 'server') throw new InputError(why);
      return active.name;
    };
    const activeChannel = (why) => {
      if (active.kind !== 'channel') throw new InputError(why);
      return active.name;
    };
    switch (action.type) {
      case 'say':
        return this.say(activeTarget('type /join <#channel> or /msg <nick> <text> first; the server buffer takes only commands'), action.text, false, action.replyTo);
      case 'react':
        return this.react(activeTarget('reactions are for messages in a conversation'), action.msgid, action.value);
      case 'typing':
        this.sendTyping = action.on;
        this.info(`Typing notifications are ${action.on ? 'on: others see when you type' : 'off: nobody sees when you type'}`, 'event', active.name === 'server' ? null : active.name);
        return this.flushTyping(this.clock());
      case 'me':
        return this.say(activeTarget('/me works in a channel or a private conversation'), action.text, true);
      case 'msg':
      case 'group_msg': {
        const target = action.target || action.channel;
        if (!isChannel(target) && !target.startsWith('$')) {
          this.buffer(target, 'query');
          this.setActive(target);
        }
        return this.say(target, action.text);
      }
      case 'query': {
        const exists = !!this.find(action.nick);
        this.buffer(action.nick, 'query');
        this.setActive(action.nick);
        const out = [];
        if (!exists && this.caps.has('draft/chathistory')) {
          this.find(action.nick).historyLoading = true;
          out.push(ircLine('CHATHISTORY', 'LATEST', action.nick, '*', String(HISTORY_BATCH)));
        }
        if (action.text) out.push(...this.say(action.nick, action.text));
        return out;
      }
      case 'join':
      case 'join_group': {
        // Already in it (another session of the account may have joined it for us: the
        // server then says nothing): show it, as /join does in other clients.
        const known = this.find(action.channel);
        if (known && known.kind === 'channel' && known.joined) {
          this.setActive(known.name);
          return [];
        }
        this.pendingFocus = action.channel;
        return [action.key ? ircLine('JOIN', action.channel, action.key) : ircLine('JOIN', action.channel)];
      }
      case 'create_group':
        this.pendingCreates.push({ channel: action.channel, exists: false });
        return [ircLine('LIST', action.channel)];
      case 'part': {
        const channel = action.channel || activeChannel('/part needs a channel: /part #channel, or use it in a channel');
        return [action.reason ? ircLine('PART', channel, action.reason) : ircLine('PART', channel)];
      }
      case 'leave_group':
        return [ircLine('PART', action.channel)];
      case 'nick':
        return [ircLine('NICK', action.nick)];
      case 'topic': {
        const channel = action.channel || activeChannel('/topic needs a channel: /topic #channel [text]');
        return [action.topic ? ircLine('TOPIC', channel, action.topic) : ircLine('TOPIC', channel)];
      }
      case 'whois':
        this.whoisAsked.set(casefold(action.nick), this.active);
        return [ircLine('WHOIS', action.nick)];
      case 'away':
        return [action.message ? ircLine('AWAY', action.message) : 'AWAY'];
      case 'quit':
        return [ircLine('QUIT', action.reason || 'Leaving')];
      case 'logout':
        return this.logout();
      case 'broadcast':
        return this.say('$*', action.text);
      case 'help':
        for (const [, usage, about] of COMMANDS) this.info(`${usage} - ${about}`, 'event', active.name === 'server' ? null : active.name);
        return [];
      case 'close': {
        if (active.kind === 'server') throw new InputError('the server buffer cannot be closed');
        const done = this.typingSent(active.name);
        if (active.kind === 'query') this.unmonitor(active.name);
        this.buffers.delete(this.active);
        this.active = SERVER;
        this.changed++;
        return [...done, ...(active.kind === 'channel' && active.joined ? [ircLine('PART', active.name)] : [])];
      }
      case 'raw':
        return [action.line];
      case 'search':
        return this.search(action);
      case 'search_more':
        return this.searchMore();
      default:
        throw new InputError('unknown action');
    }
  }

  say(target, text, action = false, replyTo = null) {
    const body = action ? `\u0001ACTION ${text}\u0001` : text;
    const out = [];
    // reply: "+draft/reply=<msgid>", on the first line of a long text (the rest follow it).
    const reply = replyTo && this.caps.has('message-tags') ? replyTo : null;
    for (const piece of splitText(body, 400)) {
      const line = ircLine('PRIVMSG', target, piece);
      out.push(reply && !out.length ? withTags({ '+draft/reply': reply }, line) : line);
    }
    out.push(...this.typingSent(target));
    this.clearTextHint(target);
    if (!this.caps.has('echo-message')) {
      const buffer = target === '$*' ? this.buffers.get(SERVER)
        : this.buffer(target, isChannel(target) ? 'channel' : 'query');
      this.addLine(buffer, {
        time: Date.now(), nick: this.nick, text: target === '$*' ? `[broadcast] ${text}` : text,
        kind: action ? 'action' : 'msg', own: true, replyTo: reply,
      });
    }
    return out;
  }

  /** Writing to a peer whose messages came encrypted: say once that this goes in clear text. */
  clearTextHint(target) {
    const buffer = !isChannel(target) && this.find(target);
    if (!buffer || buffer.kind !== 'query' || !buffer.e2ePeer || buffer.e2eHinted) return;
    buffer.e2eHinted = true;
    this.addLine(buffer, { time: Date.now(), nick: '', text: E2E_CLEAR_HINT.replace('%s', buffer.name), kind: 'event', e2eHint: true });
  }

  // Search (soju's `search` extension, cap soju.im/search; draft/search taken as the same):
  // `SEARCH text=..;in=..;limit=N[;before=..]` is answered by a batch of PRIVMSG/NOTICE or by
  // `FAIL SEARCH <code>`. One search is open at a time; `this.searching` holds it for the
  // results panel, never as lines of a conversation, so found messages are not unread. Older
  // pages ask `before=` the oldest hit, which the spec makes inclusive: hits are told apart by
  // msgid and a page with nothing new ends the paging.

  /** The server offers search (and we asked for it). */
  searchSupported() {
    return SEARCH_CAPS.some((cap) => this.caps.has(cap));
  }

  /** Start a search: `{text, target?, from?}`; a first word naming an open conversation is its target. */
  search({ text, target = null, from = null }) {
    if (!this.searchSupported()) throw new InputError('this server offers no search (soju.im/search)');
    text = (text || '').trim();
    if (!target) {
      const [first, after] = splitWord(text);
      const conversation = this.find(first);
      if (conversation && conversation.kind === 'query' && after.trim()) {
        target = conversation.name;
        text = after.trim();
      }
    }
    if (!text) throw new InputError('usage: /search [#channel|nick] <words>');
    if (new TextEncoder().encode(text).length > MAX_SEARCH_TEXT) {
      throw new InputError(`the search text is too long (at most ${MAX_SEARCH_TEXT} bytes)`);
    }
    const query = { text, target, from };
    this.searching = { query, hits: [], status: 'waiting', more: false, error: null };
    this.changed++;
    return [searchLine(query)];
  }

  /** The page of results older than those shown. */
  searchMore() {
    const s = this.searching;
    if (!s) throw new InputError('no search to continue; /search <words> starts one');
    if (s.status !== 'done' || !s.more) throw new InputError('no older results');
    s.status = 'waiting';
    this.changed++;
    return [searchLine(s.query, s.hits[s.hits.length - 1].stamp)];
  }

  /** Close the results. */
  clearSearch() {
    this.searching = null;
    this.changed++;
  }

  /** The batch answering a search: its messages become hits, newest first. */
  searchAnswer(batch) {
    const s = this.searching;
    // An answer nobody asked for (or to a search closed since) fills nothing.
    if (!s || s.status !== 'waiting') return [];
    let fresh = 0;
    for (const inner of batch.lines) {
      if ((inner.command !== 'PRIVMSG' && inner.command !== 'NOTICE') || inner.params.length < 2) continue;
      const line = this.messageLine(inner, true);
      if (!line || s.hits.length >= MAX_SEARCH_HITS) continue;
      const seen = s.hits.some((h) => (h.msgid && line.msgid ? h.msgid === line.msgid
        : h.time === line.time && h.text === line.text && h.nick === line.nick));
      if (seen) continue;
      const target = inner.params[0];
      const buffer = isChannel(target) || this.isMe(line.nick) ? target : line.nick;
      s.hits.push({ ...line, target, buffer, stamp: inner.tags.time || new Date(line.time).toISOString() });
      fresh++;
    }
    s.hits.sort((a, b) => b.time - a.time);
    s.status = 'done';
    s.more = batch.lines.length >= SEARCH_PAGE && fresh > 0 && s.hits.length < MAX_SEARCH_HITS;
    this.changed++;
    return [];
  }

  /** `FAIL SEARCH <code> [context] :<text>`: shown with the results. */
  searchFailed(msg) {
    const text = msg.params[msg.params.length - 1];
    if (!this.searching) {
      this.error_(text);
      return [];
    }
    this.searching.status = 'failed';
    this.searching.error = `${text} (${msg.params[1] || 'FAIL'})`;
    this.changed++;
    return [];
  }

  /** Open the conversation a hit belongs to; the page flashes the message when it is loaded. */
  openHit(hit) {
    const buffer = this.buffer(hit.buffer, isChannel(hit.buffer) ? 'channel' : 'query');
    this.setActive(buffer.name);
    this.focusMsgid = hit.msgid || null;
  }

  /** React to a message: `@+draft/react=<value>;+draft/reply=<msgid> TAGMSG <target>`. */
  react(target, msgid, value) {
    const buffer = this.find(target);
    if (!this.canTag(buffer)) throw new InputError('this server does not pass reactions on (no message-tags)');
    if (!msgid || !value || new TextEncoder().encode(value).length > MAX_REACTION_BYTES) {
      throw new InputError(`a reaction is one symbol of at most ${MAX_REACTION_BYTES} bytes`);
    }
    const mine = this.reactionsOf(buffer, msgid).find((r) => r.value === value && r.own);
    if (mine) return [];
    if (!this.caps.has('echo-message')) {
      this.addReaction(buffer, { tags: {}, source: this.nick }, { parent: msgid, value });
    }
    return [withTags({ '+draft/react': value, '+draft/reply': msgid }, ircLine('TAGMSG', target))];
  }
}

/** The capability names of the search extension, and the batch types its answer may have (the
 * spec's examples say `soju.im/search`, its text `search`). */
export const SEARCH_CAPS = ['soju.im/search', 'draft/search'];
const SEARCH_BATCH_TYPES = ['soju.im/search', 'search', 'draft/search'];
/** Messages asked for per page, hits kept over all pages, and the longest search text. */
export const SEARCH_PAGE = 50;
export const MAX_SEARCH_HITS = 1000;
export const MAX_SEARCH_TEXT = 300;

/** `SEARCH text=..;in=..;from=..;limit=N[;before=..]`, values escaped as tags (soju parses them so). */
export function searchLine(query, before = null) {
  const attributes = [['text', query.text]];
  if (query.target) attributes.push(['in', query.target]);
  if (query.from) attributes.push(['from', query.from]);
  attributes.push(['limit', String(SEARCH_PAGE)]);
  if (before) attributes.push(['before', before]);
  return ircLine('SEARCH', attributes.map(([k, v]) => `${k}=${escapeTag(v)}`).join(';'));
}

/** Split text into pieces of at most `max` UTF-8 bytes, at spaces when possible. */
export function splitText(text, max) {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= max) return [text];
  const pieces = [];
  let rest = text;
  while (encoder.encode(rest).length > max) {
    let cut = 0;
    let bytes = 0;
    for (const ch of rest) {
      const len = encoder.encode(ch).length;
      if (bytes + len > max) break;
      bytes += len;
      cut += ch.length;
    }
    const space = rest.lastIndexOf(' ', cut);
    if (space > cut / 2) cut = space;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut).replace(/^ /, '');
  }
  if (rest) pieces.push(rest);
  return pieces;
}

/** A parsed message back to a line (for batched lines handled later). */
/** `key`'s value in a capability value such as `vapid=BASE64,other=x`; null when absent. */
export function capValue(value, key) {
  for (const pair of (value || '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq) === key) return pair.slice(eq + 1) || null;
  }
  return null;
}

/**
 * `WEBPUSH REGISTER <endpoint> <keys>` for a browser subscription (PushSubscription.toJSON():
 * {endpoint, keys: {p256dh, auth}}, both URL-safe base64), or null when it cannot make one
 * valid line.
 */
export function webpushRegister(subscription) {
  const endpoint = subscription && subscription.endpoint;
  const keys = (subscription && subscription.keys) || {};
  const safe = (text) => typeof text === 'string' && /^[A-Za-z0-9_-]+=*$/.test(text);
  if (typeof endpoint !== 'string' || !/^https?:\/\/\S+$/.test(endpoint) || endpoint.startsWith(':')) return null;
  if (!safe(keys.p256dh) || !safe(keys.auth)) return null;
  return `WEBPUSH REGISTER ${endpoint} p256dh=${keys.p256dh};auth=${keys.auth}`;
}

export function webpushUnregister(endpoint) {
  return typeof endpoint === 'string' && /^\S+$/.test(endpoint) ? `WEBPUSH UNREGISTER ${endpoint}` : null;
}

/** URL-safe base64 (padded or not) to bytes: the VAPID key as applicationServerKey wants it. */
export function base64UrlToBytes(text) {
  const standard = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function serialize(msg) {
  const source = msg.source ? `:${msg.source} ` : '';
  return withTags(msg.tags, source + ircLine(msg.command, ...msg.params));
}

/** Seconds as a short human duration: 45s, 12m, 3h 5m, 2d 4h. */
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

/** The time of a line as HH:MM, in the browser's time zone. */
export function clock(time) {
  const d = new Date(time);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
