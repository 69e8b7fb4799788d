/**
 * The repository stands alone (docs/architecture.md §7): every documentation reference in it can be followed
 * without anything outside it.
 *
 * Scanned: every text file under src/, test/, bench/ and scripts/, README.md, and docs/*.md. Checked:
 * (a) no path points outside the repository (the working-material folder next to it, or absolute machine paths);
 * (b) every section citation `<page>.md §N[.M]` names a page that exists as docs/<page>.md with a heading numbered
 *     N[.M] — headings carry their number as `## 7. Title` or `### 7.1 Title` — including the later members of a
 *     list (`§12.3, §12.4`, `§7.2–7.4`, `§2/§3`) and numbered entries (`§8 item 2`, `§2.2 note 7`,
 *     `§15 pitfall 13`, `§16.3 case 1`: a list item `2.` inside that section). A bare `§N` belongs to the page the
 *     file named last before it (in docs/*.md, to the page itself); `RFC 8017 §9.1.1` and the like are not ours;
 * (c) every relative markdown link in a .md file resolves to an existing file;
 * (d) every `.md` file named by a plain or docs/-relative path exists (relative to the repository root or to the
 *     citing file), and pitfalls are cited as `§15 pitfall N` of docs/sev-interface.md, never as a bare "pitfall N".
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = resolve(import.meta.dirname, "..");
const SCANNED_DIRS = ["src", "test", "bench", "scripts"];
const TEXT_EXTENSIONS = [".ts", ".mts", ".mjs", ".js", ".cjs", ".md", ".sh", ".json"];
const SKIPPED_DIRS = new Set(["node_modules", "dist", ".git"]);

/** A numbered heading of a docs page, with the 1-based line range of its body and the list items in it. */
interface Section {
  readonly number: string;
  readonly title: string;
  readonly items: ReadonlySet<number>;
}

type DocIndex = ReadonlyMap<string, ReadonlyMap<string, Section>>;

/** Headings carry their number first: `## 7. Title`, `### 7.1 Title`, `#### 12.3.1 Title`. */
const HEADING = /^(#{1,6})\s+(\d+(?:\.\d+)*)\.?\s+(.*)$/;
/** A numbered list item, optionally a checklist item: `1. …`, `- [ ] 1. …`. */
const LIST_ITEM = /^\s*(?:[-*]\s+\[[ xX]\]\s+)?(\d+)\.\s/;

function indexDoc(text: string): Map<string, Section> {
  const lines = text.split("\n");
  const heads: { number: string; title: string; level: number; line: number }[] = [];
  let fenced = false;
  lines.forEach((line, i) => {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) return;
    const m = HEADING.exec(line);
    if (m) heads.push({ level: m[1]!.length, number: m[2]!, title: m[3]!.trim(), line: i });
  });
  const sections = new Map<string, Section>();
  heads.forEach((h, k) => {
    const next = heads.slice(k + 1).find((o) => o.level <= h.level);
    const body = lines.slice(h.line + 1, next ? next.line : lines.length);
    const items = new Set<number>();
    for (const l of body) {
      const m = LIST_ITEM.exec(l);
      if (m) items.add(Number(m[1]));
    }
    sections.set(h.number, { number: h.number, title: h.title, items });
  });
  return sections;
}

