/**
 * `ciphervisor image …`: the control plane's image catalog — firmware (a real OVMF such as Debian's
 * `OVMF_CODE.fd`), kernels and initrds that `vm create --firmware-image / --kernel / --initrd` boot. Every image is
 * shown with its SHA-256: the value `vm launch-measurement` reports for it, and what a guest owner compares with the
 * hash of their own copy.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { parseChoice, readInputFile } from "../args.ts";
import type { ApiPlan } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import {
  apiCommand,
  apiFor,
  type CommonFlags,
  type MutatingFlags,
  modeFor,
  mutatingOptions,
} from "../options.ts";
import { json } from "../output/format.ts";
import { fields, table } from "../output/table.ts";
import { hex } from "../output/vm-table.ts";
import { printPlan } from "../output/what-if.ts";

const KINDS = ["firmware", "kernel", "initrd"] as const;

/** The catalog's name rule (control/images/inspect.ts, which a fleet command must not load). */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The URL path of one image. A name outside the catalog's rule names no image; refusing it here also keeps a lone
 * surrogate (which `encodeURIComponent` throws on) from escaping as an untyped URIError.
 */
function imagePath(name: string): string {
  if (!IMAGE_NAME.test(name)) throw new CiphervisorError("INVALID_INPUT", `'${name}' is not an image name`);
  return `/v1/images/${name}`;
}

/** What `/v1/images` answers for one image. */
export interface ApiImage {
  readonly id: string;
  readonly name: string;
  readonly kind: (typeof KINDS)[number];
  readonly sha256: string;
  readonly size: number;
  readonly firmware: {
    readonly footer: boolean;
    readonly sevEsResetEip: number | null;
    readonly secretArea: boolean;
    readonly kernelHashesArea: boolean;
  } | null;
  readonly createdAt: string;
  readonly createdBy: string | null;
}

const yesNo = (b: boolean) => (b ? "yes" : "no");

function imageFields(i: ApiImage): string {
  const rows: [string, string | number][] = [
    ["name", i.name],
    ["kind", i.kind],
    ["sha256", i.sha256],
    ["size", i.size],
  ];
  if (i.firmware) {
    rows.push(
      ["ovmf-footer", yesNo(i.firmware.footer)],
      [
        "sev-es-reset-block",
        i.firmware.sevEsResetEip === null
          ? "no (cannot boot SEV-ES VMs)"
          : `yes (AP reset EIP ${hex(i.firmware.sevEsResetEip)})`,
      ],
      ["secret-area", yesNo(i.firmware.secretArea)],
      [
        "kernel-hashes-area",
        i.firmware.kernelHashesArea ? "yes" : "no (cannot measure a direct kernel boot)",
      ],
    );
  }
  rows.push(["created", `${i.createdAt}${i.createdBy ? ` by ${i.createdBy}` : ""}`]);
  return fields(rows);
}

function imageTable(images: readonly ApiImage[]): string {
  return table<ApiImage>(
    [
      { header: "NAME", value: (i) => i.name },
      { header: "KIND", value: (i) => i.kind },
      { header: "SIZE", value: (i) => i.size, right: true },
      { header: "SHA256", value: (i) => i.sha256 },
    ],
    images,
  );
}

export function registerImage(program: Command, io: CliIo): void {
  const image = program
    .command("image")
    .description(
      "the image catalog: firmware (OVMF), kernels and initrds VMs boot; upload, list, get, delete",
    );

  mutatingOptions(
    apiCommand(
      image
        .command("upload")
        .argument("<name>", "image name (letters, digits, '.', '_', '-')")
        .requiredOption("--kind <firmware|kernel|initrd>", "what the image is")
        .requiredOption("--file <file>", "the image file, e.g. /usr/share/OVMF/OVMF_CODE.fd")
        .description("upload an image (stored once per SHA-256; refused over the server's size limit)"),
    ),
  ).action(async (name: string, flags: MutatingFlags & { kind: string; file: string }) => {
    const mode = modeFor(flags);
    const kind = parseChoice(flags.kind, "--kind", KINDS);
    const bytes = readInputFile(flags.file, "--file");
    const api = apiFor(io, flags);
    const query = { name, kind, ...(flags.whatIf ? { dryRun: true } : {}) };
    if (flags.whatIf) {
      const plan = await api.request<ApiPlan>("POST", "/v1/images", { query, body: bytes });
      printPlan(io, mode, `image upload ${name}`, plan.body);
      return;
    }
    const r = await api.request<ApiImage>("POST", "/v1/images", { query, body: bytes });
    io.out(mode === "json" ? json(r.body) : imageFields(r.body));
  });

  apiCommand(image.command("list").description("list the catalog's images with their SHA-256"), {
    name: true,
  }).action(async (flags: CommonFlags) => {
    const mode = modeFor(flags, true);
    const api = apiFor(io, flags);
    const out: ApiImage[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: ApiImage[]; nextCursor: string | null } = await api.get("/v1/images", {
        query: { limit: 1000, ...(cursor === null ? {} : { cursor }) },
      });
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    if (mode === "json") io.out(json(out));
    else if (mode === "name") io.out(out.map((i) => `${i.name}\n`).join(""));
    else io.out(imageTable(out));
  });

  apiCommand(
    image
      .command("get")
      .argument("<name>", "image name")
      .description("show an image: SHA-256, size, what its footer declares"),
  ).action(async (name: string, flags: CommonFlags) => {
    const mode = modeFor(flags);
    const r = await apiFor(io, flags).get<ApiImage>(imagePath(name));
    io.out(mode === "json" ? json(r) : imageFields(r));
  });

  mutatingOptions(
    apiCommand(
      image
        .command("delete")
        .argument("<name>", "image name")
        .description("delete an image (refused with IMAGE_IN_USE while a VM boots it)"),
    ),
  ).action(async (name: string, flags: MutatingFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const path = imagePath(name);
    if (flags.whatIf) {
      const plan = await api.request<ApiPlan>("DELETE", path, { query: { dryRun: true } });
      printPlan(io, mode, `image delete ${name}`, plan.body);
      return;
    }
    await api.request("DELETE", path);
    if (mode === "json") io.out(json({ deleted: name }));
    else if (flags.quiet !== true) io.out(`deleted image ${name}\n`);
  });
}
