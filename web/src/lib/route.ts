/**
 * The dashboard's pages as paths (`/vms`, `/vms/{id}/hypervisor-view`, …): real paths, so a reload or a bookmark
 * opens the same page (the server answers index.html for them), and no token or secret ever goes into one.
 */
export type Route =
  | { readonly page: "vms" }
  | { readonly page: "hosts" }
  | { readonly page: "operations"; readonly id?: string }
  | { readonly page: "audit" }
  | { readonly page: "hypervisor-view"; readonly id: string }
  | { readonly page: "attestation"; readonly id: string };

const ID = "([A-Za-z0-9_-]{1,64})";

/** The page of a path; unknown paths open the VMs page. */
export function parseRoute(path: string): Route {
  const p = path.replace(/\/+$/, "") || "/";
  let m = new RegExp(`^/vms/${ID}/hypervisor-view$`).exec(p);
  if (m?.[1]) return { page: "hypervisor-view", id: m[1] };
  m = new RegExp(`^/vms/${ID}/attestation$`).exec(p);
  if (m?.[1]) return { page: "attestation", id: m[1] };
  m = new RegExp(`^/operations/${ID}$`).exec(p);
  if (m?.[1]) return { page: "operations", id: m[1] };
  if (p === "/hosts") return { page: "hosts" };
  if (p === "/operations") return { page: "operations" };
  if (p === "/audit") return { page: "audit" };
  return { page: "vms" };
}

export function routePath(r: Route): string {
  switch (r.page) {
    case "vms":
      return "/vms";
    case "hosts":
      return "/hosts";
    case "audit":
      return "/audit";
    case "operations":
      return r.id ? `/operations/${encodeURIComponent(r.id)}` : "/operations";
    case "hypervisor-view":
      return `/vms/${encodeURIComponent(r.id)}/hypervisor-view`;
    case "attestation":
      return `/vms/${encodeURIComponent(r.id)}/attestation`;
  }
}
