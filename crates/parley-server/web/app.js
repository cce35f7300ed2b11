// Parley web client: the DOM and the WebSocket. All protocol and state logic lives in irc.js;
// this file renders a ChatState and feeds it what the user and the server say.

import {
  ChatState, parseInput, InputError, clock, isChannel, typingText, REACTIONS,
} from './irc.js';
import {
  pushSupported, startWorker, openedFromNotification, enablePush, disablePush, renewPush,
} from './push.js';

const $ = (id) => document.getElementById(id);
let state = new ChatState();
let socket = null;
let register = false;
let drawn = -1;
let scheduled = false;
let socketUrl = null;
// The message being answered ({msgid, key, nick, text}), the one whose actions are open (a tap
// on a phone, where there is no hover) and the one whose reaction picker is open.
let replyingTo = null;
let selected = null;
let pickerFor = null;
let hovered = null;

// Theme: the system's choice until the user picks one.
const savedTheme = localStorage.getItem('parley-theme');
const systemDark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
document.documentElement.dataset.theme = savedTheme || (systemDark ? 'dark' : 'light');
$('toggle-theme').addEventListener('click', () => {
  const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  localStorage.setItem('parley-theme', next);
});

// Login form
const defaultUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
$('server-url').value = localStorage.getItem('parley-server') || defaultUrl;
$('nick').value = localStorage.getItem('parley-nick') || '';

function setMode(isRegister) {
  register = isRegister;
  $('mode-login').classList.toggle('selected', !isRegister);
  $('mode-register').classList.toggle('selected', isRegister);
  $('mode-login').setAttribute('aria-selected', String(!isRegister));
  $('mode-register').setAttribute('aria-selected', String(isRegister));
  $('connect').textContent = isRegister ? 'Create account' : 'Log in';
  $('password').autocomplete = isRegister ? 'new-password' : 'current-password';
}
$('mode-login').addEventListener('click', () => setMode(false));
$('mode-register').addEventListener('click', () => setMode(true));

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const nick = $('nick').value.trim();
  const password = $('password').value;
  const url = $('server-url').value.trim() || defaultUrl;
  localStorage.setItem('parley-nick', nick);
  if (url !== defaultUrl) localStorage.setItem('parley-server', url);
  else localStorage.removeItem('parley-server');
  clearSession(url);
  connect(url, { nick, password, register, remember: $('remember').checked, label: sessionLabel() });
});

function showLoginError(text) {
  $('login-error').textContent = text;
  $('login-error').hidden = !text;
}

function send(lines) {
  for (const line of lines) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(line);
  }
}

function connect(url, login) {
  socketUrl = url;
  showLoginError('');
  $('connect').disabled = true;
  state = new ChatState();
  state.visible = document.visibilityState !== 'hidden';
  state.sendTyping = localStorage.getItem('parley-typing') !== 'off';
  replyingTo = null;
  let ws;
  try {
    ws = new WebSocket(url, ['text.ircv3.net']);
  } catch (err) {
    $('connect').disabled = false;
    showLoginError(`Cannot connect to ${url}: ${err.message}`);
    return;
  }
  socket = ws;
  ws.addEventListener('open', () => send(state.start(login)));
  ws.addEventListener('message', (event) => {
    if (ws !== socket) return;
    const text = typeof event.data === 'string' ? event.data : '';
    const wasRegistered = state.phase === 'registered';
    send(state.handle(text));
    syncSession(url);
    if (!wasRegistered && state.phase === 'registered') {
      $('password').value = '';
      $('login').hidden = true;
      $('chat').hidden = false;
      $('input').focus();
      afterLoginPush();
    }
    if (state.phase === 'failed') {
      showLoginError(state.error);
      $('connect').disabled = false;
    }
    redraw();
  });
  ws.addEventListener('close', () => {
    if (ws !== socket) return;
    socket = null;
    state.disconnected('Disconnected from the server');
    $('connect').disabled = false;
    if (state.loggedOut) {
      showLoggedOut();
    } else if (state.phase !== 'failed' && $('chat').hidden) {
      showLoginError('Could not reach the server (check the address, or open it once to accept its certificate).');
    }
    redraw();
  });
}