function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** URLs are not repository paths: blank them out, keeping every offset (and so every line number) in place. */
function blankUrls(text: string): string {
  return text.replace(/\b(?:https?|ftp):\/\/[^\s)>\]`'"]+/g, (u) => " ".repeat(u.length));
}

// Built from pieces so that this file does not trip its own check (a).
const OUTSIDE = new RegExp(
  [
    `\\.\\./${"shared"}\\b`,
    `(?<![\\w.-])${"shared"}/(?:docs|vectors|tools|hooks|DESIGN\\.md)\\b`,
    `/${"work"}/`,
  ].join("|"),
  "g",
);

/** `docs/sev-interface.md`, `sev-interface.md`, `` `threat-model.md` ``, `../../docs/guest-isa.md`, … */
const PAGE_NAME = /(?<![\w./:@-])((?:\.{1,2}\/)*(?:docs\/)?)([A-Za-z][\w-]*)\.md\b/g;
/** What may stand between a page name and its first `§`: a closing backtick, a markdown link target, spaces, one
 * line break with a comment continuation. */
const GAP = /`?(?:\]\([^)\s]*\))?[ \t]*(?:\r?\n[ \t]*(?:\*(?!\/)|\/\/|#+)?[ \t]*)?/y;
const REF = /§\s?(\d+(?:\.\d+)*)/y;
const ITEMS = /\s+(item|items|note|notes|pitfall|pitfalls|case|cases)\s+(\d+)((?:\s*(?:,|and|–|-)\s*\d+)*)/iy;
const LIST_SEP = /\s*(,\s*and|,|;|\/|and|–|-)\s*/y;
const BARE_NUMBER = /(\d+(?:\.\d+)*)/y;
const BARE_REF = /§\s?(\d+(?:\.\d+)*)/g;

interface Citation {
  readonly page: string;
  readonly section: string;
  readonly items: readonly number[];
  readonly offset: number;
}

function sticky(re: RegExp, text: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(text);
}

/** Reads `§N[ item K][, §M …]` starting at `at` (which holds a `§`); returns the citations and where the list ends. */
function readList(text: string, at: number, page: string): { cites: Citation[]; end: number } {
  const cites: Citation[] = [];
  let pos = at;
  let first = true;
  for (;;) {
    let m = sticky(REF, text, pos);
    let afterDash = false;
    if (!m && !first) {
      // only a range may drop the second `§`: §7.2–7.4, §16–17
      const sepText = text.slice(at, pos);
      afterDash = /[–-]\s*$/.test(sepText);
      if (afterDash) m = sticky(BARE_NUMBER, text, pos);
    }
    if (!m) break;
    const offset = pos;
    pos = m.index + m[0].length;
    const items: number[] = [];
    const it = sticky(ITEMS, text, pos);
    if (it) {
      items.push(Number(it[2]));
      for (const n of (it[3] ?? "").match(/\d+/g) ?? []) items.push(Number(n));
      pos = it.index + it[0].length;
    }
    cites.push({ page, section: m[1]!, items, offset });
    first = false;
    const sep = sticky(LIST_SEP, text, pos);
    if (!sep) break;
    const next = pos + sep[0].length;
    const isDash = /[–-]/.test(sep[1]!);
    if (text[next] === "§" || (isDash && /\d/.test(text[next] ?? ""))) {
      at = pos;
      pos = next;
      continue;
    }
    break;
  }
  return { cites, end: pos };
}

interface FileReport {
  readonly errors: string[];
  readonly citations: number;
}

/**
 * Checks one file. `file` is relative to the repository root; `docs` indexes docs/*.md by page name; `exists`
 * answers for a repository-relative path.
 */
function checkFile(
  file: string,
  rawText: string,
  docs: DocIndex,
  exists: (repoPath: string) => boolean,
): FileReport {
  const errors: string[] = [];
  const text = blankUrls(rawText);
  const where = (offset: number) => `${file}:${lineOf(text, offset)}`;
  const selfPage = /^docs\/[^/]+\.md$/.test(file) ? file.slice(5, -3) : undefined;
  const dir = dirname(file);
  const resolves = (p: string) => exists(join(".", p)) || exists(join(dir, p));

  // (a) nothing outside the repository
  OUTSIDE.lastIndex = 0;
  for (let m = OUTSIDE.exec(text); m; m = OUTSIDE.exec(text)) {
    errors.push(`${where(m.index)}: points outside the repository ("${m[0]}"); cite the docs/ page instead`);
  }

  // (b) named citations; remember page mentions and the spans the lists cover
  const covered: [number, number][] = [];
  const mentions: { offset: number; page: string }[] = [];
  const cites: Citation[] = [];
  PAGE_NAME.lastIndex = 0;
  for (let m = PAGE_NAME.exec(text); m; m = PAGE_NAME.exec(text)) {
    const token = m[0];
    const page = m[2]!;
    const end = m.index + token.length;
    const isDocsPage = docs.has(page) && exists(`docs/${page}.md`);
    // (d) the named .md file exists (link targets are checked by (c))
    if (text.slice(m.index - 2, m.index) !== "](" && !resolves(token)) {
      errors.push(
        isDocsPage && !m[1]
          ? `${where(m.index)}: write "docs/${page}.md", not "${token}"`
          : `${where(m.index)}: "${token}" does not exist in this repository`,
      );
    }
    const gap = sticky(GAP, text, end);
    const at = end + (gap ? gap[0].length : 0);
    if (!isDocsPage) {
      if (text[at] === "§") covered.push([at, readList(text, at, page).end]);
      continue;
    }
    mentions.push({ offset: m.index, page });
    if (text[at] !== "§") continue;
    const list = readList(text, at, page);
    cites.push(...list.cites);
    covered.push([at, list.end]);
  }

  // (b) bare § citations belong to the page named last before them
  BARE_REF.lastIndex = 0;
  for (let m = BARE_REF.exec(text); m; m = BARE_REF.exec(text)) {
    const at = m.index;
    if (covered.some(([s, e]) => at >= s && at < e)) continue;
    if (/\b(?:RFC|ISO|IEEE|FIPS|SP)\s?[\d-]+[\w.-]*\s*$/.test(text.slice(Math.max(0, at - 24), at))) continue;
    const page = selfPage ?? mentions.filter((x) => x.offset < at).at(-1)?.page;
    if (page === undefined) {
      errors.push(`${where(at)}: "${m[0]}" without a page; write "docs/<page>.md ${m[0]}"`);
      BARE_REF.lastIndex = at + m[0].length;
      continue;
    }
    const list = readList(text, at, page);
    cites.push(...list.cites);
    covered.push([at, list.end]);
    BARE_REF.lastIndex = Math.max(list.end, at + 1);
  }

  for (const c of cites) {
    const sections = docs.get(c.page);
    const section = sections?.get(c.section);
    if (!section) {
      errors.push(`${where(c.offset)}: docs/${c.page}.md has no section ${c.section}`);
      continue;
    }
    for (const n of c.items) {
      if (!section.items.has(n)) {
        errors.push(`${where(c.offset)}: docs/${c.page}.md §${c.section} has no numbered entry ${n}`);
      }
    }
  }

  // (d) pitfalls are numbered entries of docs/sev-interface.md §15, cited as such
  for (let re = /\bpitfalls?\s+\d+/gi, m = re.exec(text); m; m = re.exec(text)) {
    const at = m.index;
    const owner = cites
      .filter((c) => c.offset < at && covered.some(([s, e]) => c.offset >= s && at < e))
      .at(-1);
    if (owner?.page !== "sev-interface" || owner.section !== "15") {
      errors.push(`${where(at)}: cite "${m[0]}" as "docs/sev-interface.md §15 ${m[0]}"`);
    }
  }

  // (c) relative markdown links
  if (file.endsWith(".md")) {
    for (let re = /\]\(([^)\s]+)\)/g, m = re.exec(text); m; m = re.exec(text)) {
      const target = m[1]!.split("#")[0]!;
      if (target === "" || /^[a-z]+:/i.test(target)) continue;
      if (!exists(join(dir, target))) {
        errors.push(`${where(m.index)}: the link target "${m[1]}" does not exist`);
      }
    }
  }

  return { errors, citations: cites.length };
}

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(join(ROOT, dir))) {
    if (SKIPPED_DIRS.has(name)) continue;
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) walk(rel, out);
    else if (TEXT_EXTENSIONS.some((e) => name.endsWith(e))) out.push(rel);
  }
  return out;
}

