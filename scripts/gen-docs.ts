/** Regenerates the documentation pages that are derived from code tables. */
import { writeFileSync } from "node:fs";
import { renderOperationRules } from "../src/hypervisor/operation-rules-doc.ts";

writeFileSync("docs/operation-rules.md", renderOperationRules());
console.log("wrote docs/operation-rules.md");
