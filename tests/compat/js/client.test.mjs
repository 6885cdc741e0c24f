// mem0's official npm client (mem0ai 3.3.1), unmodified, against the memory service.
//
// Run by tests/compat/test_js_client.py, which starts nothing itself: it passes the session's
// service and fresh keys in the environment (COMPAT_URL, COMPAT_KEY, COMPAT_OTHER_KEY,
// COMPAT_LIMITED_KEY, COMPAT_TENANT) and checks this runner's exit code and counts.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError,
  MemoryClient,
  MemoryError,
  MemoryNotFoundError,
  RateLimitError,
  ValidationError,
} from "mem0ai";

const host = process.env.COMPAT_URL;
const client = new MemoryClient({ apiKey: process.env.COMPAT_KEY, host });
const other = new MemoryClient({ apiKey: process.env.COMPAT_OTHER_KEY, host });

async function addOne(text, options) {
  const added = await client.add([{ role: "user", content: text }], options);
  assert.equal(added.status, "SUCCEEDED");
  assert.equal(added.results.length, 1);
  assert.equal(added.results[0].event, "ADD");
  return added.results[0].id;
}

async function rejectsWith(promise, errorClass, pattern) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.constructor, errorClass, `${error.name}: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

test("ping resolves the tenant; a wrong key is an AuthenticationError", async () => {
  await client.ping();
  assert.equal(client.organizationId, process.env.COMPAT_TENANT);
  assert.equal(client.projectId, process.env.COMPAT_TENANT);
  const wrong = new MemoryClient({ apiKey: "m0sk_not-a-real-key", host });
  await rejectsWith(wrong.ping(), AuthenticationError, /Invalid API key/);
  await rejectsWith(wrong.getAll({ filters: { user_id: "x" } }), AuthenticationError);
});

test("add takes a string, a message list, scopes and metadata; get reads it back", async () => {
  const fromString = await client.add("I grow tomatoes on my balcony", { userId: "ada", metadata: { source: "chat", n: 1 } });
  const id = fromString.results[0].id;
  const memory = await client.get(id);
  assert.equal(memory.memory, "I grow tomatoes on my balcony");
  assert.equal(memory.userId, "ada");
  assert.deepEqual(memory.metadata, { source: "chat", n: 1 });
  assert.match(memory.createdAt, /Z$/);
  const scoped = await addOne("Books trains, never planes", { userId: "ada", agentId: "travel", runId: "r-1", appId: "trips" });
  const got = await client.get(scoped);
  assert.deepEqual([got.userId, got.agentId, got.runId, got.appId], ["ada", "travel", "r-1", "trips"]);
  const agentOnly = await addOne("Answers in Spanish", { agentId: "travel" });
  assert.equal((await client.get(agentOnly)).userId, "default");
  await rejectsWith(client.add([{ role: "user", content: "nobody's" }]), ValidationError, /user_id, agent_id, run_id or app_id/);
});

test("asynchronous add is queued and then stored", async () => {
  const queued = await client.add([{ role: "user", content: "I am training for a marathon" }], { userId: "bea", asyncMode: true });
  assert.equal(queued.status, "PENDING");
  assert.ok(queued.eventId);
  const deadline = Date.now() + 30_000;
  let stored = [];
  while (stored.length === 0 && Date.now() < deadline) {
    stored = (await client.getAll({ filters: { user_id: "bea" } })).results;
    if (stored.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(stored.map((m) => m.memory), ["I am training for a marathon"]);
});

test("getAll pages and search ranks", async () => {
  const ids = [];
  for (const text of ["Cal plays the violin", "Cal loves sushi", "Cal runs every morning"]) {
    ids.push(await addOne(text, { userId: "cal" }));
  }
  const first = await client.getAll({ filters: { user_id: "cal" }, page: 1, pageSize: 2 });
  assert.equal(first.count, 3);
  assert.deepEqual(first.results.map((m) => m.id), [ids[2], ids[1]]);
  assert.ok(first.next.includes("page=2"));
  const second = await client.getAll({ filters: { user_id: "cal" }, page: 2, pageSize: 2 });
  assert.deepEqual(second.results.map((m) => m.id), [ids[0]]);
  assert.equal(second.next, null);
  const found = await client.search("Which instrument?", { filters: { user_id: "cal" }, topK: 1, threshold: 0 });
  assert.deepEqual(found.results.map((m) => m.id), [ids[0]]);
  assert.ok(found.results[0].score > 0);
});

test("filters: AND, OR, NOT, operators and the wildcard", async () => {
  const a = await addOne("Dee reads poetry", { userId: "dee", metadata: { priority: 1, kind: "hobby" } });
  const b = await addOne("Dee fixes bikes", { userId: "dee", metadata: { priority: 7, kind: "Work" } });
  const c = await addOne("Eli sings", { userId: "eli", metadata: { priority: "urgent" } });
  const cases = [
    [{ AND: [{ user_id: "dee" }, { metadata: { priority: { gte: 5 } } }] }, [b]],
    [{ OR: [{ user_id: "eli" }, { metadata: { kind: "hobby" } }] }, [a, c]],
    [{ AND: [{ user_id: { in: ["dee", "eli"] } }, { NOT: { kind: { icontains: "work" } } }] }, [a, c]],
    [{ AND: [{ user_id: { in: ["dee", "eli"] } }, { priority: { lt: 100 } }] }, [a, b]],
    [{ AND: [{ user_id: { in: ["dee", "eli"] } }, { kind: "*" }] }, [a, b]],
  ];
  for (const [filters, expected] of cases) {
    const listed = await client.getAll({ filters });
    assert.deepEqual(listed.results.map((m) => m.id).sort(), [...expected].sort(), JSON.stringify(filters));
    const found = await client.search("Dee Eli", { filters, topK: 10, threshold: 0 });
    assert.deepEqual(found.results.map((m) => m.id).sort(), [...expected].sort(), JSON.stringify(filters));
  }
  await rejectsWith(client.getAll({ filters: { priority: { gt: "high" } } }), ValidationError, /number/);
});

test("update, history, delete", async () => {
  const id = await addOne("Fay lives in Porto", { userId: "fay" });
  const updated = await client.update(id, { text: "Fay lives in Braga", metadata: { moved: true } });
  assert.equal(updated.memory, "Fay lives in Braga");
  assert.deepEqual((await client.get(id)).metadata, { moved: true });
  await client.delete(id);
  await rejectsWith(client.get(id), MemoryNotFoundError);
  const history = await client.history(id);
  assert.deepEqual(history.map((h) => h.event), ["ADD", "UPDATE", "DELETE"]);
  assert.equal(history[1].oldMemory, "Fay lives in Porto");
  assert.equal(history[1].newMemory, "Fay lives in Braga");
});

test("deleteAll, users and deleteUsers", async () => {
  await addOne("Gil note", { userId: "gil" });
  await addOne("Hal note", { userId: "hal", agentId: "butler" });
  await client.deleteAll({ userId: "gil" });
  assert.equal((await client.getAll({ filters: { user_id: "gil" } })).count, 0);
  const entities = (await client.users()).results.map((e) => `${e.type}:${e.name}`);
  assert.ok(entities.includes("user:hal") && entities.includes("agent:butler"), entities.join());
  assert.ok(!entities.includes("user:gil"));
  await client.deleteUsers({ agentId: "butler" });
  assert.equal((await client.getAll({ filters: { user_id: "hal" } })).count, 0);
});

test("batchUpdate and batchDelete", async () => {
  const ids = [await addOne("Ivy one", { userId: "ivy" }), await addOne("Ivy two", { userId: "ivy" })];
  const updated = await client.batchUpdate(ids.map((memoryId, i) => ({ memoryId, text: `Ivy rewritten ${i}` })));
  assert.equal(updated.message, "Successfully updated 2 memories");
  assert.equal((await client.get(ids[1])).memory, "Ivy rewritten 1");
  const deleted = await client.batchDelete(ids);
  assert.equal(deleted.message, "Successfully deleted 2 memories");
  await rejectsWith(client.get(ids[0]), MemoryNotFoundError);
});

test("memory export and feedback", async () => {
  const id = await addOne("Jan collects stamps", { userId: "jan" });
  const created = await client.createMemoryExport({ schema: { type: "object" }, filters: { AND: [{ user_id: "jan" }] } });
  const exported = await client.getMemoryExport({ memoryExportId: created.id });
  assert.deepEqual(exported.memories.map((m) => m.id), [id]);
  const feedback = await client.feedback({ memoryId: id, feedback: "POSITIVE", feedbackReason: "spot on" });
  assert.deepEqual([feedback.feedback, feedback.feedbackReason], ["POSITIVE", "spot on"]);
});

test("another tenant's memory is not found", async () => {
  const id = await addOne("Kai's private note", { userId: "kai" });
  await rejectsWith(other.get(id), MemoryNotFoundError);
  await rejectsWith(other.update(id, { text: "hijacked" }), MemoryNotFoundError);
  await rejectsWith(other.delete(id), MemoryNotFoundError);
  assert.equal((await client.get(id)).memory, "Kai's private note");
});

test("Platform-only methods name what the server does not offer", async () => {
  await rejectsWith(client.getProject({ fields: ["custom_instructions"] }), MemoryError, /does not offer.*projects/);
  await rejectsWith(client.getProfile({ entityId: "kai" }), MemoryError, /does not offer.*profiles/);
});

test("a key over its limit gets a RateLimitError that says when to retry", async () => {
  const limited = new MemoryClient({ apiKey: process.env.COMPAT_LIMITED_KEY, host });
  await limited.initialized; // its ping is the first of the key's two requests
  await limited.getAll({ filters: { user_id: "x" } });
  await rejectsWith(limited.getAll({ filters: { user_id: "x" } }), RateLimitError, /"retry_after":\s*[1-9]/);
});