/** Every scanned file but this one, whose examples of bad references are there on purpose. */
function repositoryFiles(): string[] {
  const self = relative(ROOT, import.meta.filename);
  const files = SCANNED_DIRS.flatMap((d) => walk(d, [])).filter((f) => f !== self);
  files.push("README.md");
  for (const name of readdirSync(join(ROOT, "docs")))
    if (name.endsWith(".md")) files.push(join("docs", name));
  return files.sort();
}

function repositoryDocs(): DocIndex {
  const docs = new Map<string, Map<string, Section>>();
  for (const name of readdirSync(join(ROOT, "docs"))) {
    if (name.endsWith(".md")) {
      docs.set(name.slice(0, -3), indexDoc(readFileSync(join(ROOT, "docs", name), "utf8")));
    }
  }
  return docs;
}

const existsInRepo = (p: string) => {
  const abs = resolve(ROOT, p);
  return !relative(ROOT, abs).startsWith("..") && existsSync(abs);
};

describe("documentation references", () => {
  it("every citation, link and named file resolves inside the repository", () => {
    const docs = repositoryDocs();
    const errors: string[] = [];
    let citations = 0;
    for (const file of repositoryFiles()) {
      const report = checkFile(file, readFileSync(join(ROOT, file), "utf8"), docs, existsInRepo);
      errors.push(...report.errors);
      citations += report.citations;
    }
    assert.equal(errors.length, 0, `\n${errors.join("\n")}`);
    // The code cites the docs a few hundred times; far fewer means the parser stopped seeing them.
    assert.ok(citations > 200, `only ${citations} section citations found`);
  });

  it("the docs pages keep the sections the code depends on", () => {
    const docs = repositoryDocs();
    for (const page of ["sev-interface", "threat-model", "product-behaviour", "architecture"]) {
      assert.ok(docs.get(page)?.size, `docs/${page}.md has numbered sections`);
    }
    assert.equal(docs.get("sev-interface")?.get("15")?.items.size, 25, "§15 lists the 25 pitfalls");
    assert.equal(docs.get("threat-model")?.get("8")?.items.size, 20, "§8 lists the 20 tests");
  });

  describe("the checker itself", () => {
    const docs: DocIndex = new Map([
      [
        "sev-interface",
        indexDoc("## 7. ASIDs\n### 7.1 CPUID\n### 7.2 Pools\n## 15. Pitfalls\n1. one\n2. two\n"),
      ],
      ["threat-model", indexDoc("## 8. Tests\n1. **E-ONE.** x\n2. **E-TWO.** y\n")],
    ]);
    const exists = (p: string) => ["docs/sev-interface.md", "docs/threat-model.md"].includes(join(".", p));
    const errorsOf = (text: string, file = "src/x.ts") => checkFile(file, text, docs, exists).errors;

    it("accepts lists, ranges, entries and bare citations of the page named before", () => {
      const text = [
        "/** docs/sev-interface.md §7.1, §7.2 and §15 pitfall 2; docs/threat-model.md §8 item 1.",
        " * docs/sev-interface.md §7.1–7.2, docs/sev-interface.md",
        " * §7 (RFC 8017 §9.1.1); later: (§7.2, §15 pitfall 1) */",
      ].join("\n");
      assert.deepEqual(errorsOf(text), []);
      assert.equal(checkFile("src/x.ts", text, docs, exists).citations, 9);
    });

    it("reports missing sections, entries, pages and paths with file:line", () => {
      const errors = errorsOf(
        [
          "// §9 before any page",
          "// docs/sev-interface.md §7.3",
          "// docs/threat-model.md §8 item 3",
          "// pitfall 2",
          "// sev-interface.md §7",
          `// ../${"shared"}/DESIGN.md`,
          "// docs/nowhere.md §1",
        ].join("\n"),
      );
      assert.deepEqual(errors, [
        `src/x.ts:6: points outside the repository ("../${"shared"}"); cite the docs/ page instead`,
        'src/x.ts:5: write "docs/sev-interface.md", not "sev-interface.md"',
        'src/x.ts:7: "docs/nowhere.md" does not exist in this repository',
        'src/x.ts:1: "§9" without a page; write "docs/<page>.md §9"',
        "src/x.ts:2: docs/sev-interface.md has no section 7.3",
        "src/x.ts:3: docs/threat-model.md §8 has no numbered entry 3",
        'src/x.ts:4: cite "pitfall 2" as "docs/sev-interface.md §15 pitfall 2"',
      ]);
    });

    it("checks relative links in markdown, and bare § in a docs page against that page", () => {
      const errors = errorsOf(
        "See [pools](sev-interface.md) and [x](missing.md), §7.2 and §8.\n",
        "docs/threat-model.md",
      );
      assert.deepEqual(errors, [
        "docs/threat-model.md:1: docs/threat-model.md has no section 7.2",
        'docs/threat-model.md:1: the link target "missing.md" does not exist',
      ]);
    });
  });
});
