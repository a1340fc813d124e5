/**
 * ksp as a library: the same model the CLI uses. Re-exports only.
 *
 *   import { openSavepoint, verifySavepoint, SavepointWriter } from 'ksp';
 *   const sp = await openSavepoint('s3://bucket/job/savepoints/00000000000000000042');
 *   for await (const batch of sp.entries({ operator: 'fraud', state: 'score' })) …
 *   await SavepointWriter.from(sp).rescale(8).write('./sp-p8', { mode: 'relative' });
 */
import { Savepoint } from './model/savepoint.js';
import type { Location } from './storage/uri.js';
import type { OpenOptions } from './model/savepoint.js';

/** Opens a savepoint or checkpoint directory (or its metadata.json): local path, file:// or s3://. */
export function openSavepoint(target: string | Location, options: OpenOptions = {}): Promise<Savepoint> {
  return Savepoint.open(target, options);
}

export { Savepoint } from './model/savepoint.js';
export type { EntryFilter, EntryRow, TaskFormat, TaskRef, PathMode, OpenOptions } from './model/savepoint.js';
export { verifySavepoint } from './model/verify.js';
export type { VerifyReport, Finding, FileCheck, TaskCheck, Severity } from './model/verify.js';
export { inspectSavepoint } from './model/inspect.js';
export { checkFilterNames, type NameFilter } from './model/filter-names.js';
export type { InspectSummary, OperatorSummary, TaskSummary, StateSummary, KeyGroupSpread } from './model/inspect.js';
export { listStorage } from './model/list.js';
export { SavepointWriter, type MigrateOptions, type RescaleOptions, type WriteOptions } from './write/writer.js';
export type { WriteReport, ExecuteOptions, TaskCount } from './write/execute.js';
export type { WritePlan, PlannedFile, OperatorPlan, OperationRecord, FileAction } from './write/plan.js';
export type { OutputMode } from './write/target.js';
export type { CollisionPolicy, CollisionReport } from './write/spill.js';
export { defineMigrations, MigrationRegistry, MigrationBuilder, type Step, type StepOptions, type KeyValue } from './migrate/registry.js';
export { codecs, type Codec } from './migrate/codecs.js';
export { loadMigrations } from './migrate/load.js';
export { SstManifestDoc, type SstManifest } from './formats/sst-manifest/sst-manifest.js';
export { parseRenameMap } from './formats/rename-map/rename-map.js';
export type { ListedEpoch } from './model/list.js';
export { KEY_GROUPS, keyGroup, keyGroupRange, taskForKeyGroup } from './model/key-group.js';
export { routingKey, windowGroupKey, isWatermarkKey, type Routing } from './model/routing.js';
export { viewCodec, codecSpec, VIEW_CODECS, type ViewCodec, type ViewCodecName, type CodecSpec } from './model/value-codecs.js';
export { decodeAggState, encodeAggState, type AggEntry } from './model/aggstate.js';
export { parseWindowKey, type WindowKey, type WindowKind } from './model/window-key.js';
export { exportEntries, formatFromPath, type ExportFormat, type ExportOptions, type ExportResult } from './export/export.js';
export { importRows, type ImportRow, type RowsSource, type Change as ImportChange } from './import/rows.js';
export { freshImport, type FreshOptions, type FreshImport } from './import/fresh.js';
export type { ImportOptions } from './import/plan.js';

export { MetadataDoc, epochDirName, type CheckpointMetadata, type OperatorSnapshotRef } from './formats/metadata/metadata.js';
export { MetaDoc, type SavepointMeta } from './formats/meta/meta.js';
export { parseManifest, buildManifest, MANIFEST_NAME, type ManifestEntry, type ParsedManifest } from './formats/manifest/manifest.js';
export { StateBinDecoder, decodeStateBin, type StateEntry, type StateBinHeader } from './formats/state-bin/decoder.js';
export { encodeStateBin, encodeStateBinToBuffer } from './formats/state-bin/encoder.js';
export { parsePointer, encodePointer, isPointerBlob, type Pointer } from './formats/pointer/pointer.js';
export { detectTaskBody, openBody, TASK_BODY_FORMATS, EMPTY_V1_SNAPSHOT, parseWindowJoin, type TaskBodyKind, type TaskBodyFormat, type TaskReader, type WindowJoinSummary, type TtlPrefixMode } from './formats/task-format/index.js';

export { locate, child, uriOf, type Location } from './storage/uri.js';
export type { Storage, ObjectInfo, ListEntry, ByteSource } from './storage/storage.js';
export { checkRelativePath, unsafeReason } from './formats/stored-path.js';
export { KspError, isKspError, ERROR_CODES, EXIT_CODES, type ErrorCode, type ErrorFamily } from './errors.js';

// Distributed runs (README "Scale-out"): plan, shards, commit, status.
export { writeDistributedPlan, writeExportPlan, runShard, runShardsInProcess, commitDistributed, distributedStatus, parseShard, type ShardReport, type CommitReport, type DistributedStatus, type DistributedPlan } from './write/distributed/index.js';

// ksp diff (README "ksp diff"): two savepoints' logical content compared.
export { diffSavepoints, SavepointDiff, type DiffReport, type DiffRow, type DiffOptions, type StateDiff, type DiffExample, type Change as DiffChange } from './diff/diff.js';
export { exportDiff, type DiffExportOptions } from './diff/export.js';
export type { MetadataChange } from './diff/metadata.js';
