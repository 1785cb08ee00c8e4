// shoald as an operator runs it: a real process with its own data root, serving the local API on
// a root-only unix socket and Prometheus metrics, logging JSON lines, stopping cleanly on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { get } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { HealthClient, type HealthCheckResponse } from '../../../proto/gen/health.js';
import { waitFor } from '../../support/wait.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../../../..');

interface Running {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startDaemon(dir: string): Running {
  const proc = spawn(join(repo, 'bin/shoald'), ['--data-root', join(dir, 'data'), '-H', `unix://${join(dir, 'shoal.sock')}`, '--metrics-addr', '127.0.0.1:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, lines, exited };
}

function check(socket: string): Promise<HealthCheckResponse> {
  const client = new HealthClient(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, r) => {
      client.close();
      if (err || !r) reject(err ?? new Error('no response'));
      else resolve(r);
    }),
  );
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) =>
    get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
}

test('shoald serves health on its socket and metrics over HTTP, and stops cleanly on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoald-'));
  const d = startDaemon(dir);
  t.after(() => {
    if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const socket = join(dir, 'shoal.sock');
  const started = await waitFor('the start-up log line', () => d.lines.find((l) => l.msg === 'shoald started'));
  const res = await check(socket);
  assert.equal(res.status, 'SERVING');
  assert.equal(statSync(socket).mode & 0o777, 0o600, 'the local API is root-only');
  const metrics = await fetchText(`http://127.0.0.1:${String(started.metricsPort)}/metrics`);
  assert.match(metrics, /^shoal_daemon_info\{version="[^"]+",node_id=""\} 1$/m);
  assert.match(metrics, /^shoal_process_resident_memory_bytes \d+/m);
  assert.ok(d.lines.every((l) => typeof l.time === 'string' && typeof l.level === 'string'), 'every log line is structured JSON');

  d.proc.kill('SIGTERM');
  assert.equal(await d.exited, 0);
  assert.equal(existsSync(socket), false, 'the socket file is removed');
  assert.ok(d.lines.some((l) => l.msg === 'shoald stopped'));
});

test('a shoald killed with SIGKILL leaves a stale socket that the next start replaces', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoald-'));
  const procs: ChildProcess[] = [];
  t.after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const first = startDaemon(dir);
  procs.push(first.proc);
  await waitFor('first daemon', () => first.lines.find((l) => l.msg === 'shoald started'));
  first.proc.kill('SIGKILL');
  await first.exited;
  assert.equal(existsSync(join(dir, 'shoal.sock')), true);
  const second = startDaemon(dir);
  procs.push(second.proc);
  await waitFor('second daemon', () => second.lines.find((l) => l.msg === 'shoald started'));
  assert.equal((await check(join(dir, 'shoal.sock'))).status, 'SERVING');
  second.proc.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});
