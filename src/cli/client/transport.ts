/**
 * The CLI's wire: one HTTP/1.1 exchange over node:http (node:https for an `https:` server, loaded only then).
 *
 * Why not node's fetch: loading it (undici and its WebAssembly HTTP parser) costs ~0.1 s of every CLI start on this
 * class of machine — about as much as the rest of a fleet command's start together — and V8 then keeps the process
 * alive a little longer finishing the parser's compilation. A CLI makes one or a few requests per run; node:http is
 * already in the snapshot node starts from.
 *
 * `signal` aborts the exchange (a timeout, Ctrl-C); the caller tells which from its own signals.
 */
import {
  type ClientRequest,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";

export interface Exchange {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON text, or the raw bytes of a binary upload. */
  readonly body?: string | Uint8Array;
  readonly signal: AbortSignal;
}

/** An answer whose headers have arrived; its body is read with `text()`/`bytes()`, or streamed from `stream`. */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly stream: AsyncIterable<Buffer>;
  bytes(): Promise<Buffer>;
  text(): Promise<string>;
}

type RequestFn = (url: URL, options: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest;

/** node:https (and TLS with it) is loaded only for an https server: most runs talk to 127.0.0.1. */
async function requestFor(url: URL): Promise<RequestFn> {
  return url.protocol === "https:" ? (await import("node:https")).request : httpRequest;
}

/** Sends one request and resolves when the answer's headers arrive (rejects when none comes or `signal` aborts). */
export async function send(x: Exchange): Promise<Answer> {
  const url = new URL(x.url);
  const request = await requestFor(url);
  const headers: Record<string, string> = { ...x.headers };
  if (x.body !== undefined) headers["content-length"] = String(Buffer.byteLength(x.body));
  return new Promise<Answer>((resolve, reject) => {
    const req = request(url, { method: x.method, headers, signal: x.signal }, (res) => {
      resolve(answerOf(res));
    });
    req.on("error", reject);
    req.end(x.body);
  });
}

function answerOf(res: IncomingMessage): Answer {
  const bytes = async (): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    stream: res,
    bytes,
    text: async () => (await bytes()).toString("utf8"),
  };
}
