package org.apache.beam.runners.flink.translation.wrappers.streaming.state;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.lang.reflect.Field;
import java.util.Collections;
import org.apache.beam.runners.core.StateNamespace;
import org.apache.beam.runners.core.StateNamespaces;
import org.apache.beam.runners.core.StateTag;
import org.apache.beam.runners.core.StateTags;
import org.apache.beam.runners.core.construction.SerializablePipelineOptions;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.adapter.FlinkKey;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.state.WatermarkHoldState;
import org.apache.beam.sdk.transforms.windowing.GlobalWindow;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.TimestampCombiner;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.collect.Multimap;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.java.typeutils.runtime.ValueSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.runtime.jobgraph.JobVertexID;
import org.apache.flink.runtime.query.KvStateRegistry;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.LocalRecoveryConfig;
import org.apache.flink.runtime.state.UncompressedStreamCompressionDecorator;
import org.apache.flink.runtime.state.heap.HeapKeyedStateBackend;
import org.apache.flink.runtime.state.heap.HeapKeyedStateBackendBuilder;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.Test;

/**
 * Guards this module's patch of Beam's FlinkStateInternals: the state object of a window's
 * watermark hold must not be remembered in {@code watermarkHoldsMap}, which upstream only empties
 * at the final watermark, so a streaming job with windowed state leaked heap per window for ever.
 * Holds in the global window must still be remembered so that clearGlobalState() clears them.
 */
public class FlinkStateInternalsWatermarkHoldsTest {

  private static final StateTag<WatermarkHoldState> HOLD =
      StateTags.watermarkStateInternal("hold", TimestampCombiner.EARLIEST);
  private static final int KEYS = 3;
  private static final int WINDOWS = 1000;

  /** A Flink heap keyed state backend for one key group, as HashMapStateBackend builds it. */
  private static HeapKeyedStateBackend<FlinkKey> heapBackend() throws Exception {
    KeyGroupRange keyGroups = new KeyGroupRange(0, 0);
    return new HeapKeyedStateBackendBuilder<>(
            new KvStateRegistry().createTaskRegistry(new JobID(), new JobVertexID()),
            new ValueSerializer<>(FlinkKey.class),
            FlinkStateInternalsWatermarkHoldsTest.class.getClassLoader(),
            1,
            keyGroups,
            new ExecutionConfig(),
            TtlTimeProvider.DEFAULT,
            LatencyTrackingStateConfig.disabled(),
            Collections.emptyList(),
            UncompressedStreamCompressionDecorator.INSTANCE,
            new LocalRecoveryConfig(null),
            new HeapPriorityQueueSetFactory(keyGroups, 1, 128),
            false,
            new CloseableRegistry())
        .build();
  }

  private static Multimap<?, ?> watermarkHoldsMap(FlinkStateInternals<?> internals)
      throws Exception {
    Field field = FlinkStateInternals.class.getDeclaredField("watermarkHoldsMap");
    field.setAccessible(true);
    return (Multimap<?, ?>) field.get(internals);
  }

  private static StateNamespace window(int index) {
    Instant start = new Instant(index * 1000L);
    IntervalWindow window = new IntervalWindow(start, start.plus(Duration.standardSeconds(5)));
    return StateNamespaces.window(IntervalWindow.getCoder(), window);
  }

  @Test
  public void windowHoldsAreNotRememberedButGlobalOnesAre() throws Exception {
    HeapKeyedStateBackend<FlinkKey> backend = heapBackend();
    FlinkStateInternals<String> internals =
        new FlinkStateInternals<>(
            backend,
            StringUtf8Coder.of(),
            IntervalWindow.getCoder(),
            new SerializablePipelineOptions(FlinkPipelineOptions.defaults()));

    for (int key = 0; key < KEYS; key++) {
      backend.setCurrentKey(FlinkKey.of("key-" + key, StringUtf8Coder.of()));
      for (int w = 0; w < WINDOWS; w++) {
        internals.state(window(w), HOLD).add(new Instant(5000L + w * 1000L + key));
      }
    }
    assertEquals(5000L, (long) internals.minWatermarkHoldMs());

    // Window GC: each window's state is bound again and cleared once the window expires.
    for (int key = 0; key < KEYS; key++) {
      backend.setCurrentKey(FlinkKey.of("key-" + key, StringUtf8Coder.of()));
      for (int w = 0; w < WINDOWS; w++) {
        internals.state(window(w), HOLD).clear();
      }
    }
    assertEquals(Long.MAX_VALUE, (long) internals.minWatermarkHoldMs());
    assertTrue(
        "window holds must not be remembered until the final watermark (heap leak), found "
            + watermarkHoldsMap(internals).size(),
        watermarkHoldsMap(internals).isEmpty());

    // A hold in the global window is still remembered, and cleared at the final watermark.
    // (clearGlobalState() leaves minWatermarkHoldMs() as it was: upstream, not patched.)
    StateNamespace global =
        StateNamespaces.window(GlobalWindow.Coder.INSTANCE, GlobalWindow.INSTANCE);
    internals.state(global, HOLD).add(new Instant(42));
    assertEquals(42L, (long) internals.minWatermarkHoldMs());
    assertEquals(1, watermarkHoldsMap(internals).size());
    assertTrue(watermarkHoldsMap(internals).containsKey(global.stringKey()));
    internals.clearGlobalState();
    assertTrue(watermarkHoldsMap(internals).isEmpty());
    assertNull(internals.state(global, HOLD).read());
    backend.dispose();
  }
}
