// Unit tests of the web client's pure logic (irc.js): parsing, state, command mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseLine, ircLine, parseInput, InputError, ChatState, casefold, splitText, serialize, base64,
  fnv1a32, nickColour, NICK_COLOURS, loginRefusal, typingText, withTags, REACTIONS,
} from '../irc.js';

test('parses tags, source, command and params', () => {
  const msg = parseLine('@time=2024-01-02T03:04:05.000Z;msgid=a\\sb :nick!u@h PRIVMSG #chan :hello there');
  assert.deepEqual(msg.tags, { time: '2024-01-02T03:04:05.000Z', msgid: 'a b' });
  assert.equal(msg.source, 'nick!u@h');
  assert.equal(msg.command, 'PRIVMSG');
  assert.deepEqual(msg.params, ['#chan', 'hello there']);
  assert.deepEqual(parseLine('PING :x y').params, ['x y']);
  assert.deepEqual(parseLine(':s 001 me :Welcome').params, ['me', 'Welcome']);
  assert.equal(parseLine(''), null);
});

test('builds lines with a trailing parameter only when needed', () => {
  assert.equal(ircLine('PRIVMSG', '#a', 'hi there'), 'PRIVMSG #a :hi there');
  assert.equal(ircLine('JOIN', '#a'), 'JOIN #a');
  assert.equal(ircLine('PRIVMSG', 'bob', ':)'), 'PRIVMSG bob ::)');
  assert.equal(ircLine('AWAY', ''), 'AWAY :');
  const line = '@msgid=x\\sy :n!u@h PRIVMSG #a :a b';
  assert.equal(serialize(parseLine(line)), line);
});

test('short commands map like the terminal client', () => {
  assert.deepEqual(parseInput('hello'), { type: 'say', text: 'hello' });
  assert.deepEqual(parseInput('//slash'), { type: 'say', text: '/slash' });
  assert.deepEqual(parseInput('/msg bob hi there'), { type: 'msg', target: 'bob', text: 'hi there' });
  assert.deepEqual(parseInput('/broadcast all hands'), { type: 'broadcast', text: 'all hands' });
  assert.deepEqual(parseInput('/create_group club'), { type: 'create_group', channel: '#club' });
  assert.deepEqual(parseInput('/join_group #club'), { type: 'join_group', channel: '#club' });
  assert.deepEqual(parseInput('/group_msg club hi all'), { type: 'group_msg', channel: '#club', text: 'hi all' });
  assert.deepEqual(parseInput('/leave_group club'), { type: 'leave_group', channel: '#club' });
  assert.deepEqual(parseInput('/exit'), { type: 'quit', reason: null });
  assert.deepEqual(parseInput('/join rust'), { type: 'join', channel: '#rust', key: null });
  assert.throws(() => parseInput('/msg bob'), /usage: \/msg/);
  assert.throws(() => parseInput('/create_group a b'), /usage: \/create_group/);
  assert.throws(() => parseInput('/frobnicate'), /unknown command \/frobnicate/);
  assert.throws(() => parseInput('   '), InputError);
  assert.throws(() => parseInput('/query 9lives'), /cannot start with a digit/);
});

function registered(caps = ['echo-message', 'draft/chathistory', 'batch', 'server-time']) {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  caps.forEach((c) => s.caps.add(c));
  s.handle(':srv 001 alice :Welcome');
  // The welcome's copy in the first channel has its own test; the others count only their lines.
  s.welcomeShown = true;
  return s;
}

test('login: CAP, SASL PLAIN, CAP END', () => {
  const s = new ChatState();
  assert.deepEqual(s.start({ nick: 'alice', password: 's3cret', register: false }),
    ['CAP LS 302', 'NICK alice', 'USER alice 0 * alice']);
  assert.deepEqual(s.handle(':srv CAP * LS :sasl=PLAIN server-time batch foo'), ['CAP REQ :batch sasl server-time']);
  assert.deepEqual(s.handle(':srv CAP * ACK :batch sasl server-time'), ['AUTHENTICATE PLAIN']);
  assert.deepEqual(s.handle('AUTHENTICATE +'), ['AUTHENTICATE ' + base64('alice\0alice\0s3cret')]);
  s.handle(':srv 900 alice alice!a@h alice :You are now logged in as alice');
  assert.deepEqual(s.handle(':srv 903 alice :SASL authentication successful'), ['CAP END']);
  s.handle(':srv 001 alice :Welcome');
  assert.equal(s.phase, 'registered');
  assert.equal(s.account, 'alice');
});

test('a wrong password fails the login with the server text', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'bad', register: false });
  s.handle(':srv CAP * LS :sasl');
  s.handle(':srv CAP * ACK :sasl');
  assert.deepEqual(s.handle(':srv 904 alice :SASL authentication failed'), ['QUIT']);
  assert.equal(s.phase, 'failed');
  assert.equal(s.error, 'The username or password was not accepted.');
});

test('register: REGISTER before CAP END', () => {
  const s = new ChatState();
  s.start({ nick: 'newbie', password: 'long password', register: true });
  s.handle(':srv CAP * LS :sasl draft/account-registration=before-connect');
  assert.deepEqual(s.handle(':srv CAP * ACK :sasl draft/account-registration'), ['REGISTER newbie * :long password']);
  assert.deepEqual(s.handle(':srv REGISTER SUCCESS newbie :Account created'), ['CAP END']);
  const t = new ChatState();
  t.start({ nick: 'x', password: 'short', register: true });
  t.handle(':srv CAP * LS :draft/account-registration');
  t.handle(':srv CAP * ACK :draft/account-registration');
  assert.deepEqual(t.handle(':srv FAIL REGISTER WEAK_PASSWORD x :Password too short'), ['QUIT']);
  assert.equal(t.error, 'Password too short');
});

test('joins, members, messages and unread counts', () => {
  const s = registered();
  assert.deepEqual(s.handle(':alice!a@h JOIN #lobby'), ['CHATHISTORY LATEST #lobby * 50']);
  assert.equal(s.activeBuffer().name, '#lobby');
  s.handle(':srv 353 alice = #lobby :@alice +bob carol!c@h');
  assert.deepEqual([...s.find('#lobby').members], [['alice', '@'], ['bob', '+'], ['carol', '']]);
  s.handle(':bob!b@h PRIVMSG #lobby :hi all');
  assert.equal(s.find('#lobby').lines.at(-1).text, 'hi all');
  assert.equal(s.find('#lobby').unread, 0, 'the active buffer has nothing unread');
  s.handle(':bob!b@h PRIVMSG alice :psst');
  const query = s.find('bob');
  assert.equal(query.kind, 'query');
  assert.equal(query.unread, 1);
  assert.equal(query.mention, true);
  s.handle(':dave!d@h JOIN #lobby');
  s.handle(':bob!b@h QUIT :bye');
  assert.ok(!s.find('#lobby').members.has('bob'));
  assert.ok(s.find('#lobby').members.has('dave'));
  s.handle(':bob2!b@h NICK :bobby');
  s.handle(':dave!d@h NICK :david');
  assert.ok(s.find('#lobby').members.has('david'));
  s.handle(':alice!a@h MODE #lobby +v david');
  assert.equal(s.find('#lobby').members.get('david'), '+');
  s.setActive('bob');
  assert.equal(s.find('bob').unread, 0);
  assert.equal(casefold('Bob[1]'), 'bob{1}');
});

