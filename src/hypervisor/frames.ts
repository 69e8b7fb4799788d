/** Host-physical 4 KiB frames for guest memory and VMCB/VMSA pages, with reuse after a VM stops. */
import { CiphervisorError } from "../errors.ts";
import { PAGE_SIZE } from "../machine/dram.ts";

export class FramePool {
  #next: number;
  readonly #free: number[] = [];

  constructor(
    base: number,
    readonly limit: number,
  ) {
    if (base % PAGE_SIZE !== 0) throw new RangeError("the frame range must start on a page boundary");
    this.#next = base;
  }

  alloc(): number {
    const f = this.#free.pop();
    if (f !== undefined) return f;
    if (this.#next + PAGE_SIZE > this.limit) {
      throw new CiphervisorError("REQUIREMENT_FAILED", "the host is out of memory for guest pages");
    }
    const a = this.#next;
    this.#next += PAGE_SIZE;
    return a;
  }

  free(frame: number): void {
    this.#free.push(frame);
  }

  /** Frames still available. */
  get available(): number {
    return this.#free.length + Math.floor((this.limit - this.#next) / PAGE_SIZE);
  }
}
