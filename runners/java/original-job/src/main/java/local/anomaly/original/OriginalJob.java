package local.anomaly.original;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.utils.ParameterTool;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingProcessingTimeWindows;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The hand-written Flink job that the Beam pipeline replaces, rebuilt as the baseline of the
 * benchmark (issue 6): the same computation, so that throughput, alert latency and memory can
 * be compared with the product's on the same Kafka and Flink.
 *
 * <p>It reads CSV lines {@code sensor_id,value}, keys them by sensor, puts them in sliding
 * processing-time windows (10 s every 5 s by default) and flags every reading of a window whose
 * distance to that window's average exceeds the threshold (50 by default). As in the original, a
 * reading is judged once per window that contains it, so one spike is usually alerted twice, and
 * it is part of the average it is judged against. Two changes make it measurable: alerts go to
 * a Kafka topic (key = sensor id, value = a small JSON object, Kafka timestamp = the time the
 * producer sent it) instead of the TaskManager log, and a malformed line is counted (metric
 * {@code malformedLines}), logged and skipped instead of failing the job.
 *
 * <p>Arguments (all {@code --name value}): --bootstrap (127.0.0.1:9092), --input-topic
 * (sensor-data_2), --output-topic (anomaly-alerts-original), --window-ms (10000), --slide-ms
 * (5000), --threshold (50), --group-id (original-job), --start-offset (earliest|latest,
 * default earliest), --parallelism (the environment's default when absent).
 */
public final class OriginalJob {

  private static final Logger LOG = LoggerFactory.getLogger(OriginalJob.class);

  private OriginalJob() {}

  public static void main(String[] args) throws Exception {
    ParameterTool params = ParameterTool.fromArgs(args);
    String bootstrap = params.get("bootstrap", "127.0.0.1:9092");
    String inputTopic = params.get("input-topic", "sensor-data_2");
    String outputTopic = params.get("output-topic", "anomaly-alerts-original");
    long windowMs = params.getLong("window-ms", 10_000);
    long slideMs = params.getLong("slide-ms", 5_000);
    double threshold = params.getDouble("threshold", 50.0);
    String startOffset = params.get("start-offset", "earliest");
    if (windowMs <= 0 || slideMs <= 0 || slideMs > windowMs) {
      throw new IllegalArgumentException(
          "need 0 < --slide-ms <= --window-ms, got " + slideMs + " and " + windowMs);
    }
    if (!startOffset.equals("earliest") && !startOffset.equals("latest")) {
      throw new IllegalArgumentException("--start-offset must be earliest or latest");
    }

    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.getConfig().setGlobalJobParameters(params); // shown in the web UI
    if (params.has("parallelism")) {
      env.setParallelism(params.getInt("parallelism"));
    }

    KafkaSource<String> source =
        KafkaSource.<String>builder()
            .setBootstrapServers(bootstrap)
            .setTopics(inputTopic)
            .setGroupId(params.get("group-id", "original-job"))
            .setStartingOffsets(
                startOffset.equals("earliest")
                    ? OffsetsInitializer.earliest()
                    : OffsetsInitializer.latest())
            .setValueOnlyDeserializer(new NullSafeStringSchema())
            .build();

    KafkaSink<Tuple2<String, String>> sink =
        KafkaSink.<Tuple2<String, String>>builder()
            .setBootstrapServers(bootstrap)
            .setRecordSerializer(
                (KafkaRecordSerializationSchema<Tuple2<String, String>>)
                    (alert, context, timestamp) ->
                        // No timestamp: the producer stamps the send time. The window's own
                        // timestamp would be its end, not when the alert left the job.
                        new ProducerRecord<>(
                            outputTopic,
                            null,
                            null,
                            alert.f0.getBytes(StandardCharsets.UTF_8),
                            alert.f1.getBytes(StandardCharsets.UTF_8)))
            .build();

    env.fromSource(source, WatermarkStrategy.noWatermarks(), "ReadCsvLines")
        .process(new ParseLine())
        .name("ParseLine")
        .keyBy(reading -> reading.f0)
        .window(
            SlidingProcessingTimeWindows.of(
                Duration.ofMillis(windowMs), Duration.ofMillis(slideMs)))
        .process(new WindowDeviations(threshold))
        .name("WindowDeviations")
        .sinkTo(sink)
        .name("WriteAlerts");

    env.execute("original-job");
  }

  /** {@code sensor_id,value} to (sensor_id, value); anything else is counted and skipped. */
  static final class ParseLine extends ProcessFunction<String, Tuple2<String, Double>> {

    private transient Counter malformed;

    @Override
    public void open(OpenContext context) {
      malformed = getRuntimeContext().getMetricGroup().counter("malformedLines");
    }

    @Override
    public void processElement(
        String line, Context context, Collector<Tuple2<String, Double>> out) {
      String[] fields = line.split(",", -1);
      if (fields.length == 2 && !fields[0].trim().isEmpty()) {
        try {
          double value = Double.parseDouble(fields[1].trim());
          if (Double.isFinite(value)) {
            out.collect(Tuple2.of(fields[0].trim(), value));
            return;
          }
        } catch (NumberFormatException e) {
          // falls through to the malformed case
        }
      }
      malformed.inc();
      LOG.warn("skipping malformed line: {}", line);
    }
  }

  /** UTF-8 strings; a record without a value (a tombstone) becomes "", a malformed line. */
  static final class NullSafeStringSchema extends SimpleStringSchema {
    @Override
    public String deserialize(byte[] message) {
      return message == null ? "" : super.deserialize(message);
    }
  }
}
