/** Hosts: where VMs run, with the SEV platform facts placement needs (ASID pool sizes, ES/SNP mode). */
import type { Selectable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { DEFAULT_HOST_VMM_PROFILE } from "../../../measure/vmsa.ts";
import { newId } from "../../ids.ts";
import type { HostStore } from "../inventory.ts";
import {
  HOST_CONNECTION_STATES,
  HOST_DRIVERS,
  HOST_ES_MODES,
  HOST_GENERATIONS,
  HOST_MAINTENANCE_STATES,
  HOST_SEV_STATES,
  HOST_VMM_PROFILES,
  type Host,
  type HostFirmware,
  type HostGeneration,
  type HostPatch,
  type NewHost,
} from "../types.ts";
import { intInRange, oneOf, validName } from "../validate.ts";
import { isoNow, type StoreContext } from "./context.ts";
import { guardDb } from "./errors.ts";
import { pageLimit, stringCursor, toPage } from "./paging.ts";
import type { HostTable } from "./schema.ts";
import { updateVersioned } from "./versioned.ts";

/** More ASIDs than any EPYC has (Genoa: 1,006); anything larger is a typo. */
const MAX_ASIDS = 65535;

function toHost(r: Selectable<HostTable>): Host {
  return {
    id: r.id,
    name: r.name,
    clusterId: r.cluster_id,
    driver: oneOf(r.driver, HOST_DRIVERS, "driver"),
    address: r.address,
    cpuGeneration: oneOf<HostGeneration>(r.cpu_generation, HOST_GENERATIONS, "cpuGeneration"),
    sevState: oneOf(r.sev_state, HOST_SEV_STATES, "sevState"),
    esMode: oneOf(r.es_mode, HOST_ES_MODES, "esMode"),
    vmmProfile: oneOf(r.vmm_profile, HOST_VMM_PROFILES, "vmmProfile"),
    sevAsids: Number(r.sev_asids),
    esAsids: Number(r.es_asids),
    snpAsids: Number(r.snp_asids),
    maintenance: oneOf(r.maintenance, HOST_MAINTENANCE_STATES, "maintenance"),
    connection: oneOf(r.connection_state, HOST_CONNECTION_STATES, "connection"),
    firmware: firmwareOf(r),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}

/** The firmware version of a row: all three columns, or null when the host has not reported them (before 0004). */
function firmwareOf(r: Selectable<HostTable>): HostFirmware | null {
  if (r.fw_api_major === null || r.fw_api_minor === null || r.fw_build === null) return null;
  return { apiMajor: Number(r.fw_api_major), apiMinor: Number(r.fw_api_minor), build: Number(r.fw_build) };
}

/** The firmware columns of `f` (each a byte in PLATFORM_STATUS; libvirt's text gets a little more room), validated. */
function firmwareColumns(
  f: HostFirmware | null,
): Pick<HostTable, "fw_api_major" | "fw_api_minor" | "fw_build"> {
  return {
    fw_api_major: f === null ? null : intInRange(f.apiMajor, 0, 255, "firmware.apiMajor"),
    fw_api_minor: f === null ? null : intInRange(f.apiMinor, 0, 255, "firmware.apiMinor"),
    fw_build: f === null ? null : intInRange(f.build, 0, 0xffff, "firmware.build"),
  };
}

/** Column values for the fields present in `p`, validated. */
function hostColumns(p: HostPatch): Partial<HostTable> {
  const c: Partial<HostTable> = {};
  if (p.name !== undefined) c.name = validName(p.name, "name");
  if (p.clusterId !== undefined) c.cluster_id = p.clusterId;
  if (p.driver !== undefined) c.driver = oneOf(p.driver, HOST_DRIVERS, "driver");
  if (p.address !== undefined) c.address = p.address;
  if (p.cpuGeneration !== undefined)
    c.cpu_generation = oneOf(p.cpuGeneration, HOST_GENERATIONS, "cpuGeneration");
  if (p.sevState !== undefined) c.sev_state = oneOf(p.sevState, HOST_SEV_STATES, "sevState");
  if (p.esMode !== undefined) c.es_mode = oneOf(p.esMode, HOST_ES_MODES, "esMode");
  if (p.vmmProfile !== undefined) c.vmm_profile = oneOf(p.vmmProfile, HOST_VMM_PROFILES, "vmmProfile");
  if (p.sevAsids !== undefined) c.sev_asids = intInRange(p.sevAsids, 0, MAX_ASIDS, "sevAsids");
  if (p.esAsids !== undefined) c.es_asids = intInRange(p.esAsids, 0, MAX_ASIDS, "esAsids");
  if (p.snpAsids !== undefined) c.snp_asids = intInRange(p.snpAsids, 0, MAX_ASIDS, "snpAsids");
  if (p.maintenance !== undefined)
    c.maintenance = oneOf(p.maintenance, HOST_MAINTENANCE_STATES, "maintenance");
  if (p.connection !== undefined)
    c.connection_state = oneOf(p.connection, HOST_CONNECTION_STATES, "connection");
  if (p.firmware !== undefined) Object.assign(c, firmwareColumns(p.firmware));
  return c;
}

export function hostStore(ctx: StoreContext): HostStore {
  const get = async (id: string): Promise<Host | undefined> => {
    const r = await guardDb(() =>
      ctx.db.selectFrom("hosts").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    return r && toHost(r);
  };
  const missingCluster = ["NOT_FOUND", "the host's cluster does not exist"] as const;
  return {
    get,
    async getByName(name) {
      const r = await guardDb(() =>
        ctx.db.selectFrom("hosts").selectAll().where("name", "=", name).executeTakeFirst(),
      );
      return r && toHost(r);
    },
    async list(filter = {}, page) {
      const limit = pageLimit(page);
      const after = stringCursor(page);
      const rows = await guardDb(() => {
        let q = ctx.db
          .selectFrom("hosts")
          .selectAll()
          .orderBy("id")
          .limit(limit + 1);
        if (after !== undefined) q = q.where("id", ">", after);
        if (filter.clusterId !== undefined) q = q.where("cluster_id", "=", filter.clusterId);
        if (filter.cpuGeneration !== undefined) q = q.where("cpu_generation", "=", filter.cpuGeneration);
        if (filter.maintenance !== undefined) q = q.where("maintenance", "=", filter.maintenance);
        return q.execute();
      });
      return toPage(rows.map(toHost), limit, (h) => h.id);
    },
    async create(h: NewHost) {
      const now = isoNow(ctx);
      const cols = hostColumns(h);
      const row: HostTable = {
        id: h.id ?? newId("host", ctx.now().getTime()),
        name: cols.name ?? "",
        cluster_id: h.clusterId ?? null,
        driver: cols.driver ?? "emulated",
        address: cols.address ?? h.name,
        cpu_generation: cols.cpu_generation ?? "",
        sev_state: cols.sev_state ?? "working",
        es_mode: cols.es_mode ?? "sev-es",
        vmm_profile: cols.vmm_profile ?? DEFAULT_HOST_VMM_PROFILE,
        sev_asids: cols.sev_asids ?? 0,
        es_asids: cols.es_asids ?? 0,
        snp_asids: cols.snp_asids ?? 0,
        maintenance: cols.maintenance ?? "none",
        connection_state: cols.connection_state ?? "connected",
        ...firmwareColumns(h.firmware ?? null),
        created_at: now,
        updated_at: now,
        version: 1,
      };
      await guardDb(() => ctx.db.insertInto("hosts").values(row).execute(), {
        unique: `a host named '${h.name}' already exists`,
        foreignKey: missingCluster,
      });
      return toHost(row);
    },
    async lockMany(ids) {
      if (ids.length === 0) return [];
      const rows = await guardDb(() => {
        const q = ctx.db
          .selectFrom("hosts")
          .selectAll()
          .where("id", "in", [...ids])
          .orderBy("id");
        // SQLite has no row locks; its IMMEDIATE write transaction already excludes other writers.
        return ctx.dialect === "postgres" ? q.forUpdate().execute() : q.execute();
      });
      return rows.map(toHost);
    },
    async update(id, patch, expectedVersion) {
      await updateVersioned(ctx, "hosts", id, hostColumns(patch), expectedVersion, "host", {
        unique: `a host named '${patch.name ?? ""}' already exists`,
        foreignKey: missingCluster,
      });
      const after = await get(id);
      if (!after) throw new CiphervisorError("NOT_FOUND", `host ${id} not found`);
      return after;
    },
    async delete(id) {
      const r = await guardDb(() => ctx.db.deleteFrom("hosts").where("id", "=", id).executeTakeFirst(), {
        foreignKey: ["CONFLICT", `host ${id} still has VMs placed on it`],
      });
      if (Number(r.numDeletedRows) === 0) throw new CiphervisorError("NOT_FOUND", `host ${id} not found`);
    },
  };
}
