import { describe, expect, it } from 'vitest';
import { hash64, legacyBloomHash } from '../../src/rocksdb/hash.js';

/**
 * The Bloom filter hashes against RocksDB's own published values
 * (util/hash_test.cc): a filter built with a hash that differs in any input
 * length makes RocksDB miss keys that exist.
 */

const u64 = (b: Uint8Array): bigint => {
  const [hi, lo] = hash64(b);
  return (BigInt(hi) << 32n) | BigInt(lo);
};

/** RocksDB's `Hash64TestDescriptor`: one base-61 letter per prefix length 0..limit-1 of a repeated string. */
function descriptor(repeat: string, limit: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const input = Buffer.from(repeat.repeat(Math.ceil(limit / repeat.length) + 1));
  let out = '';
  for (let i = 0; i < limit; i++) out += alphabet[Number(u64(input.subarray(0, i)) % 61n)];
  return out;
}

describe('hash64 (RocksDB Hash64, preview XXH3)', () => {
  it('gives RocksDB\'s values for short inputs', () => {
    const x = (s: string): Buffer => Buffer.from(s, 'latin1');
    expect(u64(x(''))).toBe(5999572062939766020n);
    expect(u64(x('\x08'))).toBe(583283813901344696n);
    expect(u64(x('\x4d\x76'))).toBe(6859542833406258115n);
    expect(u64(x('\x30\x46\x0b'))).toBe(11404699285340020889n);
    expect(u64(x('\x08\x5d\x73\x1c\xe5\x2e'))).toBe(4237646583134806322n);
  });

  it('matches RocksDB\'s descriptors for every length up to 430 (all code paths, long inputs included)', () => {
    expect(descriptor('foo', 430)).toBe(
      'cRhyWsY67B6klRA1udmOuiYuX7IthyGBKqbeosz2hzVglWCmQx8nEdnpkvPfYX56Up2OWOTV' +
      'lTzfAoYwvtqKzjD8E9xttR2unelbXbIV67NUe6bOO23BxaSFRcA3njGu5cUWfgwOqNoTsszp' +
      'uPvKRP6qaUR5VdoBkJUCFIefd7edlNK5mv6JYWaGdwxehg65hTkTmjZoPKxTZo4PLyzbL9U4' +
      'xt12ITSfeP2MfBHuLI2z2pDlBb44UQKVMx27LEoAHsdLp3WfWfgH3sdRBRCHm33UxCM4QmE2' +
      'xJ7gqSvNwTeH7v9GlC8zWbGroyD3UVNeShMLx29O7tH1biemLULwAHyIw8zdtLMDpEJ8m2ic' +
      'l6Lb4fDuuFNAs1GCVUthjK8CV8SWI8Rsz5THSwn5CGhpqUwSZcFknjwWIl5rNCvDxXJqYr');
    expect(descriptor('RocksDB', 430)).toBe(
      'c1EeRkukbkb28wLTahwD2sfUhZzaBEnF8SVrxnPVB6A7b8CaAl3UKsDZISF92GSq2wDCukOq' +
      'Jgrsp7A3KZhDiLW8dFXp8UPqPxMCRlMdZeVeJ2dJxrmA6cyt99zkQFj7ELbut6jAeVqARFnw' +
      'fnWVXOsaLrq7bDCbMcns2DKvTaaqTCLMYxI7nhtLpFN1jR755FRQFcOzrrDbh7QhypjdvlYw' +
      'cdAMSZgp9JMHxbM23wPSuH6BOFgxejz35PScZfhDPvTOxIy1jc3MZsWrMC3P324zNolO7JdW' +
      'CX2I5UDKjjaEJfxbgVgJIXxtQGlmj2xkO5sPpjULQV4X2HlY7FQleJ4QRaJIB4buhCA4vUTF' +
      'eMFlxCIYUpTCsal2qsmnGOWa8WCcefrohMjDj1fjzSvSaQwlpyR1GZHF2uPOoQagiCpHpm');
  });
});

describe('legacyBloomHash (RocksDB BloomHash)', () => {
  it('gives RocksDB\'s values, sign extension of trailing bytes included', () => {
    const x = (s: string): Buffer => Buffer.from(s, 'latin1');
    expect(legacyBloomHash(x(''))).toBe(3164544308);
    expect(legacyBloomHash(x('\x9a'))).toBe(3195034349);
    expect(legacyBloomHash(x('\x91\xf7'))).toBe(31066776);
    expect(legacyBloomHash(x('\x6a\xb5\xf4'))).toBe(2469105222);
    expect(legacyBloomHash(x('\x46\xdc\x54\xbe'))).toBe(447346355);
    expect(legacyBloomHash(x('\xd3\xa5\x7c\x0e\xc0\x02\x07'))).toBe(2030937252);
    expect(legacyBloomHash(x('\xbd\x2c\x63\x38\xbf\xe9\x78\xb7\xbf\x15'))).toBe(3382479516);
  });
});
