// The helper behind bindInNetns (netnssockets.ts), run as `nsenter --net=NS node netnsbind.js IP
// PORT` with an IPC channel: binds UDP and TCP on IP:PORT inside NS, hands both sockets to its
// parent over the channel, and exits. The kernel keeps a socket in the namespace it was made in.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer } from 'node:net';

const [ip = '', portText = ''] = process.argv.slice(2);
const port = Number(portText);

function fail(err: unknown): never {
  process.send?.({ error: `bind ${ip}:${port}: ${(err as Error).message}` });
  process.exit(1);
}

function sent(message: unknown, handle: UdpSocket | TcpServer): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, handle, {}, (err: Error | null) => (err ? reject(err) : resolve())));
}

if (!process.send) {
  process.stderr.write('netnsbind: run me with an IPC channel (see netnssockets.ts)\n');
  process.exit(2);
}
const udp = createSocket({ type: 'udp4' });
udp.once('error', fail);
udp.bind({ address: ip, port, exclusive: true }, () => {
  const tcp = createServer();
  tcp.once('error', fail);
  tcp.listen({ host: ip, port, exclusive: true }, () => {
    sent({ kind: 'udp' }, udp)
      .then(() => sent({ kind: 'tcp' }, tcp))
      .then(() => process.exit(0), fail);
  });
});
