/** The libvirt host driver: virsh sessions, domain XML, and libvirt's SEV capabilities. */

export {
  DEFAULT_DOMAIN_XML_OPTIONS,
  type DomainXmlOptions,
  domainXml,
  escapeXml,
  policyHex,
} from "./domain-xml.ts";
export {
  parseDomCapabilities,
  parseNodeSevInfo,
  type SevDomainCapabilities,
  toHostCapabilities,
} from "./domcapabilities.ts";
export { LibvirtDriver, type LibvirtDriverOptions, virshOnPath } from "./driver.ts";
export { LibvirtHost } from "./host.ts";
export { VirshSession } from "./virsh.ts";
export { LIBVIRT_UNSUPPORTED } from "./virsh-errors.ts";
