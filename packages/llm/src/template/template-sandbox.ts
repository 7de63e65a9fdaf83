/**
 * Chat templates are code from the model file, so they are rendered with a time and memory budget, in a
 * separate process. Why a process: in-process, `range(10**9)` or a string doubled in a loop makes V8 abort
 * the whole process (a fatal OOM no try/catch stops), and a worker thread's resourceLimits do not contain
 * it either — a large array growing in a worker hits "FATAL ERROR: Reached heap limit" and aborts the
 * process (tried: Node 20, maxOldGenerationSizeMb 96). A child process with its own --max-old-space-size
 * dies alone.
 *
 * Shape: the caller's thread stays synchronous — every applyChatTemplate caller is unchanged. It posts the
 * request to a small relay thread and waits on a shared flag (Atomics.wait). The relay thread, which never
 * runs template code, owns the rendering process: it forwards the request over IPC, kills the process at
 * the time budget, and answers at once if the process dies (out of memory, crash). The caller then gets a
 * ModelFormatError naming the template's origin; the next render starts a fresh process. Every request
 * carries an id that its reply echoes, and a reply is taken only by its own request from its own process:
 * a process killed at the budget can still deliver its last reply after its exit, when the next request is
 * already waiting (one CI run tokenised such a stale chat; test/template-sandbox-replies.test.ts).
 *
 * Cost: the process starts once per parent process (0.3–0.4 s on the 2-core machine); each render adds two
 * thread hops and an IPC round trip, ~0.1–0.3 ms (tools/bench/bench-chat-input.ts; README, Guarantees).
 */
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

/** Longest a render may take. Normal chat templates render in well under a millisecond. */
export const TEMPLATE_TIME_BUDGET_MS = 2_000;
/** V8 heap of the rendering process (a rendered chat is kilobytes; jinja and node need ~10 MB). */
export const TEMPLATE_HEAP_MB = 128;
/** Starting the rendering process and loading @huggingface/jinja (0.3–0.4 s; generous for a busy machine). */
const STARTUP_BUDGET_MS = 30_000;
/** Rendered text allowed beyond what the messages bring: the template's own markup. */
const OUTPUT_BASE_CHARS = 1 << 20;
/** A template may repeat the messages' text a few times (e.g. a system prompt in two places). */
const OUTPUT_CONTENT_FACTOR = 8;

export class TemplateBudgetError extends Error {}
export class TemplateRenderError extends Error {}

/** The rendering process (`node -e`, argv[1] = @huggingface/jinja's CommonJS entry). */
const RENDERER_SOURCE = `
const { Template } = require(process.argv[1]);
const parsed = new Map();
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
// Test-only fault injection: 'stale-reply' also sends the previous reply again before each reply, as a
// reply that arrives late (after the request it answers was given up) does.
const fault = process.env.DRO_TEMPLATE_SANDBOX_FAULT;
let previous = null;
process.on('message', ({ id, source, context, maxChars }) => {
  let reply;
  try {
    let template = parsed.get(source);
    if (template === undefined) {
      if (parsed.size >= 16) parsed.clear();
      template = new Template(source);
      parsed.set(source, template);
    }
    if (context === null) {
      process.send({ id, text: '' });
      return;
    }
    const text = template.render(context);
    reply = text.length > maxChars
      ? { budget: 'it rendered ' + text.length + ' characters, over the output budget of ' + maxChars }
      : { text };
  } catch (err) {
    reply = { error: String((err && err.message) || err) };
  }
  reply.id = id;
  if (fault === 'stale-reply' && previous !== null) process.send(previous);
  previous = reply;
  process.send(reply);
});
`;

