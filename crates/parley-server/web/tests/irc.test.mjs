// Unit tests of the web client's pure logic (irc.js): parsing, state, command mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseLine, ircLine, parseInput, InputError, ChatState, casefold, splitText, serialize, base64,
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
  assert.match(s.error, /failed/);
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
  assert.equal(locked.error, 'Too many failed logins; try again in 600 seconds');
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
