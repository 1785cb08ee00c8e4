// The update settings a service's rolling update runs with, and where its update stands.
import { UpdateConfig, type Service, type UpdateConfig_Order } from '../../../proto/gen/objects.js';
import { blank } from '../../store/blank.js';

/** Docker's defaults, the same for updates and rollbacks. */
export const DEFAULT_MONITOR_MS = 5000;
export const DEFAULT_UPDATE_CONFIG: Readonly<UpdateConfig> = blank(UpdateConfig, {
  parallelism: 1,
  delayMs: 0,
  failureAction: 'PAUSE',
  monitorMs: DEFAULT_MONITOR_MS,
  maxFailureRatio: 0,
  order: 'STOP_FIRST',
});

/** A rollback is running (started by `service rollback` or by a failed update). */
export const rollingBack = (s: Service): boolean => s.updateStatus?.state === 'ROLLBACK_STARTED';

/** An update or rollback is running: not paused, not finished. */
export const updateRunning = (s: Service): boolean => s.updateStatus?.state === 'UPDATING' || rollingBack(s);

/** An update or rollback stopped on failures; only a new spec (or `service rollback`) moves it. */
export const updatePaused = (s: Service): boolean => s.updateStatus?.state === 'PAUSED' || s.updateStatus?.state === 'ROLLBACK_PAUSED';

/**
 * The config that applies now: the rollback config while rolling back, the update config
 * otherwise, Docker's defaults when the spec has none. A monitor of 0 means the default 5 s, as
 * Docker's API conversion treats it (an unset monitor and 0 cannot be told apart on the wire).
 * Parallelism 0 means all slots at once.
 */
export function updateConfigOf(s: Service): UpdateConfig {
  const given = rollingBack(s) ? s.spec?.rollback : s.spec?.update;
  const c = { ...(given ?? DEFAULT_UPDATE_CONFIG) };
  if (c.monitorMs <= 0) c.monitorMs = DEFAULT_MONITOR_MS;
  c.delayMs = Math.max(0, c.delayMs);
  return c;
}

export const updateOrderOf = (s: Service): UpdateConfig_Order => updateConfigOf(s).order;

/**
 * Whether tasks starting and turning healthy matter to this service's passes: a running update
 * waits for them, and so does a start-first service moving tasks off a drained node.
 */
export const watchesTaskProgress = (s: Service): boolean => updateRunning(s) || updateOrderOf(s) === 'START_FIRST';