// Chat view
$('input-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('input');
  if (!input.value.trim()) return;
  try {
    const action = parseInput(input.value);
    if (action.type === 'say' && replyingTo && replyingTo.key === state.active) action.replyTo = replyingTo.msgid;
    if (action.type === 'logout' && state.phase !== 'registered') {
      // Not connected: nothing to tell the server, but this page still forgets the session.
      clearSession(socketUrl);
      input.value = '';
      showLoggedOut();
      return;
    }
    send(state.act(action));
    if (action.type === 'quit') {
      socket && socket.close();
    }
    if (action.type === 'typing') localStorage.setItem('parley-typing', action.on ? 'on' : 'off');
    if (action.type === 'say') replyingTo = null;
    input.value = '';
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    state.error_(err.message);
  }
  redraw();
});

// Typing notices: every edit tells irc.js (which throttles them); the clock sends the paused
// and done ones that fall due, and expires the notices of others.
$('input').addEventListener('input', () => {
  if (state.phase === 'registered') send(state.typingInput($('input').value));
});
$('input').addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && (replyingTo || pickerFor)) {
    replyingTo = null;
    pickerFor = null;
    state.changed++;
    redraw();
  }
});
$('reply-cancel').addEventListener('click', () => {
  replyingTo = null;
  state.changed++;
  redraw();
  $('input').focus();
});
setInterval(() => {
  if (state.phase !== 'registered') return;
  send(state.tick());
  if (drawn !== state.changed) redraw();
}, 1000);
// Read markers: a conversation counts as read only while the page can be seen.
document.addEventListener('visibilitychange', () => {
  state.setVisible(document.visibilityState !== 'hidden');
  send(state.takeOutgoing());
});

/** Open a conversation from the list: it is read now, and typing elsewhere is done. */
function openBuffer(name) {
  state.setActive(name);
  send(state.takeOutgoing());
  if (state.phase === 'registered') send(state.typingInput($('input').value, undefined, false));
  pickerFor = null;
  selected = null;
}

function react(msgid, value) {
  try {
    send(state.act({ type: 'react', msgid, value }));
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    state.error_(err.message);
  }
  pickerFor = null;
  state.changed++;
  redraw();
}

$('toggle-buffers').addEventListener('click', () => {
  $('chat').classList.toggle('show-buffers');
  $('chat').classList.remove('show-members');
});
$('toggle-members').addEventListener('click', () => {
  $('chat').classList.toggle('show-members');
  $('chat').classList.remove('show-buffers');
});

// History on scroll: reaching the top asks for older lines (CHATHISTORY BEFORE).
$('messages').addEventListener('scroll', () => {
  if ($('messages').scrollTop < 40) {
    const lines = state.loadOlder();
    if (lines.length) {
      send(lines);
      redraw();
    }
  }
});

// Search (irc.js, "Search"): the header's box asks the server; the results show above the
// conversation, newest first; a click opens the conversation and shows the message there.
$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('search-input').value.trim();
  if (!text) return;
  try {
    send(state.act({ type: 'search', text, target: null }));
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    state.error_(err.message);
  }
  redraw();
});
$('search-more').addEventListener('click', () => {
  try {
    send(state.act({ type: 'search_more' }));
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    state.error_(err.message);
  }
  redraw();
});
$('search-close').addEventListener('click', () => {
  state.clearSearch();
  redraw();
  $('input').focus();
});

