// The web client in a real browser (Debian's chromium, headless, driven by playwright-core)
// against a real parleyd, with a raw TCP IRC client on the other side: register, log in, create
// and join a group, chat both ways, unread badges, history on scroll, themes, a phone screen;
// typing notices, replies and reactions, MONITOR presence, read markers across sessions.
//
// Environment: PARLEYD (the built binary), ARTIFACTS (where screenshots go), CHROMIUM (optional).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WAIT, freePort, waitForPort, IrcClient } from './harness.mjs';
import { chromium } from 'playwright-core';
import { nickColour, parseLine } from '../irc.js';

const PARLEYD = process.env.PARLEYD;
const ARTIFACTS = process.env.ARTIFACTS || 'web-test-artifacts';
const DOCS_SCREENSHOT = process.env.DOCS_SCREENSHOT || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'correct-horse-battery';

let server;
let serverLog = '';
let dataDir;
let browser;
let webUrl;
let ircPort;


before(async () => {
  assert.ok(PARLEYD, 'set PARLEYD to the parleyd binary');
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'parley-web-test-'));
  ircPort = await freePort();
  const webPort = await freePort();
  const config = join(dataDir, 'parley.toml');
  writeFileSync(config, [
    '[server]', `data_dir = ${JSON.stringify(join(dataDir, 'data'))}`,
    '[listen]', `plain = ["127.0.0.1:${ircPort}"]`, 'tls = []',
    '[web]', `listen = ["127.0.0.1:${webPort}"]`,
    '[flood]', 'enabled = false',
    // Anyone may /broadcast here, so the TCP user can send one to the browser.
    '[operators]', 'broadcast = "everyone"', 'broadcast_interval_secs = 0',
    '[log]', 'level = "info"',
    '',
  ].join('\n'));
  // The TCP user's account, made the way an admin would.
  execFileSync(PARLEYD, ['--config', config, 'users', 'add', 'bob', '--password-stdin'], { input: PASSWORD + '\n', stdio: ['pipe', 'pipe', 'pipe'] });
  server = spawn(PARLEYD, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { serverLog += d; });
  server.stderr.on('data', (d) => { serverLog += d; });
  await waitForPort(webPort, () => serverLog);
  webUrl = `https://127.0.0.1:${webPort}/`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: WAIT,
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    await new Promise((resolve) => {
      const timer = setTimeout(() => { server.kill('SIGKILL'); resolve(); }, 5000);
      server.once('exit', () => { clearTimeout(timer); resolve(); });
    });
  }
  writeFileSync(join(ARTIFACTS, 'parleyd.log'), serverLog);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function openPage(viewport = { width: 1100, height: 700 }) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  // A 404 (a missing favicon, say) shows in the browser's console: none allowed.
  page.on('response', (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  await page.goto(webUrl);
  return { page, errors };
}

async function login(page, nick, { register = false } = {}) {
  if (register) await page.click('#mode-register');
  await page.fill('#nick', nick);
  await page.fill('#password', PASSWORD);
  await page.click('#connect');
  await page.waitForSelector('#chat:not([hidden])');
}

async function say(page, text) {
  await page.fill('#input', text);
  await page.click('#send');
}

const messageWith = (page, text) => page.locator('#messages li', { hasText: text });
const bufferButton = (page, name) => page.locator(`#buffer-list button[data-buffer="${name}"]`);
const titleIs = (page, name) => page.waitForFunction((n) => document.getElementById('buffer-title').textContent === n, name);

/** A terminal user logged in to `account` (bob's by default) with these capabilities. */
async function tcpUser(nick, { account = 'bob', caps = [] } = {}) {
  const client = new IrcClient(ircPort);
  if (caps.length) client.send(`CAP REQ :${caps.join(' ')}`);
  client.send(`PASS ${account}:${PASSWORD}`);
  client.send(`NICK ${nick}`);
  client.send(`USER ${nick} 0 * :${nick} at a terminal`);
  if (caps.length) client.send('CAP END');
  await client.expect((l) => parseLine(l).command === '001', `the welcome of ${nick}`);
  return client;
}

async function shot(page, name) {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path });
  return path;
}