test('echo-message: own lines come from the server, not twice', () => {
  const s = registered();
  s.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(s.act(parseInput('hello')), ['PRIVMSG #lobby hello']);
  assert.equal(s.find('#lobby').lines.length, 0);
  s.handle('@msgid=m1 :alice!a@h PRIVMSG #lobby hello');
  s.handle('@msgid=m1 :alice!a@h PRIVMSG #lobby hello');
  assert.equal(s.find('#lobby').lines.length, 1);
  assert.equal(s.find('#lobby').lines[0].own, true);
  const t = registered(['server-time']);
  t.handle(':alice!a@h JOIN #lobby');
  t.act(parseInput('/me waves'));
  assert.equal(t.find('#lobby').lines[0].kind, 'action');
});

test('chathistory batches fill a buffer in time order and BEFORE pages back', () => {
  const s = registered();
  s.handle(':alice!a@h JOIN #lobby');
  s.handle(':srv BATCH +h1 chathistory #lobby');
  s.handle('@batch=h1;time=2024-01-01T10:00:02.000Z;msgid=b :bob!b@h PRIVMSG #lobby :second');
  s.handle('@batch=h1;time=2024-01-01T10:00:01.000Z;msgid=a :bob!b@h PRIVMSG #lobby :first');
  assert.equal(s.find('#lobby').lines.length, 0, 'held until the batch ends');
  s.handle(':srv BATCH -h1');
  const buffer = s.find('#lobby');
  assert.deepEqual(buffer.lines.map((l) => l.text), ['first', 'second']);
  assert.equal(buffer.historyDone, true, 'fewer than a page: nothing older');
  buffer.historyDone = false;
  assert.deepEqual(s.loadOlder(), ['CHATHISTORY BEFORE #lobby timestamp=2024-01-01T10:00:01.000Z 50']);
  assert.deepEqual(s.loadOlder(), [], 'one request at a time');
});

test('create_group checks existence with LIST first', () => {
  const s = registered();
  assert.deepEqual(s.act(parseInput('/create_group club')), ['LIST #club']);
  assert.deepEqual(s.handle(':srv 323 alice :End of /LIST'), ['JOIN #club']);
  s.act(parseInput('/create_group lobby'));
  s.handle(':srv 322 alice #lobby 3 :topic');
  assert.deepEqual(s.handle(':srv 323 alice :End of /LIST'), []);
  assert.match(s.buffers.get('*server*').lines.at(-1).text, /already exists/);
});

test('commands turn into protocol lines', () => {
  const s = registered();
  assert.throws(() => s.act(parseInput('hello')), /server buffer takes only commands/);
  assert.deepEqual(s.act(parseInput('/broadcast hi all')), ['PRIVMSG $* :hi all']);
  assert.deepEqual(s.act(parseInput('/join_group club')), ['JOIN #club']);
  assert.deepEqual(s.act(parseInput('/group_msg club hi')), ['PRIVMSG #club hi']);
  assert.deepEqual(s.act(parseInput('/leave_group club')), ['PART #club']);
  assert.deepEqual(s.act(parseInput('/msg bob hey you')), ['PRIVMSG bob :hey you']);
  assert.equal(s.activeBuffer().name, 'bob', '/msg to a nick opens the conversation');
  assert.deepEqual(s.act(parseInput('/exit')), ['QUIT Leaving']);
  const offline = new ChatState();
  assert.throws(() => offline.act(parseInput('/join x')), /not connected/);
});

test('long text is split at spaces under the byte limit', () => {
  const pieces = splitText('word '.repeat(200).trim(), 400);
  assert.ok(pieces.length > 1);
  for (const p of pieces) assert.ok(new TextEncoder().encode(p).length <= 400);
  assert.equal(pieces.join(' '), 'word '.repeat(200).trim());
});

test('asks for the account caps parleyd offers', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  // parleyd's CAP LS (crates/parley-server/src/context.rs, SUPPORTED_CAPS).
  const [req] = s.handle(':srv CAP * LS :account-notify account-tag away-notify batch cap-notify draft/channel-rename '
    + 'draft/chathistory draft/message-redaction draft/multiline=max-bytes=4096,max-lines=24 draft/read-marker '
    + 'echo-message extended-join extended-monitor invite-notify labeled-response message-tags multi-prefix '
    + 'sasl=PLAIN,SCRAM-SHA-256 server-time setname userhost-in-names');
  for (const cap of ['account-notify', 'account-tag', 'extended-join']) assert.ok(req.split(/[ :]/).includes(cap), req);
  // Typing, replies and reactions; read markers; quiet refusals of typing notices.
  for (const cap of ['message-tags', 'draft/read-marker', 'labeled-response']) assert.ok(req.split(/[ :]/).includes(cap), req);
});

test('nick colours: FNV-1a of the casefolded account, the nick for guests', () => {
  // FNV-1a 32-bit test vectors; parley-gui's theme.rs tests the same values.
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  assert.equal(fnv1a32('alice'), 0x872213e7);
  assert.equal(nickColour('ALICE'), 0x872213e7 % NICK_COLOURS);
  assert.equal(nickColour('Alice'), nickColour('alice'));

  const s = registered();
  s.handle(':srv 005 alice CASEMAPPING=ascii CHANTYPES=# :are supported by this server');
  assert.equal(s.casemapping, 'ascii');
  s.handle(':alice!a@h JOIN #lobby');
  // extended-join names the account ('*' for a guest).
  s.handle(':Bob!b@h JOIN #lobby bob :Bob Terminal');
  s.handle(':guest1!g@h JOIN #lobby * :A guest');
  assert.equal(s.accountOf('bob'), 'bob');
  assert.equal(s.accountOf('guest1'), null);
  assert.equal(s.colourOf('Bob'), nickColour('bob'));
  assert.equal(s.colourOf('guest1'), nickColour('guest1'));
  // A nick change keeps the colour: it follows the account.
  s.handle(':Bob!b@h NICK :robert');
  assert.equal(s.accountOf('robert'), 'bob');
  assert.equal(s.colourOf('robert'), nickColour('bob'));
  // account-tag on a message, and each line keeps the account it was sent with.
  s.handle('@account=carol :carol!c@h PRIVMSG #lobby :hi');
  assert.equal(s.accountOf('carol'), 'carol');
  assert.equal(s.find('#lobby').lines.at(-1).account, 'carol');
  // account-notify: logging out makes them a guest again; QUIT forgets them.
  s.handle(':carol!c@h ACCOUNT *');
  assert.equal(s.accountOf('carol'), null);
  s.handle(':dave!d@h ACCOUNT dave');
  assert.equal(s.accountOf('dave'), 'dave');
  s.handle(':dave!d@h QUIT :bye');
  assert.equal(s.accountOf('dave'), null);
  // WHOIS's 330 tells too.
  s.handle(':srv 330 alice erin erin_acct :is logged in as');
  assert.equal(s.accountOf('erin'), 'erin_acct');
});

