export {
  buildLaunchSecret,
  decodeSecretTable,
  encodeSecretTable,
  type LaunchSecretInput,
  type LaunchSecretPacket,
  MAX_SECRET_PAYLOAD,
  SECRET_TABLE_GUID,
  type SecretEntry,
} from "./secret.ts";
export { createLaunchSession, type LaunchSession, type SessionFiles, sessionFiles } from "./session.ts";
export {
  assertLaunchMeasurement,
  checkLaunchMeasurement,
  type LaunchMeasurementCheck,
  type LaunchMeasurementResult,
} from "./verify-measurement.ts";
export {
  checkSnpReport,
  SNP_REPORT_LINKS,
  type SnpReportLink,
  type SnpReportLinkResult,
  type SnpReportVerification,
  snpReportError,
  type VerifySnpReportInput,
  verifySnpReport,
} from "./verify-report.ts";
