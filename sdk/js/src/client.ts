/**
 * `MemoryClient`: every operation of the service's REST API over the global `fetch`.
 *
 * Method names mirror the Python SDK in camelCase (`add`, `search`, `get`, `getAll`, `update`,
 * `delete`, `deleteAll`, `history` ...). Every call is retried on 429, 503 and connection
 * failures, honouring Retry-After; every add carries an `Idempotency-Key`, the same for all
 * attempts of one call, so a retried add never stores twice. Every call takes an `AbortSignal`.
 */

import {
  APIConnectionError,
  APITimeoutError,
  IdempotencyInProgressError,
  JobTimeoutError,
  Mem0Error,
  RateLimitError,
  ServiceUnavailableError,
  errorClass,
} from "./errors.js";
import type {
  AddResult,
  ApiKey,
  CreatedKey,
  CreatedWebhook,
  Deleted,
  Delivery,
  DeliveryPage,
  DeliveryState,
  EntityList,
  EntityMemories,
  Erased,
  Health,
  HistoryEntry,
  Job,
  JobAccepted,
  Memory,
  MemoryPage,
  Message,
  RotatedSecret,
  SearchResult,
  Status,
  UserStats,
  Webhook,
  WebhookEventType,
  WebhookFormat,
} from "./types.js";

export const VERSION = "0.1.0";
export const API_KEY_ENV = "MEM0_API_KEY";
export const BASE_URL_ENV = "MEM0_BASE_URL";
export const DEFAULT_BASE_URL = "http://localhost:8080";