/** The relay thread (CommonJS): requests on `port`, the rendering process on IPC, the flag flipped per reply. */
const RELAY_SOURCE = `
const { workerData } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const { port, flags, renderer, jinja, heapMb, budgetMs, startupMs } = workerData;
let child = null;
let ready = false;
let pending = null;
function reply(message) {
  if (pending === null) return;
  clearTimeout(pending.timer);
  pending = null;
  port.postMessage(message);
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
}
// The render budget starts when the request reaches a ready process (starting one has its own budget).
function send(proc) {
  pending.timer = setTimeout(() => { pending.timedOut = true; proc.kill('SIGKILL'); }, budgetMs);
  proc.send(pending.request);
}
function start() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // no loaders or inspectors in the sandbox
  const proc = spawn(process.execPath, ['--max-old-space-size=' + heapMb, '-e', renderer, jinja], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
  ready = false;
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  // Only the current request's own process may answer it: a process killed at the budget can still
  // deliver its last reply, or its exit, after the next request was handed to a fresh process.
  const mine = () => pending !== null && pending.proc === proc;
  proc.on('message', (m) => {
    if (m && m.ready) {
      if (child === proc) ready = true;
      if (mine()) { clearTimeout(pending.timer); send(proc); }
      return;
    }
    if (mine() && m && m.id === pending.request.id) reply(m);
  });
  proc.on('error', (err) => { if (mine()) reply({ id: pending.request.id, budget: 'the rendering process failed: ' + err.message }); });
  proc.on('exit', (code, signal) => {
    if (child === proc) child = null;
    if (!mine()) return;
    const id = pending.request.id;
    if (pending.startup) reply({ id, budget: 'the rendering process did not start within ' + startupMs / 1000 + ' s' });
    else if (pending.timedOut) reply({ id, budget: 'it did not finish within ' + budgetMs / 1000 + ' s' });
    else if (/heap out of memory|Reached heap limit|Allocation failed/.test(stderr)) reply({ id, budget: 'it ran out of its ' + heapMb + ' MB of memory' });
    else reply({ id, budget: 'the rendering process ended (' + (signal || 'exit code ' + code) + ')' });
  });
  return proc;
}
port.on('message', (request) => {
  if (child === null || child.exitCode !== null || child.signalCode !== null || child.killed) child = start();
  const proc = child;
  pending = { request, proc, timedOut: false, startup: false, timer: null };
  if (ready) send(proc);
  else pending.timer = setTimeout(() => { pending.startup = true; proc.kill('SIGKILL'); }, startupMs);
});
`;

interface Relay {
  worker: Worker;
  port: MessagePort;
  /** [0]: a reply is ready. */
  flags: Int32Array;
}

let relay: Relay | null = null;

function startRelay(): Relay {
  const { port1, port2 } = new MessageChannel();
  const flags = new Int32Array(new SharedArrayBuffer(4));
  const jinja = createRequire(import.meta.url).resolve('@huggingface/jinja');
  const workerData = { port: port2, flags, renderer: RENDERER_SOURCE, jinja, heapMb: TEMPLATE_HEAP_MB, budgetMs: TEMPLATE_TIME_BUDGET_MS, startupMs: STARTUP_BUDGET_MS };
  const worker = new Worker(RELAY_SOURCE, { eval: true, workerData, transferList: [port2] });
  worker.unref();
  port1.unref();
  return { worker, port: port1, flags };
}

/**
 * Parse `source` in the sandbox (a template is checked when the model loads, and its text is untrusted
 * too); throws as renderSandboxed does.
 */
export function parseSandboxed(source: string): void {
  request({ source, context: null, maxChars: 0 });
}

/**
 * Render `source` with `context` in the sandbox. Throws TemplateBudgetError when the render runs out of
 * time, memory or output size, TemplateRenderError when the template itself fails (e.g. raise_exception).
 */
export function renderSandboxed(source: string, context: Record<string, unknown>, contentChars: number): string {
  return request({ source, context, maxChars: OUTPUT_BASE_CHARS + OUTPUT_CONTENT_FACTOR * contentChars });
}

/** Request ids: a reply is taken only by the request it answers (see the relay's `mine`). */
let nextRequestId = 1;

function request(message: { source: string; context: Record<string, unknown> | null; maxChars: number }): string {
  relay ??= startRelay();
  const { port, flags } = relay;
  const id = nextRequestId++;
  Atomics.store(flags, 0, 0);
  port.postMessage({ id, ...message });
  // The relay enforces the budget and answers when the process dies; this deadline is only a backstop
  // (it includes starting the process on the first render).
  if (Atomics.wait(flags, 0, 0, TEMPLATE_TIME_BUDGET_MS + STARTUP_BUDGET_MS + 5_000) === 'timed-out') {
    void relay.worker.terminate();
    relay = null;
    throw new TemplateBudgetError('the template sandbox did not answer');
  }
  type Reply = { id: number; text?: string; error?: string; budget?: string };
  let reply: Reply | undefined;
  // Replies to requests given up earlier (none expected; see the relay) are dropped, never taken as this one's.
  do reply = receiveMessageOnPort(port)?.message as Reply | undefined;
  while (reply !== undefined && reply.id !== id);
  if (reply === undefined) throw new TemplateBudgetError('the template sandbox answered nothing');
  if (reply.budget !== undefined) throw new TemplateBudgetError(reply.budget);
  if (reply.error !== undefined) throw new TemplateRenderError(reply.error);
  return reply.text!;
}
