/** Regenerates the documentation pages that are derived from code tables. */
import { writeFileSync } from "node:fs";
import { renderGuestOsProfiles } from "../src/guest/os-profiles-doc.ts";
import { renderOperationRules } from "../src/hypervisor/operation-rules-doc.ts";

writeFileSync("docs/operation-rules.md", renderOperationRules());
console.log("wrote docs/operation-rules.md");
writeFileSync("docs/guest-os-profiles.md", renderGuestOsProfiles());
console.log("wrote docs/guest-os-profiles.md");