test('/whois answers in the conversation where it was asked', () => {
  const s = registered();
  s.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(s.act(parseInput('/whois bob')), ['WHOIS bob']);
  const server = s.buffers.get('*server*');
  const before = server.lines.length;
  for (const line of [
    ':srv 311 alice bob b host * :Bob Terminal',
    ':srv 319 alice bob :#lobby',
    ':srv 312 alice bob parley.local :Parley',
    ':srv 330 alice bob bob :is logged in as',
    ':srv 317 alice bob 125 1700000000 :seconds idle, signon time',
    ':srv 318 alice bob :End of /WHOIS list',
  ]) s.handle(line);
  const texts = s.find('#lobby').lines.map((l) => l.text);
  assert.deepEqual(texts, [
    'bob is b@host (Bob Terminal)', 'bob is in #lobby', 'bob is on parley.local (Parley)',
    'bob is logged in as bob', 'bob has been idle 2m', 'End of WHOIS for bob',
  ]);
  assert.equal(server.lines.length, before, 'not in the server buffer');
  // An unknown nick: the error goes there too.
  s.act(parseInput('/whois nobody'));
  s.handle(':srv 401 alice nobody :No such nick/channel');
  s.handle(':srv 318 alice nobody :End of /WHOIS list');
  assert.match(s.find('#lobby').lines.at(-2).text, /^nobody: No such nick/);
});

test('a left group leaves the list and is not rejoined; a kick keeps it to read', () => {
  const s = registered();
  s.handle(':alice!a@h JOIN #lobby');
  s.handle(':alice!a@h JOIN #club');
  assert.deepEqual(s.joinedChannels().sort(), ['#club', '#lobby']);
  assert.equal(s.activeBuffer().name, '#lobby');
  s.setActive('#club');
  assert.deepEqual(s.act(parseInput('/part')), ['PART #club']);
  s.handle(':alice!a@h PART #club');
  assert.equal(s.find('#club'), undefined);
  assert.ok(!s.bufferList().some((b) => b.name === '#club'));
  assert.deepEqual(s.joinedChannels(), ['#lobby'], 'a reconnect rejoins only these');
  assert.equal(s.activeBuffer().name, '#lobby', 'the view moves to another group');
  s.handle(':op!o@h KICK #lobby alice :behave');
  assert.ok(s.find('#lobby'), 'a kick keeps the buffer');
  assert.deepEqual(s.joinedChannels(), []);
});

test('the welcome and broadcasts show in the current conversation as well', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: '', register: false });
  s.handle(':srv CAP * LS :server-time');
  s.handle(':srv CAP * ACK :server-time');
  s.handle(':srv 001 alice :Welcome to the Parley IRC Network alice!a@h');
  s.handle(':srv 375 alice :- srv Message of the day -');
  s.handle(':srv 372 alice :- Everyone meets in #lobby');
  s.handle(':srv 376 alice :End of /MOTD command.');
  s.handle(':alice!a@h JOIN #lobby');
  const lobby = s.find('#lobby');
  assert.deepEqual(lobby.lines.map((l) => l.text),
    ['Welcome to the Parley IRC Network alice!a@h', 'Everyone meets in #lobby']);
  const server = s.buffers.get('*server*');
  assert.ok(server.lines.some((l) => l.text === 'Everyone meets in #lobby'), 'and in the server buffer');
  // A broadcast and a server notice while in #lobby: there, and in the server buffer unread-free.
  s.handle(':op!o@h PRIVMSG $* :maintenance at noon');
  s.handle(':srv.example NOTICE alice :server restarting soon');
  assert.deepEqual(lobby.lines.slice(-2).map((l) => l.text), ['[broadcast] maintenance at noon', 'server restarting soon']);
  assert.deepEqual(server.lines.slice(-2).map((l) => l.text), ['[broadcast] maintenance at noon', 'server restarting soon']);
  assert.equal(server.unread, 0, 'read where it was shown');
  // A second channel joined later does not repeat the welcome.
  s.handle(':alice!a@h JOIN #club');
  assert.equal(s.find('#club').lines.length, 0);
});

// WCAG 2.x contrast, for the colours style.css gives text in both themes.
function luminance(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
function themeVars(css, selector) {
  const start = css.indexOf(selector + ' {');
  const block = css.slice(start, css.indexOf('}', start));
  return Object.fromEntries([...block.matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{6})/g)].map((m) => [m[1], m[2]]));
}

test('style.css: every text colour meets WCAG AA (4.5:1) in both themes', () => {
  assert.equal(contrast('#000000', '#ffffff').toFixed(2), '21.00');
  assert.equal(contrast('#767676', '#ffffff').toFixed(2), '4.54');
  const css = readFileSync(new URL('../style.css', import.meta.url), 'utf8');
  const light = themeVars(css, ':root');
  const themes = { light, dark: { ...light, ...themeVars(css, ':root[data-theme="dark"]') } };
  const failures = [];
  for (const [name, v] of Object.entries(themes)) {
    const pairs = [];
    for (const bg of ['bg', 'panel', 'own']) {
      for (const fg of ['text', 'muted', 'error']) pairs.push([fg, bg]);
    }
    for (let i = 0; i < NICK_COLOURS; i++) pairs.push([`nick-${i}`, 'bg'], [`nick-${i}`, 'own'], [`nick-${i}`, 'panel']);
    pairs.push(['accent-text', 'accent'], ['accent-text', 'badge'], ['accent-text', 'mention']);
    for (const [fg, bg] of pairs) {
      assert.ok(v[fg] && v[bg], `${name}: --${fg} and --${bg} are defined`);
      const ratio = contrast(v[fg], v[bg]);
      if (ratio < 4.5) failures.push(`${name}: --${fg} ${v[fg]} on --${bg} ${v[bg]} is ${ratio.toFixed(2)}:1`);
    }
  }
  assert.deepEqual(failures, []);
  for (let i = 0; i < NICK_COLOURS; i++) assert.ok(css.includes(`.nick-c${i} {`), `.nick-c${i} is styled`);
});

