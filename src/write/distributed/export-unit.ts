import { createHash } from 'node:crypto';
import { KspError } from '../../errors.js';
import { exportEntries } from '../../export/export.js';
import type { ExportCodecs } from '../../export/columns.js';
import { checkSourceIntegrity } from '../../model/source-integrity.js';
import { Savepoint, type EntryFilter } from '../../model/savepoint.js';
import { codecSpec } from '../../model/value-codecs.js';
import { locate, uriOf } from '../../storage/uri.js';
import type { ExportSpec, ExportUnitSpec } from './plan-file.js';
import type { UnitContext, UnitOutcome } from './run-unit.js';

/**
 * One part of a sharded `inspect --out`: the entries of the unit's tasks,
 * read as the one-process export reads them (`Savepoint.entries` with the
 * same filter, task after task in metadata order), written by the same
 * exporter (`export/export.ts exportEntries`) to the part file. The storage
 * write is atomic (a temporary name renamed, or one S3 upload), and the
 * bytes depend only on the plan, so a unit run twice, or by two shards at
 * once, leaves the same complete file. Memory stays bounded: rows stream
 * batch by batch from the task reader to the part.
 */
export async function runExportUnit(u: ExportUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  ctx.assertWritable(to);
  const s = u.spec;
  // The source's own checks, as the planner (and a one-process inspect) ran them.
  const source = s.savepoint;
  const sp = await Savepoint.open(s.savepoint, { allowRoots: s.roots });
  if (sp.metadataSha256 !== s.metadataSha256) {
    throw new KspError('DISTRIBUTED_SOURCE_CHANGED', `${uriOf(sp.dir)}/metadata.json: hashes to ${sp.metadataSha256}, but the distributed export was planned from ${s.metadataSha256}; the source changed since the plan was made`, { file: `${uriOf(sp.dir)}/metadata.json`, expected: s.metadataSha256, found: sp.metadataSha256 });
  }
  await checkSourceIntegrity(sp, s.trustSource);
  for (const t of u.tasks) {
    const ref = sp.tasks[t.index];
    if (!ref || ref.operatorId !== t.operatorId || ref.taskId !== t.taskId || uriOf(ref.location) !== t.uri) {
      throw new KspError('DISTRIBUTED_SOURCE_CHANGED', `${source}: task ${t.index} of the source is ${ref ? `${ref.operatorId}/${ref.taskId}` : 'gone'}, but the plan names ${t.operatorId}/${t.taskId}`, { unit: u.id, expected: `${t.operatorId}/${t.taskId}` });
    }
  }
  const filter: EntryFilter = { ...filterOf(s), tasks: new Set(u.tasks.map((t) => t.index)) };
  const codecs = await codecsOf(s);
  const hash = createHash('sha256');
  const r = await exportEntries(sp.entries(filter), to, {
    format: s.format, codecs, compression: s.compression,
    onChunk: (c) => hash.update(c),
  });
  const read = u.tasks.reduce((n, t) => n + (t.size ?? 0), 0);
  ctx.onBytes?.(read);
  return {
    outputs: [{ uri: u.to, rel: u.rel, sha256: hash.digest('hex'), size: r.bytes }],
    entries: r.rows,
    exported: { format: r.format, rows: r.rows, keyFailures: r.decode.keyFailures, valueFailures: r.decode.valueFailures },
    read,
  };
}

/** The entry filter of a one-process `inspect --out` with the same options (without the task set). */
export function filterOf(s: ExportSpec): EntryFilter {
  return {
    ...(s.operator !== undefined ? { operator: s.operator } : {}),
    ...(s.state !== undefined ? { state: s.state } : {}),
    ...(s.keyHex !== undefined ? { key: Buffer.from(s.keyHex, 'hex') } : {}),
    ...(s.keyPrefixHex !== undefined ? { keyPrefix: Buffer.from(s.keyPrefixHex, 'hex') } : {}),
  };
}

export async function codecsOf(s: ExportSpec): Promise<ExportCodecs> {
  return {
    ...(s.keyCodec ? { key: await codecSpec(s.keyCodec, 'key') } : {}),
    ...(s.valueCodec ? { value: await codecSpec(s.valueCodec, 'value') } : {}),
  };
}