function renderSearch() {
  $('search-form').hidden = !state.searchSupported();
  const search = state.searching;
  $('search-results').hidden = !search;
  if (!search) return;
  const where = search.query.target ? ` in ${search.query.target}` : '';
  const found = `${search.hits.length} result${search.hits.length === 1 ? '' : 's'}`;
  $('search-summary').textContent = search.status === 'failed'
    ? `Search for “${search.query.text}” failed: ${search.error}`
    : search.status === 'waiting'
      ? `Searching for “${search.query.text}”${where}…`
      : `${found} for “${search.query.text}”${where}`;
  $('search-more').hidden = !(search.status === 'done' && search.more);
  $('search-list').replaceChildren(...search.hits.map((hit) => {
    const li = el('li');
    const button = el('button', 'hit');
    button.type = 'button';
    const time = el('time', '', `${new Date(hit.time).toLocaleDateString()} ${clock(hit.time)}`);
    time.dateTime = new Date(hit.time).toISOString();
    button.append(time, el('span', 'where', hit.buffer));
    button.append(el('span', `nick nick-c${state.colourOf(hit.nick, hit.account)}`, hit.kind === 'action' ? `* ${hit.nick}` : hit.nick));
    button.append(el('span', 'text', hit.text));
    button.addEventListener('click', () => {
      state.openHit(hit);
      send(state.takeOutgoing());
      pickerFor = null;
      selected = null;
      redraw();
    });
    li.append(button);
    return li;
  }));
}

/** After a search hit was opened: bring its message into view when it is loaded. */
function showFocusedMessage() {
  const msgid = state.focusMsgid;
  if (!msgid) return;
  state.focusMsgid = null;
  const target = [...document.querySelectorAll('#messages li')].find((li) => li.dataset.msgid === msgid);
  if (!target) return;
  target.scrollIntoView({ block: 'center' });
  target.classList.add('flash');
  setTimeout(() => target.classList.remove('flash'), 1200);
}

function redraw() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    if (drawn !== state.changed) render();
  });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

let renderedBuffer = null;
let renderedFirst = null;