test('login session: asked for after a password login, kept, never with the password', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 's3cret', register: false, remember: true, label: 'Web: Chrome on Linux' });
  s.handle(':srv CAP * LS :sasl=PLAIN,SCRAM-SHA-256,IRCV3BEARER server-time');
  s.handle(':srv CAP * ACK :sasl server-time');
  s.handle('AUTHENTICATE +');
  s.handle(':srv 900 alice alice!a@h alice :You are now logged in as alice');
  s.handle(':srv 903 alice :SASL authentication successful');
  assert.deepEqual(s.handle(':srv 001 alice :Welcome'), ['SESSION NEW :Web: Chrome on Linux']);
  assert.equal(s.sessionToken, null);
  s.handle(':srv SESSION NEW tok123 1900000000');
  assert.equal(s.sessionToken, 'tok123');

  // Without "stay logged in", or from a server without sessions, nothing is asked for.
  const once = new ChatState();
  once.start({ nick: 'alice', password: 's3cret', register: false, remember: false });
  once.handle(':srv CAP * LS :sasl=PLAIN,SCRAM-SHA-256,IRCV3BEARER');
  once.handle(':srv 900 alice alice!a@h alice :logged in');
  assert.deepEqual(once.handle(':srv 001 alice :Welcome'), []);
  const old = new ChatState();
  old.start({ nick: 'alice', password: 's3cret', register: false, remember: true });
  old.handle(':srv CAP * LS :sasl=PLAIN');
  old.handle(':srv 900 alice alice!a@h alice :logged in');
  assert.deepEqual(old.handle(':srv 001 alice :Welcome'), []);
});

test('login session: a reload logs in with the token and reopens the conversations', () => {
  const s = new ChatState();
  s.start({
    nick: 'alice', account: 'alice', token: 'tok123',
    resume: { channels: ['#club', '#lobby'], queries: ['bob'], active: '#club' },
  });
  s.handle(':srv CAP * LS :sasl=PLAIN,IRCV3BEARER draft/chathistory batch');
  assert.deepEqual(s.handle(':srv CAP * ACK :sasl draft/chathistory batch'), ['AUTHENTICATE IRCV3BEARER']);
  assert.deepEqual(s.handle('AUTHENTICATE +'), ['AUTHENTICATE ' + base64('alice\0parley.chat/session\0tok123')]);
  s.handle(':srv 900 alice alice!a@h alice :logged in');
  assert.deepEqual(s.handle(':srv 903 alice :ok'), ['CAP END']);
  assert.deepEqual(s.handle(':srv 001 alice :Welcome'),
    ['JOIN #club', 'JOIN #lobby', 'CHATHISTORY LATEST bob * 50']);
  assert.equal(s.sessionToken, 'tok123');
  s.handle(':alice!a@h JOIN #club');
  assert.equal(s.activeBuffer().name, '#club');
  assert.deepEqual(s.view(), { channels: ['#club'], queries: ['bob'], active: '#club' });
});

test('login session: a refused token ends it with a message, once', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', account: 'alice', token: 'old' });
  s.handle(':srv CAP * LS :sasl=PLAIN,IRCV3BEARER');
  s.handle(':srv CAP * ACK :sasl');
  s.handle('AUTHENTICATE +');
  const out = s.handle(':srv 904 * :Your session ended (logged out, expired or revoked); log in with your password');
  assert.deepEqual(out, ['QUIT']);
  assert.equal(s.phase, 'failed');
  assert.equal(s.sessionEnded, true);
  assert.equal(s.error, 'Your session ended; log in again.');

  // A lockout is no end of the session: the token is kept for later, the reason shown.
  const locked = new ChatState();
  locked.start({ nick: 'alice', account: 'alice', token: 'good' });
  locked.handle(':srv CAP * LS :sasl=PLAIN,IRCV3BEARER');
  locked.handle(':srv CAP * ACK :sasl');
  locked.handle('AUTHENTICATE +');
  locked.handle(':srv 904 * :Too many failed logins; try again in 600 seconds');
  assert.equal(locked.sessionEnded, false);
  assert.equal(locked.error, 'Too many failed logins; try again in 10 minutes.');
});

test('/logout revokes the session on the server, then quits', () => {
  assert.deepEqual(parseInput('/logout'), { type: 'logout' });
  const s = registered();
  s.sessionToken = 'tok123';
  assert.deepEqual(s.act({ type: 'logout' }), ['SESSION REVOKE']);
  assert.equal(s.loggedOut, false);
  assert.deepEqual(s.handle(':srv SESSION REVOKED 1 :This login session ended'), ['QUIT :Logged out']);
  assert.equal(s.loggedOut, true);
  assert.equal(s.sessionToken, null);
  // Without a session (or when the server cannot revoke it) the page still logs out.
  const plain = registered();
  assert.deepEqual(plain.act({ type: 'logout' }), ['QUIT :Logged out']);
  const failing = registered();
  failing.sessionToken = 'tok';
  failing.act({ type: 'logout' });
  assert.deepEqual(failing.handle(':srv FAIL SESSION TEMPORARILY_UNAVAILABLE :try later'), ['QUIT :Logged out']);
  assert.equal(failing.loggedOut, true);
});

test('a refused login is said once, and a lockout in minutes, as the other clients say it', () => {
  assert.equal(loginRefusal('Invalid account name or password'), 'The username or password was not accepted.');
  assert.equal(loginRefusal(''), 'The username or password was not accepted.');
  assert.equal(loginRefusal('Too many failed logins; try again in 299 seconds'),
    'Too many failed logins; try again in 5 minutes.');
  assert.equal(loginRefusal('too many failed logins; try again in 1 seconds'),
    'Too many failed logins; try again in 1 second.');
  assert.equal(loginRefusal('Too many failed logins'), 'Too many failed logins; try again later.');
  assert.equal(loginRefusal('This account is disabled; ask a server operator'),
    'The server refused the login: This account is disabled; ask a server operator');
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'typo', register: false });
  s.handle(':srv CAP * LS :sasl');
  s.handle(':srv AUTHENTICATE +');
  s.handle(':srv 904 alice :Too many failed logins; try again in 120 seconds');
  assert.equal(s.error, 'Too many failed logins; try again in 2 minutes.');
});

// --- Typing, replies and reactions, MONITOR, read markers (issue 24) ---------------------------

