// What the browser tests share: free loopback ports, waiting for parleyd to listen, and a raw
// IRC client over TCP (the "terminal user" beside the browser).
import net from 'node:net';

/** How long any one wait in the browser tests may take. */
export const WAIT = 15000;

/** A free loopback port (bound and released; parleyd binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, log = () => '') {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`parleyd did not listen on ${port}; its log:\n${log()}`);
}

/** A raw IRC client over TCP that collects lines and can wait for one. */
export class IrcClient {
  constructor(port) {
    this.lines = [];
    this.waiters = [];
    this.buffer = '';
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk) => {
      this.buffer += chunk;
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i).replace(/\r$/, '');
        this.buffer = this.buffer.slice(i + 1);
        if (line.startsWith('PING ')) this.send('PONG ' + line.slice(5));
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => !w(line));
      }
    });
  }

  send(line) { this.socket.write(line + '\r\n'); }

  /** Wait for a line matching `test` (already seen lines count, then they are used up). */
  expect(test, what) {
    const index = this.lines.findIndex(test);
    if (index >= 0) return Promise.resolve(this.lines.splice(0, index + 1).at(-1));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`TCP client: never got ${what}; saw:\n${this.lines.join('\n')}`)), WAIT);
      this.waiters.push((line) => {
        if (!test(line)) return false;
        clearTimeout(timer);
        this.lines = [];
        resolve(line);
        return true;
      });
    });
  }

  close() { this.socket.destroy(); }
}
