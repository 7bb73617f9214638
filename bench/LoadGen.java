// The load generator of bench/load.py in Java, for rates where kafka-python's ~35 us of
// CPU per send would compete with the job for this machine's two cores (kafka-python:
// ~28,000 records/s per process at a full core; this: a few percent of a core at 5,000/s).
// Same records: key sensor-NNNN, value {"sensor_id": ..., "value": ..., "ts": <ms>},
// Kafka timestamp = ts, partition from the client's default partitioner (murmur2 of the key).
// Run by bench/load.py (--engine java) with Java's source launcher, no build step:
//   java -cp '.cache/jars/kafka/*' bench/LoadGen.java rate BOOTSTRAP TOPIC SENSORS RATE SECONDS SPIKE_EVERY
//   java -cp '.cache/jars/kafka/*' bench/LoadGen.java preload BOOTSTRAP TOPIC SENSORS COUNT EVENT_RATE START_MS SPIKE_EVERY
// Prints one JSON line: mode, sent, seconds, achieved_rps, first_ts_ms, last_ts_ms.

import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Properties;
import java.util.Random;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class LoadGen {
  static final int VALUES = 64;
  // -Dloadgen.format=csv: the original job's `sensor-0007,42.5` (event time = Kafka timestamp)
  static final boolean CSV = "csv".equals(System.getProperty("loadgen.format"));
  static byte[][] keys;
  static String[] prefixes;
  static String[][] values;
  static String[] spikes;

  static void makeSensors(int n, long seed) {
    keys = new byte[n][];
    prefixes = new String[n];
    values = new String[n][VALUES];
    spikes = new String[n];
    for (int i = 0; i < n; i++) {
      Random rng = new Random(seed * 1_000_003L + i);
      String id = String.format("sensor-%04d", i);
      double level = 20 + 180 * rng.nextDouble(), noise = 0.5 + 2.5 * rng.nextDouble();
      keys[i] = id.getBytes(StandardCharsets.UTF_8);
      prefixes[i] = CSV ? id + "," : "{\"sensor_id\": \"" + id + "\", \"value\": ";
      for (int k = 0; k < VALUES; k++) {
        values[i][k] = String.format(Locale.ROOT, "%.4f", level + noise * rng.nextGaussian());
      }
      spikes[i] = String.format(Locale.ROOT, "%.4f", level + 120.0);
    }
  }

  static ProducerRecord<byte[], byte[]> record(String topic, long i, long tsMs, int spikeEvery) {
    int s = (int) (i % keys.length);
    long n = i / keys.length;
    String value = spikeEvery > 0 && (n + s) % spikeEvery == spikeEvery - 1
        ? spikes[s] : values[s][(int) (n % VALUES)];
    String text = CSV ? prefixes[s] + value : prefixes[s] + value + ", \"ts\": " + tsMs + "}";
    byte[] payload = text.getBytes(StandardCharsets.UTF_8);
    return new ProducerRecord<>(topic, null, tsMs, keys[s], payload);
  }

  static KafkaProducer<byte[], byte[]> producer(String bootstrap) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("acks", "1");
    p.put("linger.ms", "20");
    p.put("batch.size", String.valueOf(256 * 1024));
    p.put("compression.type", "none");
    p.put("enable.idempotence", "false");
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    return new KafkaProducer<>(p);
  }

  public static void main(String[] a) {
    String mode = a[0], bootstrap = a[1], topic = a[2];
    makeSensors(Integer.parseInt(a[3]), 1);
    long sent = 0, firstTs = 0, lastTs = 0;
    long start = System.currentTimeMillis();
    try (KafkaProducer<byte[], byte[]> prod = producer(bootstrap)) {
      if (mode.equals("rate")) {
        double rate = Double.parseDouble(a[4]);
        long durationMs = (long) (Double.parseDouble(a[5]) * 1000);
        int spikeEvery = Integer.parseInt(a[6]);
        firstTs = start;
        lastTs = start + durationMs;
        while (true) {
          long now = System.currentTimeMillis();
          if (now - start >= durationMs) break;
          long due = (long) (rate * (now - start) / 1000.0) - sent;
          for (long k = 0; k < due; k++, sent++) prod.send(record(topic, sent, now, spikeEvery));
          long pause = 10 - (System.currentTimeMillis() - now);
          if (pause > 0) Thread.sleep(pause);
        }
      } else {
        long count = Long.parseLong(a[4]);
        double stepMs = 1000.0 / Double.parseDouble(a[5]);
        firstTs = Long.parseLong(a[6]);
        int spikeEvery = Integer.parseInt(a[7]);
        for (; sent < count; sent++) {
          prod.send(record(topic, sent, firstTs + (long) (sent * stepMs), spikeEvery));
        }
        lastTs = firstTs + (long) ((count - 1) * stepMs);
      }
      prod.flush();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    double seconds = (System.currentTimeMillis() - start) / 1000.0;
    System.out.printf(Locale.ROOT,
        "{\"mode\": \"%s\", \"engine\": \"java\", \"sent\": %d, \"seconds\": %.3f, "
            + "\"achieved_rps\": %.1f, \"first_ts_ms\": %d, \"last_ts_ms\": %d}%n",
        mode.equals("rate") ? "rate" : "preload", sent, seconds, sent / seconds, firstTs, lastTs);
  }
}
