import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/env.js';

/**
 * The deployment files (README "Scale-out"), parsed and checked on the
 * fields that make a distributed run work: an Indexed Job whose every pod
 * runs `ksp work <target> --shard N` with N = its completions (the index
 * comes from JOB_COMPLETION_INDEX, which an Indexed Job sets), a commit Job
 * that runs `ksp commit` on the same target, credentials from the service
 * account (IRSA) and never in the files, and the same for AWS Batch. The
 * Kubernetes manifests are JSON, which is YAML too (kubectl reads either),
 * so they parse with no YAML package.
 */

const read = (rel: string): any => JSON.parse(readFileSync(join(ROOT, rel), 'utf8'));
const SECRET = /secret|password|token|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN/i;

/** Every env var and value in a document, flattened, for the no-secrets check. */
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { out.push(k); strings(x, out); }
  return out;
}

describe('deployment files', () => {
  const work = read('deploy/kubernetes/work-job.json');
  const commit = read('deploy/kubernetes/commit-job.json');
  const sa = read('deploy/kubernetes/service-account.json');

  it('Kubernetes: an Indexed Job of N shards, each ksp work <target> --shard N', () => {
    expect(work.apiVersion).toBe('batch/v1');
    expect(work.kind).toBe('Job');
    expect(work.spec.completionMode).toBe('Indexed');
    const n = work.spec.completions;
    expect(Number.isInteger(n) && n > 0).toBe(true);
    expect(work.spec.parallelism).toBeLessThanOrEqual(n);
    const pod = work.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0];
    expect(c.args).toEqual(['work', '$(KSP_TARGET)', '--shard', String(n)]);
    const env = Object.fromEntries(c.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
    expect(env.KSP_TARGET).toMatch(/^s3:\/\/[a-z0-9.-]+\/.+/);
    expect(env.KSP_TMPDIR).toBe('/scratch');
    // The index is the Job's: never pinned in the manifest.
    expect(env.JOB_COMPLETION_INDEX).toBeUndefined();
    expect(c.volumeMounts).toContainEqual({ name: 'scratch', mountPath: '/scratch' });
    expect(pod.volumes.find((v: { name: string }) => v.name === 'scratch').emptyDir).toBeDefined();
    // Sized from the bench's peak RSS of the writing commands (≈260–285 MB), with headroom.
    expect(c.resources.requests.memory).toBe('512Mi');
    expect(c.resources.limits.memory).toBe('1Gi');
  });

  it('Kubernetes: the commit Job runs ksp commit on the same target, once', () => {
    expect(commit.kind).toBe('Job');
    expect(commit.spec.completionMode).toBeUndefined();
    expect(commit.spec.completions).toBe(1);
    const c = commit.spec.template.spec.containers[0];
    expect(c.args.slice(0, 2)).toEqual(['commit', '$(KSP_TARGET)']);
    const target = (job: any): string => job.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'KSP_TARGET').value;
    expect(target(commit)).toBe(target(work));
    expect(c.image).toBe(work.spec.template.spec.containers[0].image);
  });

  it('Kubernetes: credentials from an IRSA service account, no secrets anywhere', () => {
    expect(sa.kind).toBe('ServiceAccount');
    expect(sa.metadata.annotations['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\//);
    for (const job of [work, commit]) {
      expect(job.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
      expect(strings(job).filter((s) => SECRET.test(s))).toEqual([]);
      expect(JSON.stringify(job)).not.toContain('secretKeyRef');
      expect(job.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    }
  });

  it('AWS Batch: an array job of N shards (index from AWS_BATCH_JOB_ARRAY_INDEX), and a commit job after it', () => {
    const def = read('deploy/aws-batch/job-definition.json');
    const submit = read('deploy/aws-batch/submit-work.json');
    const after = read('deploy/aws-batch/submit-commit.json');
    expect(def.containerProperties.command).toEqual(['work', 'Ref::target', '--shard', 'Ref::shards']);
    expect(String(submit.arrayProperties.size)).toBe(submit.parameters.shards);
    expect(submit.jobDefinition).toBe(def.jobDefinitionName);
    expect(def.containerProperties.jobRoleArn).toMatch(/^arn:aws:iam::\d{12}:role\//);
    expect(after.containerOverrides.command).toEqual(['commit', 'Ref::target', '--json']);
    expect(after.dependsOn).toHaveLength(1);
    expect(after.arrayProperties).toBeUndefined();
    for (const doc of [def, submit, after]) expect(strings(doc).filter((s) => SECRET.test(s))).toEqual([]);
  });

  it('the Dockerfile builds the CLI and runs it as a non-root user', () => {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.find((l) => l.startsWith('FROM'))).toMatch(/^FROM node:20/);
    expect(lines).toContain('ENTRYPOINT ["node", "/app/bin/ksp.js"]');
    expect(lines.some((l) => /^USER (node|\d+)/.test(l))).toBe(true);
    expect(lines.some((l) => l.includes('npm ci'))).toBe(true);
    expect(text).not.toMatch(SECRET);
  });
});