const TAG_CAPS = ['echo-message', 'draft/chathistory', 'batch', 'server-time', 'message-tags'];

test('typing: active while typing, at most every 3 s, paused when idle, done on send and clear', () => {
  const s = registered(TAG_CAPS);
  let clock = 0;
  s.clock = () => clock;
  s.handle(':alice!a@h JOIN #lobby');
  // typing spec: "The `typing=active` notification SHOULD be sent by clients **continuously**
  // while the user is making updates to the text-input field and the text is not a "/slash command"."
  assert.deepEqual(s.typingInput('h', 1000), ['@+typing=active TAGMSG #lobby']);
  // "Input event handlers MUST be throttled so that any `typing` notification is not sent
  // within 3 seconds of another one for a given target."
  assert.deepEqual(s.typingInput('he', 2000), []);
  assert.deepEqual(s.typingInput('hel', 3999), []);
  assert.deepEqual(s.tick(3999), []);
  assert.deepEqual(s.typingInput('hell', 4000), ['@+typing=active TAGMSG #lobby'], 'still typing: again after 3 s');
  assert.deepEqual(s.tick(7000), [], 'no new input since: nothing to repeat');
  // "The `typing=paused` notification MAY be sent by clients **once** when the user has paused
  // typing in the text-input field and has not cleared their text."
  assert.deepEqual(s.tick(10000), ['@+typing=paused TAGMSG #lobby']);
  assert.deepEqual(s.tick(20000), [], 'once');
  assert.deepEqual(s.typingInput('hello', 21000), ['@+typing=active TAGMSG #lobby']);
  // Sending ends it (the message, then done once the 3 s allow it).
  clock = 22000;
  assert.deepEqual(s.act(parseInput('hello')), ['PRIVMSG #lobby hello']);
  assert.deepEqual(s.tick(23000), []);
  assert.deepEqual(s.tick(24000), ['@+typing=done TAGMSG #lobby']);
  assert.deepEqual(s.tick(40000), [], 'done is sent once');
  // "The `typing=done` notification MAY be sent by clients **once** when the user clears the
  // text-input field without sending a message."
  assert.deepEqual(s.typingInput('x', 50000), ['@+typing=active TAGMSG #lobby']);
  assert.deepEqual(s.typingInput('', 54000), ['@+typing=done TAGMSG #lobby']);
  // A /command is not typing a message; `//` starts one.
  assert.deepEqual(s.typingInput('/join #x', 60000), []);
  assert.deepEqual(s.typingInput('//slash', 61000), ['@+typing=active TAGMSG #lobby']);
  // Moving to another conversation: the one left is done.
  s.handle(':alice!a@h JOIN #club');
  s.setActive('#club');
  assert.deepEqual(s.typingInput('//slash', 65000), ['@+typing=done TAGMSG #lobby', '@+typing=active TAGMSG #club']);
  // The server buffer takes only commands: no typing there (and #club, left, is done).
  s.setActive('*server*');
  assert.deepEqual(s.typingInput('hi', 70000), ['@+typing=done TAGMSG #club']);
  assert.deepEqual(s.typingInput('hi there', 80000), []);
});

test('typing and reactions stop quietly on a server that offers message-tags but answers 421 to TAGMSG', () => {
  const s = registered(TAG_CAPS);
  let clock = 0;
  s.clock = () => clock;
  s.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(s.typingInput('hi', 1000), ['@+typing=active TAGMSG #lobby']);
  s.handle(':srv 421 alice TAGMSG :Unknown command');
  assert.equal(s.find('#lobby').lines.filter((l) => l.kind === 'error').length, 0, 'no error shown');
  assert.deepEqual(s.typingInput('hi there', 9000), []);
  assert.equal(s.canTag(), false, 'no Reply/React buttons');
  s.handle(':srv 421 alice FROB :Unknown command');
  assert.match(s.find('#lobby').lines.at(-1).text, /FROB Unknown command/);
});

test('typing: no notices to someone offline; a refused one (labeled) is not an error and pauses them', () => {
  const s = registered([...TAG_CAPS, 'labeled-response']);
  let clock = 0;
  s.clock = () => clock;
  s.handle(':srv 005 alice MONITOR=100 :are supported');
  s.act(parseInput('/query bob'));
  s.handle(':srv 731 alice :bob');
  assert.deepEqual(s.typingInput('hi', 1000), [], 'MONITOR says bob is offline');
  s.handle(':srv 730 alice :bob!b@h');
  // labeled-response: "the server MUST include the same label tag in the response".
  assert.deepEqual(s.typingInput('hi b', 2000), ['@label=typing-1;+typing=active TAGMSG bob']);
  s.handle('@label=typing-1 :srv 401 alice bob :No such nick/channel');
  assert.equal(s.find('bob').lines.filter((l) => l.kind === 'error').length, 0, 'not shown');
  clock = 10000;
  assert.deepEqual(s.typingInput('hi bo', 10000), [], 'a refusing target is left alone for a while');
  assert.deepEqual(s.typingInput('hi bob', 62000), ['@label=typing-2;+typing=active TAGMSG bob']);
  // An echo or ACK under the label is no refusal; errors of the user's own lines still show.
  s.handle('@label=typing-2 :srv ACK');
  assert.deepEqual(s.typingInput('hi bob!', 65000), ['@label=typing-3;+typing=active TAGMSG bob']);
  s.handle(':alice!a@h JOIN #quiet');
  s.handle(':srv 404 alice #quiet :Cannot send to channel');
  assert.match(s.buffers.get('*server*').lines.at(-1).text, /Cannot send to channel/);
  // A refusal in a labeled-response batch too.
  clock = 70000;
  s.setActive('#quiet');
  assert.deepEqual(s.typingInput('x', 70000), ['@label=typing-4;+typing=done TAGMSG bob', '@label=typing-5;+typing=active TAGMSG #quiet']);
  s.handle('@label=typing-5 :srv BATCH +b1 labeled-response');
  s.handle('@batch=b1 :srv 404 alice #quiet :Cannot send to channel (+m)');
  s.handle(':srv BATCH -b1');
  assert.ok(![...s.buffers.values()].some((b) => b.lines.some((l) => /\+m/.test(l.text))));
  assert.deepEqual(s.typingInput('xy', 80000), []);
});

