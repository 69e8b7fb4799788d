/** The control plane's inventory: the storage interface, its types, and `openInventory`. */
export type {
  AuditFilter,
  AuditStore,
  ClusterStore,
  HostStore,
  ImageStore,
  Inventory,
  InventoryDialect,
  InventoryScope,
  OperationStore,
  TokenStore,
  VmStore,
} from "./inventory.ts";
export {
  type InventoryLocation,
  type OpenInventoryOptions,
  openInventory,
  parseInventoryUrl,
} from "./open.ts";
export * from "./types.ts";
