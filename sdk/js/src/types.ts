/** The `data` of the service's envelope, one interface per shape, as it is on the wire. */

export interface Relationship {
  type: string;
  entity: string;
  confidence: number;
}

/** The contract's memory object. `score` is set on search hits, `embedding` when asked for. */
export interface Memory {
  id: string;
  content: string;
  user_id: string;
  agent_id: string | null;
  run_id: string | null;
  metadata: Record<string, unknown>;
  relationships: Relationship[];
  created_at: string | null;
  updated_at: string | null;
  score?: number;
  embedding?: number[];
}

export interface AddResult {
  memories: Memory[];
  count: number;
  inference: "none" | "extracted" | "fallback";
}

export interface SearchResult {
  memories: Memory[];
  count: number;
  query: string;
}

/** One page of a user's memories, newest first; `next_cursor` is null on the last page. */
export interface MemoryPage {
  memories: Memory[];
  total: number;
  limit: number;
  next_cursor: string | null;
}

export interface Deleted {
  id: string;
  deleted: boolean;
}

export interface Erased {
  user_id: string;
  deleted_count: number;
}

export interface HistoryEntry {
  id: string;
  memory_id: string;
  event: string;
  old_content: string | null;
  new_content: string | null;
  created_at: string | null;
  updated_at: string | null;
}

export interface UserStats {
  user_id: string;
  memory_count: number;
  first_write: string | null;
  last_write: string | null;
  sources: Record<string, number>;
  entity_count: number;
}

export interface Entity {
  name: string;
  key: string;
  memory_count: number;
  confidence: number;
}

export interface EntityList {
  user_id: string;
  entities: Entity[];
  count: number;
  source: "neo4j" | "postgres";
}

export interface EntityMemories {
  user_id: string;
  entity: string;
  memories: Memory[];
  count: number;
  source: "neo4j" | "postgres";
}

export interface ErrorInfo {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

export type JobState = "queued" | "running" | "succeeded" | "failed";

/** What `add(..., { asyncMode: true })` returns: poll it with `job()` or `waitForJob()`. */
export interface JobAccepted {
  job_id: string;
  state: JobState;
  status_url: string;
}

export interface Job {
  job_id: string;
  kind: "add";
  state: JobState;
  attempts: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  status_url: string;
  result: AddResult | null;
  error: ErrorInfo | null;
}

export interface DependencyState {
  up: boolean;
  latency_ms?: number | null;
  checked_at?: string | null;
  error?: string | null;
}

export interface Health {
  status: "ok" | "degraded";
  version: string;
  dependencies: Record<string, DependencyState>;
}

export interface Status {
  version: string;
  uptime_seconds: number;
  profile: string;
  environment: string;
  providers: Record<string, string>;
  dependencies: Record<string, DependencyState>;
  memory_count: number;
  tenant: string;
}

export interface ApiKey {
  id: string;
  prefix: string;
  tenant: string;
  role: "user" | "admin";
  name: string | null;
  rate_limit_per_minute: number | null;
  well_known: boolean;
  created_at: string;
  revoked_at: string | null;
}

export interface CreatedKey extends ApiKey {
  /** The secret; shown once, only its hash is stored. */
  key: string;
}

export interface Message {
  role: "user" | "assistant" | "system";
  content: string;
  name?: string;
}

// -- webhooks ------------------------------------------------------------------------------------

export type WebhookEventType =
  | "memory.created"
  | "memory.updated"
  | "memory.deleted"
  | "user.erased"
  | "job.completed"
  | "job.failed";

export type WebhookFormat = "standard" | "mem0";

export type DeliveryState = "pending" | "succeeded" | "dead";

/** An endpoint of the key's tenant; its secret is never shown again after creation. */
export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  event_types: WebhookEventType[];
  enabled: boolean;
  format: WebhookFormat;
  created_at: string;
  updated_at: string;
  /** During a rotation's overlap: until when deliveries are also signed with the previous secret. */
  previous_secret_expires_at: string | null;
}

export interface CreatedWebhook extends Webhook {
  /** The signing secret (`whsec_...`); shown only this once. */
  secret: string;
}

export interface RotatedSecret {
  webhook: Webhook;
  /** The new signing secret; shown only this once. */
  secret: string;
}

/** One event on its way to one webhook; `event_id` is the `webhook-id` header of every attempt. */
export interface Delivery {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: WebhookEventType | "webhook.test";
  state: DeliveryState;
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_duration_ms: number | null;
  last_error: string | null;
  last_response_excerpt: string | null;
  created_at: string;
  finished_at: string | null;
}

/** One page of a webhook's deliveries, newest first; `next_cursor` is null on the last page. */
export interface DeliveryPage {
  deliveries: Delivery[];
  limit: number;
  next_cursor: string | null;
}