test('typing: nothing without message-tags, nothing with /typing off', () => {
  const s = registered();
  s.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(s.typingInput('hello', 1000), []);
  assert.deepEqual(s.tick(10000), []);
  const t = registered(TAG_CAPS);
  let clock = 0;
  t.clock = () => clock;
  t.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(parseInput('/typing off'), { type: 'typing', on: false });
  assert.throws(() => parseInput('/typing maybe'), /usage: \/typing on\|off/);
  assert.deepEqual(t.typingInput('hi', 1000), ['@+typing=active TAGMSG #lobby']);
  // Turned off while typing: taken back once the throttle allows, then silence.
  clock = 2000;
  assert.deepEqual(t.act({ type: 'typing', on: false }), []);
  assert.deepEqual(t.tick(4000), ['@+typing=done TAGMSG #lobby']);
  assert.deepEqual(t.typingInput('hi again', 9000), []);
  assert.deepEqual(t.tick(20000), []);
});

test('typing: shown for the conversation until done, a message, leaving, or the timeouts', () => {
  const s = registered(TAG_CAPS);
  s.handle(':alice!a@h JOIN #lobby');
  const lobby = s.find('#lobby');
  const now = Date.now();
  s.handle('@+typing=active :bob!b@h TAGMSG #lobby');
  assert.deepEqual(s.typers(lobby, now), ['bob']);
  assert.equal(typingText(s.typers(lobby, now)), 'bob is typing\u2026');
  // "A message is received from the sender"
  s.handle('@msgid=m1 :bob!b@h PRIVMSG #lobby :hi');
  assert.deepEqual(s.typers(lobby, now), []);
  // "A `typing=done` notification is received from the sender"
  s.handle('@+typing=active :bob!b@h TAGMSG #lobby');
  s.handle('@+typing=active :carol!c@h TAGMSG #lobby');
  assert.equal(typingText(s.typers(lobby)), 'bob and carol are typing\u2026');
  s.handle('@+typing=done :bob!b@h TAGMSG #lobby');
  assert.deepEqual(s.typers(lobby), ['carol']);
  // "The sender leaves the channel or quits the server"
  s.handle(':carol!c@h PART #lobby');
  assert.deepEqual(s.typers(lobby), []);
  s.handle('@+typing=active :dave!d@h TAGMSG #lobby');
  s.handle(':dave!d@h QUIT :bye');
  assert.deepEqual(s.typers(lobby), []);
  // "At least 6 seconds have passed since the last `typing=active` notification was received"
  s.handle('@+typing=active :bob!b@h TAGMSG #lobby');
  const t0 = lobby.typing.get('bob').at;
  assert.deepEqual(s.typers(lobby, t0 + 5999), ['bob']);
  assert.deepEqual(s.typers(lobby, t0 + 6000), []);
  // "At least 30 seconds have elapsed since the last `typing=paused` notification was received"
  s.handle('@+typing=paused :bob!b@h TAGMSG #lobby');
  const t1 = lobby.typing.get('bob').at;
  assert.deepEqual(s.typers(lobby, t1 + 29999), ['bob']);
  const before = s.changed;
  s.tick(t1 + 30000);
  assert.deepEqual(s.typers(lobby, t1 + 30000), []);
  assert.ok(s.changed > before, 'expiry redraws');
  // Our own (echo-message) is not shown; typing in private never opens a conversation.
  s.handle('@+typing=active :alice!a@h TAGMSG #lobby');
  assert.deepEqual(s.typers(lobby), []);
  s.handle('@+typing=active :erin!e@h TAGMSG alice');
  assert.equal(s.find('erin'), undefined);
  s.handle(':erin!e@h PRIVMSG alice :hello');
  s.handle('@+typing=active :erin!e@h TAGMSG alice');
  assert.deepEqual(s.typers(s.find('erin')), ['erin']);
  assert.equal(typingText(['a', 'b', 'c', 'd']), '4 people are typing\u2026');
});

test('replies: sent with +draft/reply on the first line, shown with their parent', () => {
  const s = registered(TAG_CAPS);
  s.handle(':alice!a@h JOIN #lobby');
  s.handle('@msgid=123;time=2024-01-01T10:00:00.000Z :bob!b@h PRIVMSG #lobby :Hello!');
  // reply spec: "+draft/reply=<msgid>"
  assert.deepEqual(s.act({ type: 'say', text: 'Hello to you!', replyTo: '123' }),
    ['@+draft/reply=123 PRIVMSG #lobby :Hello to you!']);
  const long = s.act({ type: 'say', text: 'word '.repeat(120).trim(), replyTo: '123' });
  assert.ok(long.length > 1 && long[0].startsWith('@+draft/reply=123 PRIVMSG') && long[1].startsWith('PRIVMSG'));
  // The spec's example of the echo: "S: @draft/msgid=456;+draft/reply=abc ..." with msgid as today.
  s.handle('@msgid=456;+draft/reply=123 :alice!a@h PRIVMSG #lobby :Hello to you!');
  const lobby = s.find('#lobby');
  const reply = lobby.lines.at(-1);
  assert.equal(reply.replyTo, '123');
  assert.equal(s.parentOf(lobby, reply.replyTo).text, 'Hello!');
  assert.equal(s.parentOf(lobby, 'gone'), null, 'a parent not loaded is shown as such');
  // Without message-tags the reply is a plain message.
  const plain = registered();
  plain.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(plain.act({ type: 'say', text: 'hi', replyTo: '123' }), ['PRIVMSG #lobby hi']);
});

