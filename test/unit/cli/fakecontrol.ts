// A stand-in Control service on a unix socket, for running CLI commands end to end in unit
// tests: it records every request and answers from per-method functions the test supplies
// (NOT_FOUND and friends by throwing a FakeError). Unanswered methods return UNIMPLEMENTED.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ControlService } from '../../../proto/gen/control.js';
import { runCommand } from '../../../util/command.js';
import { root } from '../../../cli/root.js';

export class FakeError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export type Answer = (req: never) => unknown;

export interface Call {
  method: string;
  request: Record<string, unknown>;
}

export class FakeControl {
  readonly calls: Call[] = [];
  readonly answers: Record<string, Answer> = {};
  private readonly server = new grpc.Server();
  private readonly dir = mkdtempSync(join(tmpdir(), 'shoal-cli-'));
  readonly host = `unix://${join(this.dir, 'control.sock')}`;

  async start(): Promise<void> {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of Object.keys(ControlService)) {
      const name = method.charAt(0).toLowerCase() + method.slice(1);
      handlers[name] = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.calls.push({ method: name, request: call.request });
        const answer = this.answers[name];
        if (!answer) return cb({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not answered by this test` });
        try {
          cb(null, answer(call.request as never));
        } catch (e) {
          cb({ code: e instanceof FakeError ? e.code : grpc.status.UNKNOWN, details: (e as Error).message });
        }
      };
    }
    this.server.addService(ControlService, handlers);
    await new Promise<void>((resolve, reject) => this.server.bindAsync(this.host, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  /** Runs `shoal -H <fake> ...argv`, capturing its output. */
  async run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out = new PassThrough();
    const err = new PassThrough();
    const o: Buffer[] = [];
    const e: Buffer[] = [];
    out.on('data', (b: Buffer) => o.push(b));
    err.on('data', (b: Buffer) => e.push(b));
    const code = await runCommand(root, ['-H', this.host, ...argv], { out, err });
    return { code, out: Buffer.concat(o).toString(), err: Buffer.concat(e).toString() };
  }
}
