import { Readable } from 'node:stream';
import { KspError } from '../errors.js';
import {
  SMALL_FILE_LIMIT, collect, toAsyncChunks,
  type ByteSource, type ListEntry, type ObjectInfo, type ReadOptions, type Storage,
} from './storage.js';

// The AWS SDK costs ~80 ms to load; it is imported only when an s3:// URI is used.
type S3Module = typeof import('@aws-sdk/client-s3');
type S3Client = import('@aws-sdk/client-s3').S3Client;

/** Part size for multipart uploads and copies; bounds memory per upload (x queue). */
const PART_SIZE = 16 * 1024 * 1024;
/** Objects above this are copied with UploadPartCopy (CopyObject's own limit is 5 GiB). */
const COPY_SINGLE_LIMIT = 5 * 1024 * 1024 * 1024;
const COPY_PART_SIZE = 512 * 1024 * 1024;
/**
 * Ranged GETs of one large read: their size, and how many run at once
 * (KSP_S3_RANGE_MB, KSP_S3_RANGES). Off by default (1: one GET streams the
 * object): on the S3 server the tests and the bench run against (moto), a
 * 77 MB object took 0.3 s as one GET and 0.8 s as 8 MiB ranges four at a
 * time, 0.4–0.6 s as 32 MiB ranges two at a time. Services that serve ranges
 * from parallel backends (AWS S3 recommends 8–16 MiB ranged GETs) may gain
 * from KSP_S3_RANGES=4.
 */
const rangePart = (): number => positive(process.env.KSP_S3_RANGE_MB, 8) * 1024 * 1024;
const rangesInFlight = (): number => positive(process.env.KSP_S3_RANGES, 1);

function positive(v: string | undefined, dflt: number): number {
  const n = Number(v);
  return v !== undefined && Number.isInteger(n) && n > 0 ? n : dflt;
}
/** Times a broken download stream is resumed with a ranged GET from where it stopped. */
const READ_RESUMES = 5;