function render() {
  drawn = state.changed;
  renderPush();
  const active = state.activeBuffer();

  const list = $('buffer-list');
  list.replaceChildren(...state.bufferList().map((buffer) => {
    const li = el('li');
    const button = el('button', buffer.key === state.active ? 'active' : '');
    button.type = 'button';
    button.dataset.buffer = buffer.name;
    if (buffer.unread) button.classList.add('unread');
    const name = el('span', 'name');
    if (buffer.kind === 'query' && buffer.online !== null) {
      // MONITOR: a dot, and words for screen readers.
      const presence = el('span', `presence ${buffer.online ? 'online' : 'offline'}`);
      presence.title = buffer.online ? `${buffer.name} is online` : `${buffer.name} is offline`;
      presence.setAttribute('role', 'img');
      presence.setAttribute('aria-label', buffer.online ? 'online' : 'offline');
      name.append(presence);
    }
    name.append(buffer.kind === 'server' ? 'Server' : buffer.name);
    button.append(name);
    if (buffer.unread) button.append(el('span', buffer.mention ? 'badge mention' : 'badge', String(buffer.unread)));
    button.addEventListener('click', () => {
      openBuffer(buffer.kind === 'server' ? '*server*' : buffer.name);
      $('chat').classList.remove('show-buffers');
      redraw();
      $('input').focus();
    });
    li.append(button);
    if (buffer.kind === 'channel' && buffer.joined) {
      // Leaving: the server's PART takes the group off the list (irc.js, on_PART).
      const leave = el('button', 'leave', '\u00d7');
      leave.type = 'button';
      leave.title = `Leave ${buffer.name}`;
      leave.setAttribute('aria-label', `Leave ${buffer.name}`);
      leave.addEventListener('click', () => {
        send(state.act({ type: 'part', channel: buffer.name, reason: null }));
        redraw();
      });
      li.append(leave);
    }
    return li;
  }));

  $('buffer-title').textContent = active.kind === 'server' ? 'Server' : active.name;
  $('buffer-topic').textContent = active.topic || '';
  $('status').textContent = state.phase === 'registered'
    ? `${state.nick}${state.account ? ' (logged in)' : ''}`
    : state.phase;

  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  const previousHeight = box.scrollHeight;
  const sameBuffer = renderedBuffer === active.key;
  const first = active.lines[0];
  const prepended = sameBuffer && renderedFirst && first && first !== renderedFirst;
  const items = [];
  if (active.historyLoading) items.push(el('li', 'loading', 'Loading older messages...'));
  else if (active.historyDone && active.kind !== 'server') items.push(el('li', 'loading', 'Beginning of the conversation'));
  const tagging = state.canTag(active);
  for (const line of active.lines) {
    const li = el('li', line.kind + (line.own ? ' own' : ''));
    // End-to-end encrypted (unreadable here) and the clear-text hint: set apart from chat.
    if (line.encrypted) li.classList.add('encrypted');
    if (line.e2eHint) li.classList.add('e2e-hint');
    if (line.msgid) li.dataset.msgid = line.msgid;
    if (line.replyTo) li.append(quote(active, line.replyTo));
    const time = el('time', '', clock(line.time));
    time.dateTime = new Date(line.time).toISOString();
    li.append(time);
    const nickClass = () => `nick nick-c${state.colourOf(line.nick, line.account)}`;
    if (line.kind === 'msg' || (line.kind === 'notice' && line.nick)) {
      li.append(el('span', nickClass(), line.kind === 'notice' ? `-${line.nick}-` : `<${line.nick}>`));
      li.append(el('span', 'text', line.text));
    } else if (line.kind === 'action') {
      li.append(el('span', nickClass(), `* ${line.nick}`));
      li.append(el('span', 'text', line.text));
    } else {
      li.append(el('span', 'text', line.text));
    }
    if (line.msgid) {
      const reactions = state.reactionsOf(active, line.msgid);
      if (reactions.length) li.append(reactionList(line.msgid, reactions, tagging));
      if (tagging && line.kind !== 'event' && line.kind !== 'error') {
        // The buttons are made when first wanted (hover, or a tap), not for every line drawn;
        // the line under the mouse keeps them across a redraw.
        if (selected === line.msgid || pickerFor === line.msgid) li.classList.add('selected');
        if (selected === line.msgid || pickerFor === line.msgid || hovered === line.msgid) {
          li.append(messageActions(line));
        }
        li.addEventListener('mouseover', () => {
          hovered = line.msgid;
          if (!li.querySelector('.actions')) li.append(messageActions(line));
        });
        li.addEventListener('click', (event) => {
          if (event.target.closest('button')) return;
          selected = selected === line.msgid ? null : line.msgid;
          state.changed++;
          redraw();
        });
      }
    }
    items.push(li);
  }
  box.replaceChildren(...items);
  if (prepended) box.scrollTop = box.scrollHeight - previousHeight + box.scrollTop;
  else if (!sameBuffer || atBottom) box.scrollTop = box.scrollHeight;
  renderedBuffer = active.key;
  renderedFirst = first;
  saveView();

  const members = [...active.members.entries()].sort(([a, pa], [b, pb]) => rank(pa) - rank(pb) || a.localeCompare(b));
  $('members').hidden = active.kind !== 'channel';
  $('member-count').textContent = isChannel(active.name) ? `${members.length} members` : '';
  $('typing').textContent = typingText(state.typers(active));
  const replying = replyingTo && replyingTo.key === active.key;
  $('reply-bar').hidden = !replying;
  if (replying) $('reply-text').textContent = `Replying to ${replyingTo.nick}: ${short(replyingTo.text)}`;
  $('member-list').replaceChildren(...members.map(([nick, prefix]) => {
    const li = el('li', `nick-c${state.colourOf(nick)}`, `${prefix ? prefix[0] : ''}${nick}`);
    li.addEventListener('click', () => {
      $('input').value = `/msg ${nick} `;
      $('input').focus();
    });
    return li;
  }));

  // Fill a short buffer with history until it scrolls (or nothing is left).
  if (box.scrollHeight <= box.clientHeight && !active.historyDone && !active.historyLoading) {
    const lines = state.loadOlder();
    if (lines.length) send(lines);
  }
  document.title = unreadTotal() ? `(${unreadTotal()}) Parley` : 'Parley';
  renderSearch();
  showFocusedMessage();
}

