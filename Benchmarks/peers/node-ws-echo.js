// Peer: an echo server on Node's `ws` module (Debian package node-ws), for the benchmark runner.
// Usage: node node-ws-echo.js PORT [--deflate]
// Serves echo on ws://127.0.0.1:PORT/echo with the same limits as the other peers (16 MiB messages).
'use strict';
let ws;
try {
  ws = require('ws');
} catch (e) {
  ws = require('/usr/share/nodejs/ws');
}

const port = parseInt(process.argv[2] || '9301', 10);
const deflate = process.argv.includes('--deflate');
const server = new ws.WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/echo',
  backlog: 4096,
  maxPayload: 16 * 1024 * 1024,
  perMessageDeflate: deflate ? { threshold: 32 } : false,
});
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  socket.on('error', () => {});
});
server.on('listening', () => console.log(`node-ws-echo listening on 127.0.0.1:${port} pid ${process.pid}`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
