import { DuckDBInstance } from '@duckdb/node-api';

/** Rows of one SQL query in a fresh in-memory DuckDB: the independent reader of every export test. */
export async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    c.closeSync();
  }
}
