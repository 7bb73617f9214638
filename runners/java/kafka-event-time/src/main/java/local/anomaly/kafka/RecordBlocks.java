package local.anomaly.kafka;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.AbstractMap.SimpleImmutableEntry;
import java.util.HashMap;
import java.util.Map;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.io.kafka.KafkaRecord;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.PCollection;
import org.joda.time.Instant;

/**
 * Kafka records -> blocks: the records of one bundle and topic packed into one byte array.
 *
 * <p>Why: on the portable Flink runner every element that goes from a Java step to the Python
 * worker is encoded, handed over the Fn API and decoded on the other side, and a schema row (what
 * KafkaIO's read with metadata yields) is slow to encode and decode. One block per bundle
 * crosses once for about a thousand records. The Python side unpacks it
 * ({@code pipeline/kafka_io.py}, {@code unpack_record_block}).
 *
 * <p>Layout, big-endian: {@code int32 topic length, topic (UTF-8)}, then per record {@code
 * int32 partition, int64 offset, int64 timestamp (ms), int32 key length (-1: no key), key,
 * int32 value length (-1: no value), value}. A block is stamped with its earliest record's
 * timestamp, so it is never later than any record in it; the runner holds the watermark until
 * the bundle, and with it the block, is done.
 */
public class RecordBlocks
    extends PTransform<PCollection<KafkaRecord<byte[], byte[]>>, PCollection<byte[]>> {

  @Override
  public PCollection<byte[]> expand(PCollection<KafkaRecord<byte[], byte[]>> records) {
    return records.apply("PackRecordBlocks", ParDo.of(new PackFn())).setCoder(ByteArrayCoder.of());
  }

  /** One open block: its bytes so far and its earliest timestamp. */
  private static final class Block {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream(64 * 1024);
    final DataOutputStream out = new DataOutputStream(bytes);
    final BoundedWindow window;
    Instant earliest = BoundedWindow.TIMESTAMP_MAX_VALUE;

    Block(String topic, BoundedWindow window) {
      this.window = window;
      writeBytes(topic.getBytes(StandardCharsets.UTF_8));
    }

    void add(KafkaRecord<byte[], byte[]> record, Instant timestamp) {
      try {
        out.writeInt(record.getPartition());
        out.writeLong(record.getOffset());
        out.writeLong(record.getTimestamp());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      writeBytes(record.getKV().getKey());
      writeBytes(record.getKV().getValue());
      if (timestamp.isBefore(earliest)) {
        earliest = timestamp;
      }
    }

    private void writeBytes(byte[] data) {
      try {
        if (data == null) {
          out.writeInt(-1);
        } else {
          out.writeInt(data.length);
          out.write(data);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  static class PackFn extends DoFn<KafkaRecord<byte[], byte[]>, byte[]> {
    private transient Map<SimpleImmutableEntry<String, BoundedWindow>, Block> open;

    @StartBundle
    public void startBundle() {
      open = new HashMap<>();
    }

    @ProcessElement
    public void process(
        @Element KafkaRecord<byte[], byte[]> record,
        @Timestamp Instant timestamp,
        BoundedWindow window) {
      open.computeIfAbsent(
              new SimpleImmutableEntry<>(record.getTopic(), window),
              key -> new Block(record.getTopic(), window))
          .add(record, timestamp);
    }

    @FinishBundle
    public void finishBundle(FinishBundleContext context) {
      for (Block block : open.values()) {
        context.output(block.bytes.toByteArray(), block.earliest, block.window);
      }
      open.clear();
    }
  }
}
