// Web push for the web client (IRCv3 draft/webpush): the browser side. The service worker
// (sw.js) shows what arrives; this file registers it, asks for permission on a click (browsers
// refuse to ask otherwise), subscribes with the server's VAPID key and tells the server with
// WEBPUSH REGISTER; turning it off sends WEBPUSH UNREGISTER and drops the subscription. The
// choice is remembered per browser, and each login renews the registration (the spec asks
// clients to re-register regularly so the server keeps it).
import { webpushRegister, webpushUnregister, base64UrlToBytes } from './irc.js';

const PREFERENCE = 'parley-push';

export function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window
    && window.isSecureContext;
}

/** Register sw.js (scope "/"); its messages ask to open a conversation. */
export function startWorker(onOpen) {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js').catch(() => {});
  navigator.serviceWorker.addEventListener('message', (event) => {
    const data = event.data || {};
    if (data.type === 'parley-open' && typeof data.target === 'string') onOpen(data.target);
  });
}

/** The conversation a notification's click opened this page on (`#open=<target>`), once. */
export function openedFromNotification() {
  const match = /^#open=(.+)$/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  try {
    return decodeURIComponent(match[1]);
  } catch (err) {
    return null;
  }
}

async function subscription(key) {
  const registration = await navigator.serviceWorker.ready;
  const wanted = base64UrlToBytes(key);
  let current = await registration.pushManager.getSubscription();
  const boundKey = current && current.options && current.options.applicationServerKey;
  if (current && boundKey && !sameBytes(new Uint8Array(boundKey), wanted)) {
    // The server's key changed: a subscription is bound to the key it was made with.
    await current.unsubscribe();
    current = null;
  }
  return current || registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted });
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** On the user's click: ask for permission, subscribe, register. */
export async function enablePush(state, send) {
  const key = state.webpushKey();
  if (!key || !pushSupported()) return;
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') {
    state.error_('Notifications: the browser did not allow them (see the site settings).');
    return;
  }
  localStorage.setItem(PREFERENCE, 'on');
  await register(state, send, key);
}

/** After a login: renew the registration of a browser that turned notifications on. */
export async function renewPush(state, send) {
  const key = state.webpushKey();
  if (!key || !pushSupported() || localStorage.getItem(PREFERENCE) !== 'on') return;
  if (Notification.permission !== 'granted') return;
  await register(state, send, key);
}

async function register(state, send, key) {
  try {
    const line = webpushRegister((await subscription(key)).toJSON());
    if (!line) throw new Error('the browser gave a subscription the server cannot use');
    state.push = 'asking';
    send([line]);
  } catch (err) {
    state.error_(`Notifications: cannot subscribe (${err.message || err}).`);
  }
}

/** The setting turned off: unregister and drop the browser's subscription. */
export async function disablePush(state, send) {
  localStorage.setItem(PREFERENCE, 'off');
  try {
    const registration = await navigator.serviceWorker.getRegistration();
    const current = registration && await registration.pushManager.getSubscription();
    if (current) {
      const line = webpushUnregister(current.endpoint);
      if (line) send([line]);
      await current.unsubscribe();
    } else {
      state.push = 'off';
    }
  } catch (err) {
    state.error_(`Notifications: cannot turn them off (${err.message || err}).`);
  }
}
