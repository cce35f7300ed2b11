// Web push in the web client (IRCv3 draft/webpush): the registration flow in irc.js (the cap
// asked for, the VAPID key only for an account, the WEBPUSH lines, the server's answers) and
// the service worker's notifications (sw.js, run in a node vm with a fake worker scope).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import {
  ChatState, capValue, webpushRegister, webpushUnregister, base64UrlToBytes,
} from '../irc.js';

const KEY = 'BPOWWehtHAdjXEVW3sRfOTX_shZLLvb6WplpcOWMsfOMDD9E1L6bGVaS5HF8Hc9tczJ_3C0eyWQuR38wdepR5JU';

/** A login with SASL, as far as 001, on a server offering draft/webpush. */
function loggedIn(account = 'alice') {
  const s = new ChatState();
  s.start({ nick: 'alice', password: 's3cret', register: false });
  const req = s.handle(`:srv CAP * LS :sasl draft/webpush=vapid=${KEY} server-time`);
  assert.deepEqual(req, ['CAP REQ :sasl server-time draft/webpush']);
  s.handle(':srv CAP * ACK :sasl server-time draft/webpush');
  s.handle('AUTHENTICATE +');
  if (account) s.handle(`:srv 900 alice alice!a@h ${account} :You are now logged in as ${account}`);
  s.handle(':srv 903 alice :SASL authentication successful');
  s.handle(':srv 001 alice :Welcome');
  return s;
}

test('the VAPID key comes from the cap value, for an account only', () => {
  assert.equal(loggedIn().webpushKey(), KEY);
  assert.equal(loggedIn(null).webpushKey(), null, 'a guest cannot subscribe');
  const without = new ChatState();
  without.start({ nick: 'alice', password: '', register: false });
  without.handle(':srv CAP * LS :server-time');
  assert.equal(without.webpushKey(), null);
  assert.equal(capValue(`vapid=${KEY}`, 'vapid'), KEY);
  assert.equal(capValue(`other=1,vapid=${KEY}`, 'vapid'), KEY);
  assert.equal(capValue('', 'vapid'), null);
  assert.equal(capValue('vapidx=1', 'vapid'), null);
  assert.deepEqual([...base64UrlToBytes(KEY)].length, 65);
  assert.deepEqual([...base64UrlToBytes('-_8')], [0xfb, 0xff]);
});

test('WEBPUSH REGISTER and UNREGISTER lines from a browser subscription', () => {
  const sub = {
    endpoint: 'https://updates.push.example/wpush/v2/gAAAA_x-1',
    keys: { p256dh: 'BLn9b-VR0ca83knDNZ32dCHGyjJp', auth: '_ordMnz7uTCmrpBTeUV4Bw' },
  };
  assert.equal(webpushRegister(sub),
    'WEBPUSH REGISTER https://updates.push.example/wpush/v2/gAAAA_x-1 p256dh=BLn9b-VR0ca83knDNZ32dCHGyjJp;auth=_ordMnz7uTCmrpBTeUV4Bw');
  // Nothing that could break the line or smuggle a second command.
  assert.equal(webpushRegister({ ...sub, endpoint: 'https://a.example/x y' }), null);
  assert.equal(webpushRegister({ ...sub, endpoint: 'https://a.example/x\r\nQUIT' }), null);
  assert.equal(webpushRegister({ ...sub, keys: { ...sub.keys, auth: 'a;b=c' } }), null);
  assert.equal(webpushRegister({ endpoint: 'javascript:alert(1)', keys: sub.keys }), null);
  assert.equal(webpushRegister(null), null);
  assert.equal(webpushUnregister(sub.endpoint), `WEBPUSH UNREGISTER ${sub.endpoint}`);
  assert.equal(webpushUnregister('a b'), null);
});

