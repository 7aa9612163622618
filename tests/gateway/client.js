'use strict';
// A RocketMQ client application (the npm package ali-ons, pure JavaScript)
// talking to shmq-gateway, for tests/integration/gateway.t.
//
//   node client.js produce PORT TOPIC COUNT PREFIX [SIZE]
//       sends COUNT messages synchronously, key PREFIX-<i>, tag Tag<i % 2>,
//       body "PREFIX-<i> " repeated to SIZE bytes (default: the key);
//       prints "sent KEY MSGID OFFSETMSGID QUEUE QUEUEOFFSET" per message.
//   node client.js consume PORT TOPIC GROUP COUNT [TAGEXPR]
//       a push consumer of GROUP; prints "got KEY TAG BODYLEN MD5 QUEUE
//       QUEUEOFFSET BODYHEAD RECONSUMETIMES" per message until COUNT distinct
//       keys came (then "done"), at most 120 s.  With FAIL_FIRST=1 in the
//       environment, the first delivery of each key is failed (ACTION_RETRY:
//       the client sends it back) and a key counts once it came again.
//       COUNT 0: until the file STOP_FILE (environment) exists; prints
//       "ready" once the consumer runs and "queues N" whenever the number of
//       the topic's queues it holds changes.
//   node client.js follow NAMESRVS TOPIC PREFIX
//       a producer following the master of a broker set in controller mode
//       (tests/integration/controller_route.t).  NAMESRVS: the gateways
//       serving as name servers, separated by ';'.  Sends key PREFIX-<i> (i
//       from 0), one at a time, every 50 ms, until the file STOP_FILE
//       (environment) exists and, after it appeared, one more message was
//       acknowledged (at most 120 s).  Prints "ack KEY ADDR QUEUE
//       QUEUEOFFSET" for each acknowledged send (ADDR: the broker address the
//       route named for the send's broker set, the one it was sent to) and
//       "fail KEY ERROR" for each send that failed (it goes on with the next
//       key after 200 ms).  The routes are asked again every second
//       (pollNameServerInteval), so a new master is found.
//
// Exit status 0 when all went as asked, 1 otherwise (the error on stderr).
const crypto = require('crypto');
const { Producer, Consumer, Message } = require('ali-ons');

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
  error(e) {
    process.stderr.write(`ali-ons: ${e && e.stack ? e.stack : e}\n`);
  },
};

function body(key, size) {
  if (!size) return Buffer.from(key);
  const unit = `${key} `;
  return Buffer.from(unit.repeat(Math.ceil(size / unit.length)).slice(0, size));
}

async function produce(port, topic, count, prefix, size) {
  const producer = new Producer({
    httpclient,
    logger,
    nameSrv: `127.0.0.1:${port}`,
    producerGroup: `PG_${prefix.replace(/[^A-Za-z0-9_]/g, '_')}`,
    instanceName: `p${process.pid}`,
  });
  await producer.ready();
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-${i}`;
    const msg = new Message(topic, `Tag${i % 2}`, body(key, size));
    msg.keys = [ key ];
    const r = await producer.send(msg);
    if (r.sendStatus !== 'SEND_OK') throw new Error(`send ${key}: ${r.sendStatus}`);
    console.log(`sent ${key} ${r.msgId} ${r.offsetMsgId} ${r.messageQueue.queueId} ${r.queueOffset}`);
  }
  await producer.close();
}

async function consume(port, topic, group, count, expr) {
  const seen = new Set();
  const failed = new Set();
  const consumer = new Consumer({
    httpclient,
    logger,
    nameSrv: `127.0.0.1:${port}`,
    consumerGroup: group,
    instanceName: `c${process.pid}`,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    pullTimeDelayMillsWhenException: 200,
  });
  let finish;
  const finished = new Promise(resolve => { finish = resolve; });
  consumer.subscribe(topic, expr || '*', async msg => {
    const key = msg.properties.KEYS;
    const md5 = crypto.createHash('md5').update(msg.body).digest('hex');
    const head = msg.body.slice(0, 24).toString().replace(/\s+/g, '_');
    console.log(`got ${key} ${msg.tags} ${msg.body.length} ${md5} ${msg.queueId} ${msg.queueOffset} ${head} ${msg.reconsumeTimes}`);
    if (process.env.FAIL_FIRST === '1' && !failed.has(key)) {
      failed.add(key);
      return Consumer.ACTION_RETRY;
    }
    seen.add(key);
    // finished once this handler returned and the client moved its offset past the message
    if (count > 0 && seen.size >= count) setTimeout(finish, 1000);
  });
  consumer.on('error', e => process.stderr.write(`consumer: ${e && e.stack ? e.stack : e}\n`));
  await consumer.ready();
  console.log('ready');
  const fs = require('fs');
  let held = -1;
  const stop = count === 0 ? setInterval(() => {
    // the topic's queues this member holds now (the group divides them), when they change
    const n = [ ...consumer.processQueueTable.values() ]
      .filter(pq => pq.messageQueue.topic === topic).length;
    if (n !== held) console.log(`queues ${(held = n)}`);
    if (fs.existsSync(process.env.STOP_FILE)) finish();
  }, 200) : null;
  const timer = setTimeout(() => finish(), count === 0 ? 300000 : 120000);
  await finished;
  clearTimeout(timer);
  if (stop) clearInterval(stop);
  await consumer.close();
  console.log(seen.size >= count ? 'done' : `timeout after ${seen.size}`);
  if (seen.size < count) process.exitCode = 1;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function follow(namesrvs, topic, prefix) {
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
  const fs = require('fs');
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

(async () => {
  const [ cmd, port, topic, a, b, c ] = process.argv.slice(2);
  if (cmd === 'produce') {
    await produce(port, topic, Number(a), b, Number(c || 0));
  } else if (cmd === 'consume') {
    await consume(port, topic, a, Number(b), c);
  } else if (cmd === 'follow') {
    await follow(port, topic, a);
  } else {
    throw new Error('usage: client.js produce|consume|follow ...');
  }
  process.exit(process.exitCode || 0);
})().catch(e => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
