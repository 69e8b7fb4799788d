/**
 * The emulated KDS on AMD's paths: every certificate it serves verifies under the emulated roots (and not under
 * AMD's), for every product; it needs no token and audits nothing; a malformed chip id is a 400 and an unknown chip
 * or product a 404, both problem+json with a stable code. The real Rome chain keeps verifying under AMD's roots
 * only, and AMD's real CEK does not pass under the emulated Rome ASK.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { realChain } from "../../../test/certs/support.ts";
import { parseSevChain, splitAskArk, verifySevChain } from "../../certs/chain.ts";
import { loadBuiltinRoot, loadBuiltinRoots } from "../../certs/roots.ts";
import { encodeSnpTcb } from "../../certs/snp-report.ts";
import { parseVcek } from "../../certs/vcek.ts";
import { fromHex, toHex } from "../../lib/bytes.ts";
import { GENERATIONS } from "../../machine/cpu-models.ts";
import { verifySnpReport } from "../../owner/verify-report.ts";
import { KDS_PEM_CONTENT_TYPE } from "../../sev/manufacturer/emulated-kds.ts";
import { emulatedChipReport } from "../../sev/snp/report-signer.ts";
import { PROBLEM_CONTENT_TYPE } from "../problem.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

const bytes = (s: unknown) => new Uint8Array(Buffer.from(String(s), "base64"));
const body = (r: LightMyRequestResponse) => new Uint8Array(r.rawPayload);

function isCert(r: LightMyRequestResponse, what: string): Uint8Array {
  assert.equal(r.statusCode, 200, `${what}: ${r.body}`);
  assert.equal(r.headers["content-type"], "application/octet-stream", what);
  return body(r);
}

function isProblem(r: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers["content-type"]), new RegExp(`^${PROBLEM_CONTENT_TYPE.replace("+", "\\+")}`));
  const p = json(r);
  assert.equal(p.code, code);
  assert.equal(p.status, status);
  return p;
}

async function sevInfo(a: ApiFixture, hostId: string): Promise<Record<string, unknown>> {
  const r = await a.call("attestation-reader", "GET", `/v1/hosts/${hostId}/sev-info`);
  assert.equal(r.statusCode, 200, r.body);
  return json(r);
}

describe("the emulated KDS", () => {
  it("serves, without a token, an ASK-signed CEK and ASK ‖ ARK per product that verify under the emulated roots only", () =>
    withApi(async (a) => {
      const emulated = loadBuiltinRoots("emulated");
      const auditHead = async () => (await a.inventory.audit.head()).seq;
      for (const generation of GENERATIONS) {
        const hostId = await a.host(`${generation}-kds`, generation);
        const info = await sevInfo(a, hostId);
        const cpu0Id = String(info.cpu0Id);
        assert.deepEqual(info.kds, {
          cek: `/cek/id/${cpu0Id}`,
          askArk: `/cek/ask_ark_${generation}.cert`,
        });
        const before = await auditHead();
        const cek = isCert(await a.call(null, "GET", `/cek/id/${cpu0Id}`), `${generation} CEK`);
        const askArk = isCert(
          await a.call(null, "GET", `/cek/ask_ark_${generation}.cert`),
          `${generation} CA`,
        );
        assert.equal(await auditHead(), before, "public KDS reads are not audited");
        assert.equal(cek.length, 0x824);
        // Same key as the chip's own CEK (the signed region), but now carrying the ASK's signature.
        const platformCek = bytes(info.cek);
        assert.deepEqual(cek.subarray(0, 0x414), platformCek.subarray(0, 0x414));
        assert.notDeepEqual(cek, platformCek);
        // AMD's spellings and upper-case hex name the same certificates; a token changes nothing.
        const product = generation[0]?.toUpperCase() + generation.slice(1);
        assert.deepEqual(isCert(await a.call(null, "GET", `/cek/ask_ark_${product}.cert`), product), askArk);
        assert.deepEqual(
          isCert(await a.call("viewer", "GET", `/cek/id/${cpu0Id.toUpperCase()}`), "upper-case id"),
          cek,
        );

        const { ask, ark } = splitAskArk(askArk);
        const root = loadBuiltinRoot("emulated", generation);
        assert.deepEqual(ark, root.ark.bytes, "the ARK is the built-in emulated root");
        assert.deepEqual(ask, root.ask.bytes);
        const files = { ark, ask, cek, oca: bytes(info.oca), pek: bytes(info.pek), pdh: bytes(info.pdh) };
        const chain = parseSevChain(files);
        const report = verifySevChain(chain, { roots: emulated });
        assert.equal(report.root?.generation, generation);
        assert.throws(() => verifySevChain(chain, { roots: loadBuiltinRoots("amd") }), {
          code: "CHAIN_INVALID",
        });
        // The platform's own CEK is not what the KDS serves: it fails at the ASK → CEK link.
        assert.throws(
          () => verifySevChain(parseSevChain({ ...files, cek: platformCek }), { roots: emulated }),
          (e: Error & { details?: { link?: string } }) => e.details?.link === "ASK → CEK",
        );
      }
    }));

  it("answers a malformed chip id 400 and an unknown chip or product 404, as problem+json", () =>
    withApi(async (a) => {
      const hostId = await a.host("rome-kds", "rome");
      const cpu0Id = String((await sevInfo(a, hostId)).cpu0Id);
      for (const bad of [
        "zz",
        cpu0Id.slice(2),
        `${cpu0Id}00`,
        `0x${cpu0Id.slice(2)}`,
        `${cpu0Id.slice(1)}g`,
      ]) {
        const p = isProblem(await a.call(null, "GET", `/cek/id/${bad}`), 400, "INVALID_INPUT");
        assert.match(String(p.detail), /128 hex digits/);
      }
      // Well-formed, but no chip of this manufacturer has it.
      const unknown = (cpu0Id[0] === "0" ? "1" : "0") + cpu0Id.slice(1);
      const p = isProblem(await a.call(null, "GET", `/cek/id/${unknown}`), 404, "NOT_FOUND");
      assert.match(String(p.detail), /knows no chip/);
      for (const product of ["bergamo", "epyc", "rome2"]) {
        const q = isProblem(await a.call(null, "GET", `/cek/ask_ark_${product}.cert`), 404, "NOT_FOUND");
        assert.match(String(q.detail), /Naples, Rome, Milan, Genoa, Turin/);
      }
      isProblem(await a.call(null, "GET", "/cek/ask_ark/rome"), 404, "NOT_FOUND");
    }));

  it("keeps serving a removed host's CEK: AMD's records outlive the server rack", () =>
    withApi(async (a) => {
      const hostId = await a.host("milan-gone", "milan");
      const cpu0Id = String((await sevInfo(a, hostId)).cpu0Id);
      const removed = await a.call("admin", "DELETE", `/v1/hosts/${hostId}`);
      assert.ok(removed.statusCode < 300, removed.body);
      assert.equal(a.driver.has("milan-gone"), false);
      isCert(await a.call(null, "GET", `/cek/id/${cpu0Id}`), "removed host's CEK");
    }));

  it("the real Rome chain verifies under AMD's roots, not the emulated ones, nor under the emulated Rome ASK", () =>
    withApi(async (a) => {
      const real = realChain("rome");
      assert.equal(
        verifySevChain(parseSevChain(real), { roots: loadBuiltinRoots("amd") }).root?.trust,
        "amd",
      );
      assert.throws(() => verifySevChain(parseSevChain(real), { roots: loadBuiltinRoots("emulated") }), {
        code: "CHAIN_INVALID",
      });
      const { ask, ark } = splitAskArk(isCert(await a.call(null, "GET", "/cek/ask_ark_rome.cert"), "CA"));
      assert.throws(
        () => verifySevChain(parseSevChain({ ...real, ask, ark }), { roots: loadBuiltinRoots("emulated") }),
        (e: Error & { details?: { link?: string } }) => e.details?.link === "ASK → CEK",
      );
    }));
});

describe("the emulated KDS for SEV-SNP (/vcek/v1, VCEK specification 57230 chapter 4)", () => {
  const spl = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
  const query = "blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115";
  const tcb = encodeSnpTcb(spl, "milan");

  it("serves, without a token, the VCEK and cert_chain a report of the emulated chip verifies with, under the emulated roots only", () =>
    withApi(async (a) => {
      for (const generation of ["milan", "genoa"] as const) {
        const product = generation === "milan" ? "Milan" : "Genoa";
        const cpu0Id = String((await sevInfo(a, await a.host(`${generation}-snp`, generation))).cpu0Id);
        const before = (await a.inventory.audit.head()).seq;
        const vcek = isCert(await a.call(null, "GET", `/vcek/v1/${product}/${cpu0Id}?${query}`), "VCEK");
        const chainRes = await a.call(null, "GET", `/vcek/v1/${product}/cert_chain`);
        assert.equal(chainRes.statusCode, 200, chainRes.body);
        assert.equal(chainRes.headers["content-type"], KDS_PEM_CONTENT_TYPE);
        const chain = new Uint8Array(chainRes.rawPayload);
        const crl = isCert(await a.call(null, "GET", `/vcek/v1/${product}/crl`), "CRL");
        assert.equal(
          await a.inventory.audit.head().then((h) => h.seq),
          before,
          "public KDS reads are not audited",
        );
        // Any case for the product and the hex, a token changes nothing.
        assert.deepEqual(
          isCert(
            await a.call(
              "viewer",
              "GET",
              `/vcek/v1/${product.toLowerCase()}/${cpu0Id.toUpperCase()}?${query}`,
            ),
            "case",
          ),
          vcek,
        );
        const v = parseVcek(vcek);
        assert.deepEqual(toHex(v.hwId), cpu0Id.toLowerCase());
        assert.deepEqual(v.tcb, spl);

        const chipId = fromHex(cpu0Id);
        const report = emulatedChipReport(generation, chipId, {
          version: 2,
          policy: 0x30000n,
          currentTcb: tcb,
          reportedTcb: tcb,
          committedTcb: tcb,
          launchTcb: tcb,
          measurement: new Uint8Array(48).fill(1),
        });
        const ok = verifySnpReport({
          report,
          vcek,
          chain,
          trust: "emulated",
          policy: { crl, minimumTcb: spl },
        });
        assert.equal(ok.generation, generation);
        assert.throws(() => verifySnpReport({ report, vcek, chain }), { code: "CHAIN_INVALID" });
        assert.throws(() => verifySnpReport({ report, vcek }), { code: "CHAIN_INVALID" });
      }
    }));

  it("serves Turin on its own terms: an 8-byte hwid, fmcSPL, Turin's TCB layout; the report verifies", () =>
    withApi(async (a) => {
      const turinSpl = { fmc: 1, bootloader: 2, tee: 0, snp: 5, microcode: 9 };
      const turinQuery = "fmcSPL=1&blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=9";
      const turinTcb = encodeSnpTcb(turinSpl, "turin");
      const cpu0Id = String((await sevInfo(a, await a.host("turin-snp", "turin"))).cpu0Id);
      const hwid = cpu0Id.slice(0, 16);
      const vcek = isCert(await a.call(null, "GET", `/vcek/v1/Turin/${hwid}?${turinQuery}`), "Turin VCEK");
      const v = parseVcek(vcek);
      assert.deepEqual([v.productName, toHex(v.hwId), v.tcb], ["Turin", hwid.toLowerCase(), turinSpl]);
      const chainRes = await a.call(null, "GET", "/vcek/v1/Turin/cert_chain");
      assert.equal(chainRes.statusCode, 200, chainRes.body);
      const report = emulatedChipReport("turin", fromHex(cpu0Id), {
        version: 3,
        policy: 0x30000n,
        currentTcb: turinTcb,
        reportedTcb: turinTcb,
        committedTcb: turinTcb,
        launchTcb: turinTcb,
        measurement: new Uint8Array(48).fill(2),
      });
      const ok = verifySnpReport({
        report,
        vcek,
        chain: new Uint8Array(chainRes.rawPayload),
        trust: "emulated",
        policy: { minimumTcb: turinSpl },
      });
      assert.equal(ok.generation, "turin");
      // The 64-byte chip id is not a Turin hwid; the FMC SPL is required; a Milan chip is no Turin chip.
      const long = isProblem(
        await a.call(null, "GET", `/vcek/v1/Turin/${cpu0Id}?${turinQuery}`),
        400,
        "INVALID_INPUT",
      );
      assert.match(String(long.detail), /16 hex digits/);
      const noFmc = isProblem(
        await a.call(null, "GET", `/vcek/v1/Turin/${hwid}?${query}`),
        400,
        "INVALID_INPUT",
      );
      assert.match(String(noFmc.detail), /needs fmcSPL/);
      const milan = String((await sevInfo(a, await a.host("milan-not-turin", "milan"))).cpu0Id);
      isProblem(
        await a.call(null, "GET", `/vcek/v1/Turin/${milan.slice(0, 16)}?${turinQuery}`),
        404,
        "NOT_FOUND",
      );
    }));

  it("answers an unknown product 404, a malformed hwid or SPL 400 and an unknown chip 404, as problem+json", () =>
    withApi(async (a) => {
      const milan = String((await sevInfo(a, await a.host("milan-snp", "milan"))).cpu0Id);
      const rome = String((await sevInfo(a, await a.host("rome-snp", "rome"))).cpu0Id);
      for (const product of ["Rome", "Naples", "Bergamo", "epyc"]) {
        const p = isProblem(
          await a.call(null, "GET", `/vcek/v1/${product}/${milan}?${query}`),
          404,
          "NOT_FOUND",
        );
        assert.match(String(p.detail), /no SEV-SNP product .*\(products: Milan, Genoa, Turin\)/);
        isProblem(await a.call(null, "GET", `/vcek/v1/${product}/cert_chain`), 404, "NOT_FOUND");
        isProblem(await a.call(null, "GET", `/vcek/v1/${product}/crl`), 404, "NOT_FOUND");
      }
      for (const bad of ["zz", milan.slice(2), `${milan}00`, `${milan.slice(1)}g`]) {
        const p = isProblem(
          await a.call(null, "GET", `/vcek/v1/Milan/${bad}?${query}`),
          400,
          "INVALID_INPUT",
        );
        assert.match(String(p.detail), /128 hex digits/);
      }
      for (const q of [
        "",
        "blSPL=3&teeSPL=0&snpSPL=8",
        "blSPL=3&teeSPL=0&snpSPL=256&ucodeSPL=115",
        "blSPL=x&teeSPL=0&snpSPL=8&ucodeSPL=115",
        "blSPL=-1&teeSPL=0&snpSPL=8&ucodeSPL=115",
        "blSPL=3&blSPL=4&teeSPL=0&snpSPL=8&ucodeSPL=115",
      ]) {
        const p = isProblem(await a.call(null, "GET", `/vcek/v1/Milan/${milan}?${q}`), 400, "INVALID_INPUT");
        assert.match(String(p.detail), /needs (bl|tee|snp|ucode)SPL as a decimal security patch level/, q);
      }
      const unknown = (milan[0] === "0" ? "1" : "0") + milan.slice(1);
      const p = isProblem(await a.call(null, "GET", `/vcek/v1/Milan/${unknown}?${query}`), 404, "NOT_FOUND");
      assert.match(String(p.detail), /knows no Milan chip/);
      // A chip the manufacturer made, but of another product.
      isProblem(await a.call(null, "GET", `/vcek/v1/Milan/${rome}?${query}`), 404, "NOT_FOUND");
      isProblem(await a.call(null, "GET", `/vcek/v1/Genoa/${milan}?${query}`), 404, "NOT_FOUND");
    }));
});
