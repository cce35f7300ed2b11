// Unit tests of the web client's pure logic (irc.js): parsing, state, command mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseLine, ircLine, parseInput, InputError, ChatState, casefold, splitText, serialize, base64,
  fnv1a32, nickColour, NICK_COLOURS, loginRefusal,
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
  const [req] = s.handle(':srv CAP * LS :account-notify account-tag batch cap-notify draft/chathistory '
    + 'echo-message extended-join labeled-response message-tags multi-prefix sasl=PLAIN,SCRAM-SHA-256 server-time userhost-in-names');
  for (const cap of ['account-notify', 'account-tag', 'extended-join']) assert.ok(req.split(/[ :]/).includes(cap), req);
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
