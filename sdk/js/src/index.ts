/**
 * TypeScript/JavaScript client for the Mem0 Memory System REST API.
 *
 *     import { MemoryClient } from "@mem0/client";
 *     const client = new MemoryClient({ apiKey: "your_key" });
 */

export * from "./client.js";
export * from "./errors.js";
export type * from "./types.js";
