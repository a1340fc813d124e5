import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitHttp } from '../../src/tools/loopback-server.js';

/**
 * A real S3 server on loopback: moto_server (on this machine image), or
 * s3rver from npm when moto is missing (with its known limits: no abort of
 * multipart uploads, no suffix ranges, OpenSSL legacy provider for its
 * continuation tokens). Neither: a clear error with what to install.
 */

export interface S3Server {
  endpoint: string;
  flavour: 'moto' | 's3rver';
  /** Credentials the server accepts (moto: any; s3rver: its fixed pair). */
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}


function stopper(child: ChildProcess, cleanup?: () => void): () => Promise<void> {
  return async () => {
    if (child.exitCode === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    cleanup?.();
  };
}

export async function startS3Server(): Promise<S3Server> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const moto = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).stdout.trim();
  if (moto && process.env.KSP_TEST_S3 !== 's3rver') {
    const child = spawn(moto, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await waitHttp(endpoint, child, 'S3 server');
    return { endpoint, flavour: 'moto', accessKey: 'test', secretKey: 'test', stop: stopper(child) };
  }
  const bin = join(process.cwd(), 'node_modules', 's3rver', 'bin', 's3rver.js');
  if (!existsSync(bin)) {
    // Installed on demand: moto is on the machine image, so most runs never need it.
    console.warn('moto_server not found: installing the s3rver fallback (npm install --no-save s3rver@3.7.1)');
    const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', 's3rver@3.7.1'], { stdio: 'inherit' });
    if (r.status !== 0 || !existsSync(bin)) {
      throw new Error('No S3 server for the tests: moto_server is not on PATH and installing s3rver failed. ' +
        'Install one: `pip install "moto[server]"` (moto_server), or `npm install --no-save s3rver@3.7.1`.');
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'ksp-s3rver-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', bin, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent'], { stdio: 'ignore' });
  await waitHttp(endpoint, child, 'S3 server');
  return { endpoint, flavour: 's3rver', accessKey: 'S3RVER', secretKey: 'S3RVER', stop: stopper(child, () => rmSync(dir, { recursive: true, force: true })) };
}