test('reactions: sent as TAGMSG, counted once per person, from live and history alike', () => {
  const s = registered(TAG_CAPS);
  s.handle(':alice!a@h JOIN #lobby');
  s.handle('@msgid=123 :bob!b@h PRIVMSG #lobby :Hello!');
  const lobby = s.find('#lobby');
  // react spec: "+draft/react=<reaction>"; "this tag MUST be used in conjunction with the
  // `+draft/reply` client tag"; "This tag MAY be attached to an empty message."
  assert.deepEqual(s.act({ type: 'react', msgid: '123', value: '\u{1F44D}' }),
    ['@+draft/react=\u{1F44D};+draft/reply=123 TAGMSG #lobby']);
  s.handle('@msgid=r1;+draft/react=\u{1F44D};+draft/reply=123 :alice!a@h TAGMSG #lobby');
  s.handle('@msgid=r2;account=carol;+draft/react=\u{1F44D};+draft/reply=123 :carol!c@h TAGMSG #lobby');
  s.handle('@msgid=r2;account=carol;+draft/react=\u{1F44D};+draft/reply=123 :carol!c@h TAGMSG #lobby');
  s.handle('@msgid=r3;account=carol;+draft/react=\u{1F44D};+draft/reply=123 :carol_phone!c@h TAGMSG #lobby');
  s.handle('@msgid=r4;+draft/react=lol;+draft/reply=123 :dave!d@h TAGMSG #lobby');
  assert.deepEqual(s.reactionsOf(lobby, '123'), [
    { value: '\u{1F44D}', count: 2, nicks: ['alice', 'carol'], own: true },
    { value: 'lol', count: 1, nicks: ['dave'], own: false },
  ]);
  assert.deepEqual(s.act({ type: 'react', msgid: '123', value: '\u{1F44D}' }), [], 'not twice');
  // "An example of a reaction with an additional message body": the body shows, the reaction counts.
  s.handle('@msgid=r5;+draft/reply=123;+draft/react=:) :erin!e@h PRIVMSG #lobby :lol');
  assert.equal(lobby.lines.at(-1).text, 'lol');
  assert.deepEqual(s.reactionsOf(lobby, '123').map((r) => r.value), ['\u{1F44D}', 'lol', ':)']);
  // A react without a reply is nothing; an overlong one is refused.
  s.handle('@msgid=r6;+draft/react=x :erin!e@h TAGMSG #lobby');
  s.handle(`@msgid=r7;+draft/react=${'x'.repeat(65)};+draft/reply=123 :erin!e@h TAGMSG #lobby`);
  assert.equal(s.reactionsOf(lobby, '123').length, 3);
  assert.throws(() => s.act({ type: 'react', msgid: '123', value: 'x'.repeat(65) }), /at most 64 bytes/);

  // From CHATHISTORY, the same (and the page of history counts them, not only lines).
  const h = registered(TAG_CAPS);
  h.handle(':alice!a@h JOIN #lobby');
  h.handle(':srv BATCH +b chathistory #lobby');
  h.handle('@batch=b;time=2024-01-01T10:00:00.000Z;msgid=p1 :bob!b@h PRIVMSG #lobby :parent');
  h.handle('@batch=b;time=2024-01-01T10:00:01.000Z;msgid=c1;+draft/reply=p1 :carol!c@h PRIVMSG #lobby :a reply');
  h.handle('@batch=b;time=2024-01-01T10:00:02.000Z;msgid=r1;+draft/react=\u{1F389};+draft/reply=p1 :carol!c@h TAGMSG #lobby');
  h.handle('@batch=b;time=2024-01-01T10:00:03.000Z;+typing=active :carol!c@h TAGMSG #lobby');
  h.handle(':srv BATCH -b');
  const hl = h.find('#lobby');
  assert.deepEqual(hl.lines.map((l) => l.text), ['parent', 'a reply']);
  assert.equal(h.parentOf(hl, hl.lines[1].replyTo).text, 'parent');
  assert.deepEqual(h.reactionsOf(hl, 'p1'), [{ value: '\u{1F389}', count: 1, nicks: ['carol'], own: false }]);
  assert.deepEqual(h.typers(hl), [], 'typing from history is over');
  // The same reaction live again (history and live overlap) is not counted twice.
  h.handle('@msgid=r1;+draft/react=\u{1F389};+draft/reply=p1 :carol!c@h TAGMSG #lobby');
  assert.equal(h.reactionsOf(hl, 'p1')[0].count, 1);

  // Without message-tags: no reactions to send.
  const plain = registered();
  plain.handle(':alice!a@h JOIN #lobby');
  assert.throws(() => plain.act({ type: 'react', msgid: '123', value: 'x' }), /message-tags/);
  assert.equal(withTags({ '+draft/react': 'a;b c' }, 'TAGMSG #x'), '@+draft/react=a\\:b\\sc TAGMSG #x');
  assert.ok(REACTIONS.length >= 4);
});

test('MONITOR: the private conversations, online and offline from 730/731', () => {
  const s = registered(TAG_CAPS);
  s.handle(':bob!b@h PRIVMSG alice :hi');
  s.act(parseInput('/query carol'));
  // monitor spec: "Support of this specification is indicated by the MONITOR token in
  // `RPL_ISUPPORT` (005)."
  assert.deepEqual(s.handle(':srv 005 alice MONITOR=100 CASEMAPPING=ascii :are supported by this server'),
    ['MONITOR + bob,carol']);
  // A conversation opened later is added; "Targets already in the list MUST NOT be added again."
  assert.deepEqual(s.act(parseInput('/query dave')).filter((l) => l.startsWith('MONITOR')), ['MONITOR + dave']);
  assert.deepEqual(s.act(parseInput('/query Dave')).filter((l) => l.startsWith('MONITOR')), []);
  // ":<server> 730 <nick> :target[!user@host][,target[!user@host]]*"
  s.handle(':srv 730 alice :bob!b@host,carol!c@host');
  // ":<server> 731 <nick> :target[,target2]*"; "the server may send "*" instead of the nick"
  s.handle(':srv 731 * :dave');
  assert.equal(s.find('bob').online, true);
  assert.equal(s.find('carol').online, true);
  assert.equal(s.find('dave').online, false);
  s.handle(':srv 731 alice :bob');
  assert.equal(s.find('bob').online, false);
  // Closing the conversation stops watching.
  s.setActive('carol');
  assert.deepEqual(s.act(parseInput('/close')), ['MONITOR - carol']);

  // "If no parameter is specified, there is no limit"; with a limit, no more than it.
  const limited = registered(TAG_CAPS);
  for (const nick of ['a1', 'a2', 'a3']) limited.handle(`:${nick}!x@h PRIVMSG alice :hi`);
  assert.deepEqual(limited.handle(':srv 005 alice MONITOR=2 :are supported'), ['MONITOR + a1,a2']);
  // ERR_MONLISTFULL: quietly not watched.
  limited.handle(':srv 734 alice 2 a2 :Monitor list is full.');
  assert.equal(limited.find('a2').online, null);
  assert.equal(limited.buffers.get('*server*').lines.filter((l) => l.kind === 'error').length, 0);

  // Without the token: nothing is sent, nothing shown.
  const none = registered(TAG_CAPS);
  none.handle(':srv 005 alice CASEMAPPING=ascii :are supported');
  assert.deepEqual(none.act(parseInput('/query bob')).filter((l) => l.startsWith('MONITOR')), []);
  assert.equal(none.find('bob').online, null);
});

