// Unit tests of the web client's search (irc.js, soju's `search` extension, cap soju.im/search):
// the SEARCH lines, the spec's example answers, refusals, paging and opening a hit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChatState, parseInput, InputError, searchLine, SEARCH_PAGE, MAX_SEARCH_TEXT,
} from '../irc.js';

function searching(caps = ['soju.im/search', 'batch', 'server-time', 'message-tags', 'echo-message']) {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  caps.forEach((c) => s.caps.add(c));
  s.handle(':srv 001 alice :Welcome');
  s.welcomeShown = true;
  return s;
}

test('search: the cap is asked for under both names', () => {
  for (const cap of ['soju.im/search', 'draft/search']) {
    const s = new ChatState();
    s.start({ nick: 'alice', password: 'pw', register: false });
    assert.deepEqual(s.handle(`:srv CAP * LS :batch ${cap}`), [`CAP REQ :batch ${cap}`]);
    s.handle(`:srv CAP alice ACK :batch ${cap}`);
    assert.equal(s.searchSupported(), true);
  }
  assert.equal(searching(['batch']).searchSupported(), false);
});

test('search: lines carry the spec attributes, escaped as tags', () => {
  const s = searching();
  // "[c] SEARCH text=fast;in=#chan;limit=2": ours asks for a page.
  assert.deepEqual(s.act(parseInput('/search #chan fast')), [`SEARCH text=fast;in=#chan;limit=${SEARCH_PAGE}`]);
  assert.deepEqual(s.act(parseInput('/search lunch at noon; today')),
    ['SEARCH text=lunch\\sat\\snoon\\:\\stoday;limit=50']);
  assert.equal(searchLine({ text: 'plan', target: '#chan', from: 'jackie' }, '2024-01-01T10:00:00.000Z'),
    'SEARCH text=plan;in=#chan;from=jackie;limit=50;before=2024-01-01T10:00:00.000Z');
  // A nick is a target when a conversation with it is open.
  s.handle(':bob!b@h PRIVMSG alice :hi');
  assert.deepEqual(s.act(parseInput('/search bob the plan')), ['SEARCH text=the\\splan;in=bob;limit=50']);
  assert.deepEqual(s.act(parseInput('/search carol the plan')), ['SEARCH text=carol\\sthe\\splan;limit=50']);
  assert.throws(() => s.act({ type: 'search', text: 'x'.repeat(MAX_SEARCH_TEXT + 1) }), /too long/);
  assert.throws(() => searching(['batch']).act(parseInput('/search x')), InputError);
});

test('search: the spec example answer becomes hits, newest first, and no conversation lines', () => {
  const s = searching();
  s.handle(':alice!a@h JOIN #chan');
  s.setActive('*server*');
  s.act(parseInput('/search #chan fast'));
  assert.equal(s.searching.status, 'waiting');
  for (const line of [
    ':irc.host BATCH +ID soju.im/search',
    '@batch=ID;msgid=1234;time=2019-01-04T14:33:26.123Z :bill!indent@host PRIVMSG #chan :That was fast!',
    '@batch=ID;msgid=1235;time=2019-01-04T14:35:26.123Z :jackie!indent@host PRIVMSG #chan :Fasting is hard.',
    '@batch=ID;msgid=1236;time=2019-01-04T14:36:00.000Z :alice!a@h PRIVMSG bob :\u0001ACTION runs fast\u0001',
    '@batch=ID;msgid=1237;time=2019-01-04T14:37:00.000Z :bob!b@h NOTICE alice :fast reply',
    ':irc.host BATCH -ID',
  ]) s.handle(line);
  const r = s.searching;
  assert.equal(r.status, 'done');
  assert.equal(r.more, false);
  assert.deepEqual(r.hits.map((h) => [h.buffer, h.nick, h.text, h.kind, h.msgid]), [
    ['bob', 'bob', 'fast reply', 'notice', '1237'],
    ['bob', 'alice', 'runs fast', 'action', '1236'],
    ['#chan', 'jackie', 'Fasting is hard.', 'msg', '1235'],
    ['#chan', 'bill', 'That was fast!', 'msg', '1234'],
  ]);
  assert.equal(r.hits[3].time, Date.parse('2019-01-04T14:33:26.123Z'));
  assert.equal(s.find('#chan').lines.filter((l) => l.kind !== 'event').length, 0, 'not lines of the channel');
  assert.equal(s.find('#chan').unread, 0);
  assert.equal(s.find('bob'), undefined, 'a hit opens no conversation');

  // Opening a hit: its conversation (opened if needed) is the active one, its message named.
  s.openHit(r.hits[0]);
  assert.equal(s.activeBuffer().name, 'bob');
  assert.equal(s.focusMsgid, '1237');
});

test('search: an empty answer, a refusal, and an answer nobody asked for', () => {
  const s = searching();
  s.act(parseInput('/search nothing'));
  // "Searching messages when none match"
  s.handle(':irc.host BATCH +ID soju.im/search');
  s.handle(':irc.host BATCH -ID');
  assert.deepEqual([s.searching.status, s.searching.hits.length, s.searching.more], ['done', 0, false]);
  assert.throws(() => s.act(parseInput('/search')), /no older results/);

  s.act(parseInput('/search x'));
  s.handle(':irc.host FAIL SEARCH INVALID_PARAMS in :Invalid parameters');
  assert.equal(s.searching.status, 'failed');
  assert.equal(s.searching.error, 'Invalid parameters (INVALID_PARAMS)');
  s.clearSearch();
  assert.equal(s.searching, null);

  s.handle(':alice!a@h JOIN #chan');
  s.handle(':srv BATCH +x soju.im/search');
  s.handle('@batch=x;time=2024-01-01T10:00:00.000Z :bob!b@h PRIVMSG #chan :old');
  s.handle(':srv BATCH -x');
  assert.equal(s.searching, null);
  assert.equal(s.find('#chan').lines.filter((l) => l.text === 'old').length, 0);
});

test('search: older pages start at the oldest hit and skip its repeat; a page with nothing new ends', () => {
  const s = searching();
  s.act(parseInput('/search #chan word'));
  const page = (first, id) => {
    s.handle(`:srv BATCH +${id} search`);
    for (let i = first; i < first + SEARCH_PAGE; i++) {
      const time = `2024-01-01T10:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.000Z`;
      s.handle(`@batch=${id};msgid=m${i};time=${time} :bob!b@h PRIVMSG #chan :word ${i}`);
    }
    s.handle(`:srv BATCH -${id}`);
  };
  page(50, 'a');
  assert.equal(s.searching.more, true);
  assert.deepEqual(s.act(parseInput('/search')), ['SEARCH text=word;in=#chan;limit=50;before=2024-01-01T10:00:50.000Z']);
  page(1, 'b');
  assert.equal(s.searching.hits.length, 99);
  assert.equal(s.searching.hits[98].text, 'word 1');
  assert.equal(s.searching.more, true);
  s.act(parseInput('/search'));
  page(1, 'c');
  assert.equal(s.searching.hits.length, 99);
  assert.equal(s.searching.more, false);
});
