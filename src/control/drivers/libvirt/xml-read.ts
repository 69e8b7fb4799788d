/**
 * Just enough XML reading for libvirt's own, well-formed output (`domcapabilities`, `dumpxml`): find an element
 * by name, read its attributes and text. No dependency: libvirt's formats are fixed and small, and a full parser
 * would be the only new package of the driver. Not for arbitrary XML (no CDATA, no comments inside elements).
 */

/** Decodes the five predefined entities and numeric character references. */
export function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
    if (e[0] !== "#") return named[e.toLowerCase()] ?? "";
    const cp = e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
    // No such character (beyond U+10FFFF): U+FFFD, as an XML reader's replacement; never an untyped RangeError.
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : "\ufffd";
  });
}

/** One element found in a document: its attributes and raw inner XML (empty for `<x/>`). */
export interface XmlElement {
  readonly attrs: Readonly<Record<string, string>>;
  readonly inner: string;
}

function attributes(source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of source.matchAll(/([A-Za-z_][\w:.-]*)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) {
    const [, name = "", single, double] = m;
    out[name] = unescapeXml(single ?? double ?? "");
  }
  return out;
}

/**
 * The first `<tag …>` (or `<tag/>`) in `xml`; `tag` may carry a prefix (`cv:vm`). A scan, not a regular
 * expression: on input with many `<tag` and no `>` (hostile or cut short) a backtracking pattern retries the rest
 * of the text from every occurrence, quadratic in the input; here each character is looked at a bounded number of
 * times.
 */
export function findElement(xml: string, tag: string): XmlElement | undefined {
  const opener = `<${tag}`;
  for (let at = xml.indexOf(opener); at >= 0; at = xml.indexOf(opener, at + 1)) {
    const after = xml[at + opener.length];
    // `<tag>`, `<tag/>`, `<tag attr…>`; not `<tagname…>`.
    if (
      after !== ">" &&
      after !== "/" &&
      after !== " " &&
      after !== "\t" &&
      after !== "\n" &&
      after !== "\r"
    ) {
      continue;
    }
    const end = xml.indexOf(">", at);
    // No `>` after this opener: none after any later one either.
    if (end < 0) return undefined;
    const selfClosing = xml[end - 1] === "/";
    const attrs = attributes(xml.slice(at + opener.length, selfClosing ? end - 1 : end));
    if (selfClosing) return { attrs, inner: "" };
    const close = xml.indexOf(`</${tag}>`, end + 1);
    return { attrs, inner: close < 0 ? "" : xml.slice(end + 1, close) };
  }
  return undefined;
}

/** The unescaped, trimmed text of the first `<tag>`, or undefined. */
export function elementText(xml: string, tag: string): string | undefined {
  const e = findElement(xml, tag);
  return e && unescapeXml(e.inner).trim();
}
