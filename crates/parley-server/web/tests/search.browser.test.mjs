// The web client's search box in a real browser (Debian's chromium, headless, driven by
// playwright-core) against a real parleyd: a terminal (TCP) user says something in a group, the
// browser searches for a word of it and a click on the result opens the group. While parleyd
// does not offer soju.im/search, the box stays hidden and /search says why.
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

let server;
let serverLog = '';
let dataDir;
let browser;
let webUrl;
let ircPort;


before(async () => {
  assert.ok(PARLEYD, 'set PARLEYD to the parleyd binary');
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'parley-web-search-'));
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
  writeFileSync(join(ARTIFACTS, 'parleyd-search.log'), serverLog);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const titleIs = (page, name) => page.waitForFunction((n) => document.getElementById('buffer-title').textContent === n, name);

test('search: the header box finds a word a terminal user said, and a click opens the group', async () => {
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
  await page.fill('#input', '/join_group finds');
  await page.click('#send');
  await titleIs(page, '#finds');

  const bob = new IrcClient(ircPort);
  bob.send('CAP REQ :server-time echo-message');
  bob.send(`PASS bob:${PASSWORD}`);
  bob.send('NICK bob');
  bob.send('USER bob 0 * :bob at a terminal');
  bob.send('CAP END');
  await bob.expect((l) => parseLine(l).command === '001', 'the welcome');
  bob.send('JOIN #finds');
  await bob.expect((l) => / 366 bob #finds /.test(l), 'the join');
  bob.send('PRIVMSG #finds :the quick brown fox');
  await bob.expect((l) => l.endsWith('PRIVMSG #finds :the quick brown fox'), 'the echo');
  await page.locator('#messages li', { hasText: 'the quick brown fox' }).waitFor();

  const supported = await page.evaluate(() => window.parley.state.searchSupported());
  if (!supported) {
    // No search on this server: no box, and /search says so instead of sending anything.
    assert.equal(await page.locator('#search-form').isHidden(), true);
    await page.fill('#input', '/search fox');
    await page.click('#send');
    await page.locator('#messages li.error', { hasText: 'this server offers no search' }).waitFor();
    assert.equal(await page.locator('#search-results').isHidden(), true);
  } else {
    // Look elsewhere first, so the click on the result is what opens the group.
    await page.locator('#buffer-list button[data-buffer="server"]').click();
    await titleIs(page, 'Server');
    await page.fill('#search-input', 'fox');
    await page.press('#search-input', 'Enter');
    const hit = page.locator('#search-list li', { hasText: 'the quick brown fox' });
    // The history writer may lag the live line a moment: search again until it is found.
    for (let i = 0; i < 20 && !(await hit.count()); i++) {
      await page.waitForFunction(() => window.parley.state.searching?.status !== 'waiting');
      if (await hit.count()) break;
      await new Promise((r) => setTimeout(r, 200));
      await page.press('#search-input', 'Enter');
    }
    await hit.waitFor();
    assert.match(await page.locator('#search-summary').innerText(), /1 result for .fox./);
    await page.screenshot({ path: join(ARTIFACTS, '20-search-results.png') });
    await hit.locator('button').click();
    await titleIs(page, '#finds');
    await page.locator('#messages li', { hasText: 'the quick brown fox' }).waitFor();
  }
  assert.deepEqual(errors, [], 'no script errors');
  bob.close();
  await context.close();
});
