'use strict';
// A RocketMQ producer (the npm package ali-ons) following the master of a
// broker set in controller mode, for tests/integration/controller_route.t.
//
//   node route_client.js produce NAMESRVS TOPIC PREFIX
//       NAMESRVS: the gateways serving as name servers, separated by ';'.
//       Sends key PREFIX-<i> (i from 0), one at a time, every 50 ms, until
//       the file STOP_FILE (environment) exists and, after it appeared, one
//       more message was acknowledged (at most 120 s).  Prints "ack KEY ADDR
//       QUEUE QUEUEOFFSET" for each acknowledged send (ADDR: the broker
//       address the route named for the send's broker set, the one it was
//       sent to) and "fail KEY ERROR" for each send that failed (it goes on
//       with the next key after 200 ms).  The routes are asked again every
//       second (pollNameServerInteval), so a new master is found.
//
// Exit status 0 when it ended as asked, 1 otherwise (the error on stderr).
const fs = require('fs');
const { Producer, Message } = require('ali-ons');

// ali-ons asks for an HTTP client (for its cloud name-server lookup); with
// nameSrv set it is never called.
const httpclient = {
  request() {
    throw new Error('no HTTP lookups');
  },
};
const logger = {
  info() {},
  warn() {},
  debug() {},
  error() {},
};

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function produce(namesrvs, topic, prefix) {
  const producer = new Producer({
    httpclient,
    logger,
    nameSrv: namesrvs.split(';'),
    producerGroup: `PG_${prefix.replace(/[^A-Za-z0-9_]/g, '_')}`,
    instanceName: `r${process.pid}`,
    pollNameServerInteval: 1000,
    sendMsgTimeout: 2000,
  });
  await producer.ready();
  const stopFile = process.env.STOP_FILE;
  const until = Date.now() + 120000;
  let stopSeen = false;
  for (let i = 0; Date.now() < until; i++) {
    const key = `${prefix}-${i}`;
    const msg = new Message(topic, 'TagR', Buffer.from(key));
    msg.keys = [ key ];
    try {
      const r = await producer.send(msg);
      if (r.sendStatus !== 'SEND_OK') throw new Error(`status ${r.sendStatus}`);
      const addr = producer._mqClient.findBrokerAddressInPublish(r.messageQueue.brokerName);
      console.log(`ack ${key} ${addr} ${r.messageQueue.queueId} ${r.queueOffset}`);
      if (stopSeen) break;
    } catch (err) {
      console.log(`fail ${key} ${String(err && err.message).replace(/\s+/g, ' ').slice(0, 200)}`);
      await sleep(200);
    }
    if (stopFile && fs.existsSync(stopFile)) stopSeen = true;
    await sleep(50);
  }
  await producer.close();
  if (!stopSeen) throw new Error('STOP_FILE never appeared');
}

const [ mode, ...args ] = process.argv.slice(2);
let run;
if (mode === 'produce') run = produce(args[0], args[1], args[2]);
else run = Promise.reject(new Error('usage: route_client.js produce NAMESRVS TOPIC PREFIX'));
run.then(() => process.exit(0), err => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