test('the server answers turn notifications on and off; a FAIL says why', () => {
  const s = loggedIn();
  assert.equal(s.push, 'off');
  s.push = 'asking';
  s.handle(':srv WEBPUSH REGISTER https://updates.push.example/x');
  assert.equal(s.push, 'on');
  const said = (s) => s.buffers.get('*server*').lines.map((l) => l.text).join('\n');
  assert.match(said(s), /Notifications are on/);
  s.handle(':srv WEBPUSH UNREGISTER https://updates.push.example/x');
  assert.equal(s.push, 'off');
  assert.match(said(s), /Notifications are off/);
  s.push = 'asking';
  s.handle(':srv FAIL WEBPUSH MAX_REGISTRATIONS REGISTER https://u.example/x :This account has 10 push subscriptions already');
  assert.equal(s.push, 'off');
  assert.match(said(s), /Notifications: This account has 10 push subscriptions already/);
});

/** sw.js in a fake service worker scope: its listeners, and what it did. */
function worker({ windows = [] } = {}) {
  const listeners = {};
  const shown = [];
  const opened = [];
  const self = {
    addEventListener: (type, listener) => { listeners[type] = listener; },
    registration: { showNotification: async (title, options) => { shown.push({ title, ...options }); } },
    clients: {
      matchAll: async () => windows,
      openWindow: async (url) => { opened.push(url); },
      claim: async () => {},
    },
    location: { origin: 'https://chat.example' },
    skipWaiting: () => {},
  };
  vm.runInNewContext(readFileSync(new URL('../sw.js', import.meta.url), 'utf8'), { self, URL });
  const fire = async (type, event) => {
    let waited = null;
    listeners[type]({ ...event, waitUntil: (p) => { waited = p; } });
    await waited;
  };
  return { self, fire, shown, opened };
}

test('a pushed line becomes a notification: who, where and what', () => {
  const { self } = worker();
  const n = (line) => JSON.parse(JSON.stringify(self.notificationFor(line)));
  assert.deepEqual(n('@msgid=1;time=2026-01-01T00:00:00.000Z :bob!b@h PRIVMSG alice :are you there?'),
    { title: 'bob', body: 'are you there?', target: 'bob' });
  assert.deepEqual(n(':bob!b@h PRIVMSG #ops :alice: the deploy'),
    { title: 'bob in #ops', body: 'alice: the deploy', target: '#ops' });
  assert.deepEqual(n(':bob!b@h PRIVMSG alice :\x01ACTION waves\x01'),
    { title: 'bob', body: '* bob waves', target: 'bob' });
  assert.equal(n(':bob!b@h NOTICE alice :\x02bold\x02 \x0304red\x03').body, 'bold red');
  assert.equal(self.notificationFor(':bob!b@h PRIVMSG alice :\x01VERSION\x01'), null);
  assert.equal(self.notificationFor(':srv 001 alice :Welcome'), null);
  assert.equal(self.notificationFor('garbage'), null);
  assert.equal(n(`:bob!b@h PRIVMSG alice :${'x'.repeat(500)}`).body.length, 200);
});

test('the worker shows every push and a click opens the conversation', async () => {
  const w = worker();
  await w.fire('push', { data: { text: () => ':bob!b@h PRIVMSG #Ops :alice: look' } });
  assert.equal(w.shown.length, 1);
  assert.equal(w.shown[0].title, 'bob in #Ops');
  assert.equal(w.shown[0].body, 'alice: look');
  assert.equal(w.shown[0].tag, 'parley:#ops');
  await w.fire('push', { data: { text: () => 'not irc' } });
  assert.equal(w.shown[1].title, 'Parley', 'userVisibleOnly: something is always shown');

  let closed = false;
  const notification = { data: { target: '#Ops' }, close: () => { closed = true; } };
  await w.fire('notificationclick', { notification });
  assert.ok(closed);
  assert.deepEqual(w.opened, ['https://chat.example/#open=%23Ops']);

  const posted = [];
  let focused = false;
  const open = {
    url: 'https://chat.example/',
    postMessage: (m) => posted.push(m),
    focus: async () => { focused = true; },
  };
  const other = { url: 'https://elsewhere.example/', postMessage: () => assert.fail('other origin'), focus: async () => assert.fail('other origin') };
  const v = worker({ windows: [other, open] });
  await v.fire('notificationclick', { notification: { data: { target: 'bob' }, close() {} } });
  assert.deepEqual(JSON.parse(JSON.stringify(posted)), [{ type: 'parley-open', target: 'bob' }]);
  assert.ok(focused);
  assert.deepEqual(v.opened, []);
});
