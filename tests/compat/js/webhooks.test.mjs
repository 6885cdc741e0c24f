// Webhooks through mem0's official npm client (mem0ai 3.3.1), unmodified: getWebhooks,
// createWebhook, updateWebhook and deleteWebhook with the Platform's event names.
//
// Run by tests/compat/test_webhooks.py, which passes a service that allows loopback targets, an
// admin and a user key of one tenant and the receiver's URL (COMPAT_URL, COMPAT_TENANT,
// COMPAT_ADMIN_KEY, COMPAT_USER_KEY, COMPAT_HOOK_URL). The last test prints what it created
// (`CREATED {...}`); the Python side checks the signed delivery against that secret. The
// client turns the Platform's snake_case keys into camelCase (webhookId, eventTypes).
import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthenticationError, MemoryClient, WebhookEvent } from "mem0ai";

const host = process.env.COMPAT_URL;
const admin = new MemoryClient({ apiKey: process.env.COMPAT_ADMIN_KEY, host });
const user = new MemoryClient({ apiKey: process.env.COMPAT_USER_KEY, host });

test("a user key manages no webhooks (AuthenticationError, 403)", async () => {
  await assert.rejects(user.getWebhooks(), (error) => {
    assert.equal(error.constructor, AuthenticationError, `${error.name}: ${error.message}`);
    return true;
  });
});

test("create, list, update and delete; a memory added reaches the webhook", async () => {
  const created = await admin.createWebhook({
    name: "js sync",
    url: process.env.COMPAT_HOOK_URL,
    eventTypes: [WebhookEvent.MEMORY_ADDED, WebhookEvent.MEMORY_UPDATED],
  });
  assert.equal(admin.projectId, process.env.COMPAT_TENANT);
  assert.equal(created.name, "js sync");
  assert.equal(created.project, process.env.COMPAT_TENANT);
  assert.deepEqual(created.eventTypes, ["memory:add", "memory:update"]);
  assert.match(created.secret, /^whsec_/);

  const spare = await admin.createWebhook({
    name: "to delete",
    url: process.env.COMPAT_HOOK_URL,
    eventTypes: [WebhookEvent.MEMORY_DELETED],
  });
  const listed = await admin.getWebhooks();
  assert.deepEqual(listed.map((h) => h.webhookId).sort(), [created.webhookId, spare.webhookId].sort());
  assert.deepEqual(await admin.deleteWebhook({ webhookId: spare.webhookId }), {
    message: "Webhook deleted successfully",
  });

  const updated = await admin.updateWebhook({
    webhookId: created.webhookId,
    name: "js renamed",
    eventTypes: [WebhookEvent.MEMORY_ADDED],
  });
  assert.equal(updated.message, "Webhook updated successfully");
  assert.deepEqual(updated.eventTypes, ["memory:add"]);
  const after = await admin.getWebhooks({ projectId: process.env.COMPAT_TENANT });
  assert.deepEqual(
    after.map((h) => [h.webhookId, h.name]),
    [[created.webhookId, "js renamed"]],
  );

  const text = `Cy sails on Sundays (${Date.now()})`;
  const added = await user.add([{ role: "user", content: text }], { userId: "cy" });
  assert.equal(added.results.length, 1);
  console.log(
    `CREATED ${JSON.stringify({ webhookId: created.webhookId, secret: created.secret, memoryId: added.results[0].id, text })}`,
  );
});
