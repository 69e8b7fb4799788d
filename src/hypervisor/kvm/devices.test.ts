import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CPU_MODELS } from "../../machine/cpu-models.ts";
import { SvmExit } from "../../machine/exit-codes.ts";
import { Ioio } from "../../machine/nae-exits.ts";
import { CONSOLE_LIMIT, HostDevices, type HostRegs, Port } from "./devices.ts";

/** exit_info_1 of an 8-bit OUT to the serial port. */
const OUT8_SERIAL = (BigInt(Port.SERIAL) << BigInt(Ioio.PORT_SHIFT)) | BigInt(Ioio.SZ8);

const REGS: HostRegs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, cpl: 0n, xcr0: 1n };

describe("the serial console", () => {
  it("keeps the last 64 KiB a guest wrote and counts what it dropped", () => {
    const d = new HostDevices(CPU_MODELS.milan, "sev-es");
    const total = CONSOLE_LIMIT * 2 + 12_345;
    for (let i = 0; i < total; i++) {
      d.emulate(SvmExit.IOIO, OUT8_SERIAL, { ...REGS, rax: BigInt(0x41 + (i % 26)) });
    }
    assert.ok(d.console.length >= CONSOLE_LIMIT && d.console.length <= CONSOLE_LIMIT + 4096);
    assert.equal(d.consoleDropped + d.console.length, total, "every byte is either kept or counted");
    const last = String.fromCharCode(0x41 + ((total - 1) % 26));
    assert.equal(d.console.at(-1), last, "the newest byte is kept");
  });
});