function short(text, max = 80) {
  return text.length > max ? text.slice(0, max - 1) + '\u2026' : text;
}

/** The message a reply answers, above it; a click shows the original (reply spec's advice). */
function quote(buffer, msgid) {
  const parent = state.parentOf(buffer, msgid);
  const q = el('div', 'quote');
  q.append(el('span', 'quote-mark', '\u21aa '));
  if (parent) {
    q.append(el('span', `nick nick-c${state.colourOf(parent.nick, parent.account)}`, parent.nick), ' ');
    q.append(el('span', 'quote-text', short(parent.text)));
    q.title = 'Show the message this answers';
    q.addEventListener('click', () => {
      const target = [...document.querySelectorAll('#messages li')].find((li) => li.dataset.msgid === msgid);
      if (!target) return;
      target.scrollIntoView({ block: 'center' });
      target.classList.add('flash');
      setTimeout(() => target.classList.remove('flash'), 1200);
    });
  } else {
    q.append(el('span', 'quote-text', 'a reply to an earlier message'));
  }
  return q;
}

/** The reactions under a message; a click adds yours (the react spec has no way to take one back). */
function reactionList(msgid, reactions, tagging) {
  const box = el('div', 'reactions');
  for (const r of reactions) {
    const chip = el('button', r.own ? 'reaction own' : 'reaction');
    chip.append(el('span', 'emoji', r.value), ` ${r.count}`);
    chip.type = 'button';
    chip.title = `${r.nicks.join(', ')} reacted with ${r.value}`;
    chip.setAttribute('aria-label', `${r.value}: ${r.count} (${r.nicks.join(', ')})`);
    chip.disabled = !tagging || r.own;
    chip.addEventListener('click', () => react(msgid, r.value));
    box.append(chip);
  }
  return box;
}

/**
 * Reply and React, shown on hover or after a tap on the message. Their symbols come from
 * style.css, so a message's text stays its own (as copied, and as tests read it).
 */
function messageActions(line) {
  const box = el('span', 'actions');
  const reply = el('button', 'action reply');
  reply.type = 'button';
  reply.title = `Reply to ${line.nick}`;
  reply.setAttribute('aria-label', `Reply to ${line.nick}`);
  reply.addEventListener('click', () => {
    replyingTo = { msgid: line.msgid, key: state.active, nick: line.nick, text: line.text };
    selected = null;
    state.changed++;
    redraw();
    $('input').focus();
  });
  const reactButton = el('button', 'action react');
  reactButton.type = 'button';
  reactButton.title = 'React';
  reactButton.setAttribute('aria-label', `React to ${line.nick}`);
  reactButton.setAttribute('aria-expanded', String(pickerFor === line.msgid));
  reactButton.addEventListener('click', () => {
    pickerFor = pickerFor === line.msgid ? null : line.msgid;
    state.changed++;
    redraw();
  });
  box.append(reply, reactButton);
  if (pickerFor === line.msgid) {
    const picker = el('span', 'picker');
    for (const value of REACTIONS) {
      const choice = el('button', 'action emoji', value);
      choice.type = 'button';
      choice.setAttribute('aria-label', `React with ${value}`);
      choice.addEventListener('click', () => react(line.msgid, value));
      picker.append(choice);
    }
    box.append(picker);
  }
  return box;
}

function rank(prefix) {
  return prefix.includes('@') ? 0 : prefix.includes('%') ? 1 : prefix.includes('+') ? 2 : 3;
}

function unreadTotal() {
  let total = 0;
  for (const b of state.buffers.values()) total += b.unread;
  return total;
}

