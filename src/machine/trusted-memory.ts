/**
 * Trusted memory: state the Secure Processor and the CPU share and the hypervisor cannot reach. Today it holds one
 * thing, the integrity record of every SEV-ES VMSA (docs/sev-interface.md §12.1).
 *
 * The model: the firmware records a check value of the VMSA *ciphertext* when LAUNCH_UPDATE_VMSA (or
 * RECEIVE_UPDATE_VMSA) encrypts it; the CPU re-records it at every #VMEXIT, when it re-encrypts the VMSA; VMRUN
 * compares the ciphertext now in DRAM with the record and refuses to run (exit code VMEXIT_INVALID) when they differ.
 * A flipped bit, a forged page, and a replayed *older* VMSA therefore all fail, which is what SEV-ES promises.
 *
 * The exact hardware mechanism is [unconfirmed]: AMD's firmware keeps "a CRC of each VMSA" in a trusted region whose
 * size "must match uCode" (amd/AMD-ASPFW `sev_es.h`, `crc32_pool`), which implies a microcode check at VMRUN. A CRC is
 * linear and could in principle be forged; this model keeps the whole ciphertext page as its check value (an ideal
 * digest: no collision can ever decide a test). Should the real check prove weaker, this is the one class to change.
 *
 * The class has no method that returns a record, so nothing outside the machine and the firmware can learn or
 * rewrite one; the hypervisor layer is never handed this object.
 */
/** The VMSA is exactly one 4 KiB page. */
const VMSA_BYTES = 4096;

function key(asid: number, vmsaPa: number): string {
  return `${asid}:${vmsaPa}`;
}

/**
 * Per (ASID, VMSA system physical address): the check value of the VMSA ciphertext the firmware or the CPU last
 * wrote.
 * Implements the Secure Processor's `VmsaIntegrityRecorder` (`record`).
 *
 * @example
 * ```ts
 * const store = new VmsaIntegrityStore();
 * store.record(asid, vmsaPa, ciphertext);      // LAUNCH_UPDATE_VMSA, or the CPU at #VMEXIT
 * store.check(asid, vmsaPa, dram.read(vmsaPa, 4096)); // VMRUN: true only for that exact ciphertext
 * ```
 */
export class VmsaIntegrityStore {
  readonly #records = new Map<string, Buffer>();

  /** Records the ciphertext now stored at `vmsaPa` for `asid` (firmware at launch, CPU at every #VMEXIT). */
  record(asid: number, vmsaPa: number, ciphertext: Uint8Array): void {
    if (ciphertext.length !== VMSA_BYTES) throw new RangeError(`a VMSA is ${VMSA_BYTES} bytes`);
    this.#records.set(key(asid, vmsaPa), Buffer.from(ciphertext));
  }

  /** Whether a VMSA was ever recorded at this address for this ASID. */
  has(asid: number, vmsaPa: number): boolean {
    return this.#records.has(key(asid, vmsaPa));
  }

  /** VMRUN's check: true only when a record exists and `ciphertext` is exactly what was recorded. */
  check(asid: number, vmsaPa: number, ciphertext: Uint8Array): boolean {
    const want = this.#records.get(key(asid, vmsaPa));
    if (!want || ciphertext.length !== VMSA_BYTES) return false;
    return want.equals(ciphertext);
  }

  /** Drops every record of an ASID (DECOMMISSION, or the ASID's key slot being cleared). */
  forget(asid: number): void {
    const prefix = `${asid}:`;
    for (const k of [...this.#records.keys()]) if (k.startsWith(prefix)) this.#records.delete(k);
  }
}
