package local.anomaly.kafka;

import java.util.Optional;
import org.apache.beam.sdk.io.kafka.KafkaRecord;
import org.apache.beam.sdk.io.kafka.TimestampPolicy;
import org.apache.beam.sdk.io.kafka.TimestampPolicyFactory;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.kafka.common.TopicPartition;
import org.joda.time.Duration;
import org.joda.time.Instant;

/**
 * Event time from the Kafka record timestamp (CreateTime), with a watermark that an idle
 * partition cannot hold back.
 *
 * <p>Why not KafkaIO's own {@code withCreateTime}: its policy advances an idle partition's
 * watermark only once that partition has delivered at least one record. A partition that stays
 * empty (fewer producers or keys than partitions) keeps the watermark at its minimum, so no
 * event-time window ever fires. This policy treats every caught-up partition alike: when the
 * reader has no backlog on it, its watermark moves to the backlog check time minus {@code
 * idleDelay}. Otherwise the watermark is the largest record timestamp seen, never ahead of now.
 * It never goes backwards, and it resumes from the checkpointed watermark after a restart.
 */
public class IdleAwareCreateTimePolicy<K, V> extends TimestampPolicy<K, V> {

  private final Duration idleDelay;
  private Instant watermark;
  private Instant maxEventTime;

  public IdleAwareCreateTimePolicy(Duration idleDelay, Optional<Instant> previousWatermark) {
    this.idleDelay = idleDelay;
    this.watermark = previousWatermark.orElse(BoundedWindow.TIMESTAMP_MIN_VALUE);
    this.maxEventTime = this.watermark;
  }

  /** The factory KafkaIO needs: one policy per partition. */
  public static <K, V> TimestampPolicyFactory<K, V> factory(Duration idleDelay) {
    return (TopicPartition partition, Optional<Instant> previousWatermark) ->
        new IdleAwareCreateTimePolicy<>(idleDelay, previousWatermark);
  }

  @Override
  public Instant getTimestampForRecord(PartitionContext context, KafkaRecord<K, V> record) {
    Instant timestamp = new Instant(record.getTimestamp());
    if (timestamp.isAfter(maxEventTime)) {
      maxEventTime = timestamp;
    }
    return timestamp;
  }

  @Override
  public Instant getWatermark(PartitionContext context) {
    return advance(context.getMessageBacklog(), context.getBacklogCheckTime(), Instant.now());
  }

  /** The watermark after one observation; separate from the clock so tests can drive it. */
  Instant advance(long backlog, Instant backlogCheckTime, Instant now) {
    Instant candidate = maxEventTime.isAfter(now) ? now : maxEventTime;
    if (backlog == 0 && backlogCheckTime != null) {
      Instant idle = backlogCheckTime.minus(idleDelay);
      if (idle.isAfter(candidate)) {
        candidate = idle;
      }
    }
    if (candidate.isAfter(watermark)) {
      watermark = candidate;
    }
    return watermark;
  }
}
