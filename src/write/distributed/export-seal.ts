import { createHash } from 'node:crypto';
import { KspError } from '../../errors.js';
import { LocalStorage } from '../../storage/local.js';
import { S3Storage } from '../../storage/s3.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import { VERSION } from '../../version.js';
import { LOCK_NAME } from '../lock.js';
import { TEMP_MARK, targetEntries } from '../target-files.js';
import { SUCCESS_NAME } from './export-plan.js';
import { RESERVED, encodeJson, type DistributedPlan, type DoneRecord } from './plan-file.js';

/**
 * The commit of a sharded `inspect --out`, once every export unit has its
 * completion record: each part checked against its record (size; SHA-256
 * too with --full-verify), leftovers of killed shards removed (temporary
 * files, unfinished S3 uploads), anything else in the folder refused (a
 * stray file would be read as part of the table), then `_SUCCESS` written
 * last. The caller removes `_ksp/`.
 */

export interface ExportCommit {
  format: string;
  parts: number;
  rows: number;
  bytes: number;
  keyFailures: number;
  valueFailures: number;
  files: string[];
}

export async function sealExport(plan: DistributedPlan, dir: Location, done: Map<string, DoneRecord>, o: { fullVerify?: boolean; assertWritable: (l: Location) => void }): Promise<ExportCommit> {
  const r: ExportCommit = { format: '', parts: 0, rows: 0, bytes: 0, keyFailures: 0, valueFailures: 0, files: [] };
  const parts: Array<{ file: string; rows: number; bytes: number; sha256: string }> = [];
  const named = new Set<string>();
  for (const u of plan.units) {
    if (u.kind !== 'export') throw new KspError('DISTRIBUTED_PLAN_INVALID', `unit ${u.id}: a ${u.kind} unit in an export plan`, { unit: u.id });
    const rec = done.get(u.id)!;
    const out = rec.outputs[0];
    const where = `${uriOf(dir)}/${RESERVED}/units/${u.id}.done.json`;
    // Places come from the plan, never from a record.
    if (!out || out.uri !== u.to || rec.outputs.length !== 1 || !rec.exported) throw new KspError('DISTRIBUTED_PLAN_INVALID', `${where}: does not record the part ${u.to}`, { unit: u.id });
    const loc = locate(u.to);
    const st = await loc.storage.stat(loc.key);
    if (!st || st.size !== out.size) {
      throw new KspError('DISTRIBUTED_INCOMPLETE', `${u.to}: ${st ? `${st.size} bytes` : 'missing'}, but the completion record of ${u.id} says ${out.size} bytes; run the unit again (delete ${RESERVED}/units/${u.id}.done.json, then ksp work)`, { file: u.to, unit: u.id });
    }
    if (o.fullVerify) {
      const h = createHash('sha256');
      for await (const c of loc.storage.read(loc.key)) h.update(c);
      const found = h.digest('hex');
      if (found !== out.sha256) throw new KspError('OUTPUT_VERIFY_FAILED', `${u.to}: SHA-256 ${found}, but the completion record of ${u.id} says ${out.sha256}; run the unit again (delete ${RESERVED}/units/${u.id}.done.json, then ksp work)`, { file: u.to, expected: out.sha256, found });
    }
    named.add(u.rel);
    r.format = rec.exported.format;
    r.rows += rec.exported.rows;
    r.keyFailures += rec.exported.keyFailures;
    r.valueFailures += rec.exported.valueFailures;
    r.bytes += out.size;
    r.files.push(u.to);
    parts.push({ file: u.rel, rows: rec.exported.rows, bytes: out.size, sha256: out.sha256 });
  }
  r.parts = parts.length;

  // Leftovers of shards killed mid-write; anything else that is not ours is refused, not deleted.
  if (dir.storage instanceof S3Storage) await dir.storage.abortUploads(dir.key).catch(() => undefined);
  for await (const e of targetEntries(dir)) {
    if (named.has(e.rel) || e.rel === LOCK_NAME || e.rel.startsWith(`${RESERVED}/`)) continue;
    const where = `${uriOf(dir)}/${e.rel}`;
    if (dir.storage instanceof LocalStorage && e.kind === 'file' && e.rel.slice(e.rel.lastIndexOf('/') + 1).includes(TEMP_MARK)) {
      await dir.storage.delete(e.key).catch(() => undefined);
      continue;
    }
    throw new KspError('TARGET_FOREIGN_FILE', `${where}: is not a part of this export; readers of the folder would read it as part of the table, so nothing was committed (remove it yourself, then ksp commit again)`, { file: where });
  }

  const success = child(dir, SUCCESS_NAME);
  o.assertWritable(success);
  await dir.storage.write(success.key, encodeJson({
    format: 'ksp-export', ksp: VERSION, committed: new Date().toISOString(),
    source: { uri: plan.source.uri, manifestSha256: plan.source.manifestSha256 }, options: plan.options,
    exportFormat: r.format, rows: r.rows, bytes: r.bytes, parts,
  }));
  return r;
}
