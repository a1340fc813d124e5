// Type declarations for the pure-JavaScript codec packages, which ship none.
// Only the functions ksp calls are declared.

declare module 'snappyjs' {
  export function uncompress<T extends Uint8Array>(compressed: T, maxLength?: number): T;
  export function compress<T extends Uint8Array>(uncompressed: T): T;
}

declare module 'lz4js' {
  /** Decodes one raw LZ4 block into dst[dIndex…]; returns the index after the last byte written. */
  export function decompressBlock(src: Uint8Array, dst: Uint8Array, sIndex: number, sLength: number, dIndex: number): number;
  export function compressBlock(src: Uint8Array, dst: Uint8Array, sIndex: number, sLength: number, hashTable: Uint32Array): number;
  export function compressBound(n: number): number;
}

declare module 'seek-bzip' {
  /** An output stream: `decode` calls writeByte for every byte, and returns getBuffer() when it has one. */
  interface ByteSink { writeByte(b: number): void; getBuffer?(): Buffer }
  const Bunzip: { decode(input: Uint8Array, output?: Uint8Array | number | ByteSink, multistream?: boolean): Buffer };
  export default Bunzip;
}
