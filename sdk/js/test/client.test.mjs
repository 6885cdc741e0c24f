// The built package (dist/, through its own "exports") against a real running service.
// Started by tests/sdk/test_js_sdk.py, which passes through the environment:
//   MEM0_TEST_URL        the service            MEM0_TEST_ADMIN_KEY  an operator key
//   MEM0_TEST_PROXY_URL  a loopback proxy that loses the answer of its first connection
//   MEM0_TEST_CONTROL    a directory: write "freeze" / "thaw" there, the test freezes or thaws
//                        the service's Postgres (SIGSTOP) and answers "frozen" / "thawed"
//   MEM0_TEST_LEFT_OUT   JSON list of "METHOD /path" operations the SDKs deliberately leave out
//   MEM0_TEST_PLATFORM_TAG  the OpenAPI tag of the mem0 Platform dialect's routes (not the SDKs' job)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync, rmSync } from "node:fs";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { createRequire } from "node:module";
import * as esm from "@mem0/client";
import {
  MemoryClient,
  Mem0Error,
  APIConnectionError,
  APITimeoutError,
  ForbiddenError,
  IdempotencyConflictError,
  InvalidRequestError,
  MemoryNotFoundError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "@mem0/client";

const URL_ = required("MEM0_TEST_URL");
const ADMIN_KEY = required("MEM0_TEST_ADMIN_KEY");
const admin = new MemoryClient({ apiKey: ADMIN_KEY, baseUrl: URL_ });

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/sdk/test_js_sdk.py`);
  return value;
}

async function tenantClient(options = {}) {
  const tenant = `js-${Math.random().toString(16).slice(2, 12)}`;
  const rateLimit = "rateLimit" in options ? options.rateLimit : 10_000_000;
  const created = await admin.admin.createKey(tenant, rateLimit === undefined ? {} : { rateLimit });
  return new MemoryClient({ apiKey: created.key, baseUrl: URL_, ...options.client });
}

function assertError(error, cls, status, code) {
  assert.equal(error.constructor, cls);
  assert.ok(error instanceof Mem0Error);
  assert.equal(error.status, status);
  assert.equal(error.code, code);
  assert.ok(error.message);
  assert.ok(error.requestId);
  return true;
}

function recordingFetch(log) {
  return async (input, init) => {
    const response = await fetch(input, init);
    log.push({ method: init?.method ?? "GET", url: String(input), status: response.status });
    return response;
  };
}

async function waitFor(file, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`no ${file} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  rmSync(file);
}

async function control(what, answer) {
  const dir = required("MEM0_TEST_CONTROL");
  writeFileSync(join(dir, what), "");
  await waitFor(join(dir, answer));
}

function templateOf(method, url, ops) {
  const path = new URL(url).pathname;
  const matches = ops.filter(([m, t]) => {
    if (m !== method) return false;
    const pattern = "^" + t.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+") + "$";
    return new RegExp(pattern).test(path);
  });
  matches.sort((a, b) => a[1].split("{").length - b[1].split("{").length);
  return matches[0];
}

