/**
 * A TCP proxy that can lose one response: the request reaches the node and is applied, then the
 * connection is cut just before the node's answer would reach the client. That is the failure
 * idempotent retries exist for, reproduced without touching the node.
 *
 * "The answer" is recognised per protocol:
 * - HTTP/1.1: the first byte the node sends on the connection (it sends nothing before answering).
 * - HTTP/2 (gRPC): the first HEADERS frame on a stream (stream id > 0). Before it the node sends
 *   only connection-level frames (SETTINGS, its ACK, WINDOW_UPDATE, PING), which are passed on so
 *   the client gets as far as sending its call. Frames are parsed just enough to find their
 *   boundaries: a 9-byte header of 24-bit length, 8-bit type, 8-bit flags and a 31-bit stream id
 *   (RFC 9113 §4.1).
 */
import type { AddressInfo, Server, Socket } from 'node:net';
import { connect, createServer } from 'node:net';

const FRAME_HEADER_BYTES = 9;
const FRAME_TYPE_HEADERS = 0x1;

export interface DroppingProxy {
  /** `host:port` to point a client at. */
  readonly address: string;
  /** Responses cut so far. */
  readonly dropped: number;
  /** Cut the next response (one only). */
  dropNextResponse(): void;
  close(): Promise<void>;
}

export async function startDroppingProxy(
  target: { host: string; port: number },
  protocol: 'http1' | 'h2',
): Promise<DroppingProxy> {
  let armed = false;
  let dropped = 0;
  const sockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    for (const socket of [client, upstream]) {
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined); // a cut connection errors on the other side; expected
    }
    const cut = (): void => {
      armed = false;
      dropped++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());

    // HTTP/2 is always parsed from the connection's first byte, so frame boundaries are known
    // whenever the proxy is armed; complete frames are forwarded as they arrive.
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (protocol === 'http1') {
        if (armed) cut();
        else client.write(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= FRAME_HEADER_BYTES) {
        const length = pending.readUIntBE(0, 3);
        const type = pending[3];
        const stream = pending.readUInt32BE(5) & 0x7fffffff;
        if (armed && type === FRAME_TYPE_HEADERS && stream > 0) {
          cut();
          return;
        }
        if (pending.length < FRAME_HEADER_BYTES + length) break;
        client.write(pending.subarray(0, FRAME_HEADER_BYTES + length));
        pending = pending.subarray(FRAME_HEADER_BYTES + length);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    get dropped() {
      return dropped;
    },
    dropNextResponse() {
      armed = true;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