// Login sessions. After a password login the server gives this page a session token (irc.js:
// afterWelcome), kept in localStorage under the server's address with the account and the
// conversations open; a reload logs in with the token and reopens them. The password is never
// stored. /logout ends the session on the server and here; a token the server refuses is
// forgotten and the login form says why, so a reload cannot loop.

const sessionKey = (url) => `parley-session:${url}`;

function loadSession(url) {
  try {
    const saved = JSON.parse(localStorage.getItem(sessionKey(url)) || 'null');
    return saved && typeof saved.token === 'string' && typeof saved.account === 'string' ? saved : null;
  } catch {
    return null;
  }
}

function clearSession(url) {
  if (url) localStorage.removeItem(sessionKey(url));
}

/** Keep what the server just said about the session: a new token, or the end of it. */
function syncSession(url) {
  if (state.loggedOut || state.sessionEnded) {
    clearSession(url);
  } else if (state.sessionToken && state.account) {
    const saved = loadSession(url);
    if (!saved || saved.token !== state.sessionToken) {
      localStorage.setItem(sessionKey(url), JSON.stringify({
        account: state.account, nick: state.nick, token: state.sessionToken, view: state.view(),
      }));
    }
  }
  if (state.loggedOut) showLoggedOut();
}

/** Remember the conversations in view, for the next reload. */
function saveView() {
  const saved = socketUrl && state.phase === 'registered' && loadSession(socketUrl);
  if (!saved || saved.token !== state.sessionToken) return;
  localStorage.setItem(sessionKey(socketUrl), JSON.stringify({ ...saved, nick: state.nick, view: state.view() }));
}

function showLoggedOut() {
  $('chat').hidden = true;
  $('login').hidden = false;
  $('connect').disabled = false;
  showLoginError('You are logged out.');
}

/** A name for this browser in the account's list of sessions (`parleyd users sessions`). */
function sessionLabel() {
  const ua = navigator.userAgent || '';
  const browser = (ua.match(/(Firefox|Edg|OPR|Chrome|Safari)\//) || [])[1] || 'a browser';
  const system = (ua.match(/(Windows|Android|iPhone|iPad|Mac OS X|Linux)/) || [])[1] || 'an unknown system';
  return `Web: ${browser === 'Edg' ? 'Edge' : browser} on ${system}`;
}

// A saved session logs in at once, in place of the form.
{
  const url = $('server-url').value.trim() || defaultUrl;
  const saved = loadSession(url);
  if (saved) {
    connect(url, {
      nick: saved.nick || saved.account, account: saved.account, token: saved.token, resume: saved.view,
    });
  }
}

// Web push (push.js, sw.js): a bell in the top bar while the server offers it to this login.
// Turning it on must come from a click: browsers ask for permission only then.
let openOnLogin = openedFromNotification();
startWorker((target) => showConversation(target));

function afterLoginPush() {
  renewPush(state, send).then(redraw);
  if (openOnLogin) showConversation(openOnLogin);
  openOnLogin = null;
}

/** Open the conversation a notification was about: its channel, or a private one. */
function showConversation(target) {
  if (state.phase !== 'registered') {
    openOnLogin = target;
    return;
  }
  if (!isChannel(target)) state.buffer(target, 'query');
  openBuffer(target);
  redraw();
}

$('toggle-push').addEventListener('click', () => {
  const turnOn = state.push === 'off';
  (turnOn ? enablePush(state, send) : disablePush(state, send)).then(() => {
    state.changed++;
    redraw();
  });
});

function renderPush() {
  const button = $('toggle-push');
  button.hidden = !state.webpushKey() || !pushSupported();
  const on = state.push !== 'off';
  button.setAttribute('aria-pressed', on ? 'true' : 'false');
  button.title = on ? 'Notifications are on: click to turn them off'
    : 'Notify me of private messages and mentions while Parley is closed';
}

// For the browser tests and for debugging in the console.
window.parley = { get state() { return state; } };
