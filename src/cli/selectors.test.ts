import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CiphervisorError } from "../errors.ts";
import { memoryIo } from "./io.ts";
import { parseNameList, parseSelector, targetSpec } from "./selectors.ts";

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof CiphervisorError ? e.code : "NOT_A_CIPHERVISOR_ERROR";
  }
  return undefined;
}

describe("selectors", () => {
  it("parses every key of a selector", () => {
    assert.deepEqual(parseSelector("os=linux,host=rome-01,mode=none,power=off"), {
      os: "linux",
      host: "rome-01",
      mode: "none",
      power: "off",
    });
    assert.deepEqual(parseSelector("name=web-*,label.env=prod,label.app=db,cluster=cl_1"), {
      namePrefix: "web-",
      labels: { env: "prod", app: "db" },
      cluster: "cl_1",
    });
    assert.deepEqual(parseSelector("name=web-1,os=linux-5.19"), { name: "web-1", os: "linux-5.19" });
  });

  it("refuses typos and bad values instead of matching nothing (or everything)", () => {
    for (const bad of [
      "",
      "mdoe=none",
      "mode=sev-tdx",
      "power=on",
      "os=beos",
      "host",
      "host=",
      "=x",
      "mode=none,mode=sev",
      "name=a b",
      "label.=x",
    ]) {
      assert.equal(
        code(() => parseSelector(bad)),
        "INVALID_INPUT",
        bad,
      );
    }
    try {
      parseSelector("mdoe=none");
    } catch (e) {
      assert.match((e as Error).message, /^--selector: unknown key 'mdoe'; keys are os, host, mode/);
    }
  });

  it("reads name lists: one a line, comments and blank lines skipped, each checked", () => {
    assert.deepEqual(
      parseNameList("web-1\n\n# the db\ndb-1  # primary\r\nvm_01m8dxpn8p3ea1jgy8ynjhs1jf\n", "f"),
      ["web-1", "db-1", "vm_01m8dxpn8p3ea1jgy8ynjhs1jf"],
    );
    assert.equal(
      code(() => parseNameList("web-1\nnot a name\n", "--from-file x")),
      "INVALID_INPUT",
    );
    try {
      parseNameList("ok\nbad name", "--from-file x");
    } catch (e) {
      assert.equal((e as Error).message, "--from-file x line 2: 'bad name' is not a VM name");
    }
  });

  it("takes exactly one way of choosing VMs", async () => {
    const io = memoryIo({ stdin: "a\nb\n" });
    assert.deepEqual(await targetSpec(io, ["a"], {}), { kind: "names", names: ["a"], source: "arguments" });
    assert.deepEqual(await targetSpec(io, [], { all: true }), { kind: "all" });
    assert.deepEqual(await targetSpec(io, [], { fromFile: "-" }), {
      kind: "names",
      names: ["a", "b"],
      source: "--from-file",
    });
    const usage = async (names: string[], flags: Record<string, unknown>) => {
      await assert.rejects(targetSpec(io, names, flags), (e: CiphervisorError) => e.code === "USAGE");
    };
    await usage([], {});
    await usage(["a"], { all: true });
    await usage([], { all: true, selector: "mode=none" });
    await assert.rejects(
      targetSpec(memoryIo({ stdin: "\n# nothing\n" }), [], { fromFile: "-" }),
      /names no VMs/,
    );
    await assert.rejects(
      targetSpec(io, [], { fromFile: "/nonexistent/list" }),
      (e: CiphervisorError) => e.code === "IO",
    );
  });
});
