/** The control plane: inventory (storage), audit chain, roles and tokens. Operations, placement and drivers build on these. */
export * from "./audit/index.ts";
export * from "./inventory/index.ts";
export { canonicalJson, type JsonObject, type JsonValue } from "./json.ts";
export * from "./rbac.ts";
export * from "./tokens.ts";
