/**
 * The guest's end of SNP guest messaging (what Linux's sev-guest driver does with its VMPCK): it reads its VMPCKs
 * from its decrypted secrets page, numbers its requests, seals them, and opens the firmware's responses, refusing
 * any response that does not authenticate under its VMPCK or does not carry the expected sequence number
 * (SNP ABI 56860, the guest messages chapter; envelope in `guest-message.ts`).
 *
 * @example
 * ```ts
 * const ch = new SnpGuestChannel(decodeSecretsPage(secrets).vmpck);
 * const req = ch.request(SnpMsgType.REPORT_REQ, encodeReportRequest({ reportData }));
 * // … the host relays req with SNP_GUEST_REQUEST …
 * const rsp = ch.response(responsePage);
 * ```
 */
import { CiphervisorError } from "../../errors.ts";
import { decodeGuestMessageHeader, openGuestMessage, sealGuestMessage } from "./guest-message.ts";

export class SnpGuestChannel {
  /** Per VMPCK, the sequence number of the last message sent or received. */
  readonly #seqno = [0n, 0n, 0n, 0n];
  #pending: { vmpck: number; seqno: bigint; msgType: number } | undefined;

  constructor(private readonly vmpck: readonly Uint8Array[]) {}

  /** A sealed request under VMPCK `vmpckId` with the next sequence number. */
  request(msgType: number, payload: Uint8Array, vmpckId = 0, msgVersion = 1): Uint8Array {
    const seqno = this.#seqno[vmpckId]! + 1n;
    this.#pending = { vmpck: vmpckId, seqno, msgType };
    return sealGuestMessage(this.vmpck[vmpckId]!, { seqno, msgType, msgVersion, vmpck: vmpckId, payload });
  }

  /** Opens the firmware's response to the last request; the sequence numbers move only when it authenticates. */
  response(page: Uint8Array): Uint8Array {
    const p = this.#pending;
    if (!p) throw new CiphervisorError("INVALID_INPUT", "no SNP guest request is pending");
    const h = decodeGuestMessageHeader(page);
    const payload = openGuestMessage(this.vmpck[p.vmpck]!, page);
    if (!payload || h.seqno !== p.seqno + 1n || h.msgType !== p.msgType + 1 || h.vmpck !== p.vmpck) {
      throw new CiphervisorError(
        "REPORT_INVALID",
        "the SNP guest response does not authenticate as the answer",
      );
    }
    this.#seqno[p.vmpck] = h.seqno;
    this.#pending = undefined;
    return payload;
  }
}
