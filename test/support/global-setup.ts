import type { TestProject } from 'vitest/node';
import { startS3Server, type S3Server } from './s3-server.js';

/** Starts one real S3 server on 127.0.0.1 for the whole run and stops it at the end. */
let server: S3Server | undefined;

declare module 'vitest' {
  export interface ProvidedContext {
    s3Endpoint: string;
    s3Flavour: string;
    s3AccessKey: string;
    s3SecretKey: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  server = await startS3Server();
  project.provide('s3Endpoint', server.endpoint);
  project.provide('s3Flavour', server.flavour);
  project.provide('s3AccessKey', server.accessKey);
  project.provide('s3SecretKey', server.secretKey);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
