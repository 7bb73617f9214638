package org.apache.beam.sdk.io.kafka;

import java.util.Collections;
import java.util.Map;
import local.anomaly.kafka.IdleAwareCreateTimePolicy;
import local.anomaly.kafka.RecordBlocks;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.joda.time.Duration;

/**
 * A cross-language KafkaIO read whose event time is the record timestamp, whose watermark an
 * idle partition cannot stall ({@link IdleAwareCreateTimePolicy}), and whose records come
 * packed into blocks, one byte array per bundle ({@link RecordBlocks}): Python pays per
 * element that crosses to it, and a block crosses once for about a thousand records.
 *
 * <p>It takes the same configuration as Beam's {@code kafka_read_with_metadata} (Python's
 * ReadFromKafka payload). It lives in KafkaIO's package because the builder that turns that
 * configuration into a read is package-private.
 */
public class EventTimeKafkaRead implements ExternalTransformRegistrar {

  public static final String URN =
      "beam:transform:local.anomaly:kafka_read_event_time_blocks:v1";

  /**
   * How far behind the broker's latest offset check an idle partition's watermark stays: how
   * long a producer may hold a record before the broker has it and still be on time. Producers
   * buffer and retry through a broker restart; with 2 s, their records arrived behind the
   * watermark and went to late panes (docs/design.md, "The idle delay is 30 s").
   */
  static final Duration IDLE_DELAY = Duration.standardSeconds(30);

  @Override
  public Map<String, Class<? extends ExternalTransformBuilder<?, ?, ?>>> knownBuilders() {
    return Collections.singletonMap(URN, BlocksBuilder.class);
  }

  /** The configured read with the event-time policy. */
  static KafkaIO.Read<byte[], byte[]> read(KafkaIO.Read.External.Configuration configuration) {
    KafkaIO.Read.Builder<byte[], byte[]> builder = KafkaIO.<byte[], byte[]>read().toBuilder();
    KafkaIO.Read.Builder.setupExternalBuilder(builder, configuration);
    builder.setTimestampPolicyFactory(IdleAwareCreateTimePolicy.factory(IDLE_DELAY));
    return builder.build();
  }

  /** Builds the read from the configuration Python sends, packed into blocks of records. */
  public static class BlocksBuilder
      implements ExternalTransformBuilder<
          KafkaIO.Read.External.Configuration, PBegin, PCollection<byte[]>> {

    @Override
    public PTransform<PBegin, PCollection<byte[]>> buildExternal(
        KafkaIO.Read.External.Configuration configuration) {
      return new ReadBlocks(read(configuration));
    }
  }

  /** The read, then its records packed into blocks. */
  static class ReadBlocks extends PTransform<PBegin, PCollection<byte[]>> {
    private final KafkaIO.Read<byte[], byte[]> read;

    ReadBlocks(KafkaIO.Read<byte[], byte[]> read) {
      this.read = read;
    }

    @Override
    public PCollection<byte[]> expand(PBegin input) {
      return input.apply("KafkaIO.Read", read).apply("RecordBlocks", new RecordBlocks());
    }
  }
}
