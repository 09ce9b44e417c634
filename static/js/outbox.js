// Writes that survive going offline. Each write is kept in IndexedDB with an Idempotency-Key
// made when it is first attempted, then sent, in the order they were made, by one tab at a
// time; a write whose request failed without an answer (offline, or the connection cut after
// the server did it) stays queued and is sent again with the same key when the connection is
// back, so the server does it once and answers the retry with its first answer.
import { api } from "./session.js";

const DB_NAME = "feed-outbox";
const STORE = "writes";
const RETRY_MS = [1000, 2000, 5000, 10000, 30000];  // between attempts while a write waits

const listeners = new Set();
const channel = "BroadcastChannel" in self ? new BroadcastChannel(DB_NAME) : null;
let viewer = "";
let retryTimer = 0;
let failures = 0;

/** Return a fresh Idempotency-Key (crypto.randomUUID needs a secure context; HTTP hosts don't). */
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

let opened = null;
function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

/** Run *work(store)* in one transaction; resolve to what its last request gave. */
async function withStore(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => reject(tx.error);
  });
}

/** Return this viewer's queued writes, oldest first. */
export async function pendingWrites() {
  const all = await withStore("readonly", (store) => store.getAll());
  return (all ?? []).filter((write) => write.viewer === viewer);
}

/**
 * Start the outbox for *viewerId*: queued writes of this viewer are sent now and whenever
 * the browser comes back online. *onSettled(write, outcome)* hears of every write that got
 * its answer, in this tab or another: outcome is {ok, status, body}.
 */
export function startOutbox(viewerId, onSettled) {
  viewer = viewerId;
  listeners.add(onSettled);
  channel?.addEventListener("message", ({ data }) => {
    if (data.viewer === viewer) settle(data.write, data.outcome);
  });
  addEventListener("online", () => { failures = 0; flush(); });
  flush();
}

const answered = new Map();  // key -> outcome, for writes submitted in this tab

function settle(write, outcome) {
  if (answered.has(write.key)) answered.set(write.key, outcome);
  for (const listener of listeners) listener(write, outcome);
}

/**
 * Queue a write and try to send it (after any queued before it). Resolves to
 * {pending: true, write} when it could not be sent now (it will be later), or to
 * {pending: false, write, outcome} with the server's answer.
 */
export async function submit({ method, path, body, kind, meta = {} }) {
  const write = { key: newKey(), viewer, method, path, body, kind, meta, at: new Date().toISOString() };
  answered.set(write.key, null);
  write.seq = await withStore("readwrite", (store) => store.add(write));
  await flush();
  const outcome = answered.get(write.key);
  answered.delete(write.key);
  return outcome ? { pending: false, write, outcome } : { pending: true, write };
}

let chain = Promise.resolve();

/** Send the queued writes in order, one tab at a time; stop at the first without an answer. */
export function flush() {
  // Every call runs after the ones before it, so a write queued during a run is not missed.
  chain = chain.then(() => exclusive(drain)).catch(() => schedule());
  return chain;
}

async function drain() {
  for (;;) {
    const [write] = await pendingWrites();
    if (!write) return;
    const outcome = navigator.onLine ? await send(write) : null;
    if (!outcome) return schedule();
    await withStore("readwrite", (store) => store.delete(write.seq));
    failures = 0;
    settle(write, outcome);
    channel?.postMessage({ viewer, write, outcome });
  }
}

function exclusive(task) {
  return navigator.locks ? navigator.locks.request(DB_NAME, task) : task();
}

function schedule() {
  clearTimeout(retryTimer);
  if (!navigator.onLine) return;  // the "online" event sends them
  retryTimer = setTimeout(flush, RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]);
  failures += 1;
}

/** Send one write; resolve to its outcome, or null when it must be sent again later. */
async function send(write) {
  let response;
  try {
    response = await api(write.method, write.path, write.body ?? undefined,
      { "Idempotency-Key": write.key });
  } catch {
    return null;  // no answer: maybe done, maybe not; the same key makes the retry safe
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  const busy = response.status === 409 && /in progress/.test(body?.error?.message ?? "");
  if (response.status >= 500 || response.status === 429 || response.status === 401 || busy) return null;
  return { ok: response.ok, status: response.status, body };
}
