/**
 * `image get` and `image delete` refuse a name outside the catalog's rule before any request (found by
 * test/fuzz/cli.test.ts): a lone surrogate in the name made `encodeURIComponent` throw, and the CLI ended with
 * "internal error: URI malformed [INTERNAL]" instead of a usage error.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExitCode } from "../exit-codes.ts";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";

/** A server nobody listens on: the refusal must come before any request is tried. */
const env = { CIPHERVISOR_SERVER: "http://127.0.0.1:9", CIPHERVISOR_TOKEN: "cvt_test" };

describe("image get / image delete: the name", () => {
  for (const name of ["\ud800", "a\udfffb", "bad name", "../etc", "-x", "x".repeat(64)]) {
    for (const verb of ["get", "delete"]) {
      it(`${verb} ${JSON.stringify(name).slice(0, 20)}: INVALID_INPUT, exit 2, no request`, async () => {
        const io = memoryIo({ env });
        const code = await main(["image", verb, "--", name], io);
        assert.equal(code, ExitCode.USAGE, io.stderr);
        assert.match(io.stderr, /^ciphervisor: '.*' is not an image name \[INVALID_INPUT\]\n$/);
        assert.equal(io.stdout, "");
      });
    }
  }
});
