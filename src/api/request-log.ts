/**
 * The request log levels. fastify writes two info lines per request (incoming, completed), which at thousands of
 * requests a second is a large part of the cost of a cheap route and buries what an operator looks for. Here
 * both are at debug for a request that succeeded; the completed line of a client error is at warn and of a server
 * error at error, and names the request (method, URL with secrets blanked) since the incoming line is hidden.
 * The default `--log-level info` then shows only what went wrong; `--log-level debug` shows every request.
 */
import { type FastifyReply, type FastifyRequest, LogController } from "fastify";

export type RequestLogLevel = "debug" | "warn" | "error";

/** The level of a request's completed line, from its status code. */
export function requestLogLevel(status: number): RequestLogLevel {
  return status >= 500 ? "error" : status >= 400 ? "warn" : "debug";
}

/**
 * fastify's log controller with the levels above (a level that is off is pino's no-op function, so a request
 * costs two small objects).
 *
 * @example
 * ```ts
 * const app = Fastify({ loggerInstance, logController: new RequestLogController() });
 * ```
 */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, "incoming request");
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const level = error ? "error" : requestLogLevel(reply.statusCode);
    const line = { res: reply, responseTime: reply.elapsedTime };
    if (level === "debug") reply.log.debug(line, "request completed");
    else if (error) reply.log.error({ req: request, ...line, err: error }, "request errored");
    else reply.log[level]({ req: request, ...line }, "request completed");
  }
}
