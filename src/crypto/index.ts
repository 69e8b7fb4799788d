export { aes128Ctr, aes128EcbDecrypt, aes128EcbEncrypt } from "./aes.ts";
export {
  type EcdsaSignature,
  type EcKeyPair,
  type EcPublicKey,
  ecdh,
  ecdsaSign,
  ecdsaVerify,
  generateEcKeyPair,
  isOnCurve,
  P384,
} from "./ec.ts";
export { digest, type HashName, hmacSha256, sha256, sha384 } from "./hash.ts";
export { deriveSessionKeys, sevKdf } from "./kdf.ts";
export { forkRandom, type RandomSource, seededRandom, systemRandom } from "./random.ts";
export {
  type RsaKeyPair,
  type RsaPublicKey,
  rsaKeyPairFromPem,
  rsaPssSign,
  rsaPssVerify,
  rsaPublicKeyObject,
} from "./rsa.ts";