// A real webhook receiver on loopback. Each request is checked against the secrets trusted at
// the time it arrives, by the Standard Webhooks scheme: the `webhook-signature` header lists
// `v1,<base64 HMAC-SHA256 of "id.timestamp.body" keyed by the secret's base64 part>` entries.
async function startReceiver() {
  const received = [];
  const trusted = [];
  const server = createHttpServer((request, response) => {
    const chunks = [];
    request.on("data", (c) => chunks.push(c));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const id = request.headers["webhook-id"];
      const signatures = String(request.headers["webhook-signature"] ?? "").split(" ");
      const verified = {};
      for (const secret of trusted) {
        const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
        const signed = `${id}.${request.headers["webhook-timestamp"]}.${body}`;
        const expected = createHmac("sha256", key).update(signed).digest();
        verified[secret] = signatures.some((s) => {
          const given = Buffer.from(s.replace(/^v1,/, ""), "base64");
          return s.startsWith("v1,") && given.length === expected.length && timingSafeEqual(given, expected);
        });
      }
      received.push({ id, body: JSON.parse(body), verified });
      response.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    received,
    trusted,
    async arrivals(count, ms = 30_000) {
      const deadline = Date.now() + ms;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`${received.length} of ${count} deliveries within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return received;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// The latest delivery once the service has recorded its outcome (the receiver sees it first).
async function settled(hooks, webhookId, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const [latest] = (await hooks.deliveries(webhookId, { limit: 1 })).deliveries;
    if (latest.state !== "pending") return latest;
    if (Date.now() > deadline) throw new Error(`delivery ${latest.id} still pending after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function webhooksTour(hooks) {
  const receiver = await startReceiver();
  try {
    const created = await hooks.webhooks.create(receiver.url, { eventTypes: ["memory.created"], description: "js tour" });
    assert.match(created.secret, /^whsec_/);
    assert.deepEqual(created.event_types, ["memory.created"]);
    receiver.trusted.push(created.secret);
    assert.deepEqual((await hooks.webhooks.list()).map((w) => w.id), [created.id]);
    const fetched = await hooks.webhooks.get(created.id);
    assert.equal(fetched.description, "js tour");
    assert.equal("secret" in fetched, false); // shown once, at creation

    await hooks.webhooks.update(created.id, { eventTypes: ["memory.created", "memory.deleted"], enabled: false });
    const changed = await hooks.webhooks.get(created.id);
    assert.deepEqual(changed.event_types, ["memory.created", "memory.deleted"]);
    assert.deepEqual([changed.enabled, changed.description], [false, "js tour"]);
    assert.equal((await hooks.webhooks.update(created.id, { description: null, enabled: true })).description, null);
    assert.equal((await hooks.webhooks.get(created.id)).description, null);

    const queued = await hooks.webhooks.test(created.id);
    assert.deepEqual([queued.event_type, queued.state], ["webhook.test", "pending"]);
    const [first] = await receiver.arrivals(1);
    assert.equal(first.id, queued.event_id);
    assert.deepEqual(first.verified, { [created.secret]: true });
    assert.equal(first.body.type, "webhook.test");
    const done = await settled(hooks.webhooks, created.id);
    assert.deepEqual([done.id, done.state, done.last_status_code], [queued.id, "succeeded", 200]);

    assert.equal((await hooks.webhooks.redeliver(created.id, queued.id)).event_id, queued.event_id);
    const second = (await receiver.arrivals(2))[1];
    assert.equal(second.id, queued.event_id); // the same event: receivers deduplicate on it
    assert.equal((await settled(hooks.webhooks, created.id)).attempts, 2);

    const rotated = await hooks.webhooks.rotateSecret(created.id, { overlapSeconds: 600 });
    assert.notEqual(rotated.secret, created.secret);
    assert.ok(rotated.webhook.previous_secret_expires_at);
    receiver.trusted.push(rotated.secret);
    const after = await hooks.webhooks.test(created.id);
    const third = (await receiver.arrivals(3))[2];
    assert.equal(third.id, after.event_id);
    assert.deepEqual(third.verified, { [created.secret]: true, [rotated.secret]: true }); // both during the overlap
    await settled(hooks.webhooks, created.id);

    const page = await hooks.webhooks.deliveries(created.id, { limit: 1 });
    assert.deepEqual(page.deliveries.map((d) => d.id), [after.id]);
    const next = await hooks.webhooks.deliveries(created.id, { limit: 1, cursor: page.next_cursor });
    assert.deepEqual(next.deliveries.map((d) => d.id), [queued.id]);
    const all = [];
    for await (const d of hooks.webhooks.iterDeliveries(created.id, { pageSize: 1 })) all.push(d.id);
    assert.deepEqual(all, [after.id, queued.id]);
    assert.deepEqual((await hooks.webhooks.deliveries(created.id, { state: "dead" })).deliveries, []);

    assert.equal((await hooks.webhooks.delete(created.id)).deleted, true);
    await assert.rejects(hooks.webhooks.get(created.id), (e) => assertError(e, NotFoundError, 404, "NOT_FOUND"));
    assert.deepEqual(await hooks.webhooks.list(), []);
  } finally {
    await receiver.close();
  }
}

test("every method, and every operation of the OpenAPI document is reached", async () => {
  const log = [];
  const client = await tenantClient({ client: { fetch: recordingFetch(log) } });
  const recordedAdmin = new MemoryClient({ apiKey: ADMIN_KEY, baseUrl: `${URL_}/v1/`, fetch: recordingFetch(log) });
  const user = "js-tour";

  assert.equal((await client.health()).status, "ok");
  assert.equal((await client.status()).memory_count, 0);
  const added = await client.add("I love building AI applications with FastAPI", {
    userId: user,
    metadata: { source: "chat" },
  });
  assert.equal(added.count, 1);
  assert.equal(added.inference, "none");
  const memory = added.memories[0];
  assert.equal(memory.user_id, user);
  assert.ok(memory.relationships.some((r) => r.entity === "FastAPI"));
  const two = await client.add(
    [
      { role: "user", content: "My sister Ana lives in Lisbon" },
      { role: "assistant", content: "Noted." },
      { role: "user", content: "I hike in the Alps every summer" },
    ],
    { userId: user, agentId: "planner", metadata: { priority: 3 } },
  );
  assert.equal(two.count, 2);
  const accepted = await client.add({ role: "user", content: "Queued memory about Litestar" }, { userId: user, asyncMode: true });
  assert.equal(accepted.state, "queued");
  const job = await client.waitForJob(accepted.job_id, { pollIntervalMs: 100, waitMs: 30_000 });
  assert.equal(job.state, "succeeded");
  assert.equal(job.result.memories[0].content, "Queued memory about Litestar");
  assert.equal((await client.job(accepted.job_id)).state, "succeeded");

  const found = await client.search("FastAPI", { userId: user, limit: 2, includeEmbedding: true });
  assert.equal(found.memories[0].id, memory.id);
  assert.equal(typeof found.memories[0].score, "number");
  assert.ok(found.memories[0].embedding.length > 100);
  assert.ok((await client.search("hiking", { userId: user, filters: { priority: { gte: 3 } } })).count >= 1);
  const bySource = await client.search("anything", { userId: user, metadata: { source: ["chat", "nothing"] } });
  assert.deepEqual(bySource.memories.map((m) => m.id), [memory.id]);

  assert.equal((await client.get(memory.id)).embedding, undefined);
  assert.ok((await client.get(memory.id, { includeEmbedding: true })).embedding.length > 100);
  const updated = await client.update(memory.id, { content: "Loves FastAPI and Litestar", metadata: { source: "edit" } });
  assert.equal(updated.content, "Loves FastAPI and Litestar");
  const history = await client.history(memory.id);
  assert.deepEqual(
    history.map((h) => h.event),
    ["ADD", "UPDATE"],
  );

  const page = await client.getPage(user, { limit: 2 });
  assert.equal(page.total, 4);
  assert.ok(page.next_cursor);
  const ids = [];
  for await (const m of client.getAll(user, { pageSize: 3 })) ids.push(m.id);
  assert.equal(ids.length, 4);

  const stats = await client.userStats(user);
  assert.equal(stats.memory_count, 4);
  assert.equal(stats.sources.edit, 1);
  assert.ok((await client.entities(user, { limit: 100 })).entities.some((e) => e.key === "fastapi"));
  assert.deepEqual(
    (await client.entityMemories(user, "fastapi")).memories.map((m) => m.id),
    [memory.id],
  );

  assert.equal((await client.delete(memory.id)).deleted, true);
  await assert.rejects(client.get(memory.id), MemoryNotFoundError);
  assert.equal((await client.deleteAll(user)).deleted_count, 3);

  const tenant = `js-keys-${Date.now()}`;
  const created = await recordedAdmin.admin.createKey(tenant, { name: "tour", rateLimit: 100 });
  assert.ok(created.key.startsWith(created.prefix));
  assert.deepEqual((await recordedAdmin.admin.listKeys({ tenant })).map((k) => k.id), [created.id]);
  assert.ok((await recordedAdmin.admin.revokeKey(created.id)).revoked_at);
  assert.deepEqual(await recordedAdmin.admin.listKeys({ tenant }), []);
  assert.equal((await recordedAdmin.admin.listKeys({ tenant, includeRevoked: true })).length, 1);
  assert.match(await recordedAdmin.admin.metrics(), /memory_http_requests_total/);

  const hooksKey = await recordedAdmin.admin.createKey(`js-hooks-${Date.now()}`, { role: "admin", rateLimit: 10_000_000 });
  await webhooksTour(new MemoryClient({ apiKey: hooksKey.key, baseUrl: URL_, fetch: recordingFetch(log) }));

  const document = await (await fetch(`${URL_}/openapi.json`)).json();
  // Only the contract's operations: the mem0 Platform dialect's (their own tag) are for mem0's clients.
  const platformTag = required("MEM0_TEST_PLATFORM_TAG");
  const ops = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([, operation]) => !(operation.tags ?? []).includes(platformTag))
      .map(([m]) => [m.toUpperCase(), path]),
  );
  const leftOut = new Set(JSON.parse(required("MEM0_TEST_LEFT_OUT")));
  const reached = new Set();
  for (const entry of log) {
    const op = templateOf(entry.method, entry.url, ops);
    assert.ok(op, `request to no documented operation: ${entry.method} ${entry.url}`);
    reached.add(op.join(" "));
  }
  const missing = ops.map((op) => op.join(" ")).filter((op) => !reached.has(op) && !leftOut.has(op));
  assert.deepEqual(missing, [], "operations without a JS SDK method (or a LEFT_OUT reason)");
});

test("getAll and pages walk more than three pages", async () => {
  const client = await tenantClient();
  const messages = Array.from({ length: 7 }, (_, i) => ({ role: "user", content: `paged memory number ${i}` }));
  assert.equal((await client.add(messages, { userId: "paged" })).count, 7);
  const pages = [];
  for await (const page of client.pages("paged", { pageSize: 2 })) pages.push(page);
  assert.deepEqual(
    pages.map((p) => p.memories.length),
    [2, 2, 2, 1],
  );
  assert.equal(pages.at(-1).next_cursor, null);
  const all = [];
  for await (const m of client.getAll("paged", { pageSize: 2 })) all.push(m.id);
  assert.deepEqual(all, pages.flatMap((p) => p.memories.map((m) => m.id)));
  assert.equal(new Set(all).size, 7);
});

test("401, 403, 404, 400, 409 and 413 throw their classes", async () => {
  const client = await tenantClient();
  const stranger = new MemoryClient({ apiKey: "mem0_not_a_key", baseUrl: URL_ });
  await assert.rejects(stranger.status(), (e) => assertError(e, UnauthorizedError, 401, "UNAUTHORIZED"));
  await assert.rejects(client.admin.listKeys(), (e) => assertError(e, ForbiddenError, 403, "FORBIDDEN"));
  const missing = crypto.randomUUID();
  await assert.rejects(client.get(missing), (e) => assertError(e, MemoryNotFoundError, 404, "MEMORY_NOT_FOUND"));
  await assert.rejects(client.job(missing), (e) => assertError(e, NotFoundError, 404, "NOT_FOUND"));
  await assert.rejects(client.search("x", { limit: 1000 }), (e) => {
    assertError(e, InvalidRequestError, 400, "INVALID_REQUEST");
    return e.details.field === "limit";
  });
  await assert.rejects(client.add("x".repeat(20_001)), (e) => {
    assertError(e, PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE");
    return e.details.limit === 20_000;
  });
  const idempotencyKey = crypto.randomUUID();
  const first = await client.add("first body", { userId: "idem", idempotencyKey });
  await assert.rejects(client.add("another body", { userId: "idem", idempotencyKey }), (e) =>
    assertError(e, IdempotencyConflictError, 409, "IDEMPOTENCY_CONFLICT"),
  );
  const again = await client.add("first body", { userId: "idem", idempotencyKey });
  assert.deepEqual(
    again.memories.map((m) => m.id),
    first.memories.map((m) => m.id),
  );
  assert.equal((await client.getPage("idem")).total, 1);
});

test("a 429 throws RateLimitError, and a retry honours Retry-After", async () => {
  const log = [];
  const impatient = await tenantClient({ rateLimit: undefined, client: { maxRetries: 0, fetch: recordingFetch(log) } });
  let limited;
  for (let i = 0; i < 20 && !limited; i++) {
    try {
      await impatient.getPage("u");
    } catch (e) {
      limited = e;
    }
  }
  assert.ok(limited, "20 quick requests were never refused");
  assertError(limited, RateLimitError, 429, "RATE_LIMIT_EXCEEDED");
  assert.ok(limited.retryAfter >= 1);
  assert.equal(limited.details.window, "burst");
  const patient = new MemoryClient({ apiKey: impatient.apiKey, baseUrl: URL_, maxRetries: 3, fetch: recordingFetch(log) });
  log.length = 0;
  const started = Date.now();
  assert.equal((await patient.getPage("u")).total, 0);
  assert.equal(log[0].status, 429);
  assert.equal(log.at(-1).status, 200);
  assert.ok(Date.now() - started >= limited.retryAfter * 900);
});

test("an add retried after the connection drops is stored once", async () => {
  const client = await tenantClient();
  const throughProxy = new MemoryClient({ apiKey: client.apiKey, baseUrl: required("MEM0_TEST_PROXY_URL") });
  const result = await throughProxy.add("stored exactly once", { userId: "dropped" });
  const stored = await client.getPage("dropped");
  assert.equal(stored.total, 1);
  assert.deepEqual(
    stored.memories.map((m) => m.id),
    result.memories.map((m) => m.id),
  );
});

test("AbortSignal cancels a call in flight, and timeoutMs bounds an attempt", async () => {
  const sockets = [];
  const server = createServer((socket) => sockets.push(socket)); // accepts, never answers
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const hung = new MemoryClient({ apiKey: "k", baseUrl: `http://127.0.0.1:${server.address().port}`, timeoutMs: 0 });
  try {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 150);
    await assert.rejects(hung.health({ signal: controller.signal }), (e) => e.name === "AbortError");
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(hung.health({ signal: AbortSignal.timeout(100) }), (e) => e.name === "TimeoutError");
    await assert.rejects(hung.health({ timeoutMs: 100 }), (e) => {
      assert.ok(e instanceof APITimeoutError);
      assert.ok(e instanceof APIConnectionError);
      return e.status === undefined;
    });
    await new Promise((r) => setTimeout(r, 200)); // connections of the calls above have all arrived
    const before = sockets.length;
    await assert.rejects(hung.health({ signal: AbortSignal.abort() }), (e) => e.name === "AbortError");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sockets.length, before); // an already aborted call never connects
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});

test("webhook create and rotateSecret are not sent again after a connection failure", async () => {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.once("data", () => socket.resetAndDestroy()); // the request arrived; its answer is lost
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = new MemoryClient({ apiKey: "k", baseUrl: `http://127.0.0.1:${server.address().port}`, maxRetries: 2 });
  try {
    await assert.rejects(client.webhooks.create("https://hooks.example.com/x"), APIConnectionError);
    assert.equal(connections, 1);
    await assert.rejects(client.webhooks.rotateSecret("some-id"), APIConnectionError);
    assert.equal(connections, 2);
    await assert.rejects(client.webhooks.list(), APIConnectionError); // a read is retried
    assert.equal(connections, 5);
  } finally {
    server.close();
  }
});

test("a 503 throws ServiceUnavailableError; a retry after the outage succeeds", async () => {
  const client = await tenantClient();
  const memory = (await client.add("kept across the outage", { userId: "outage" })).memories[0];
  const noRetry = new MemoryClient({ apiKey: client.apiKey, baseUrl: URL_, maxRetries: 0 });
  await control("freeze", "frozen");
  let thawRequested = false;
  try {
    await assert.rejects(noRetry.search("outage", { userId: "outage" }), (e) => {
      assertError(e, ServiceUnavailableError, 503, "SERVICE_UNAVAILABLE");
      assert.ok(e.retryAfter > 0);
      return e.dependency === "postgres";
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = Date.now();
    await assert.rejects(noRetry.get(memory.id, { signal: controller.signal }), (e) => e.name === "AbortError");
    assert.ok(Date.now() - started < 1000);

    const log = [];
    const thawAfter503 = async (input, init) => {
      const response = await fetch(input, init);
      log.push(response.status);
      if (response.status === 503 && !thawRequested) {
        thawRequested = true;
        await control("thaw", "thawed");
      }
      return response;
    };
    const patient = new MemoryClient({ apiKey: client.apiKey, baseUrl: URL_, maxRetries: 4, fetch: thawAfter503 });
    assert.equal((await patient.get(memory.id)).id, memory.id);
    assert.equal(log[0], 503);
    assert.equal(log.at(-1), 200);
  } finally {
    if (!thawRequested) await control("thaw", "thawed");
  }
});

test("the CommonJS build exports the same API", () => {
  const require = createRequire(import.meta.url);
  const cjs = require("@mem0/client");
  assert.equal(typeof cjs.MemoryClient, "function");
  assert.equal(new cjs.RateLimitError("x").code, "RATE_LIMIT_EXCEEDED");
  assert.ok(new cjs.MemoryNotFoundError("x") instanceof cjs.NotFoundError);
  assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  assert.notEqual(cjs.MemoryClient, esm.MemoryClient); // really the other build
});

test("the key and URL fall back to the environment", async () => {
  const client = await tenantClient();
  process.env.MEM0_API_KEY = client.apiKey;
  process.env.MEM0_BASE_URL = `${URL_}/v1`;
  try {
    assert.equal((await new MemoryClient().status()).memory_count, 0);
    delete process.env.MEM0_API_KEY;
    assert.throws(() => new MemoryClient(), /MEM0_API_KEY/);
  } finally {
    delete process.env.MEM0_API_KEY;
    delete process.env.MEM0_BASE_URL;
  }
});
