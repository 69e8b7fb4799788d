/**
 * The dashboard end to end: Debian's Chromium (driven by playwright-core) against a real `ciphervisor serve --demo`
 * child process, signed in with the role tokens the demo writes. Each test saves a screenshot under test-output/.
 * Without a `chromium` binary the suite fails under CI=true and says so loudly otherwise (`.ci/run` installs it).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { CHROMIUM_FLAGS, chromiumPath } from "../../bench/lib/chromium.ts";
import { createLaunchSession } from "../../src/owner/session.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = join(root, "bin/ciphervisor.js");
const out = join(root, "test-output");

/**
 * Waits until every mode badge in the VM table reads `mode`. Polled from here, not `page.waitForFunction`: that
 * evaluates its predicate as a string in the page, which the dashboard's Content-Security-Policy (no eval) refuses.
 */
async function waitForAllModes(page: Page, mode: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const badges = await page.locator("tr[data-vm] .badge").allTextContents();
    if (badges.length > 0 && badges.every((b) => b === mode)) return;
    if (Date.now() > deadline) assert.fail(`mode badges after ${timeoutMs} ms: ${badges.join(", ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  readonly dir: string;
  token(role: string): string;
}

async function startServe(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "cv-dashboard-"));
  const data = join(dir, "data");
  const child = spawn(
    process.execPath,
    [bin, "serve", "--data-dir", data, "--port", "0", "--demo", "--log-level", "warn"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let text = "";
  child.stderr?.on("data", (d: Buffer) => {
    text += String(d);
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      text += String(d);
      // The demo is built before the banner's last line (the CLI line) is printed.
      const m = /listening on (http:\/\/\S+)\n[\s\S]*CLI:/.exec(text);
      if (m?.[1]) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${text}`)));
  });
  const token = (role: string) => readFileSync(join(data, "demo-tokens", `${role}.token`), "utf8").trim();
  return { child, url, dir, token };
}

