// The CLI's connection to a daemon: the unix socket named by -H, $SHOAL_HOST, or the default.
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '../proto/gen/control.js';
import type * as C from '../proto/gen/control.js';
import type { FlagValues } from '../util/flags.js';
import { UserError } from '../util/command.js';

export const DEFAULT_HOST = 'unix:///run/shoal/shoal.sock';

export function hostFrom(global: FlagValues): string {
  const host = (global.host as string | undefined) || process.env.SHOAL_HOST || DEFAULT_HOST;
  if (!host.startsWith('unix://')) throw new UserError(`unsupported host "${host}": only unix:///path sockets are supported by this client yet`);
  return host;
}

export function control(global: FlagValues): ControlClient {
  return new ControlClient(hostFrom(global), grpc.credentials.createInsecure());
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
/** The Control API's unary methods the CLI uses, with their request and response types. */
interface Api {
  init: [C.InitRequest, C.InitResponse];
  join: [C.JoinRequest, C.JoinResponse];
  leave: [C.LeaveRequest, C.LeaveResponse];
  getJoinToken: [C.JoinTokenRequest, C.JoinTokenResponse];
  info: [C.InfoRequest, C.InfoResponse];
  listNodes: [C.ListNodesRequest, C.ListNodesResponse];
  getNode: [C.GetNodeRequest, C.GetNodeResponse];
  updateNode: [C.UpdateNodeRequest, C.UpdateNodeResponse];
  removeNode: [C.RemoveNodeRequest, C.RemoveNodeResponse];
  createService: [C.CreateServiceRequest, C.CreateServiceResponse];
  getService: [C.GetServiceRequest, C.GetServiceResponse];
  updateService: [C.UpdateServiceRequest, C.UpdateServiceResponse];
  removeService: [C.RemoveServiceRequest, C.RemoveServiceResponse];
  listServices: [C.ListServicesRequest, C.ListServicesResponse];
  listTasks: [C.ListTasksRequest, C.ListTasksResponse];
  createNetwork: [C.CreateNetworkRequest, C.CreateNetworkResponse];
  getNetwork: [C.GetNetworkRequest, C.GetNetworkResponse];
  listNetworks: [C.ListNetworksRequest, C.ListNetworksResponse];
  removeNetwork: [C.RemoveNetworkRequest, C.RemoveNetworkResponse];
  createConfig: [C.CreateConfigRequest, C.CreateConfigResponse];
  getConfig: [C.GetConfigRequest, C.GetConfigResponse];
  listConfigs: [C.ListConfigsRequest, C.ListConfigsResponse];
  removeConfig: [C.RemoveConfigRequest, C.RemoveConfigResponse];
}

/** One unary Control call as a promise, on a fresh connection; gRPC errors become one-line user errors. */
export function call<K extends keyof Api>(global: FlagValues, name: K, req: Api[K][0], timeoutMs = 60_000): Promise<Api[K][1]> {
  const client = control(global);
  const method = client[name] as unknown as Unary<Api[K][0], Api[K][1]>;
  return new Promise<Api[K][1]>((resolve, reject) =>
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res?: Api[K][1]) => {
      if (err) {
        const msg = err.code === grpc.status.UNAVAILABLE && /connect|No connection/i.test(err.details) ? `Cannot connect to the shoal daemon at ${client.getChannel().getTarget()}. Is shoald running?` : err.details || err.message;
        reject(new UserError(msg));
      } else resolve(res as Api[K][1]);
    }),
  ).finally(() => client.close());
}