test('read markers: MARKREAD when read, badges cleared by the markers of other sessions', () => {
  const caps = [...TAG_CAPS, 'draft/read-marker'];
  const s = registered(caps);
  s.account = 'alice';
  s.handle(':alice!a@h JOIN #lobby');
  s.handle(':alice!a@h JOIN #club');
  s.setActive('#lobby');
  // "after the server sends a server `JOIN` command ... the server MUST send a `MARKREAD`
  // command for that channel"; "a literal `*`" when nothing was read yet.
  s.handle(':srv MARKREAD #club *');
  assert.equal(s.find('#club').readAt, null);
  for (const [i, t] of ['10:00:01', '10:00:02', '10:00:03'].entries()) {
    s.handle(`@time=2024-01-01T${t}.000Z;msgid=c${i} :bob!b@h PRIVMSG #club :line ${i}`);
  }
  assert.equal(s.find('#club').unread, 3);
  // Another session read up to the second line: one left unread here.
  s.handle(':srv MARKREAD #club timestamp=2024-01-01T10:00:02.000Z');
  assert.equal(s.find('#club').unread, 1);
  // ... then all of it: the badge goes.
  s.handle(':srv MARKREAD #club timestamp=2024-01-01T10:00:03.000Z');
  assert.equal(s.find('#club').unread, 0);
  // "The last read timestamp of a target SHOULD only ever increase."
  s.handle(':srv MARKREAD #club timestamp=2024-01-01T10:00:01.000Z');
  assert.equal(s.find('#club').readAt, Date.parse('2024-01-01T10:00:03.000Z'));

  // Reading: the newest message's own time tag, "MARKREAD <target> <timestamp>" with
  // "the format `timestamp=YYYY-MM-DDThh:mm:ss.sssZ`".
  const now = Date.now() + 10000;
  s.handle('@time=2024-01-01T10:00:04.000Z;msgid=c9 :bob!b@h PRIVMSG #club :fresh');
  assert.equal(s.find('#club').unread, 1);
  s.setActive('#club');
  assert.deepEqual(s.takeOutgoing(now), ['MARKREAD #club timestamp=2024-01-01T10:00:04.000Z']);
  assert.deepEqual(s.takeOutgoing(now + 5000), [], 'once');
  // Lines arriving in view are read too, at most one MARKREAD a second.
  s.handle('@time=2024-01-01T10:00:05.000Z;msgid=c10 :bob!b@h PRIVMSG #club :more');
  s.handle('@time=2024-01-01T10:00:06.000Z;msgid=c11 :bob!b@h PRIVMSG #club :and more');
  assert.deepEqual(s.tick(now + 500), []);
  assert.deepEqual(s.tick(now + 1000), ['MARKREAD #club timestamp=2024-01-01T10:00:06.000Z']);
  // A hidden page reads nothing; shown again, what is in view is read.
  s.setVisible(false);
  s.handle('@time=2024-01-01T10:00:07.000Z;msgid=c12 :bob!b@h PRIVMSG #club :unseen');
  assert.deepEqual(s.tick(now + 5000), []);
  s.setVisible(true);
  assert.deepEqual(s.tick(now + 6000), ['MARKREAD #club timestamp=2024-01-01T10:00:07.000Z']);

  // A private conversation: "user targets where they have to request the initial read
  // timestamp by sending a `MARKREAD` client get command".
  assert.deepEqual(s.act(parseInput('/query bob')), ['MARKREAD bob', 'CHATHISTORY LATEST bob * 50']);

  // History missed while away counts as unread after the marker, not before it.
  const t = registered(caps);
  t.account = 'alice';
  t.handle(':alice!a@h JOIN #lobby');
  t.handle(':alice!a@h JOIN #club');
  t.setActive('#lobby');
  t.handle(':srv MARKREAD #club timestamp=2024-01-01T10:00:02.000Z');
  t.handle(':srv BATCH +h chathistory #club');
  for (const sec of [1, 2, 3, 4]) t.handle(`@batch=h;time=2024-01-01T10:00:0${sec}.000Z;msgid=h${sec} :bob!b@h PRIVMSG #club :h${sec}`);
  t.handle(':srv BATCH -h');
  assert.equal(t.find('#club').unread, 2);

  // A guest keeps no read markers; a FAIL MARKREAD stops them quietly.
  const guest = registered(caps);
  guest.account = null;
  guest.handle(':alice!a@h JOIN #lobby');
  guest.handle('@time=2024-01-01T10:00:04.000Z;msgid=x :bob!b@h PRIVMSG #lobby :hi');
  assert.deepEqual(guest.tick(Date.now() + 5000), []);
  const failing = registered(caps);
  failing.account = 'alice';
  failing.handle(':alice!a@h JOIN #lobby');
  assert.deepEqual(failing.handle('@time=2024-01-01T10:00:04.000Z;msgid=x :bob!b@h PRIVMSG #lobby :hi'),
    ['MARKREAD #lobby timestamp=2024-01-01T10:00:04.000Z'], 'read as it arrives in view');
  failing.handle(':srv FAIL MARKREAD INTERNAL_ERROR #lobby :The read timestamp could not be set');
  assert.equal(failing.find('#lobby').lines.filter((l) => l.kind === 'error').length, 0);
  failing.handle('@time=2024-01-01T10:00:05.000Z;msgid=y :bob!b@h PRIVMSG #lobby :hi again');
  assert.deepEqual(failing.tick(Date.now() + 10000), []);

  // Without the cap: no MARKREAD, and history is never unread.
  const plain = registered(TAG_CAPS);
  plain.handle(':alice!a@h JOIN #lobby');
  plain.handle('@time=2024-01-01T10:00:04.000Z;msgid=x :bob!b@h PRIVMSG #lobby :hi');
  assert.deepEqual(plain.tick(Date.now() + 5000), []);
  assert.deepEqual(plain.act(parseInput('/query bob')), ['CHATHISTORY LATEST bob * 50']);
});

test('a second session of an account takes its nick with a _ more; a guest is told it is taken', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  s.handle(':srv CAP * LS :sasl');
  assert.deepEqual(s.handle(':srv 433 * alice :Nickname is already in use'), ['NICK alice_']);
  assert.deepEqual(s.handle(':srv 433 * alice_ :Nickname is already in use'), ['NICK alice__']);
  assert.deepEqual(s.handle(':srv CAP * ACK :sasl'), ['AUTHENTICATE PLAIN']);
  // The login is still the account's: SASL PLAIN names alice.
  assert.deepEqual(s.handle('AUTHENTICATE +'), ['AUTHENTICATE ' + base64('alice\0alice\0pw')]);
  assert.deepEqual(s.handle(':srv 433 * alice__ :Nickname is already in use'), ['NICK alice___']);
  assert.deepEqual(s.handle(':srv 433 * alice___ :Nickname is already in use'), ['QUIT']);
  assert.equal(s.error, 'The nick alice___ is in use');
  const guest = new ChatState();
  guest.start({ nick: 'bob', password: '', register: false });
  assert.deepEqual(guest.handle(':srv 433 * bob :Nickname is already in use'), ['QUIT']);
  assert.equal(guest.error, 'The nick bob is in use');
});

test('asks for draft/event-playback, so reactions come back from history', () => {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  const [req] = s.handle(':srv CAP * LS :batch draft/chathistory draft/event-playback message-tags sasl server-time');
  assert.ok(req.split(/[ :]/).includes('draft/event-playback'), req);
});
