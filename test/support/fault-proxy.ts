import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy on 127.0.0.1 in front of the test S3 server that injects
 * faults: answer the next N requests with an error status, or cut the next
 * GET's response body after some bytes (the connection is dropped).
 */
export class FaultProxy {
  private server: Server;
  failNext = 0;
  failStatus = 503;
  cutNextGetAfter: number | null = null;
  readonly seen: Array<{ method: string; url: string; range?: string; status: number }> = [];

  private constructor(readonly target: string) {
    this.server = createServer((req, res) => {
      const entry = { method: req.method ?? '', url: req.url ?? '', range: req.headers.range, status: 0 };
      this.seen.push(entry);
      if (this.failNext > 0) {
        this.failNext--;
        entry.status = this.failStatus;
        res.writeHead(this.failStatus, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${this.failStatus === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>injected</Message></Error>`);
        req.resume();
        return;
      }
      const cut = req.method === 'GET' && this.cutNextGetAfter !== null && !req.url?.includes('list-type') ? this.cutNextGetAfter : null;
      if (cut !== null) this.cutNextGetAfter = null;
      const u = new URL(target);
      const up = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        entry.status = ur.statusCode ?? 0;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (cut === null) {
          ur.pipe(res);
          return;
        }
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent >= cut) return;
          const part = c.subarray(0, cut - sent);
          sent += part.length;
          res.write(part);
          if (sent >= cut) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
        ur.on('end', () => res.end());
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
  }

  static async start(target: string): Promise<FaultProxy> {
    const p = new FaultProxy(target);
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', () => r()));
    return p;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
