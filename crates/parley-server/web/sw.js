// Parley's service worker: shows the web push notifications the server sends (IRCv3
// draft/webpush) while no Parley tab is open. Each push is one IRC line, encrypted for this
// browser; the browser has decrypted it by the time `push` fires. A click opens (or focuses)
// Parley on that conversation. A classic script, not a module, so every browser with push
// runs it; notificationFor() is exposed on `self` for the node tests.
'use strict';

/** Longest notification text; the rest is in the conversation. */
const MAX_BODY = 200;

/** The parts of an IRC line a notification needs: source nick, command and parameters. */
function parseLine(line) {
  let rest = String(line || '').replace(/[\r\n]+$/, '');
  if (rest.startsWith('@')) {
    const space = rest.indexOf(' ');
    if (space < 0) return null;
    rest = rest.slice(space + 1).replace(/^ +/, '');
  }
  let source = '';
  if (rest.startsWith(':')) {
    const space = rest.indexOf(' ');
    if (space < 0) return null;
    source = rest.slice(1, space);
    rest = rest.slice(space + 1).replace(/^ +/, '');
  }
  const params = [];
  let command = '';
  while (rest) {
    if (command && rest.startsWith(':')) {
      params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(' ');
    const word = space < 0 ? rest : rest.slice(0, space);
    if (!command) command = word.toUpperCase();
    else params.push(word);
    rest = space < 0 ? '' : rest.slice(space + 1).replace(/^ +/, '');
  }
  return command ? { nick: source.split('!')[0], command, params } : null;
}

/**
 * The notification for one pushed line: {title, body, target} (target: the conversation to
 * open: the channel, or the sender of a private message), or null for a line it is not for.
 */
function notificationFor(line) {
  const msg = parseLine(line);
  if (!msg || !['PRIVMSG', 'NOTICE'].includes(msg.command) || msg.params.length < 2 || !msg.nick) {
    return null;
  }
  const [to, text] = msg.params;
  let body = text;
  const action = /^\x01ACTION (.*?)\x01?$/.exec(text);
  if (action) body = `* ${msg.nick} ${action[1]}`;
  else if (text.startsWith('\x01')) return null;
  // Formatting codes (bold, colours, ...) mean nothing in a notification.
  body = body.replace(/\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]/g, '');
  if (body.length > MAX_BODY) body = body.slice(0, MAX_BODY - 1) + '\u2026';
  const channel = /^[#&]/.test(to);
  return {
    title: channel ? `${msg.nick} in ${to}` : msg.nick,
    body,
    target: channel ? to : msg.nick,
  };
}

self.notificationFor = notificationFor;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let line = '';
  try {
    line = event.data ? event.data.text() : '';
  } catch (err) {
    line = '';
  }
  // userVisibleOnly: every push shows something, even a line we cannot read.
  const shown = notificationFor(line) || { title: 'Parley', body: 'New message', target: null };
  event.waitUntil(self.registration.showNotification(shown.title, {
    body: shown.body,
    tag: shown.target ? `parley:${shown.target.toLowerCase()}` : 'parley',
    renotify: true,
    icon: '/favicon.svg',
    data: { target: shown.target },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.target) || null;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of windows) {
      if (new URL(client.url).origin !== self.location.origin) continue;
      if (target) client.postMessage({ type: 'parley-open', target });
      return client.focus();
    }
    const url = new URL('/', self.location.origin);
    if (target) url.hash = `open=${encodeURIComponent(target)}`;
    return self.clients.openWindow(url.href);
  })());
});
