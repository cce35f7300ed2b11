// End-to-end encrypted messages in the web client (issue 28), in a real browser (Debian's
// chromium, headless, playwright-core) against a real parleyd. This browser has no E2E keys:
// a private message carrying the client-only tag `+parley.chat/e2e` (what Parley's terminal
// and desktop clients send, docs/e2e.md) must show as a clear notice, never as the
// "[encrypted message]" placeholder, and writing back says once that it goes in clear text.
//
// Environment: PARLEYD (the built binary), ARTIFACTS (where screenshots go), CHROMIUM (optional).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WAIT, freePort, waitForPort, IrcClient } from './harness.mjs';
import { chromium } from 'playwright-core';
import { parseLine } from '../irc.js';

const PARLEYD = process.env.PARLEYD;
const ARTIFACTS = process.env.ARTIFACTS || 'web-test-artifacts';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'correct-horse-battery';
// The tag's shape (v1:<sender>,<recipient>:<type>:<ciphertext>); the browser never decodes it.
const KEY = 'A'.repeat(43);
const PAYLOAD = `v1:${KEY},${'B'.repeat(43)}:0:${'C'.repeat(200)}`;

let server;
let serverLog = '';
let dataDir;
let browser;
let webUrl;
let ircPort;

before(async () => {
  assert.ok(PARLEYD, 'set PARLEYD to the parleyd binary');
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'parley-web-e2e-'));
  ircPort = await freePort();
  const webPort = await freePort();
  const config = join(dataDir, 'parley.toml');
  writeFileSync(config, [
    '[server]', `data_dir = ${JSON.stringify(join(dataDir, 'data'))}`,
    '[listen]', `plain = ["127.0.0.1:${ircPort}"]`, 'tls = []',
    '[web]', `listen = ["127.0.0.1:${webPort}"]`,
    '[flood]', 'enabled = false',
    '[log]', 'level = "info"',
    '',
  ].join('\n'));
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
  writeFileSync(join(ARTIFACTS, 'parleyd-e2e.log'), serverLog);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const say = async (page, text) => {
  await page.fill('#input', text);
  await page.click('#send');
};

test('e2e: an encrypted private message shows as a notice, and the answer warns once that it is clear text', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(webUrl);
  await page.click('#mode-register');
  await page.fill('#nick', 'sari');
  await page.fill('#password', PASSWORD);
  await page.click('#connect');
  await page.waitForSelector('#chat:not([hidden])');

  // bob, at a terminal, sends what a Parley client sends for an encrypted DM, then a clear one.
  const bob = new IrcClient(ircPort);
  bob.send('CAP REQ :server-time echo-message message-tags');
  bob.send(`PASS bob:${PASSWORD}`);
  bob.send('NICK bob');
  bob.send('USER bob 0 * :bob at a terminal');
  bob.send('CAP END');
  await bob.expect((l) => parseLine(l).command === '001', 'the welcome');
  bob.send(`@+parley.chat/e2e=${PAYLOAD} PRIVMSG sari :[encrypted message]`);
  await bob.expect((l) => l.includes('+parley.chat/e2e=') && l.endsWith('PRIVMSG sari :[encrypted message]'), 'the echo');
  bob.send('PRIVMSG sari :and this one is plain');
  await bob.expect((l) => l.endsWith('PRIVMSG sari :and this one is plain'), 'the plain echo');

  await page.click('#buffer-list button[data-buffer="bob"]');
  const notice = page.locator('#messages li.encrypted', { hasText: 'Encrypted message' });
  await notice.waitFor();
  assert.match(await notice.innerText(),
    /<bob>\s*\u{1F512} Encrypted message \u2014 this browser cannot read end-to-end encrypted messages; read it in Parley's terminal or desktop client$/u);
  await page.locator('#messages li', { hasText: 'and this one is plain' }).waitFor();
  assert.equal(await page.locator('#messages li', { hasText: '[encrypted message]' }).count(), 0, 'never the placeholder');
  assert.equal(await page.locator('#messages li.encrypted').count(), 1, 'only the tagged line is the notice');

  assert.equal(await page.locator('#messages li.e2e-hint').count(), 0, 'no hint before writing');
  // sari answers: it goes in clear text, and the conversation says so once.
  await say(page, 'hi bob');
  await bob.expect((l) => l.endsWith('PRIVMSG bob :hi bob'), 'the clear answer');
  const hint = page.locator('#messages li.e2e-hint');
  await hint.waitFor();
  assert.match(await hint.innerText(), /This browser sends in clear text: the server can read what you write here\. bob's messages are end-to-end encrypted/);
  await say(page, 'second line');
  await bob.expect((l) => l.endsWith('PRIVMSG bob :second line'), 'the second answer');
  await page.locator('#messages li', { hasText: 'second line' }).waitFor();
  assert.equal(await hint.count(), 1, 'the hint is shown once');
  await page.screenshot({ path: join(ARTIFACTS, '30-e2e-notice.png') });

  assert.deepEqual(errors, [], 'no script errors');
  bob.close();
  await context.close();
});