test('register in the browser, then chat with a terminal (TCP) user both ways', async () => {
  const { page, errors } = await openPage();
  await shot(page, '01-login.png');
  await login(page, 'alice', { register: true });
  await messageWith(page, 'Welcome').first().waitFor().catch(() => {});

  const bob = new IrcClient(ircPort);
  bob.send(`PASS bob:${PASSWORD}`);
  bob.send('NICK bob');
  bob.send('USER bob 0 * :Bob Terminal');
  await bob.expect((l) => / 001 bob /.test(l), 'the welcome');

  await say(page, '/create_group webtest');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#webtest');
  bob.send('JOIN #webtest');
  await bob.expect((l) => / 366 bob #webtest /.test(l), 'the names of #webtest');
  await page.locator('#member-list li', { hasText: 'bob' }).waitFor();

  await say(page, 'hello from the browser');
  await bob.expect((l) => l.endsWith('PRIVMSG #webtest :hello from the browser') && l.includes(':alice!'),
    "alice's message");
  await messageWith(page, 'hello from the browser').waitFor();

  bob.send('PRIVMSG #webtest :hello from the terminal');
  await messageWith(page, 'hello from the terminal').waitFor();
  const shown = await messageWith(page, 'hello from the terminal').innerText();
  assert.match(shown, /^\d\d:\d\d\s*<bob>\s*hello from the terminal$/, 'time, nick and text');

  // A private message to a conversation not in view shows an unread badge.
  bob.send('PRIVMSG alice :are you there?');
  const badge = page.locator('#buffer-list button[data-buffer="bob"] .badge');
  await badge.waitFor();
  assert.equal(await badge.innerText(), '1');
  await shot(page, '02-chat-light.png');
  if (DOCS_SCREENSHOT) copyFileSync(join(ARTIFACTS, '02-chat-light.png'), DOCS_SCREENSHOT);

  await page.click('#buffer-list button[data-buffer="bob"]');
  await messageWith(page, 'are you there?').waitFor();
  assert.equal(await badge.count(), 0, 'reading clears the badge');
  await say(page, 'yes, in the browser');
  await bob.expect((l) => l.endsWith('PRIVMSG bob :yes, in the browser'), 'the private answer');

  // The short commands: /msg, /broadcast refused for non-operators, /leave_group.
  await say(page, '/msg bob via slash msg');
  await bob.expect((l) => l.endsWith('PRIVMSG bob :via slash msg'), '/msg');
  await say(page, '/leave_group webtest');
  await bob.expect((l) => /:alice!\S+ PART #webtest/.test(l), 'the part');

  await page.click('#toggle-theme');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await shot(page, '03-chat-dark.png');
  assert.deepEqual(errors, [], 'no script errors');
  bob.close();
  await page.context().close();
});

test('log in with an existing account, load history on scroll, phone-sized screen', async () => {
  const bob = new IrcClient(ircPort);
  bob.send(`PASS bob:${PASSWORD}`);
  bob.send('NICK bob');
  bob.send('USER bob 0 * :Bob Terminal');
  await bob.expect((l) => / 001 bob /.test(l), 'the welcome');
  bob.send('JOIN #history');
  await bob.expect((l) => / 366 bob #history /.test(l), 'the join');
  for (let i = 1; i <= 80; i++) bob.send(`PRIVMSG #history :history line ${i}`);
  bob.send('PING :sent');
  await bob.expect((l) => l.includes('PONG') && l.endsWith('sent'), 'the sync');

  // A wrong password is refused with a message on the form.
  const { page: wrong } = await openPage();
  await wrong.fill('#nick', 'alice');
  await wrong.fill('#password', 'not the password');
  await wrong.click('#connect');
  await wrong.locator('#login-error:not([hidden])').waitFor();
  // Said once, in the words the other clients use.
  assert.equal(await wrong.locator('#login-error').innerText(), 'The username or password was not accepted.');
  await wrong.context().close();

  const { page, errors } = await openPage({ width: 390, height: 760 });
  await login(page, 'alice');
  await say(page, '/join_group history');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#history');
  await messageWith(page, 'history line 80').waitFor();
  assert.equal(await messageWith(page, 'history line 1').count(), 0, 'only the latest page at first');
  // Scrolling to the top loads older lines (CHATHISTORY BEFORE) until the beginning.
  const first = page.locator('#messages li', { hasText: /history line 1$/ });
  for (let i = 0; i < 6 && (await first.count()) === 0; i++) {
    await page.evaluate(() => { const m = document.getElementById('messages'); m.scrollTop = 0; m.dispatchEvent(new Event('scroll')); });
    await page.waitForTimeout(300);
  }
  await first.waitFor();
  await shot(page, '04-phone-history.png');
  await page.click('#toggle-buffers');
  await page.locator('#buffers').waitFor({ state: 'visible' });
  await shot(page, '05-phone-conversations.png');
  await page.click('#buffer-list button[data-buffer="#lobby"]');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#lobby');

  await page.click('#toggle-buffers');
  await page.click('#buffer-list button[data-buffer="#history"]');
  await say(page, '/exit');
  await bob.expect((l) => /:alice!\S+ QUIT/.test(l), "alice's quit");
  assert.deepEqual(errors, [], 'no script errors');
  bob.close();
  await page.context().close();
});

test('welcome, broadcast and /whois in the conversation in view; leaving a group; colours by account; favicon', async () => {
  const { page, errors } = await openPage();
  // The favicon: linked from the page and served by parleyd, also under the name browsers guess.
  assert.equal(await page.getAttribute('link[rel="icon"]', 'href'), 'favicon.svg');
  for (const path of ['favicon.svg', 'favicon.ico']) {
    const response = await page.request.get(webUrl + path);
    assert.equal(response.status(), 200, path);
    assert.match(response.headers()['content-type'], /^image\/svg\+xml/, path);
    assert.match(await response.text(), /<svg/, path);
  }

  await login(page, 'alice');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#lobby');
  // The server's welcome (its MOTD) shows in #lobby, where the user lands, not only in the server buffer.
  await messageWith(page, 'a small and friendly IRC server').first().waitFor();

  // bob logs in as the account bob but uses another nick: his colour follows the account.
  const bob = new IrcClient(ircPort);
  bob.send(`PASS bob:${PASSWORD}`);
  bob.send('NICK bobby');
  bob.send('USER bob 0 * :Bob Terminal');
  await bob.expect((l) => / 001 bobby /.test(l), 'the welcome');
  await bob.expect((l) => / 366 bobby #lobby /.test(l), 'the default channel');
  bob.send('PRIVMSG #lobby :colour check');
  const nick = messageWith(page, 'colour check').locator('.nick');
  await nick.waitFor();
  assert.notEqual(nickColour('bob'), nickColour('bobby'), 'a nick whose own colour differs');
  assert.match(await nick.getAttribute('class'), new RegExp(`\\bnick-c${nickColour('bob')}\\b`));

  // A broadcast shows in the conversation in view.
  bob.send('PRIVMSG $* :maintenance at noon');
  await messageWith(page, '[broadcast] maintenance at noon').waitFor();
  assert.equal(await page.textContent('#buffer-title'), '#lobby');

  // /whois: the answer is in #lobby, where it was asked.
  await say(page, '/whois bobby');
  await messageWith(page, 'bobby is logged in as bob').waitFor();
  await messageWith(page, 'End of WHOIS for bobby').waitFor();
  assert.equal(await page.textContent('#buffer-title'), '#lobby');
  await shot(page, '06-welcome-whois-light.png');

  // Leaving a group takes it off the list: with /part, and with the list's leave button.
  await say(page, '/join_group parted');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#parted');
  await say(page, '/part');
  await page.locator('#buffer-list button[data-buffer="#parted"]').waitFor({ state: 'detached' });
  await say(page, '/join_group clicked');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#clicked');
  await page.click('#buffer-list button[aria-label="Leave #clicked"]');
  await page.locator('#buffer-list button[data-buffer="#clicked"]').waitFor({ state: 'detached' });
  assert.deepEqual(await page.evaluate(() => window.parley.state.joinedChannels()), ['#lobby'],
    'left groups are not among those a reconnect would rejoin');
  await page.click('#toggle-theme');
  await shot(page, '07-after-leaving-dark.png');
  assert.deepEqual(errors, [], 'no script errors, no 404s');
  bob.close();
  await page.context().close();
});

test('stays logged in across a reload with a session token, and /logout ends it', async () => {
  const { page, errors } = await openPage();
  await login(page, 'carol', { register: true });
  await say(page, '/join_group sessions');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#sessions');
  await page.waitForFunction(() => Object.keys(localStorage).some((k) => k.startsWith('parley-session:')));
  await say(page, 'before the reload');
  await messageWith(page, 'before the reload').waitFor();
  const savedView = () => page.evaluate(() => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('parley-session:'));
    return key && JSON.parse(localStorage.getItem(key)).view;
  });
  await page.waitForFunction(() => Object.keys(localStorage).some((k) => k.startsWith('parley-session:')
    && JSON.parse(localStorage.getItem(k)).view.active === '#sessions'));

  await page.reload();
  await page.waitForSelector('#chat:not([hidden])');
  await page.waitForFunction(() => document.getElementById('buffer-title').textContent === '#sessions')
    .catch(async (err) => {
      const seen = await page.evaluate(() => [...window.parley.state.buffers.values()]
        .map((b) => `${b.name}: ${b.lines.map((l) => l.text).join(' | ')}`).join('\n'));
      throw new Error(`${err.message}\nsaved view: ${JSON.stringify(await savedView())}\n${seen}`);
    });
  assert.equal(await page.evaluate(() => window.parley.state.account), 'carol');
  await messageWith(page, 'before the reload').waitFor();
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes(PASSWORD), 'the password is in browser storage');
  const key = await page.evaluate(() => Object.keys(localStorage).find((k) => k.startsWith('parley-session:')));
  const token = await page.evaluate((k) => JSON.parse(localStorage.getItem(k)).token, key);
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  await shot(page, '06-after-reload.png');

  await say(page, '/logout');
  await page.waitForSelector('#login:not([hidden])');
  assert.match(await page.locator('#login-error').innerText(), /logged out/);
  assert.equal(await page.evaluate((k) => localStorage.getItem(k), key), null, 'the session is forgotten');
  await page.reload();
  await page.waitForLoadState('load');
  await page.waitForTimeout(500);
  assert.equal(await page.locator('#login').isVisible(), true, 'the login form after a reload');
  assert.equal(await page.evaluate(() => window.parley.state.phase), 'disconnected');

  // The revoked token, put back by hand, is refused once with a message; no loop.
  await page.evaluate(([k, t]) => localStorage.setItem(k, JSON.stringify({ account: 'carol', token: t })), [key, token]);
  await page.reload();
  await page.locator('#login-error:not([hidden])').waitFor();
  assert.equal(await page.locator('#login-error').innerText(), 'Your session ended; log in again.');
  assert.equal(await page.evaluate((k) => localStorage.getItem(k), key), null);
  assert.equal(await page.locator('#login').isVisible(), true);
  assert.deepEqual(errors, [], 'no script errors');
  await page.context().close();
});

// --- Issue 24: what the server offers, used by the web client --------------------------------

test('typing, replies and reactions with a terminal user (message-tags, TAGMSG)', async () => {
  const { page, errors } = await openPage();
  await login(page, 'dave', { register: true });
  const bob = await tcpUser('bob', { caps: ['message-tags', 'echo-message', 'server-time'] });
  await say(page, '/join_group tags');
  await titleIs(page, '#tags');
  bob.send('JOIN #tags');
  await bob.expect((l) => / 366 bob #tags /.test(l), 'the names of #tags');
  await page.locator('#member-list li', { hasText: 'bob' }).waitFor();

  // typing spec: "The `typing=active` notification SHOULD be sent by clients **continuously**
  // while the user is making updates to the text-input field".
  await page.locator('#input').pressSequentially('hello there');
  const active = parseLine(await bob.expect((l) => l.includes(' TAGMSG #tags'), "dave's typing"));
  assert.equal(active.tags['+typing'], 'active');
  assert.match(active.source, /^dave!/);
  assert.deepEqual([active.command, ...active.params], ['TAGMSG', '#tags']);
  await page.click('#send');
  const hello = parseLine(await bob.expect((l) => l.endsWith(' PRIVMSG #tags :hello there'), "dave's message"));
  // done once the throttle allows: "not sent within 3 seconds of another one for a given target".
  const done = parseLine(await bob.expect((l) => l.includes(' TAGMSG #tags'), "dave's typing=done"));
  assert.equal(done.tags['+typing'], 'done');

  // The other way: shown under the conversation until the sender's message.
  bob.send('@+typing=active TAGMSG #tags');
  await page.locator('#typing', { hasText: 'bob is typing' }).waitFor();
  assert.equal(await page.locator('#typing').innerText(), 'bob is typing\u2026');
  await shot(page, '08-typing.png');
  bob.send('PRIVMSG #tags :react to this');
  const parent = parseLine(await bob.expect((l) => l.endsWith(' PRIVMSG #tags :react to this'), 'the echo'));
  const parentId = parent.tags.msgid;
  assert.ok(parentId, 'the server gives messages an id');
  await page.waitForFunction(() => document.getElementById('typing').textContent === '');

  // React: "+draft/react=<reaction>", "used in conjunction with the `+draft/reply`" tag.
  const line = messageWith(page, 'react to this');
  await line.hover();
  await line.locator('button[aria-label="React to bob"]').click();
  await line.locator('button[aria-label="React with \u{1F44D}"]').click();
  const reaction = parseLine(await bob.expect((l) => l.includes('+draft/react='), "dave's reaction"));
  assert.equal(reaction.tags['+draft/react'], '\u{1F44D}');
  assert.equal(reaction.tags['+draft/reply'], parentId);
  assert.deepEqual([reaction.command, ...reaction.params], ['TAGMSG', '#tags']);
  await line.locator('.reaction', { hasText: '\u{1F44D} 1' }).waitFor();
  // bob's reaction to dave's message shows under it, counted.
  bob.send(`@+draft/react=\u{1F389};+draft/reply=${hello.tags.msgid} TAGMSG #tags`);
  const chip = messageWith(page, 'hello there').locator('.reaction');
  await chip.waitFor();
  assert.equal(await chip.innerText(), '\u{1F389} 1');
  assert.equal(await chip.getAttribute('title'), 'bob reacted with \u{1F389}');

  // Reply: "+draft/reply=<msgid>", and the answer shows the message it answers.
  await line.hover();
  await line.locator('button[aria-label="Reply to bob"]').click();
  await page.locator('#reply-bar').waitFor();
  assert.equal(await page.locator('#reply-text').innerText(), 'Replying to bob: react to this');
  await say(page, 'a threaded answer');
  const reply = parseLine(await bob.expect((l) => l.endsWith(' PRIVMSG #tags :a threaded answer'), "dave's reply"));
  assert.equal(reply.tags['+draft/reply'], parentId);
  const quoted = messageWith(page, 'a threaded answer').locator('.quote');
  await quoted.waitFor();
  assert.equal(await quoted.innerText(), '\u21aa bob react to this');
  assert.equal(await page.locator('#reply-bar').isVisible(), false, 'the reply bar closes once sent');
  await shot(page, '09-replies-reactions.png');
  assert.deepEqual(errors, [], 'no script errors');
  await page.context().close();

  // From history (CHATHISTORY returns client tags): the reply still shows what it answers.
  const { page: again, errors: againErrors } = await openPage();
  await login(again, 'dave');
  await say(again, '/join_group tags');
  await titleIs(again, '#tags');
  const fromHistory = messageWith(again, 'a threaded answer').locator('.quote');
  await fromHistory.waitFor();
  assert.equal(await fromHistory.innerText(), '\u21aa bob react to this');
  assert.deepEqual(againErrors, [], 'no script errors');
  bob.close();
  await again.context().close();
});

test('private conversations show who is online (MONITOR 730/731)', async () => {
  const { page, errors } = await openPage();
  await login(page, 'gina', { register: true });
  await say(page, '/query monty');
  await titleIs(page, 'monty');
  // "If any of the targets being added are offline, the server will generate `RPL_MONOFFLINE`"
  const presence = bufferButton(page, 'monty').locator('.presence');
  await bufferButton(page, 'monty').locator('.presence.offline').waitFor();
  assert.equal(await presence.getAttribute('aria-label'), 'offline');
  // "a target has just become online"
  // monty is bob's account under another nick, so nothing else here has that nick online.
  const bob = await tcpUser('monty');
  await bufferButton(page, 'monty').locator('.presence.online').waitFor();
  assert.equal(await presence.getAttribute('aria-label'), 'online');
  assert.equal(await presence.getAttribute('title'), 'monty is online');
  await shot(page, '10-monitor-online.png');
  // "a target has just left the irc network"
  bob.send('QUIT :gone');
  await bufferButton(page, 'monty').locator('.presence.offline').waitFor();
  assert.deepEqual(errors, [], 'no script errors');
  bob.close();
  await page.context().close();
});

test('read markers: reading in one session clears the badge in the others (draft/read-marker)', async () => {
  const first = await openPage();
  await login(first.page, 'hana', { register: true });
  // A second browser of the same account is another session of the same user
  // (accounts.multiclient): the same nick, not one with a '_' more.
  const second = await openPage();
  await login(second.page, 'hana');
  assert.equal(await second.page.evaluate(() => window.parley.state.nick), 'hana');
  // And a terminal session of the account sees the MARKREAD lines themselves.
  const term = await tcpUser('hana_term', { account: 'hana', caps: ['draft/read-marker', 'server-time'] });
  for (const { page } of [first, second]) {
    await say(page, '/join_group marks');
    await titleIs(page, '#marks');
    await bufferButton(page, '#lobby').click();
    await titleIs(page, '#lobby');
  }
  // Another nick of bob's account, so a test that failed before cannot hold it.
  const bob = await tcpUser('robert', { caps: ['server-time', 'echo-message'] });
  bob.send('JOIN #marks');
  await bob.expect((l) => / 366 robert #marks /.test(l), 'the join');
  bob.send('PRIVMSG #marks :unread one');
  bob.send('PRIVMSG #marks :unread two');
  const last = parseLine(await bob.expect((l) => l.endsWith('PRIVMSG #marks :unread two'), 'the echo'));
  for (const { page } of [first, second]) {
    const badge = bufferButton(page, '#marks').locator('.badge');
    await page.waitForFunction(() => document.querySelector('#buffer-list button[data-buffer="#marks"] .badge')?.textContent === '2');
    assert.equal(await badge.innerText(), '2');
  }
  await shot(second.page, '11-read-marker-before.png');

  // Read in the first: "MARKREAD <target> <timestamp>", the time tag of the last message read.
  await bufferButton(first.page, '#marks').click();
  await messageWith(first.page, 'unread two').waitFor();
  const marker = await term.expect((l) => l.includes(' MARKREAD #marks timestamp='), 'the marker');
  assert.equal(marker.split(' ').slice(-3).join(' '), `MARKREAD #marks timestamp=${last.tags.time}`);
  // "after the last read timestamp of a target changes, the server SHOULD send a `MARKREAD`
  // command for that target to all the clients of the user": the second session's badge goes.
  await bufferButton(second.page, '#marks').locator('.badge').waitFor({ state: 'detached' });
  await shot(second.page, '12-read-marker-after.png');

  // And from a terminal session of the account, for a newer line (the first page looks
  // elsewhere, or it would read the line itself).
  await bufferButton(first.page, '#lobby').click();
  await titleIs(first.page, '#lobby');
  bob.send('PRIVMSG #marks :unread three');
  const third = parseLine(await bob.expect((l) => l.endsWith('PRIVMSG #marks :unread three'), 'the echo'));
  await bufferButton(second.page, '#marks').locator('.badge').waitFor();
  term.send(`MARKREAD #marks timestamp=${third.tags.time}`);
  await bufferButton(second.page, '#marks').locator('.badge').waitFor({ state: 'detached' });
  assert.deepEqual([...first.errors, ...second.errors], [], 'no script errors');
  for (const client of [bob, term]) client.close();
  for (const { page } of [first, second]) await page.context().close();
});

test('reactions survive a reload: they come back from history (draft/event-playback)', async () => {
  const { page, errors } = await openPage();
  await login(page, 'rita', { register: true });
  const bob = await tcpUser('bob_r', { caps: ['message-tags', 'echo-message', 'server-time'] });
  await say(page, '/join_group reacts');
  await titleIs(page, '#reacts');
  bob.send('JOIN #reacts');
  await bob.expect((l) => / 366 bob_r #reacts /.test(l), 'the names of #reacts');
  bob.send('PRIVMSG #reacts :keep my reactions');
  const parent = parseLine(await bob.expect((l) => l.endsWith(' PRIVMSG #reacts :keep my reactions'), 'the echo'));
  const line = messageWith(page, 'keep my reactions');
  await line.hover();
  await line.locator('button[aria-label="React to bob_r"]').click();
  await line.locator('button[aria-label="React with \u{1F44D}"]').click();
  await bob.expect((l) => l.includes('+draft/react=') && l.includes(' TAGMSG #reacts'), "rita's reaction");
  bob.send(`@+draft/react=\u{1F389};+draft/reply=${parent.tags.msgid} TAGMSG #reacts`);
  await line.locator('.reaction', { hasText: '\u{1F389} 1' }).waitFor();
  assert.deepEqual(errors, [], 'no script errors');
  await page.context().close();

  // chathistory: "If the client has negotiated `event-playback`, the server SHOULD send
  // additional lines relevant to the chat history, including but not limited to `TAGMSG`".
  const { page: again, errors: againErrors } = await openPage();
  await login(again, 'rita');
  await say(again, '/join_group reacts');
  await titleIs(again, '#reacts');
  const chips = messageWith(again, 'keep my reactions').locator('.reaction');
  await chips.nth(1).waitFor();
  assert.deepEqual(await chips.allInnerTexts(), ['\u{1F44D} 1', '\u{1F389} 1']);
  assert.deepEqual(againErrors, [], 'no script errors');
  bob.close();
  await again.context().close();
});
