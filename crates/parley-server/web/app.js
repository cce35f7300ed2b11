// Parley web client: the DOM and the WebSocket. All protocol and state logic lives in irc.js;
// this file renders a ChatState and feeds it what the user and the server say.

import { ChatState, parseInput, InputError, clock, isChannel } from './irc.js';

const $ = (id) => document.getElementById(id);
let state = new ChatState();
let socket = null;
let register = false;
let drawn = -1;
let scheduled = false;
let socketUrl = null;

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
    input.value = '';
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    state.error_(err.message);
  }
  redraw();
});

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
  const active = state.activeBuffer();

  const list = $('buffer-list');
  list.replaceChildren(...state.bufferList().map((buffer) => {
    const li = el('li');
    const button = el('button', buffer.key === state.active ? 'active' : '');
    button.type = 'button';
    button.dataset.buffer = buffer.name;
    if (buffer.unread) button.classList.add('unread');
    button.append(el('span', 'name', buffer.kind === 'server' ? 'Server' : buffer.name));
    if (buffer.unread) button.append(el('span', buffer.mention ? 'badge mention' : 'badge', String(buffer.unread)));
    button.addEventListener('click', () => {
      state.setActive(buffer.kind === 'server' ? '*server*' : buffer.name);
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
  for (const line of active.lines) {
    const li = el('li', line.kind + (line.own ? ' own' : ''));
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

// For the browser tests and for debugging in the console.
window.parley = { get state() { return state; } };
