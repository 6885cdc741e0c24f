/**
 * One error class per error code of the service's envelope, under one base class.
 *
 * Every error carries what the envelope said (`code`, `message`, `details`), the HTTP `status`
 * and the response's `X-Request-ID` as `requestId` (quote it when reporting a problem: the
 * service's logs are keyed by it). Transport failures have no response: `status` and
 * `requestId` are then undefined.
 */

export interface Mem0ErrorInit {
  code?: string;
  details?: Record<string, unknown>;
  status?: number;
  requestId?: string;
  retryAfter?: number;
  cause?: unknown;
}

export class Mem0Error extends Error {
  static readonly defaultCode: string = "ERROR";
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly status: number | undefined;
  readonly requestId: string | undefined;
  /** Seconds the service asked to wait (Retry-After), on 429, 503 and IDEMPOTENCY_IN_PROGRESS. */
  readonly retryAfter: number | undefined;

  constructor(message: string, init: Mem0ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code ?? (new.target as typeof Mem0Error).defaultCode;
    this.details = init.details ?? {};
    this.status = init.status;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }

  override toString(): string {
    const where = this.status === undefined ? "" : ` (HTTP ${this.status}, request ${this.requestId ?? "?"})`;
    return `${this.name}: ${this.code}: ${this.message}${where}`;
  }
}

/** The service could not be reached, or the connection dropped before a response. */
export class APIConnectionError extends Mem0Error {
  static override readonly defaultCode: string = "CONNECTION_ERROR";
}

/** The call took longer than `timeoutMs`. Not retried: the caller's time is spent. */
export class APITimeoutError extends APIConnectionError {
  static override readonly defaultCode: string = "TIMEOUT";
}

/** `waitForJob` gave up before the job finished (the job goes on running). */
export class JobTimeoutError extends Mem0Error {
  static override readonly defaultCode: string = "JOB_TIMEOUT";
}

export class InvalidRequestError extends Mem0Error {
  static override readonly defaultCode: string = "INVALID_REQUEST";
}

export class UnauthorizedError extends Mem0Error {
  static override readonly defaultCode: string = "UNAUTHORIZED";
}

export class ForbiddenError extends Mem0Error {
  static override readonly defaultCode: string = "FORBIDDEN";
}

export class NotFoundError extends Mem0Error {
  static override readonly defaultCode: string = "NOT_FOUND";
}

export class MemoryNotFoundError extends NotFoundError {
  static override readonly defaultCode: string = "MEMORY_NOT_FOUND";
}

export class MethodNotAllowedError extends Mem0Error {
  static override readonly defaultCode: string = "METHOD_NOT_ALLOWED";
}

/** The Idempotency-Key was used before with a different request. */
export class IdempotencyConflictError extends Mem0Error {
  static override readonly defaultCode: string = "IDEMPOTENCY_CONFLICT";
}

/** The first request with this Idempotency-Key is still running; retried like a 429. */
export class IdempotencyInProgressError extends Mem0Error {
  static override readonly defaultCode: string = "IDEMPOTENCY_IN_PROGRESS";
}

export class PayloadTooLargeError extends Mem0Error {
  static override readonly defaultCode: string = "PAYLOAD_TOO_LARGE";
}

/** Over the key's rate limit; `retryAfter` is the service's Retry-After, in seconds. */
export class RateLimitError extends Mem0Error {
  static override readonly defaultCode: string = "RATE_LIMIT_EXCEEDED";
}

export class InternalServerError extends Mem0Error {
  static override readonly defaultCode: string = "INTERNAL_ERROR";
}

/** A backend of the service is down or too slow; `dependency` names it. */
export class ServiceUnavailableError extends Mem0Error {
  static override readonly defaultCode: string = "SERVICE_UNAVAILABLE";

  get dependency(): string | undefined {
    const value = this.details["dependency"];
    return typeof value === "string" ? value : undefined;
  }
}

type ErrorClass = typeof Mem0Error;

const BY_CODE: Record<string, ErrorClass> = Object.fromEntries(
  [
    InvalidRequestError,
    UnauthorizedError,
    ForbiddenError,
    NotFoundError,
    MemoryNotFoundError,
    MethodNotAllowedError,
    IdempotencyConflictError,
    IdempotencyInProgressError,
    PayloadTooLargeError,
    RateLimitError,
    InternalServerError,
    ServiceUnavailableError,
  ].map((cls) => [cls.defaultCode, cls]),
);

const BY_STATUS: Record<number, ErrorClass> = {
  400: InvalidRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  405: MethodNotAllowedError,
  409: IdempotencyConflictError,
  413: PayloadTooLargeError,
  429: RateLimitError,
  500: InternalServerError,
  503: ServiceUnavailableError,
};

/** The class for an envelope's code; by HTTP status when the code is unknown or absent. */
export function errorClass(code: string | undefined, status: number): ErrorClass {
  if (code !== undefined && BY_CODE[code] !== undefined) return BY_CODE[code];
  return BY_STATUS[status] ?? (status >= 500 ? InternalServerError : Mem0Error);
}
