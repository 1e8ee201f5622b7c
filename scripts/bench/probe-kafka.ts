import { KafkaPublisher } from '@hourglass/kafka';
import { createTopics, randomTopicName, serviceUrls } from '@hourglass/testkit';
async function main(): Promise<void> {
  const brokers = serviceUrls().kafkaBrokers;
  const topic = randomTopicName('probe');
  await createTopics(brokers, [topic], 4);
  const p = new KafkaPublisher({ brokers, clientId: 'probe' });
  await p.start();
  for (const size of [1, 1, 10, 100, 1000]) {
    const recs = Array.from({ length: size }, (_, i) => ({ topic, key: null, value: Buffer.from('{"n":1}'), headers: { 'hourglass-id': `x${i}`, a: 'b' } }));
    const t = performance.now();
    for (let i = 0; i < 20; i++) await p.publish(recs);
    console.log(`size ${size}: ${((performance.now() - t) / 20).toFixed(2)} ms per sequential publish`);
    const t2 = performance.now();
    await Promise.all(Array.from({ length: 4 }, () => p.publish(recs)));
    console.log(`size ${size}: 4 concurrent ${(performance.now() - t2).toFixed(2)} ms`);
  }
  await p.stop();
}
void main();
