/** The REST API: `buildApi` and the pieces tests and `serve` use. */
export { type ApiApp, type ApiOptions, buildApi, LOG_SAFETY, REDACT_PATHS } from "./app.ts";
export type { Principal, RouteEntry, RoutePermission } from "./auth.ts";
export {
  type FieldError,
  PROBLEM_CONTENT_TYPE,
  type Problem,
  problemType,
  statusForCode,
  toProblem,
} from "./problem.ts";
