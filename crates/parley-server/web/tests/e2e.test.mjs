// Unit tests of irc.js's handling of end-to-end encrypted messages (issue 28, docs/e2e.md):
// this browser has no keys, so a PRIVMSG with `+parley.chat/e2e` is the notice, live and from
// history, and writing to such a peer says once that it goes in clear text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, E2E_NOTICE } from '../irc.js';

const TAG = '+parley.chat/e2e=v1:AAAA,BBBB:1:CCCC';

function registered() {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 'pw', register: false });
  ['echo-message', 'draft/chathistory', 'batch', 'server-time', 'message-tags'].forEach((c) => s.caps.add(c));
  s.handle(':srv 001 alice :Welcome');
  s.welcomeShown = true;
  return s;
}

test('e2e: a tagged private message is the notice, live and from history, never the placeholder', () => {
  const s = registered();
  s.handle(`@${TAG};msgid=m1 :bob!b@h PRIVMSG alice :[encrypted message]`);
  s.handle('@msgid=m2 :bob!b@h PRIVMSG alice :[encrypted message]');
  s.handle(':srv BATCH +h1 chathistory bob');
  s.handle(`@batch=h1;${TAG};time=2024-01-01T10:00:00.000Z;msgid=m0 :bob!b@h PRIVMSG alice :[encrypted message]`);
  s.handle(':srv BATCH -h1');
  const lines = s.find('bob').lines;
  assert.deepEqual(lines.map((l) => [l.msgid, l.text, !!l.encrypted]), [
    ['m0', E2E_NOTICE, true],
    ['m1', E2E_NOTICE, true],
    // Without the tag it is what was sent (another client's literal text).
    ['m2', '[encrypted message]', false],
  ]);
  // A tagged NOTICE is not a Parley encrypted message: shown as is.
  s.handle(`@${TAG} :bob!b@h NOTICE alice :hello`);
  assert.equal(s.find('bob').lines.at(-1).text, 'hello');
});

test('e2e: writing to a peer who encrypts says once that it goes in clear text; to others never', () => {
  const s = registered();
  s.handle(':carol!c@h PRIVMSG alice :plain hello');
  s.setActive('carol');
  s.act({ type: 'say', text: 'hi carol' });
  assert.equal(s.find('carol').lines.filter((l) => l.e2eHint).length, 0);

  s.handle(`@${TAG} :bob!b@h PRIVMSG alice :[encrypted message]`);
  s.setActive('bob');
  assert.deepEqual(s.act({ type: 'say', text: 'hi bob' }), ['PRIVMSG bob :hi bob']);
  s.act({ type: 'say', text: 'again' });
  const hints = s.find('bob').lines.filter((l) => l.e2eHint);
  assert.equal(hints.length, 1);
  assert.match(hints[0].text, /^This browser sends in clear text: the server can read what you write here\. bob's messages/);
});
