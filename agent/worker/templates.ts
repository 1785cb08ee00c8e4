// Docker's service templates: `--hostname '{{.Node.Hostname}}-{{.Task.Slot}}'`, env values and
// mount sources may name the task, its service and its node, expanded on the node that runs the
// task (as swarmkit's agent does). Only Docker's placeholders are known; anything else is an
// error naming it, so a typo rejects the task instead of becoming a literal hostname.
import { hostname as osHostname } from 'node:os';
import type { Task } from '../../proto/gen/objects.js';
import { taskName } from './naming.js';
import { SpecRejectedError } from './containerspec.js';

const PLACEHOLDER = /\{\{\s*(\.[A-Za-z.]+)\s*\}\}/g;

export function templateValues(task: Task, nodeHostname: string = osHostname()): Record<string, string> {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch;
  return {
    '.Service.ID': task.serviceId,
    '.Service.Name': task.serviceName,
    '.Node.ID': task.nodeId,
    '.Node.Hostname': nodeHostname,
    '.Node.Platform.OS': 'linux',
    '.Node.Platform.Architecture': arch,
    '.Task.ID': task.id,
    '.Task.Name': taskName(task),
    '.Task.Slot': task.slot > 0 ? String(task.slot) : task.nodeId,
  };
}

/** Expands `text`; throws SpecRejectedError naming an unknown placeholder or a stray `{{`. */
export function expandTemplate(text: string, values: Record<string, string>, what: string): string {
  if (!text.includes('{{')) return text;
  const out = text.replace(PLACEHOLDER, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new SpecRejectedError(`${what} "${text}": unknown template placeholder ${whole} (known: ${Object.keys(values).map((k) => `{{${k}}}`).join(', ')})`);
    return v;
  });
  if (out.includes('{{')) throw new SpecRejectedError(`${what} "${text}": malformed template`);
  return out;
}
