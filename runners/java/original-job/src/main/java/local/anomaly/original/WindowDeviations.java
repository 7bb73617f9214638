package local.anomaly.original;

import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * The original job's rule, for one sensor's window: every reading whose distance to the
 * window's average (the reading included) exceeds the threshold becomes an alert, emitted as
 * (sensor id, JSON object) for the Kafka sink.
 */
final class WindowDeviations
    extends ProcessWindowFunction<Tuple2<String, Double>, Tuple2<String, String>, String, TimeWindow> {

  private final double threshold;

  WindowDeviations(double threshold) {
    this.threshold = threshold;
  }

  @Override
  public void process(
      String sensorId,
      Context context,
      Iterable<Tuple2<String, Double>> readings,
      Collector<Tuple2<String, String>> out) {
    double sum = 0;
    long count = 0;
    for (Tuple2<String, Double> reading : readings) {
      sum += reading.f1;
      count++;
    }
    double average = sum / count;
    TimeWindow window = context.window();
    for (Tuple2<String, Double> reading : readings) {
      if (Math.abs(reading.f1 - average) > threshold) {
        String json =
            "{\"sensor_id\": \"" + jsonEscape(sensorId) + "\", \"value\": " + reading.f1
                + ", \"window_avg\": " + average + ", \"window_start_ms\": " + window.getStart()
                + ", \"window_end_ms\": " + window.getEnd() + "}";
        out.collect(Tuple2.of(sensorId, json));
      }
    }
  }

  private static String jsonEscape(String text) {
    StringBuilder escaped = new StringBuilder(text.length());
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') {
        escaped.append('\\').append(c);
      } else if (c < 0x20) {
        escaped.append(String.format("\\u%04x", (int) c));
      } else {
        escaped.append(c);
      }
    }
    return escaped.toString();
  }
}
