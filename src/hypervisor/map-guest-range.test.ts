/**
 * `mapGuestRange` (launch.ts): the guest pages of a firmware image mapped to frames and cut into runs of physically
 * contiguous frames, one LAUNCH_UPDATE_DATA each as KVM issues them (docs/sev-interface.md §8.1).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PAGE_SIZE } from "../machine/dram.ts";
import { NestedPageTable } from "../machine/nested-page-table.ts";
import { FramePool } from "./frames.ts";
import { mapGuestRange } from "./launch.ts";

const BASE = 0x10_0000;
const GPA = 0xffc0_0000;

describe("mapGuestRange", () => {
  it("maps a fresh range onto contiguous frames: one run covering every byte, the short last page included", () => {
    const frames = new FramePool(BASE, BASE + 64 * PAGE_SIZE);
    const npt = new NestedPageTable();
    const length = 5 * PAGE_SIZE + 512;
    assert.deepEqual(mapGuestRange({ frames, npt }, GPA, length), [{ hpa: BASE, offset: 0, length }]);
    for (let i = 0; i < 6; i++) assert.equal(npt.translate(GPA + i * PAGE_SIZE), BASE + i * PAGE_SIZE);
  });

  it("takes freed frames lowest first, so a relaunch is contiguous again", () => {
    const frames = new FramePool(BASE, BASE + 64 * PAGE_SIZE);
    const taken = Array.from({ length: 8 }, () => frames.alloc());
    // A stopped VM's frames come back in whatever order; the pool hands them out last freed first.
    for (const f of taken) frames.free(f);
    const npt = new NestedPageTable();
    const runs = mapGuestRange({ frames, npt }, GPA, 8 * PAGE_SIZE);
    assert.deepEqual(runs, [{ hpa: BASE, offset: 0, length: 8 * PAGE_SIZE }]);
  });

  it("keeps pages already mapped and splits the range where the frames are not contiguous", () => {
    const frames = new FramePool(BASE, BASE + 64 * PAGE_SIZE);
    const npt = new NestedPageTable();
    const far = BASE + 40 * PAGE_SIZE;
    npt.map(GPA + 2 * PAGE_SIZE, far);
    const runs = mapGuestRange({ frames, npt }, GPA, 4 * PAGE_SIZE);
    assert.deepEqual(runs, [
      { hpa: BASE, offset: 0, length: 2 * PAGE_SIZE },
      { hpa: far, offset: 2 * PAGE_SIZE, length: PAGE_SIZE },
      { hpa: BASE + 2 * PAGE_SIZE, offset: 3 * PAGE_SIZE, length: PAGE_SIZE },
    ]);
    assert.equal(npt.translate(GPA + 2 * PAGE_SIZE), far);
  });

  it("out of frames: throws, maps nothing and hands back every frame it took", () => {
    const frames = new FramePool(BASE, BASE + 3 * PAGE_SIZE);
    const npt = new NestedPageTable();
    assert.throws(() => mapGuestRange({ frames, npt }, GPA, 4 * PAGE_SIZE), /out of memory/);
    assert.equal(frames.available, 3);
    assert.equal(npt.entries().length, 0);
  });
});
