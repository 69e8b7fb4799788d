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

/** The first `<tag …>` (or `<tag/>`) in `xml`; `tag` may carry a prefix (`cv:vm`). */
export function findElement(xml: string, tag: string): XmlElement | undefined {
  const name = tag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const open = new RegExp(`<${name}(\\s[^>]*?)?(/?)>`).exec(xml);
  if (!open) return undefined;
  const attrs = attributes(open[1] ?? "");
  if (open[2] === "/") return { attrs, inner: "" };
  const start = open.index + open[0].length;
  const close = xml.indexOf(`</${tag}>`, start);
  return { attrs, inner: close < 0 ? "" : xml.slice(start, close) };
}

/** The unescaped, trimmed text of the first `<tag>`, or undefined. */
export function elementText(xml: string, tag: string): string | undefined {
  const e = findElement(xml, tag);
  return e && unescapeXml(e.inner).trim();
}
