/**
 * A chip's platform identity (docs/sev-interface.md §11.1, §11.3): the CEK (derived per chip, signed by the ASK through
 * the KDS), the OCA (self-signed unless an owner imports one), the PEK (signed by the OCA and the CEK) and the PDH
 * (the ECDH key guest owners wrap session keys for, signed by the PEK). All are P-384 SEV certificates.
 *
 * Private keys live in this object, inside the Secure Processor; only certificates ever leave it.
 *
 * The keys are generated on first use, not at construction: a fleet of 10,000 emulated hosts boots without
 * spending ~10 ms of P-384 arithmetic per chip on identities nobody has asked for yet. The identity's random
 * stream is its own, so deferring it yields the same keys as generating them eagerly.
 */
import { Algo, encodeSevCert, signSevCertEcdsa, Usage } from "../certs/sev-cert.ts";
import { type EcKeyPair, generateEcKeyPair } from "../crypto/ec.ts";
import type { RandomSource } from "../crypto/random.ts";
import type { Generation } from "../machine/cpu-models.ts";
import { deriveCek, unsignedCekCert } from "./manufacturer/emulated-amd.ts";

export interface ApiVersion {
  major: number;
  minor: number;
}

export class PlatformIdentity {
  readonly chipId: Uint8Array;
  /** The random stream of keys not generated yet; undefined once they exist. */
  #pending: RandomSource | undefined;
  #cek!: EcKeyPair;
  #cekCert!: Uint8Array;
  #ocaKey: EcKeyPair | undefined;
  #ocaCert!: Uint8Array;
  #pek!: EcKeyPair;
  #pekCert!: Uint8Array;
  #pdh!: EcKeyPair;
  #pdhCert!: Uint8Array;
  #owned: "self" | "external" = "self";

  constructor(
    readonly generation: Generation,
    chipId: Uint8Array,
    private readonly api: ApiVersion,
    rng: RandomSource,
  ) {
    this.chipId = chipId.slice();
    this.#pending = rng;
  }

  /**
   * Generates the deferred keys now (a no-op once they exist). Every reader calls it; PLATFORM_RESET calls it
   * before replacing the identity, so the replacement draws the same part of the stream as it would have eagerly.
   */
  ensure(): void {
    const rng = this.#pending;
    if (rng === undefined) return;
    this.#pending = undefined;
    this.#cek = deriveCek(this.generation, this.chipId);
    this.#cekCert = unsignedCekCert(this.generation, this.chipId);
    this.#generate(rng);
  }

  get cekCert(): Uint8Array {
    this.ensure();
    return this.#cekCert;
  }
  /** Needs no keys: an identity is self-owned until an owner's OCA is imported (which generates them first). */
  get owner(): "self" | "external" {
    return this.#owned;
  }
  get ocaCert(): Uint8Array {
    this.ensure();
    return this.#ocaCert.slice();
  }
  get pekCert(): Uint8Array {
    this.ensure();
    return this.#pekCert.slice();
  }
  get pdhCert(): Uint8Array {
    this.ensure();
    return this.#pdhCert.slice();
  }
  /** The PDH private scalar, for ECDH inside the firmware only. */
  get pdhPrivate(): Uint8Array {
    this.ensure();
    return this.#pdh.d;
  }
  get pekPublic(): EcKeyPair["pub"] {
    this.ensure();
    return this.#pek.pub;
  }

  #cert(usage: number, algo: number, key: EcKeyPair): Uint8Array {
    return encodeSevCert({ apiMajor: this.api.major, apiMinor: this.api.minor, usage, algo, pub: key.pub });
  }

  /** PEK_GEN / PLATFORM_RESET: a new self-signed OCA, a new PEK signed by OCA and CEK, and a new PDH. */
  regenerate(rng: RandomSource): void {
    this.ensure();
    this.#generate(rng);
  }

  #generate(rng: RandomSource): void {
    const oca = generateEcKeyPair(rng);
    this.#ocaKey = oca;
    this.#ocaCert = signSevCertEcdsa(this.#cert(Usage.OCA, Algo.ECDSA_SHA256, oca), 1, Usage.OCA, oca.d);
    this.#owned = "self";
    this.#pek = generateEcKeyPair(rng);
    this.#pekCert = this.#signPekByCek(
      signSevCertEcdsa(this.#cert(Usage.PEK, Algo.ECDSA_SHA256, this.#pek), 1, Usage.OCA, oca.d),
    );
    this.#newPdh(rng);
  }

  #signPekByCek(pek: Uint8Array): Uint8Array {
    return signSevCertEcdsa(pek, 2, Usage.CEK, this.#cek.d);
  }

  /** PDH_GEN: a new PDH signed by the current PEK. */
  regeneratePdh(rng: RandomSource): void {
    this.ensure();
    this.#newPdh(rng);
  }

  #newPdh(rng: RandomSource): void {
    this.#pdh = generateEcKeyPair(rng);
    this.#pdhCert = signSevCertEcdsa(
      this.#cert(Usage.PDH, Algo.ECDH_SHA256, this.#pdh),
      1,
      Usage.PEK,
      this.#pek.d,
    );
  }

  /** PEK_CSR: the PEK certificate with both signature slots empty. */
  pekCsr(): Uint8Array {
    this.ensure();
    return this.#cert(Usage.PEK, Algo.ECDSA_SHA256, this.#pek);
  }

  /**
   * PEK_CERT_IMPORT, after the caller checked the PEK key and the OCA signature: keep the owner's OCA, put the CEK
   * signature into slot 2 and mark the platform externally owned. The PDH stays valid (same PEK key).
   */
  importOwnerOca(ocaSignedPek: Uint8Array, ocaCert: Uint8Array): void {
    this.ensure();
    this.#ocaKey = undefined;
    this.#ocaCert = ocaCert.slice();
    this.#pekCert = this.#signPekByCek(ocaSignedPek);
    this.#owned = "external";
  }

  /** Whether this platform still holds its own OCA private key (self-owned). */
  get selfOwned(): boolean {
    this.ensure();
    return this.#ocaKey !== undefined;
  }
}
