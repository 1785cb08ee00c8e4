// Peer-table rows as the network drivers write them (`endpoints/<network>/<endpoint>` → JSON), for
// the DNS tests: a task of a service with an IP, optionally a VIP and aliases.
import type { KvEntry } from '../../../kv/kv.js';

export interface PeerRow {
  ip: string;
  serviceName: string;
  slot?: number;
  task?: string;
  vip?: string;
  endpointMode?: 'vip' | 'dnsrr';
  aliases?: string[];
  /** Written only when given: rows of an older agent have no such field. */
  serving?: boolean;
}

let counter = 0;

/** The JSON value of one row; the task id and name follow Docker's `SERVICE.SLOT.TASKID`. */
export function peerValue(row: PeerRow): Uint8Array {
  const slot = row.slot ?? 1;
  const task = row.task ?? `t${row.ip.replace(/\./g, '')}`;
  const value: Record<string, unknown> = {
    ip: row.ip,
    mac: '02:42:0a:00:00:01',
    node: 'node-1',
    vtep: '192.168.1.1',
    task,
    taskName: `${row.serviceName}.${slot}.${task}`,
    serviceId: `svc-${row.serviceName}`,
    serviceName: row.serviceName,
    slot,
    aliases: row.aliases ?? [],
  };
  if (row.vip !== undefined) value.vip = row.vip;
  if (row.endpointMode !== undefined) value.endpointMode = row.endpointMode;
  if (row.serving !== undefined) value.serving = row.serving;
  return new TextEncoder().encode(JSON.stringify(value));
}

/** A KV entry for a row, as a watch would hand it out. */
export function peerEntry(networkId: string, row: PeerRow, endpointId = `ep${row.ip.replace(/\./g, '')}`): KvEntry {
  counter++;
  return { key: `endpoints/${networkId}/${endpointId}`, value: peerValue(row), createIndex: counter, modifyIndex: counter, lockIndex: 0 };
}
