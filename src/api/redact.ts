/**
 * Keeping tokens out of logs and answers wherever a client puts them (issue 13). The API reads tokens from the
 * Authorization header only, which the logger's `redact` paths blank; but a client may also put one in the URL
 * (`?token=cvt_…`, a path segment) or in another header, and fastify's request logger logs the whole URL. So:
 *  - `loggedUrl` is the URL a log line shows: a path segment or query parameter that holds a token-shaped secret
 *    (`cvt_`, in any case, percent-encoded or not), or a parameter named like a credential, is `[redacted]`;
 *  - `redactSecrets` blanks token-shaped secrets in any text: every log line before it is written
 *    (`LOG_SAFETY.hooks.streamWrite`), and every problem (`detail`, `instance`) before it is sent.
 */

/** What a blanked secret is replaced with. */
export const CENSOR = "[redacted]";

/** A token's prefix, in any case, also with its `_` percent-encoded (the rest of the token runs to the end). */
const TOKEN_IN_TEXT = /cvt(?:_|%5f)[A-Za-z0-9_%-]*/gi;
const TOKEN_MARK = /cvt_/i;
/** Query parameter names that carry credentials by convention, whatever their value looks like. */
const CREDENTIAL_NAME =
  /token|secret|passw|pwd|auth|credential|api[-_]?key|access[-_]?key|session|signature/i;
/** Longest URL a log line shows; a longer one is cut (a 16 KiB URL is noise, or an attack). */
const MAX_LOGGED_URL = 2048;

function decoded(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, " "));
  } catch {
    return part;
  }
}

/** True when a URL component holds a token-shaped secret, as sent or once decoded. */
function holdsSecret(part: string): boolean {
  return TOKEN_MARK.test(part) || /cvt%5f/i.test(part) || TOKEN_MARK.test(decoded(part));
}

/** `text` with every token-shaped secret replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  return text.replace(TOKEN_IN_TEXT, CENSOR);
}

/** A URL path with every segment that holds a token-shaped secret replaced by `[redacted]`. */
export function pathWithoutSecrets(path: string): string {
  return path
    .split("/")
    .map((s) => (holdsSecret(s) ? CENSOR : s))
    .join("/");
}

/**
 * A request URL as logs may show it: path segments holding a secret blanked, the query's parameter names kept and
 * the values of credential-like or secret-holding parameters blanked, cut to `MAX_LOGGED_URL` characters.
 *
 * @example
 * ```ts
 * loggedUrl("/v1/vms?limit=5&token=cvt_abc"); // "/v1/vms?limit=5&token=[redacted]"
 * ```
 */
export function loggedUrl(url: string): string {
  const q = url.indexOf("?");
  const shownPath = pathWithoutSecrets(q < 0 ? url : url.slice(0, q));
  let shown = shownPath;
  if (q >= 0) {
    const params = url
      .slice(q + 1)
      .split("&")
      .map((p) => {
        const eq = p.indexOf("=");
        const name = eq < 0 ? p : p.slice(0, eq);
        if (holdsSecret(name)) return CENSOR;
        if (eq < 0) return name;
        const value = p.slice(eq + 1);
        return CREDENTIAL_NAME.test(decoded(name)) || holdsSecret(value) ? `${name}=${CENSOR}` : p;
      });
    shown = `${shownPath}?${params.join("&")}`;
  }
  return shown.length > MAX_LOGGED_URL ? `${shown.slice(0, MAX_LOGGED_URL)}…` : shown;
}

/** The request fields a log line shows (fastify's own `req` serializer logs `req.url` whole). */
export function requestLogView(req: {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number } | null;
}): Record<string, unknown> {
  return {
    method: req.method,
    url: loggedUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