describe("dashboard (Chromium, real serve --demo)", () => {
  const executablePath = chromiumPath();
  let server: Server | undefined;
  let browser: Browser | undefined;

  before(async () => {
    if (!executablePath) {
      const message = "DASHBOARD E2E NOT RUN: no `chromium` on PATH (apt-get install -y chromium)";
      if (process.env.CI === "true") throw new Error(message);
      process.stderr.write(`\n!!!!! ${message} !!!!!\n\n`);
      return;
    }
    mkdirSync(out, { recursive: true });
    server = await startServe();
    browser = await chromium.launch({ executablePath, args: CHROMIUM_FLAGS });
  });

  after(async () => {
    await browser?.close();
    if (server) {
      server.child.kill("SIGTERM");
      await new Promise((r) => server?.child.once("exit", r));
      rmSync(server.dir, { recursive: true, force: true });
    }
  });

  async function signedIn(role: string, path = "/"): Promise<Page> {
    assert.ok(browser && server);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${server.url}${path}`);
    await page.getByLabel("API token").fill(server.token(role));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(".who").waitFor();
    assert.ok(!page.url().includes("cvt_"), "the token is never in the URL");
    return page;
  }

  async function api<T>(role: string, path: string): Promise<T> {
    assert.ok(server);
    const res = await fetch(`${server.url}${path}`, {
      headers: { authorization: `Bearer ${server.token(role)}` },
    });
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  }

  async function send<T>(role: string, method: string, path: string, body: unknown): Promise<T> {
    assert.ok(server);
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.token(role)}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.ok(
      res.status === 200 || res.status === 202,
      `${method} ${path}: ${res.status} ${await res.clone().text()}`,
    );
    return (await res.json()) as T;
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(out, `dashboard-${name}.png`), fullPage: true });

  it("signs in with a token, shows the roles, and filters VMs on the server", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    const page = await signedIn("security-admin");
    assert.match(await page.locator(".who").innerText(), /security-admin/);
    assert.equal(await page.evaluate("sessionStorage.length"), 1, "the token lives in sessionStorage");
    await page.locator("tr[data-vm]").first().waitFor();
    await page.getByLabel("Mode").selectOption("sev-es");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await waitForAllModes(page, "SEV-ES");
    const names = await page
      .locator("tr[data-vm]")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-vm")));
    assert.deepEqual(names.sort(), ["db-1", "db-2", "vault-1"]);
    await shot(page, "filter");
    await page.context().close();
  });

  it("enters maintenance on a Rome host through its plan and shows where each VM went", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    const page = await signedIn("operator", "/hosts");
    const card = page.locator('article[data-host="rome-1"]');
    await card.getByRole("button", { name: "Enter maintenance…" }).click();
    const plan = page.locator(".plan");
    await plan.waitFor();
    assert.match(await plan.innerText(), /web-1/);
    await plan.getByRole("button", { name: "Run it" }).click();
    await page
      .locator('.progress[data-status="succeeded"], .progress[data-status="partially-failed"]')
      .waitFor();
    const results = page.locator("table.results tbody tr");
    await results.first().waitFor();
    const text = await page.locator("table.results").innerText();
    assert.match(text, /web-1/);
    assert.match(text, /db-1/);
    assert.match(text, /path: (live-migrate|restart-elsewhere)/);
    await shot(page, "maintenance");
    await page.context().close();
  });

  it("shows a refused live migration of an SEV-ES VM with its code and reason", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    const page = await signedIn("operator");
    await page.locator('tr[data-vm="db-2"]').getByRole("button", { name: "db-2" }).click();
    await page.getByRole("button", { name: "Live migrate…" }).click();
    const refusal = page.locator(".plan .outcome-refused, .problem").first();
    await refusal.waitFor();
    const text = await refusal.innerText();
    assert.match(text, /LIVE_MIGRATION_UNSUPPORTED/);
    assert.match(text, /SEV/);
    await shot(page, "refused-migration");
    await page.context().close();
  });

  it("enables SEV-ES on selected VMs through the server's plan and watches it finish", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    // security-admin holds no vm.power, so it changes powered-off VMs: the plan refuses the running web-1 (with
    // the reason) and changes test-1.
    const page = await signedIn("security-admin");
    await page.getByLabel("Power").selectOption("off");
    await page.getByLabel("Mode").selectOption("none");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await page.locator('tr[data-vm="test-1"]').waitFor();
    await page.getByLabel("Select test-1").check();
    await page.getByRole("button", { name: "Enable SEV-ES" }).click();
    const plan = page.locator(".plan");
    await plan.waitFor();
    assert.match(await plan.locator(".headline").innerText(), /1 item: 1 will change/);
    assert.match(await plan.innerText(), /none → SEV-ES/);
    await shot(page, "plan");
    await plan.getByRole("button", { name: "Run it" }).click();
    await page.locator('.progress[data-status="succeeded"]').waitFor({ timeout: 60_000 });
    assert.match(await page.locator(".progress").innerText(), /1 of 1 done: 1 ok, 0 failed/);
    await shot(page, "enabled");
    const vms = await api<{ items: { name: string; securityMode: string }[] }>(
      "viewer",
      "/v1/vms?namePrefix=test-",
    );
    assert.deepEqual(
      vms.items.map((v) => v.securityMode),
      ["sev-es"],
    );
    await page.context().close();
  });

  it("hypervisor view: no guest register value in the hypervisor column for SEV-ES, all of them for none", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    const vms = await api<{ items: { id: string; name: string }[] }>("viewer", "/v1/vms?limit=100");
    const id = (name: string) => vms.items.find((v) => v.name === name)?.id ?? "";
    const columns = async (page: Page) => {
      await page.locator("table.regs").first().waitFor();
      const guest = await page
        .locator("[data-guest-value]")
        .evaluateAll((e) => e.map((x) => x.textContent ?? ""));
      const hv = await page.locator("td.hypervisor").evaluateAll((e) => e.map((x) => x.textContent ?? ""));
      return { guest, hv: hv.join(" ") };
    };
    const page = await signedIn("viewer", `/vms/${id("db-2")}/hypervisor-view`);
    const es = await columns(page);
    assert.ok(es.guest.length >= 15, `registers shown: ${es.guest.length}`);
    for (const v of es.guest) assert.ok(!es.hv.includes(v), `SEV-ES: ${v} is not in the hypervisor column`);
    assert.match(await page.locator(".verdict").innerText(), /encrypted VMSA/);
    await shot(page, "hypervisor-view-sev-es");
    await page.goto(`${server?.url}/vms/${id("win-1")}/hypervisor-view`);
    const plain = await columns(page);
    assert.ok(plain.guest.length >= 15);
    for (const v of plain.guest) assert.ok(plain.hv.includes(v), `none: ${v} is in the hypervisor column`);
    await shot(page, "hypervisor-view-none");
    await page.context().close();
  });

  it("shows a paused VM's attestation with its owner command, then the power-on operation's results", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    // The owner's side by API (the dashboard holds no owner keys): a session for vault-1's host, then power-on.
    type Vm = { id: string; name: string; hostId: string; policy: number; powerState: string };
    const vm = (await api<{ items: Vm[] }>("viewer", "/v1/vms?namePrefix=vault-1")).items[0];
    assert.ok(vm);
    const info = await api<{ pdh: string }>("attestation-reader", `/v1/hosts/${vm.hostId}/sev-info`);
    const session = createLaunchSession(new Uint8Array(Buffer.from(info.pdh, "base64")), vm.policy);
    await send("attestation-admin", "PUT", `/v1/vms/${vm.id}/launch-session`, {
      godhCert: Buffer.from(session.godhCert).toString("base64"),
      session: Buffer.from(session.session).toString("base64"),
    });
    const started = await send<{ operation: { id: string } }>(
      "operator",
      "POST",
      `/v1/vms/${vm.id}/power-on`,
      {},
    );
    const measured = await api<{ measurement: string }>(
      "attestation-reader",
      `/v1/vms/${vm.id}/launch-measurement`,
    );

    const page = await signedIn("attestation-reader", `/vms/${vm.id}/attestation`);
    await page.locator("#owner-line").waitFor();
    // Named once the VM itself is read (the report names it by id).
    await page.locator("main h2", { hasText: "Attestation of vault-1" }).waitFor();
    assert.ok(
      (await page.locator("main").innerText()).includes(measured.measurement),
      "the blob the API reports",
    );
    const line = await page.locator("#owner-line").inputValue();
    assert.match(line, /^ciphervisor owner measure .*--firmware /);
    assert.match(line, /--mode sev-es|--policy/);
    await shot(page, "attestation");

    await page.getByRole("link", { name: "Operations" }).click();
    await page.getByRole("button", { name: started.operation.id }).click();
    const results = page.locator("table.results");
    await results.waitFor();
    const resultText = await results.innerText();
    assert.ok(resultText.includes(vm.id), resultText);
    assert.match(resultText, /ok[\s\S]*powerState: paused/);
    assert.match(await page.locator(".progress").innerText(), /1 of 1 done: 1 ok, 0 failed/);
    await shot(page, "operations");
    await page.context().close();
  });

  it("a viewer token sees the actions disabled, each naming the permission it needs", async (t) => {
    if (!browser) return t.diagnostic("chromium missing (reported above)");
    const page = await signedIn("viewer");
    const enable = page.getByRole("button", { name: "Enable SEV-ES" });
    await enable.waitFor();
    assert.equal(await enable.isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Disable", exact: true }).isDisabled(), true);
    const bulk = await page.locator(".bulk").innerText();
    assert.match(bulk, /needs the 'vm\.security\.enable' or 'vm\.security\.policy' permission/);
    assert.match(bulk, /needs the 'vm\.security\.downgrade' permission/);
    await page.getByRole("link", { name: "Hosts" }).click();
    const maint = page.locator('article[data-host="rome-2"]').getByRole("button", { name: /maintenance/ });
    await maint.waitFor();
    assert.equal(await maint.isDisabled(), true);
    assert.match(
      await page.locator('article[data-host="rome-2"]').innerText(),
      /needs the 'host\.maintenance' permission/,
    );
    await shot(page, "viewer");
    await page.context().close();
  });
});