export interface ClientOptions {
  /** Falls back to the MEM0_API_KEY environment variable (Node, Bun, Deno). */
  apiKey?: string;
  /** Falls back to MEM0_BASE_URL, then http://localhost:8080; a trailing /v1 is accepted. */
  baseUrl?: string;
  /** Per attempt, in milliseconds (default 30000; 0: none). */
  timeoutMs?: number;
  /** Retries after a 429, 503 or connection failure (default 2). */
  maxRetries?: number;
  /** A Retry-After longer than this (ms, default 60000) is not waited for: the error is thrown. */
  maxRetryWaitMs?: number;
  /** Another fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** Options every call accepts. */
export interface RequestOptions {
  /** Aborts the call, its retries and the waits between them; the signal's reason is thrown. */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout for this call. */
  timeoutMs?: number;
}

export interface AddOptions extends RequestOptions {
  userId?: string;
  agentId?: string;
  runId?: string;
  metadata?: Record<string, unknown>;
  infer?: boolean;
  /** Queue the add (202) and return the job to poll. */
  asyncMode?: boolean;
  /** Defaults to a new UUID per call; pass your own to make retries across restarts safe. */
  idempotencyKey?: string;
}

type QueryValue = string | number | boolean;

export interface SearchOptions extends RequestOptions {
  userId?: string;
  agentId?: string;
  runId?: string;
  limit?: number;
  threshold?: number;
  /** mem0's operator syntax, e.g. `{ priority: { gte: 3 } }`. */
  filters?: Record<string, unknown>;
  /** Equality on metadata keys; an array means any of. */
  metadata?: Record<string, QueryValue | QueryValue[]>;
  graphBoost?: boolean;
  includeEmbedding?: boolean;
}

export interface PageOptions extends RequestOptions {
  limit?: number;
  cursor?: string;
  agentId?: string;
  runId?: string;
}

export interface IterateOptions extends RequestOptions {
  pageSize?: number;
  agentId?: string;
  runId?: string;
}

export interface UpdateOptions extends RequestOptions {
  content?: string;
  metadata?: Record<string, unknown>;
}

export interface WaitOptions extends RequestOptions {
  /** Give up after this long (ms, default 60000) with JobTimeoutError. */
  waitMs?: number;
  pollIntervalMs?: number;
}

export interface CreateWebhookOptions extends RequestOptions {
  /** Default: every event type. */
  eventTypes?: WebhookEventType[];
  description?: string;
  enabled?: boolean;
  /** `standard` (default), or `mem0`: the mem0 Platform's body for memory events. */
  format?: WebhookFormat;
}

export interface UpdateWebhookOptions extends RequestOptions {
  url?: string;
  eventTypes?: WebhookEventType[];
  /** `null` removes the description; leaving it out keeps it. */
  description?: string | null;
  enabled?: boolean;
  format?: WebhookFormat;
}

export interface DeliveriesOptions extends RequestOptions {
  limit?: number;
  cursor?: string;
  /** Only deliveries in this state. */
  state?: DeliveryState;
}

interface Call {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Array<[string, QueryValue]>;
  body?: unknown;
  idempotencyKey?: string;
  text?: boolean;
  /**
   * false for writes that must not happen twice and carry no Idempotency-Key: after a
   * connection failure the service may have acted, so the error goes back to the caller.
   */
  resendAfterDrop?: boolean;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8000;

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

function uuid4(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function params(values: Record<string, QueryValue | undefined | null>): Array<[string, QueryValue]> {
  return Object.entries(values).filter((e): e is [string, QueryValue] => e[1] !== undefined && e[1] !== null);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function retryable(error: Mem0Error): boolean {
  if (error instanceof APITimeoutError) return false;
  return (
    error instanceof RateLimitError ||
    error instanceof ServiceUnavailableError ||
    error instanceof IdempotencyInProgressError ||
    error instanceof APIConnectionError
  );
}

/**
 * Milliseconds before retry number `attempt` (0-based). With Retry-After: that long plus up to
 * 10%, so clients refused together do not return together. Without: exponential backoff
 * (0.5 s, 1 s, 2 s ... at most 8 s) with equal jitter.
 */
export function retryDelayMs(attempt: number, retryAfterSeconds: number | undefined): number {
  if (retryAfterSeconds !== undefined) {
    const ms = retryAfterSeconds * 1000;
    return ms + Math.random() * 0.1 * Math.max(ms, 1000);
  }
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

function normaliseMessages(messages: string | Message | Message[]): Message[] {
  if (typeof messages === "string") return [{ role: "user", content: messages }];
  return Array.isArray(messages) ? messages : [messages];
}

export class MemoryClient {
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly maxRetryWaitMs: number;
  /** Key management and metrics: an admin key's operations. */
  readonly admin: AdminAPI;
  /** The webhooks of the key's tenant: an admin key's operations. */
  readonly webhooks: WebhooksAPI;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const apiKey = options.apiKey ?? env(API_KEY_ENV);
    if (!apiKey) throw new Error(`No API key: pass { apiKey } or set ${API_KEY_ENV}`);
    this.apiKey = apiKey;
    let base = (options.baseUrl ?? env(BASE_URL_ENV) ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    if (base.endsWith("/v1")) base = base.slice(0, -3);
    this.baseUrl = base;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 2;
    if (this.maxRetries < 0) throw new Error("maxRetries must be >= 0");
    this.maxRetryWaitMs = options.maxRetryWaitMs ?? 60_000;
    const impl = options.fetch ?? globalThis.fetch;
    if (typeof impl !== "function") throw new Error("No fetch: use Node 18+, a browser, Deno or Bun, or pass { fetch }");
    this.fetchImpl = impl;
    this.admin = new AdminAPI(this);
    this.webhooks = new WebhooksAPI(this);
  }

  // -- transport --------------------------------------------------------------------------------

  private url(call: Call): string {
    const query = (call.query ?? []).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
    return `${this.baseUrl}${call.path}${query.length ? `?${query.join("&")}` : ""}`;
  }

  private async attempt<T>(call: Call, options: RequestOptions): Promise<T> {
    options.signal?.throwIfAborted();
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}`, Accept: "application/json" };
    if (call.body !== undefined) headers["Content-Type"] = "application/json";
    if (call.idempotencyKey) headers["Idempotency-Key"] = call.idempotencyKey;
    const controller = new AbortController();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs)
        : undefined;
    const outer = options.signal;
    const onAbort = (): void => controller.abort(outer?.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    try {
      const init: RequestInit = { method: call.method, headers, signal: controller.signal };
      if (call.body !== undefined) init.body = JSON.stringify(call.body);
      let response: Response;
      let text: string;
      try {
        response = await this.fetchImpl(this.url(call), init);
        text = await response.text();
      } catch (cause) {
        if (outer?.aborted) throw outer.reason;
        const what = `${call.method} ${call.path}`;
        if (timedOut) throw new APITimeoutError(`${what} took longer than ${timeoutMs} ms`, { cause });
        throw new APIConnectionError(`${what} failed: ${String(cause)}`, { cause });
      }
      return parseResponse<T>(call, response, text);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    }
  }

  /** @internal Send one call with retries. */
  async send<T>(call: Call, options: RequestOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let error: Mem0Error;
      try {
        return await this.attempt<T>(call, options);
      } catch (caught) {
        if (!(caught instanceof Mem0Error)) throw caught;
        error = caught;
      }
      if (attempt >= this.maxRetries || !retryable(error)) throw error;
      if (error instanceof APIConnectionError && call.resendAfterDrop === false) throw error;
      if (error.retryAfter !== undefined && error.retryAfter * 1000 > this.maxRetryWaitMs) throw error;
      await sleep(retryDelayMs(attempt, error.retryAfter), options.signal);
    }
  }

  // -- memories ---------------------------------------------------------------------------------

  /**
   * Store memories from messages (a string, one message or a list). With `asyncMode: true` the
   * service queues the add and this returns the job to poll (`job`, `waitForJob`).
   */
  add(messages: string | Message | Message[], options: AddOptions & { asyncMode: true }): Promise<JobAccepted>;
  add(messages: string | Message | Message[], options?: AddOptions & { asyncMode?: false }): Promise<AddResult>;
  add(messages: string | Message | Message[], options: AddOptions = {}): Promise<AddResult | JobAccepted> {
    const body: Record<string, unknown> = { messages: normaliseMessages(messages) };
    if (options.userId !== undefined) body["user_id"] = options.userId;
    if (options.agentId !== undefined) body["agent_id"] = options.agentId;
    if (options.runId !== undefined) body["run_id"] = options.runId;
    if (options.metadata !== undefined) body["metadata"] = options.metadata;
    if (options.infer !== undefined) body["infer"] = options.infer;
    const call: Call = { method: "POST", path: "/v1/memories", body, idempotencyKey: options.idempotencyKey ?? uuid4() };
    if (options.asyncMode) call.query = [["async", "true"]];
    return this.send(call, options);
  }

  /** Memories ranked by relevance. */
  search(query: string, options: SearchOptions = {}): Promise<SearchResult> {
    const q = params({
      query,
      user_id: options.userId,
      agent_id: options.agentId,
      run_id: options.runId,
      limit: options.limit,
      threshold: options.threshold,
      filters: options.filters === undefined ? undefined : JSON.stringify(options.filters),
      graph_boost: options.graphBoost,
      include_embedding: options.includeEmbedding,
    });
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) q.push([`metadata.${key}`, v]);
    }
    return this.send({ method: "GET", path: "/v1/memories/search", query: q }, options);
  }

  get(memoryId: string, options: RequestOptions & { includeEmbedding?: boolean } = {}): Promise<Memory> {
    const query = params({ include_embedding: options.includeEmbedding });
    return this.send({ method: "GET", path: `/v1/memories/${seg(memoryId)}`, query }, options);
  }

  /** One page of a user's memories, newest first; pass `next_cursor` back as `cursor`. */
  getPage(userId: string, options: PageOptions = {}): Promise<MemoryPage> {
    const query = params({ limit: options.limit, cursor: options.cursor, agent_id: options.agentId, run_id: options.runId });
    return this.send({ method: "GET", path: `/v1/memories/user/${seg(userId)}`, query }, options);
  }

  /** Every page of a user's memories, fetched as the iteration reaches it. */
  async *pages(userId: string, options: IterateOptions = {}): AsyncGenerator<MemoryPage, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.getPage(userId, { ...options, limit: options.pageSize ?? 100, cursor });
      yield page;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /** Every memory of a user, newest first, across all pages (lazily): `for await (const m of ...)`. */
  async *getAll(userId: string, options: IterateOptions = {}): AsyncGenerator<Memory, void, undefined> {
    for await (const page of this.pages(userId, options)) yield* page.memories;
  }

  /** New content (re-embedded) and/or metadata (keys given replace theirs, others stay). */
  update(memoryId: string, options: UpdateOptions): Promise<Memory> {
    if (options.content === undefined && options.metadata === undefined) {
      return Promise.reject(new Error("update needs content, metadata or both"));
    }
    const body: Record<string, unknown> = {};
    if (options.content !== undefined) body["content"] = options.content;
    if (options.metadata !== undefined) body["metadata"] = options.metadata;
    return this.send({ method: "PUT", path: `/v1/memories/${seg(memoryId)}`, body }, options);
  }

  delete(memoryId: string, options: RequestOptions = {}): Promise<Deleted> {
    return this.send({ method: "DELETE", path: `/v1/memories/${seg(memoryId)}` }, options);
  }

  /** Erase every memory of a user, their history and message log. */
  deleteAll(userId: string, options: RequestOptions = {}): Promise<Erased> {
    return this.send({ method: "DELETE", path: `/v1/memories/user/${seg(userId)}` }, options);
  }

  async history(memoryId: string, options: RequestOptions = {}): Promise<HistoryEntry[]> {
    const data = await this.send<{ history: HistoryEntry[] }>(
      { method: "GET", path: `/v1/memories/${seg(memoryId)}/history` },
      options,
    );
    return data.history;
  }

  // -- users ------------------------------------------------------------------------------------

  userStats(userId: string, options: RequestOptions = {}): Promise<UserStats> {
    return this.send({ method: "GET", path: `/v1/users/${seg(userId)}/stats` }, options);
  }

  entities(userId: string, options: RequestOptions & { limit?: number } = {}): Promise<EntityList> {
    return this.send(
      { method: "GET", path: `/v1/users/${seg(userId)}/entities`, query: params({ limit: options.limit }) },
      options,
    );
  }

  entityMemories(userId: string, name: string, options: RequestOptions & { limit?: number } = {}): Promise<EntityMemories> {
    const path = `/v1/users/${seg(userId)}/entities/${seg(name)}/memories`;
    return this.send({ method: "GET", path, query: params({ limit: options.limit }) }, options);
  }

  // -- jobs -------------------------------------------------------------------------------------

  job(jobId: string, options: RequestOptions = {}): Promise<Job> {
    return this.send({ method: "GET", path: `/v1/jobs/${seg(jobId)}` }, options);
  }

  /** Poll until the job has succeeded or failed (check `state`); JobTimeoutError after `waitMs`. */
  async waitForJob(jobId: string, options: WaitOptions = {}): Promise<Job> {
    const waitMs = options.waitMs ?? 60_000;
    const interval = options.pollIntervalMs ?? 500;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const job = await this.job(jobId, options);
      if (job.state === "succeeded" || job.state === "failed") return job;
      if (Date.now() + interval > deadline) {
        throw new JobTimeoutError(`job ${jobId} still ${job.state} after ${waitMs} ms`);
      }
      await sleep(interval, options.signal);
    }
  }

  // -- service ----------------------------------------------------------------------------------

  health(options: RequestOptions = {}): Promise<Health> {
    return this.send({ method: "GET", path: "/v1/health" }, options);
  }

  status(options: RequestOptions = {}): Promise<Status> {
    return this.send({ method: "GET", path: "/v1/status" }, options);
  }
}

/** `client.admin`: key management and metrics. */
export class AdminAPI {
  constructor(private readonly client: MemoryClient) {}

  /** A new key; `key` in the result is its secret, shown only this once. */
  createKey(
    tenant: string,
    options: RequestOptions & { role?: "user" | "admin"; name?: string; rateLimit?: number } = {},
  ): Promise<CreatedKey> {
    const body: Record<string, unknown> = { tenant, role: options.role ?? "user" };
    if (options.name !== undefined) body["name"] = options.name;
    if (options.rateLimit !== undefined) body["rate_limit"] = options.rateLimit;
    return this.client.send({ method: "POST", path: "/v1/admin/keys", body }, options);
  }

  async listKeys(options: RequestOptions & { tenant?: string; includeRevoked?: boolean } = {}): Promise<ApiKey[]> {
    const query = params({ tenant: options.tenant, include_revoked: options.includeRevoked });
    const data = await this.client.send<{ keys: ApiKey[] }>({ method: "GET", path: "/v1/admin/keys", query }, options);
    return data.keys;
  }

  revokeKey(keyId: string, options: RequestOptions = {}): Promise<ApiKey> {
    return this.client.send({ method: "DELETE", path: `/v1/admin/keys/${seg(keyId)}` }, options);
  }

  /** The Prometheus exposition text. */
  metrics(options: RequestOptions = {}): Promise<string> {
    return this.client.send({ method: "GET", path: "/v1/metrics", text: true }, options);
  }
}

/**
 * `client.webhooks`: the webhooks of the key's tenant. Deliveries are signed with the Standard
 * Webhooks scheme; verify them on the receiving side with the secret `create` (or
 * `rotateSecret`) returned, e.g. with the `standardwebhooks` package.
 */
export class WebhooksAPI {
  constructor(private readonly client: MemoryClient) {}

  private path(webhookId: string, ...rest: string[]): string {
    return [`/v1/webhooks/${seg(webhookId)}`, ...rest].join("/");
  }

  /**
   * A new webhook; `secret` in the result signs its deliveries and is shown only this once. Not
   * resent after a connection failure (`APIConnectionError`; the service may have made it).
   */
  create(url: string, options: CreateWebhookOptions = {}): Promise<CreatedWebhook> {
    const body: Record<string, unknown> = { url };
    if (options.eventTypes !== undefined) body["event_types"] = options.eventTypes;
    if (options.description !== undefined) body["description"] = options.description;
    if (options.enabled !== undefined) body["enabled"] = options.enabled;
    if (options.format !== undefined) body["format"] = options.format;
    return this.client.send({ method: "POST", path: "/v1/webhooks", body, resendAfterDrop: false }, options);
  }

  async list(options: RequestOptions = {}): Promise<Webhook[]> {
    const data = await this.client.send<{ webhooks: Webhook[] }>({ method: "GET", path: "/v1/webhooks" }, options);
    return data.webhooks;
  }

  get(webhookId: string, options: RequestOptions = {}): Promise<Webhook> {
    return this.client.send({ method: "GET", path: this.path(webhookId) }, options);
  }

  /** Change what is given, keep the rest (`description: null` removes the description). */
  update(webhookId: string, options: UpdateWebhookOptions): Promise<Webhook> {
    const body: Record<string, unknown> = {};
    if (options.url !== undefined) body["url"] = options.url;
    if (options.eventTypes !== undefined) body["event_types"] = options.eventTypes;
    if (options.description !== undefined) body["description"] = options.description;
    if (options.enabled !== undefined) body["enabled"] = options.enabled;
    if (options.format !== undefined) body["format"] = options.format;
    if (Object.keys(body).length === 0) return Promise.reject(new Error("update needs at least one change"));
    return this.client.send({ method: "PATCH", path: this.path(webhookId), body }, options);
  }

  /** Delete it; deliveries still waiting for it are dropped. */
  delete(webhookId: string, options: RequestOptions = {}): Promise<Deleted> {
    return this.client.send({ method: "DELETE", path: this.path(webhookId) }, options);
  }

  /**
   * A new secret (shown only this once). For `overlapSeconds` (default: the service's
   * WEBHOOK_SECRET_OVERLAP_SECONDS) deliveries carry signatures by both secrets. Not resent after
   * a connection failure: a second rotation would replace the secret this call never returned.
   */
  rotateSecret(webhookId: string, options: RequestOptions & { overlapSeconds?: number } = {}): Promise<RotatedSecret> {
    const call: Call = { method: "POST", path: this.path(webhookId, "rotate-secret"), resendAfterDrop: false };
    if (options.overlapSeconds !== undefined) call.body = { overlap_seconds: options.overlapSeconds };
    return this.client.send(call, options);
  }

  /** Queue a `webhook.test` event to this webhook; its delivery shows the outcome once sent. */
  test(webhookId: string, options: RequestOptions = {}): Promise<Delivery> {
    return this.client.send({ method: "POST", path: this.path(webhookId, "test") }, options);
  }

  /** One page of the webhook's deliveries, newest first; pass `next_cursor` back as `cursor`. */
  deliveries(webhookId: string, options: DeliveriesOptions = {}): Promise<DeliveryPage> {
    const query = params({ limit: options.limit, cursor: options.cursor, state: options.state });
    return this.client.send({ method: "GET", path: this.path(webhookId, "deliveries"), query }, options);
  }

  /** Every delivery of the webhook, newest first, across all pages (lazily). */
  async *iterDeliveries(
    webhookId: string,
    options: RequestOptions & { pageSize?: number; state?: DeliveryState } = {},
  ): AsyncGenerator<Delivery, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.deliveries(webhookId, { ...options, limit: options.pageSize ?? 100, cursor });
      yield* page.deliveries;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  /** Send a delivery again now, whatever its state, with the same event id. */
  redeliver(webhookId: string, deliveryId: string, options: RequestOptions = {}): Promise<Delivery> {
    const path = this.path(webhookId, "deliveries", seg(deliveryId), "redeliver");
    return this.client.send({ method: "POST", path }, options);
  }
}

function retryAfterOf(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  if (value === null) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

function parseResponse<T>(call: Call, response: Response, text: string): T {
  const requestId = response.headers.get("x-request-id") ?? undefined;
  if (response.ok) {
    if (call.text) return text as T;
    try {
      const body = JSON.parse(text) as { data: T };
      return body.data;
    } catch (cause) {
      throw new Mem0Error(`Unexpected response body for ${call.method} ${call.path}`, {
        code: "INVALID_RESPONSE",
        status: response.status,
        ...(requestId === undefined ? {} : { requestId }),
        cause,
      });
    }
  }
  let code: string | undefined;
  let message = `HTTP ${response.status}: ${text.slice(0, 200)}`;
  let details: Record<string, unknown> = {};
  try {
    const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error;
    if (error && typeof error.code === "string" && typeof error.message === "string") {
      code = error.code;
      message = error.message;
      details = (error.details as Record<string, unknown> | undefined) ?? {};
    }
  } catch {
    // not the envelope (a proxy's page?): keep the status and the start of the body
  }
  const Cls = errorClass(code, response.status);
  const retryAfter = retryAfterOf(response);
  throw new Cls(message, {
    ...(code === undefined ? {} : { code }),
    details,
    status: response.status,
    ...(requestId === undefined ? {} : { requestId }),
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}
