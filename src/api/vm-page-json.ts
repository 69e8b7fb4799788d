/**
 * `GET /v1/vms` written as JSON text straight from the stored rows (`VmStore.listStored`). The generic path parses
 * every row's spec and labels, builds a view object, then has the response schema's serializer walk it again:
 * at 1,000 VMs a page that is most of the route's time. Here each distinct stored spec (and label set) is passed
 * through the `VmSpec` schema's own serializer once and its output reused — a fleet has few distinct specs — so
 * the schema still decides which spec fields leave (views.ts: the serializer drops undeclared fields), and the
 * other fields are written in the `Vm` schema's order. vm-page-json.test.ts checks the text against the generic
 * path, field for field.
 */
import type { Page, StoredVm } from "../control/inventory/types.ts";
import { liveMigratable } from "../hypervisor/operation-rules.ts";

/** Distinct spec / label texts remembered; past this the memo starts over (a fleet has a handful). */
const MEMO_SIZE = 1024;

type Serialize = (value: { [key: string]: unknown }) => string;

class Memo {
  readonly #map = new Map<string, string>();
  constructor(readonly serialize: (text: string) => string) {}
  get(text: string): string {
    let out = this.#map.get(text);
    if (out === undefined) {
      out = this.serialize(text);
      if (this.#map.size >= MEMO_SIZE) this.#map.clear();
      this.#map.set(text, out);
    }
    return out;
  }
}

const str = JSON.stringify;
const nullable = (v: string | null) => (v === null ? "null" : str(v));

/**
 * Writes pages of VMs. `serializeSpec` is the `VmSpec` response schema's serializer (fastify compiles it);
 * labels are a string → string map, written by `JSON.stringify` of their parsed text.
 *
 * @example
 * ```ts
 * const writer = new VmPageWriter(reply.compileSerializationSchema({ $ref: "VmSpec#" }));
 * reply.type("application/json; charset=utf-8").send(writer.page(await inv.vms.listStored(filter, page)));
 * ```
 */
export class VmPageWriter {
  readonly #spec: Memo;
  readonly #labels = new Memo((text) => str(JSON.parse(text)));
  readonly #migratable = new Map<string, string>();

  constructor(serializeSpec: Serialize) {
    this.#spec = new Memo((text) => serializeSpec(JSON.parse(text) as { [key: string]: unknown }));
  }

  #liveMigratable(mode: StoredVm["securityMode"]): string {
    let out = this.#migratable.get(mode);
    if (out === undefined) {
      const m = liveMigratable(mode);
      out = str(m.reason === undefined ? { status: m.status } : { status: m.status, reason: m.reason });
      this.#migratable.set(mode, out);
    }
    return out;
  }

  /** One VM, as the `Vm` schema serializes `vmView(vm)`. */
  vm(v: StoredVm): string {
    return (
      `{"id":${str(v.id)},"name":${str(v.name)},"clusterId":${nullable(v.clusterId)},"hostId":${nullable(v.hostId)}` +
      `,"spec":${this.#spec.get(v.specJson)},"powerState":${str(v.powerState)},"securityMode":${str(v.securityMode)}` +
      `,"policy":${v.policy},"attestationState":${str(v.attestationState)}` +
      `,"liveMigratable":${this.#liveMigratable(v.securityMode)},"labels":${this.#labels.get(v.labelsJson)}` +
      `,"createdAt":${str(v.createdAt)},"updatedAt":${str(v.updatedAt)},"version":${v.version}}`
    );
  }

  /** A page: `{"items":[…],"nextCursor":…}`. */
  page(p: Page<StoredVm>): string {
    return `{"items":[${p.items.map((v) => this.vm(v)).join(",")}],"nextCursor":${nullable(p.nextCursor)}}`;
  }
}