let sdk: Promise<S3Module> | undefined;
function loadSdk(): Promise<S3Module> {
  if (process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) {
    // ksp supports Node 20; the SDK's end-of-life notice is noise on every run.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  }
  sdk ??= import('@aws-sdk/client-s3');
  return sdk;
}

/** The S3 endpoint and client settings ksp uses, from the environment. */
export function s3Settings(env: NodeJS.ProcessEnv = process.env) {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const maxAttempts = Number(env.KSP_S3_MAX_ATTEMPTS ?? 6);
  return {
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    // Path-style and "checksums only when required" for S3-compatible servers,
    // which often mishandle the SDK's aws-chunked checksum trailers.
    forcePathStyle: endpoint !== undefined || env.KSP_S3_PATH_STYLE === 'true',
    checksums: endpoint !== undefined ? ('WHEN_REQUIRED' as const) : ('WHEN_SUPPORTED' as const),
    maxAttempts: Number.isFinite(maxAttempts) && maxAttempts > 0 ? maxAttempts : 6,
  };
}

let sharedClient: Promise<S3Client> | undefined;
async function client(): Promise<S3Client> {
  sharedClient ??= (async () => {
    const { S3Client } = await loadSdk();
    const s = s3Settings();
    // The SDK's standard retry mode backs off exponentially (with jitter) on
    // throttling and 5xx answers; maxAttempts bounds it.
    return new S3Client({
      region: s.region,
      endpoint: s.endpoint,
      forcePathStyle: s.forcePathStyle,
      requestChecksumCalculation: s.checksums,
      responseChecksumValidation: s.checksums,
      maxAttempts: s.maxAttempts,
      retryMode: 'standard',
    });
  })();
  return sharedClient;
}

/** Drops the shared client (tests that change the endpoint between runs). */
export function resetS3Client(): void {
  sharedClient = undefined;
}

const SET_CREDENTIALS = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE to a profile in ~/.aws, or run with an IAM role (EC2/ECS instance role, EKS IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE)';

/**
 * What to set when S3 refuses for want of credentials: the SDK's own message
 * ("Could not load credentials from any providers") names no variable. A
 * server that is not AWS also needs its endpoint, which is the usual miss.
 */
export function credentialHint(err: { name?: string; message?: string; $metadata?: { httpStatusCode?: number } } | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  const endpoint = s3Settings(env).endpoint;
  const notAws = endpoint ? '' : '; for an S3-compatible server (MinIO, Ceph, …) also set AWS_ENDPOINT_URL to its address';
  if (err?.name === 'CredentialsProviderError' || (/could not load credentials/i.test(err?.message ?? '') && !err?.$metadata?.httpStatusCode)) {
    return `no S3 credentials were found: ${SET_CREDENTIALS}${notAws}`;
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken'].includes(err?.name ?? '')) {
    return `the S3 credentials were refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the AWS_PROFILE in use)${endpoint ? ` and that they are valid for ${endpoint}` : notAws}`;
  }
  return null;
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NotFound' || err?.name === 'NoSuchKey' || err?.$metadata?.httpStatusCode === 404;
}

export class S3Storage implements Storage {
  readonly kind = 's3' as const;
  readonly root: string;

  /** Keys per ListObjectsV2 page (S3's maximum is 1000; tests use small pages). */
  pageSize = Number(process.env.KSP_S3_LIST_PAGE) || 1000;

  constructor(readonly bucket: string) {
    this.root = `s3://${bucket}`;
  }

  uriOf(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  private fail(e: unknown, op: string, key: string): KspError {
    if (e instanceof KspError) return e;
    const uri = this.uriOf(key);
    if (isNotFound(e)) return new KspError('NOT_FOUND', `${uri}: no such object`, { file: uri }, { cause: e });
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const hint = credentialHint(err);
    return new KspError('STORAGE_IO', `${uri}: S3 ${op} failed: ${err?.name ?? 'Error'}: ${err?.message ?? String(e)}${hint ? `; ${hint}` : ''}`, {
      file: uri,
      status: err?.$metadata?.httpStatusCode,
      ...(hint ? { hint } : {}),
    }, { cause: e });
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const { HeadObjectCommand } = await loadSdk();
    try {
      const r = await (await client()).send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: Number(r.ContentLength ?? 0), mtimeMs: r.LastModified?.getTime() };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw this.fail(e, 'HeadObject', key);
    }
  }

  /**
   * A large object whose size is known is read, when KSP_S3_RANGES > 1, as
   * RANGE_PART ranges, RANGES_IN_FLIGHT at a time, yielded in order: one GET
   * stream is bound by one connection's throughput, a few in parallel may
   * not be. Memory: at most RANGES_IN_FLIGHT parts per read.
   */
  async *read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const start = options.offset ?? 0;
    const end = options.length !== undefined ? start + options.length : options.size;
    const RANGE_PART = rangePart();
    const RANGES_IN_FLIGHT = rangesInFlight();
    if (end === undefined || end - start <= 2 * RANGE_PART || RANGES_IN_FLIGHT === 1) {
      yield* this.readSerial(key, options);
      return;
    }
    const fetchPart = async (off: number): Promise<Uint8Array[]> => {
      const chunks: Uint8Array[] = [];
      for await (const c of this.readSerial(key, { offset: off, length: Math.min(RANGE_PART, end - off) })) chunks.push(c);
      return chunks;
    };
    const inflight: Array<Promise<Uint8Array[]>> = [];
    let next = start;
    const launch = (): void => {
      const p = fetchPart(next);
      p.catch(() => undefined); // awaited in order below; a later part's failure must not go unhandled meanwhile
      inflight.push(p);
      next += RANGE_PART;
    };
    while (inflight.length < RANGES_IN_FLIGHT && next < end) launch();
    while (inflight.length) {
      const chunks = await inflight.shift()!;
      if (next < end) launch();
      // A part shorter than asked means the object is shorter than its size
      // said: the caller's byte count reports it.
      yield* chunks;
    }
  }

  private async *readSerial(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const { GetObjectCommand } = await loadSdk();
    const c = await client();
    let pos = options.offset ?? 0;
    const end = options.length !== undefined ? pos + options.length : undefined; // exclusive
    if (end !== undefined && end <= pos) return;
    let resumes = 0;
    for (;;) {
      const range = pos > 0 || end !== undefined ? `bytes=${pos}-${end !== undefined ? end - 1 : ''}` : undefined;
      let body: Readable;
      try {
        const r = await c.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }));
        body = r.Body as Readable;
      } catch (e) {
        const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 416) return; // range starts at the end: nothing left
        throw this.fail(e, 'GetObject', key);
      }
      try {
        for await (const chunk of body) {
          pos += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        return;
      } catch (e) {
        body.destroy();
        // A long download that breaks midway is resumed from where it stopped
        // rather than restarted: savepoint files can be many gigabytes.
        if (++resumes > READ_RESUMES || e instanceof KspError) throw this.fail(e, 'GetObject (stream)', key);
      }
    }
  }

  async readSmall(key: string, maxBytes = SMALL_FILE_LIMIT): Promise<Uint8Array> {
    return collect(this.read(key), maxBytes, this.uriOf(key));
  }

  async write(key: string, data: ByteSource): Promise<void> {
    const mod = await loadSdk();
    const c = await client();
    try {
      if (data instanceof Uint8Array && data.length <= PART_SIZE) {
        await c.send(new mod.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ContentLength: data.length }));
        return;
      }
      // lib-storage buffers one part at a time (x queueSize), so memory stays
      // bounded whatever the object's size; an object only appears when the
      // multipart upload completes.
      const { Upload } = await import('@aws-sdk/lib-storage');
      const upload = new Upload({
        client: c,
        params: { Bucket: this.bucket, Key: key, Body: Readable.from(toAsyncChunks(data), { objectMode: false }) },
        partSize: PART_SIZE,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (e) {
      throw this.fail(e, 'upload', key);
    }
  }

  /**
   * Creates `key` only if no object has that key (PutObject with
   * `If-None-Match: *`); false when one exists. Used for the target lock.
   */
  async putIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    const mod = await loadSdk();
    try {
      await (await client()).send(new mod.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ContentLength: data.length, IfNoneMatch: '*' }));
      return true;
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      // 412: the key exists; 409: a concurrent conditional write to it is in progress.
      if (err.$metadata?.httpStatusCode === 412 || err.$metadata?.httpStatusCode === 409 || err.name === 'PreconditionFailed') return false;
      throw this.fail(e, 'PutObject (If-None-Match)', key);
    }
  }

  /**
   * Aborts every incomplete multipart upload under `prefix` + '/' (left by a
   * killed or failed run: its parts are stored, and billed, until aborted).
   * Returns how many were aborted.
   */
  async abortUploads(prefix: string): Promise<number> {
    const mod = await loadSdk();
    const c = await client();
    const p = prefix === '' ? '' : prefix + '/';
    let n = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let r;
      try {
        r = await c.send(new mod.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: p, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      } catch (e) {
        throw this.fail(e, 'ListMultipartUploads', prefix);
      }
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(p)) continue;
        try {
          await c.send(new mod.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
          n++;
        } catch (e) {
          if (!isNotFound(e)) throw this.fail(e, 'AbortMultipartUpload', u.Key);
        }
      }
      if (!r.IsTruncated) return n;
      keyMarker = r.NextKeyMarker;
      uploadIdMarker = r.NextUploadIdMarker;
      if (!keyMarker && !uploadIdMarker) return n;
    }
  }

  async *list(prefix: string, options: { delimiter?: boolean } = {}): AsyncIterable<ListEntry> {
    const { ListObjectsV2Command } = await loadSdk();
    const c = await client();
    const p = prefix === '' ? '' : prefix + '/';
    let token: string | undefined;
    do {
      let r;
      try {
        r = await c.send(new ListObjectsV2Command({
          Bucket: this.bucket, Prefix: p, ContinuationToken: token, Delimiter: options.delimiter ? '/' : undefined, MaxKeys: this.pageSize,
        }));
      } catch (e) {
        throw this.fail(e, 'ListObjectsV2', prefix);
      }
      // S3 returns files and folders in two lists; merge them in key order.
      const items: ListEntry[] = [];
      for (const cp of r.CommonPrefixes ?? []) if (cp.Prefix) items.push({ key: cp.Prefix.replace(/\/$/, ''), isPrefix: true });
      for (const o of r.Contents ?? []) {
        if (!o.Key || o.Key.endsWith('/')) continue;
        items.push({ key: o.Key, size: Number(o.Size ?? 0), mtimeMs: o.LastModified?.getTime() });
      }
      items.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
      yield* items;
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const { DeleteObjectCommand } = await loadSdk();
    try {
      await (await client()).send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (!isNotFound(e)) throw this.fail(e, 'DeleteObject', key);
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const mod = await loadSdk();
    const c = await client();
    const source = `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    const info = await this.stat(fromKey);
    if (!info) throw new KspError('NOT_FOUND', `${this.uriOf(fromKey)}: no such object`, { file: this.uriOf(fromKey) });
    try {
      if (info.size <= COPY_SINGLE_LIMIT) {
        await c.send(new mod.CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: source }));
        return;
      }
      const { UploadId } = await c.send(new mod.CreateMultipartUploadCommand({ Bucket: this.bucket, Key: toKey }));
      try {
        const parts = [];
        for (let off = 0, n = 1; off < info.size; off += COPY_PART_SIZE, n++) {
          const last = Math.min(off + COPY_PART_SIZE, info.size) - 1;
          const r = await c.send(new mod.UploadPartCopyCommand({
            Bucket: this.bucket, Key: toKey, UploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${off}-${last}`,
          }));
          parts.push({ PartNumber: n, ETag: r.CopyPartResult?.ETag });
        }
        await c.send(new mod.CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: toKey, UploadId, MultipartUpload: { Parts: parts } }));
      } catch (e) {
        await c.send(new mod.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: toKey, UploadId })).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      throw this.fail(e, 'copy', fromKey);
    }
  }
}
